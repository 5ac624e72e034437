"""Pydantic v2 schema of a configuration profile (paper, Table 1): the evaluation space C.

A profile is a JSON document with the sections ``dataset`` (one or more datasets with their imaging
context), ``task``, ``model`` (the encoder x decoder grid), ``training``, ``seeds`` and ``execution``.
Every model forbids unknown keys and validates strictly (``"16"`` is not an integer). Defaults follow
the paper: batch 16, lr 1e-4 (Adam), cosine annealing, early stopping patience 20 on validation IoU,
ImageNet encoder weights. ``profiles/schema.json`` is exported from :class:`Profile`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from matseg_nb.profiles.registry import DECODER_ALIASES, check_encoder, normalise_decoder
from matseg_nb.vocabulary import MaterialClass, Metric, Modality

QCSignal = Literal["auroc", "f1", "precision", "fpr95"]

#: values of ``model.encoder_weights`` that are not file paths.
WEIGHT_KEYWORDS = ("imagenet", "none", "micronet", "imagenet-micronet")

EncoderName = Annotated[
    str,
    AfterValidator(check_encoder),
    Field(
        description="smp encoder name (smp.encoders.get_encoder_names(), case-insensitive) or 'tu-<timm model>'",
        examples=["resnet50", "se_resnext101_32x4d", "tu-test_resnet"],
    ),
]
DecoderName = Annotated[
    str,
    AfterValidator(normalise_decoder),
    Field(
        description="smp architecture, case-insensitive; normalised to smp's class name "
        f"({', '.join(sorted(set(DECODER_ALIASES.values())))})",
        examples=["Unet", "DeepLabV3", "DeepLabV3Plus"],
    ),
]


def _distinct(values: list, what: str) -> list:
    seen: set = set()
    dupes = [v for v in values if v in seen or seen.add(v)]
    if dupes:
        raise ValueError(f"expected distinct {what}, found {dupes[0]!r} more than once")
    return values


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, serialize_by_alias=True)


# ---------------------------------------------------------------------------------------------- dataset


class Material(_Section):
    """Material system: a coarse class (Table 1) and free text (alloy, polymer grade, ...)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, serialize_by_alias=True, populate_by_name=True)

    class_: MaterialClass = Field(alias="class", description="coarse material class")
    text: str = Field(default="", description="free text, e.g. 'Ni-based superalloy'")


class MetadataTerm(_Section):
    """One ontology / experiment descriptor, e.g. ``{"term": "mds:Microstructure", "value": "..."}``."""

    term: str = Field(min_length=1, description="ontology term, ideally a prefixed IRI such as 'mds:Microstructure'")
    value: JsonValue = Field(description="any JSON value")
    unit: str | None = Field(default=None, description="unit of a numeric value, e.g. 'nm/pixel'")


class Provenance(_Section):
    """Where the images come from (free text fields; none is required)."""

    source: str = ""
    url: str = ""
    citation: str = ""
    doi: str | None = None
    licence: str = ""
    notes: str = ""


class DatasetEntry(_Section):
    """One dataset and its imaging context."""

    ref: str = Field(
        min_length=1,
        description="manifest name (data_manifests/<name>.yaml), path to a manifest .yaml, or a folder "
        "with images/ and masks/; relative paths resolve against the profile's folder",
    )
    modality: Modality
    material: Material
    metadata: list[MetadataTerm] = Field(default_factory=list, description="ontology descriptors")
    provenance: Provenance = Field(default_factory=Provenance)
    training: TrainingOverrides | None = Field(
        default=None,
        description="this dataset's changes to the profile's training section (same keys; augmentations "
        "merged key by key), e.g. {\"input_scale\": 1.0, \"max_epochs\": 30} for thin features; part of its jobs' ids",
    )


# ------------------------------------------------------------------------------------------------- task


class TaskConfig(_Section):
    """What the segmentation is for and how it is judged."""

    objective: str = Field(min_length=1, description="natural-language objective, e.g. 'Identify grain boundaries'")
    metrics: list[Metric] = Field(default_factory=lambda: ["iou", "dice", "wiou", "pixel_accuracy"], min_length=1)
    primary_metric: Metric = Field(default="iou", description="metric used to rank architectures")
    qc_signals: list[QCSignal] = Field(default_factory=lambda: ["auroc", "f1", "precision"])
    readiness_threshold: float = Field(
        default=0.95, ge=0.5, le=1.0, description="QC AUROC at or above which a model is deployment-ready"
    )

    @field_validator("metrics", "qc_signals")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return _distinct(v, "names")

    @model_validator(mode="after")
    def _primary_listed(self) -> TaskConfig:
        if self.primary_metric not in self.metrics:
            raise ValueError(
                f"expected primary_metric to be one of metrics {self.metrics}, found {self.primary_metric!r}"
            )
        return self


