"""The query parser phi: compile a profile into a deterministic list of jobs (paper, Section 2).

Order: dataset (as listed) x encoder x decoder x seed (x fold). Each job id is
``<dataset slug>__<encoder>__<decoder>__s<seed>__<hash8>`` where ``hash8`` is the first 8 hex digits of
the sha256 of the canonical JSON of the job's *effective configuration*: everything that can change its
results (dataset content, encoder, decoder, encoder weights, seed, the whole training section, the fold)
and nothing else (task metrics and execution settings are excluded). With ``evaluation.folds = k`` there
is one job per fold, ``...__s<seed>__f<fold>of<k>__<hash8>`` (fold 0..k-1), and with ``evaluation.refit`` one
more job ``...__s<seed>__refitof<k>__<hash8>`` that trains on the whole pool (deployed instead of the fold
ensemble; docs/compare.md has the measurement). Ids without CV are unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from matseg_nb.data.splits import FOLD_RULES, assign_folds, cv_pool
from matseg_nb.errors import UserError
from matseg_nb.profiles.identity import dataset_identity, ref_problems, resolve_weights, weights_fingerprint
from matseg_nb.profiles.schema import ExecutionConfig, Modality, Profile, TaskConfig, TrainingConfig

#: bump when the meaning of the effective configuration changes (changes every id).
HASH_VERSION = 1


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, ASCII only: identical bytes for identical content in any process."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


class Job(BaseModel):
    """One training + evaluation run of the grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    profile_name: str
    dataset: str = Field(description="manifest name or absolute path (manifest .yaml or images/+masks/ folder)")
    dataset_slug: str
    dataset_kind: str = Field(description="manifest | folder")
    dataset_sha256: str = Field(description="sha256 of the manifest file, or of a folder's file listing")
    modality: Modality
    material_class: str
    material: str = ""
    encoder: str
    decoder: str = Field(description="smp class name, e.g. 'DeepLabV3Plus'")
    seed: int
    encoder_weights: str = Field(description="'imagenet' | 'none' | absolute path of a weights file")
    encoder_weights_sha256: str | None = None
    min_encoder_key_match: float = 0.95
    decoder_options: dict[str, JsonValue] = Field(
        default_factory=dict, description="extra smp constructor arguments (model.decoder_options[decoder])")
    training: TrainingConfig
    fold: int | None = Field(default=None, ge=0, description="cross-validation fold validated on (0..folds-1)")
    folds: int | None = Field(default=None, ge=2, description="k of k-fold cross-validation; None = fixed splits")
    pool: str | None = Field(default=None, description="images CV pools: 'all' | 'train+val' (None = train+val)")
    refit: bool = Field(default=False, description="with folds: train on the whole CV pool (the deployed model)")
    task: TaskConfig
    execution: ExecutionConfig

    def __hash__(self) -> int:  # nested lists (task.metrics) are unhashable; the id identifies the job
        return hash(self.job_id)

    def effective_config(self) -> dict:
        """Everything that changes the job's results, as JSON-safe data (the input of ``hash8``)."""
        return {
            "hash_version": HASH_VERSION,
            "dataset": {"kind": self.dataset_kind, "sha256": self.dataset_sha256},
            "encoder": self.encoder,
            "decoder": self.decoder,
            "encoder_weights": self.encoder_weights_sha256 or self.encoder_weights,
            "seed": self.seed,
            **({"decoder_options": self.decoder_options} if self.decoder_options else {}),
            "training": self.training.model_dump(mode="json"),
            **({"cv": {"fold": self.fold, "folds": self.folds, "rule": FOLD_RULES[self.pool or "train+val"],
                       **({"refit": True} if self.refit else {})}}
               if self.folds else {}),
        }

    def config_hash(self) -> str:
        """Full sha256 hex digest of the canonical effective configuration."""
        return hashlib.sha256(canonical_json(self.effective_config()).encode("ascii")).hexdigest()

    def expected_id(self) -> str:
        fold = (f"__refitof{self.folds}" if self.refit else f"__f{self.fold}of{self.folds}") if self.folds else ""
        return f"{self.dataset_slug}__{self.encoder}__{self.decoder}__s{self.seed}{fold}__{self.config_hash()[:8]}"

    def to_dict(self) -> dict:
        """JSON-safe dict; :meth:`from_dict` restores an equal job."""
        return self.model_dump(mode="json", by_alias=True)

    @model_validator(mode="after")
    def _fold_in_range(self) -> Job:
        if self.refit:
            if self.folds is None or self.fold is not None:
                raise ValueError(f"expected a refit job with folds and no fold, found fold {self.fold}, folds {self.folds}")
            return self
        if (self.fold is None) != (self.folds is None) or (self.folds and not 0 <= self.fold < self.folds):
            raise ValueError(f"expected fold 0..folds-1 with folds, found fold {self.fold}, folds {self.folds}")
        return self

    @classmethod
    def from_dict(cls, data: dict) -> Job:
        """Rebuild a job from :meth:`to_dict` output; raises UserError if the id does not match its config."""
        job = cls.model_validate(data)
        if job.job_id != job.expected_id():
            raise UserError(f"job {job.job_id}: expected id {job.expected_id()} from its configuration, found another")
        return job