# ------------------------------------------------------------------------------------------------ model


class ModelConfig(_Section):
    """The encoder x decoder grid (M = F2 o F1) and the encoder initialisation."""

    encoders: list[EncoderName] = Field(min_length=1)
    decoders: list[DecoderName] = Field(min_length=1)
    encoder_weights: str = Field(
        default="imagenet",
        min_length=1,
        description="'imagenet' (from the local cache, never downloaded in tests), 'micronet' / 'imagenet-micronet' "
        "(MicroNet, fetched with `matseg weights fetch ENCODER --source micronet`), 'none' (random init) "
        "or a path to a local weights file (relative to the profile's folder)",
    )
    min_encoder_key_match: float = Field(
        default=0.95, gt=0.0, le=1.0,
        description="fraction of encoder keys a local weights file must match, else the job fails",
    )
    decoder_options: dict[DecoderName, dict[str, JsonValue]] = Field(
        default_factory=dict,
        description="extra smp constructor arguments per decoder, e.g. "
        '{"DeepLabV3": {"encoder_output_stride": 16}}; part of each job\'s id; options of a decoder not in '
        "`decoders` are ignored, with a note",
    )

    @field_validator("decoder_options")
    @classmethod
    def _known_decoder_options(cls, value: dict, info: ValidationInfo) -> dict:
        from matseg_nb.profiles.registry import decoder_parameters

        for decoder, options in value.items():  # a decoder outside the grid: checked, then ignored (notes())
            allowed = decoder_parameters(decoder)
            unknown = sorted(set(options) - set(allowed))
            if unknown:
                raise ValueError(f"expected arguments of smp.{decoder} ({', '.join(allowed)}), "
                                 f"found {unknown[0]!r}")
        return value

    def notes(self) -> list[str]:
        """What the grid leaves out: options of decoders that are not in ``decoders``."""
        return [f"model.decoder_options names {d}, which is not in model.decoders: its options are ignored"
                for d in self.decoder_options if d not in self.decoders]

    @field_validator("encoders")
    @classmethod
    def _unique_encoders(cls, v: list[str]) -> list[str]:
        return _distinct(v, "encoders (after normalisation)")

    @field_validator("decoders")
    @classmethod
    def _unique_decoders(cls, v: list[str]) -> list[str]:
        return _distinct(v, "decoders (after normalisation)")


# --------------------------------------------------------------------------------------------- training


class Augmentations(_Section):
    """Training-time augmentations applied to random crops; intensities in normalised [0, 1] units."""

    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    brightness: float = Field(default=0.1, ge=0.0, le=1.0, description="max additive shift")
    contrast: float = Field(default=0.1, ge=0.0, le=1.0, description="max relative gain change")
    gaussian_noise: float = Field(default=0.0, ge=0.0, le=1.0, description="noise std")


class TrainingConfig(_Section):
    """Identical training settings for every job of a profile (paper defaults)."""

    batch_size: int = Field(default=16, ge=1)
    lr: float = Field(default=1e-4, gt=0.0, description="initial learning rate")
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = Field(default=0.0, ge=0.0)
    scheduler: Literal["cosine", "constant"] = Field(default="cosine", description="cosine annealing over max_epochs")
    max_epochs: int = Field(default=200, ge=1)
    early_stopping_patience: int = Field(default=20, ge=0, description="epochs without improvement; 0 disables")
    monitor: Literal["val_iou", "val_dice", "val_loss"] = Field(
        default="val_iou", description="validation quantity for early stopping and best-checkpoint choice"
    )
    val_every: int = Field(default=1, ge=1, description="validate every N epochs")
    val_crop_size: int | None = Field(
        default=None, ge=32,
        description="validate on the central crop of this size of each validation image (multiple of 32; "
        "smaller images stay whole); null = whole images, tiled. Test evaluation is always on whole images",
    )
    steps_per_epoch: int | None = Field(default=None, ge=1, description="cap on batches per epoch; null = one pass")
    crop_size: int = Field(default=512, ge=32, description="random training crop, pixels (multiple of 32)")
    foreground_crop_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="share of training crops centred on a pixel of a foreground class (class drawn uniformly "
        "among the non-background classes, as nnU-Net oversamples foreground); 0 = uniform random crops",
    )
    input_scale: float = Field(
        default=1.0, gt=0.0, le=1.0,
        description="resample images by this factor before the model sees them (area; masks nearest), in "
        "training and in every prediction (outputs are upsampled back, so predictions, metrics, QC and "
        "heatmaps stay at full resolution); < 1 gives each crop more context per pixel of compute. crop_size "
        "is in resampled pixels, val_crop_size, tile_size and tile_overlap in original pixels",
    )
    class_weights: list[float] | None = Field(
        default=None,
        description="cross-entropy weight per class id (background first; one per class), for rare classes; "
        "null = unweighted",
    )
    tile_size: int = Field(default=512, ge=32, description="inference tile, pixels (multiple of 32)")
    tile_overlap: int = Field(default=64, ge=0, description="overlap between inference tiles, pixels")
    loss: Literal["ce", "dice", "ce+dice"] = "ce+dice"
    augmentations: Augmentations = Field(default_factory=Augmentations)
    normalization: Literal["percentile", "dtype", "none"] = Field(
        default="percentile", description="image intensity normalisation (0.5/99.5 percentiles per channel)"
    )
    precision: Literal["32", "16-mixed", "bf16-mixed"] = "32"
    num_workers: int = Field(default=0, ge=0, description="DataLoader worker processes")

    @field_validator("crop_size", "tile_size", "val_crop_size")
    @classmethod
    def _multiple_of_32(cls, v: int | None) -> int | None:
        if v is not None and v % 32:
            raise ValueError(f"expected a multiple of 32 pixels, found {v}")
        return v

    @field_validator("class_weights")
    @classmethod
    def _positive_weights(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or min(v) <= 0):
            raise ValueError(f"expected one positive weight per class, found {v}")
        return v

    @model_validator(mode="after")
    def _overlap(self) -> TrainingConfig:
        if self.tile_overlap * 2 >= self.tile_size:
            raise ValueError(
                f"expected tile_overlap < tile_size / 2 = {self.tile_size // 2}, found {self.tile_overlap}"
            )
        return self


def _overrides_model(model: type[BaseModel], name: str) -> type[BaseModel]:
    """``model`` with every field optional and unset by default (constraints kept; validators are checked
    when the overrides are merged into the profile's settings, :meth:`Profile.training_for`)."""
    import copy

    fields = {}
    for field_name, info in model.model_fields.items():
        field = copy.copy(info)
        field.default, field.default_factory = None, None
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = _overrides_model(annotation, f"{annotation.__name__}Overrides")
        fields[field_name] = (annotation | None, field)
    return create_model(name, __base__=_Section, __doc__=f"Changes to {model.__name__} (unset keys keep "
                        "the profile's value).", **fields)


TrainingOverrides = _overrides_model(TrainingConfig, "TrainingOverrides")


# ------------------------------------------------------------------------------------------- evaluation


class EvaluationConfig(_Section):
    """How each architecture is validated. Changes results, so ``folds`` is part of CV job ids."""

    folds: int | None = Field(
        default=None, ge=2,
        description="k-fold cross-validation over image groups of train+val pooled (images of one sample/spot "
        "stay in one fold): each fold is one job that trains on the other folds and validates on its own; the "
        "test split is only scored. null = the dataset's fixed train/val/test split",
    )
    pool: Literal["all", "train+val"] = Field(
        default="all",
        description="images that k-fold CV pools: 'all' = every annotated image (the small-data default: each "
        "image gets one out-of-fold score and compare ranks on all N of them; no test split) or 'train+val' "
        "(the fixed test split stays out and is only scored). Ignored without folds",
    )
    refit: bool = Field(
        default=False,
        description="with folds: one more job per architecture and seed trains on the whole pool and is the "
        "deployed model. false (default) = deployment uses the fold ensemble (the k fold models' mean class "
        "probabilities), which was at least as good on held-out images when measured (docs/compare.md)",
    )


# -------------------------------------------------------------------------------------------- execution