def _build(profile: Profile, entry_index: int, encoder: str, decoder: str, seed: int, ident, weights: str,
           fold: int | str | None = None) -> Job:
    """One job; ``fold``: None (no CV), 0..k-1, or ``"refit"`` (the whole CV pool)."""
    refit = fold == "refit"
    entry = profile.dataset[entry_index]
    fields = dict(
        job_id="",
        profile_name=profile.name,
        dataset=ident.ref,
        dataset_slug=ident.slug,
        dataset_kind=ident.kind,
        dataset_sha256=ident.sha256,
        modality=entry.modality,
        material_class=entry.material.class_,
        material=entry.material.text,
        encoder=encoder,
        decoder=decoder,
        seed=seed,
        encoder_weights=weights,
        encoder_weights_sha256=weights_fingerprint(weights),
        min_encoder_key_match=profile.model.min_encoder_key_match,
        decoder_options=dict(profile.model.decoder_options.get(decoder, {})),
        training=profile.training_for(entry_index),
        fold=None if refit else fold,
        folds=profile.evaluation.folds if fold is not None else None,
        pool=profile.evaluation.pool if fold is not None else None,
        refit=refit,
        task=profile.task,
        execution=profile.execution,
    )
    draft = Job(**fields)
    return draft.model_copy(update={"job_id": draft.expected_id()})


def compile_jobs(profile: Profile, base_dir: str | Path | None = None) -> list[Job]:
    """phi(C): the deterministic job list, ordered dataset x encoder x decoder x seed.

    Relative paths resolve against ``base_dir``, else the profile's own folder when it came from
    :func:`load_profile`, else the working directory. Raises UserError for unresolvable inputs or
    two datasets with the same content.
    """
    base = Path(base_dir) if base_dir is not None else profile.base_dir
    problems: list[str] = []
    identities = []
    for i, entry in enumerate(profile.dataset):
        try:
            identities.append(dataset_identity(entry.ref, base))
        except UserError as err:
            problems += [f"dataset[{i}].ref: {p}" for p in ref_problems(entry.ref, err, base)]
    try:
        weights = resolve_weights(profile.model.encoder_weights, base)
    except ValueError as err:
        problems.append(f"model.encoder_weights: {err}")
    prefix = f"{profile.label}: " if profile.label else ""
    if problems:
        raise UserError(*[prefix + p for p in problems])
    seen: dict[str, int] = {}
    for i, ident in enumerate(identities):
        if ident.sha256 in seen:
            problems.append(f"dataset[{i}].ref: expected a dataset not listed before, found the same content "
                            f"as dataset[{seen[ident.sha256]}]")
        seen.setdefault(ident.sha256, i)
    folds = profile.evaluation.folds
    if folds:
        for i, ident in enumerate(identities):
            problem = cv_problem(ident.ref, folds, base, profile.evaluation.pool)
            if problem:
                problems.append(f"evaluation.folds: {problem} (dataset[{i}] {ident.ref})")
    if problems:
        raise UserError(*[prefix + p for p in problems])
    refit = ["refit"] if folds and profile.evaluation.refit else []
    fold_ids: list[int | str | None] = [*range(folds), *refit] if folds else [None]
    return [
        _build(profile, i, encoder, decoder, seed, ident, weights, fold)
        for i, ident in enumerate(identities)
        for encoder in profile.model.encoders
        for decoder in profile.model.decoders
        for seed in profile.seeds
        for fold in fold_ids
    ]


def cv_groups(dataset, pool: str = "train+val") -> list[str]:
    """Group key of every image of a ``matseg_nb.data`` dataset's CV pool (``evaluation.pool``)."""
    return [s.group for s in cv_pool(dataset.samples(), pool)]


def cv_problem(ref: str, folds: int, base: Path | None = None, pool: str = "train+val") -> str | None:
    """Why ``folds``-fold CV over the image groups of ``ref``'s ``pool`` is impossible, or None."""
    from matseg_nb.data import open_dataset

    try:
        ds = open_dataset(ref, base)
    except UserError as err:
        return f"expected a readable dataset to cross-validate, found: {err}"
    try:
        assign_folds(cv_groups(ds, pool), folds)
    except ValueError as err:
        return f"{err} in {'all annotated images' if pool == 'all' else pool}"
    return None