class SlurmConfig(_Section):
    """Resources of one SLURM job (one dask-jobqueue worker running one training job).

    The only source of Slurm settings: ``matseg_nb.sweep.slurm`` turns these fields into the job script.
    """

    partition: str | None = Field(default=None, description="#SBATCH -p (None: the cluster's default partition)")
    account: str | None = Field(default=None, description="#SBATCH -A (None: your default account)")
    walltime: str = Field(default="02:00:00", description="#SBATCH -t, HH:MM:SS or D-HH:MM:SS")
    cores: int = Field(default=4, ge=1, description="#SBATCH --cpus-per-task, also the job's torch threads")
    memory: str = Field(default="16GB", pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$", description="#SBATCH --mem, e.g. 16GB")
    gpus: int = Field(default=0, ge=0, description="#SBATCH --gres=gpu:N per job (one job per GPU: use 1)")
    constraint: str | None = Field(default=None, description="#SBATCH --constraint, e.g. a100")
    qos: str | None = Field(default=None, description="#SBATCH --qos")
    extra_directives: list[str] = Field(default_factory=list, description="extra '#SBATCH' options, e.g. --exclusive")
    setup: list[str] = Field(default_factory=list,
                             description="shell lines run before the worker starts (module load, conda activate)")
    python: str | None = Field(default=None, description="python on the compute nodes (None: the sweep's python)")

    @field_validator("walltime")
    @classmethod
    def _walltime_format(cls, v: str) -> str:
        if not re.fullmatch(r"(\d+-)?\d{1,3}:[0-5]\d:[0-5]\d", v):
            raise ValueError(f"expected a walltime HH:MM:SS or D-HH:MM:SS (e.g. 02:00:00), found {v!r}")
        return v


class ExecutionConfig(_Section):
    """Where jobs run. Does not change results, so it is not part of job ids."""

    executor: Literal["local", "dask", "slurm"] = "local"
    devices: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int = Field(default=1, ge=1, description="jobs running at once")
    threads_per_worker: int = Field(default=1, ge=1, description="torch threads per job")
    scheduler_address: str | None = Field(default=None, description="existing dask scheduler, e.g. tcp://host:8786")
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)


# ---------------------------------------------------------------------------------------------- profile


class Profile(_Section):
    """A configuration profile C: datasets, task, model grid, training, seeds, execution."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, populate_by_name=True,
        title="matseg-nb configuration profile",
    )

    schema_ref: str | None = Field(default=None, alias="$schema", description="optional JSON Schema URL/path")
    version: Literal[1] = 1
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="names the sweep folder")
    description: str = ""
    dataset: list[DatasetEntry] = Field(min_length=1)
    task: TaskConfig
    model: ModelConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    _source: Path | None = PrivateAttr(default=None)
    _label: str = PrivateAttr(default="")

    @property
    def source(self) -> Path | None:
        """The JSON file this profile was loaded from (None when built in Python)."""
        return self._source

    @property
    def label(self) -> str:
        """How the profile is named in messages (the path as given to ``load_profile``), or ''."""
        return self._label

    @property
    def base_dir(self) -> Path | None:
        """Folder against which relative paths resolve (the profile file's folder)."""
        return self._source.parent if self._source is not None else None

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        return _distinct(v, "seeds")

    @field_validator("dataset")
    @classmethod
    def _unique_refs(cls, v: list[DatasetEntry]) -> list[DatasetEntry]:
        _distinct([e.ref for e in v], "dataset refs")
        return v

    @model_validator(mode="after")
    def _dataset_training_merges(self) -> Profile:
        from pydantic import ValidationError

        from matseg_nb.profiles.problems import format_error

        for index in range(len(self.dataset)):
            try:
                self.training_for(index)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                raise ValueError(format_error(TrainingConfig, {**first, "loc": ("dataset", index, "training",
                                                                                *first["loc"])})) from None
        return self

    def training_for(self, index: int) -> TrainingConfig:
        """The training settings of ``dataset[index]``: the profile's, changed by the entry's ``training``."""
        overrides = self.dataset[index].training
        if overrides is None:
            return self.training
        changes = overrides.model_dump(exclude_unset=True)
        merged = self.training.model_dump()
        for key, value in changes.items():
            merged[key] = {**merged[key], **value} if isinstance(value, dict) and isinstance(merged[key], dict) else value
        return TrainingConfig.model_validate(merged)

    def grid_size(self) -> int:
        """Number of jobs: datasets x encoders x decoders x seeds (x (folds [+ 1 refit]) with cross-validation)."""
        folds = self.evaluation.folds + int(self.evaluation.refit) if self.evaluation.folds else 1
        return len(self.dataset) * len(self.model.encoders) * len(self.model.decoders) * len(self.seeds) * folds

    def to_dict(self) -> dict:
        """JSON-safe dict (by alias), loadable again with :func:`matseg_nb.profiles.profile_from_dict`."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


DatasetEntry.model_rebuild()
Profile.model_rebuild()
