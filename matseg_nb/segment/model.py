"""Which model ``matseg segment`` deploys: a small registry of loaders from a MODEL argument.

:class:`DeployedModel` is what the segment pipeline needs from a model, whatever stored it. Each entry of
:data:`MODEL_LOADERS` is a :class:`ModelLoader` (``name``, ``accepts(path, dataset) -> bool``,
``load(path, dataset, device) -> DeployedModel``); :func:`resolve_model` uses the first entry that accepts.

Built in: ``run`` (a run folder: ``model/`` + ``job.json``) and ``sweep`` (a loop folder holding
``sweep/``, or a sweep folder, plus ``--dataset``: the deployed model, ``runs.Sweep.deployed_runs``: the
validation-selected run (``best_run``), or after k-fold CV the fold ensemble, or the refit run when the profile
trained one (``evaluation.refit``)).
Another module plugs in a format (e.g. exported bioimage.io / ONNX / TorchScript packages) with::

    from matseg_nb.segment.model import MODEL_LOADERS, ModelLoader
    MODEL_LOADERS.insert(0, ModelLoader("onnx", accepts=..., load=...))   # or register_loader(...)

and ``matseg_nb.segment.model.LOADER_MODULES`` lists modules imported before resolution (add yours there).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from matseg_nb.errors import UserError


@dataclass
class DeployedModel:
    """A model ready to segment. ``model``: torch callable (N, C, H, W) float32 normalised input ->
    (N, K, H, W) logits at the input's size (``input_scale`` already applied inside, as
    ``models.tiling.ScaledInputModel`` does); ``normalization``: ``data.normalize_image`` mode;
    ``in_channels`` C; ``class_names`` K names; ``pad_multiple``: input side multiple (px);
    ``dataset``: dataset ref the model was trained on (test images for the bias table); ``run_dir``:
    run folder (test predictions, QC calibration) or None; ``calibration_run``: run folder whose
    calibration set QC screens against (None: no QC); ``cv_runs``: the fold runs of a k-fold CV deployment
    (fold ensemble or refit), whose out-of-fold images give the measurement error (``segment.bias``);
    ``source``: loader name; ``why``: one line on how
    it was chosen; ``meta``: job.json or the package's metadata."""

    model: nn.Module | Callable[..., Any]
    normalization: str
    in_channels: int
    class_names: list[str]
    pad_multiple: int = 32
    input_scale: float = 1.0
    dataset: str | None = None
    run_dir: Path | None = None
    calibration_run: Path | None = None
    source: str = "run"
    why: str = ""
    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    cv_runs: list[Path] = field(default_factory=list)
    #: () -> a ``qc.RunScreener``-like screener when the calibration data travels with the model (an exported
    #: bioimage.io package; ``calibration_run`` then names the package), else None
    open_qc: Callable[[], Any] | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def info(self) -> dict[str, Any]:
        """JSON-safe description for segment.json's ``model``."""
        return {"source": self.source, "run_dir": str(self.run_dir) if self.run_dir else None,
                "arch": f"{self.meta.get('encoder')}+{self.meta.get('decoder')}" if self.meta.get("encoder") else None,
                "job_id": self.meta.get("job_id"), "dataset": self.dataset, "why": self.why,
                "normalization": self.normalization, "in_channels": self.in_channels,
                "input_scale": self.input_scale, "classes": list(self.class_names),
                "calibration_run": str(self.calibration_run) if self.calibration_run else None,
                "cv_runs": [str(p) for p in self.cv_runs]}


@dataclass(frozen=True)
class ModelLoader:
    """``accepts(path, dataset)`` -> True when this loader reads ``path``; ``load(path, dataset, device)``."""

    name: str
    accepts: Callable[[Path, str | None], bool]
    load: Callable[[Path, str | None, str], DeployedModel]


def from_run(run_dir: str | os.PathLike, device: str = "cpu", why: str = "") -> DeployedModel:
    """The model of one run folder (``models.load_run_model``: ``input_scale`` wrapper included)."""
    from matseg_nb.models import load_run_model, pad_multiple
    from matseg_nb.runs import Run

    run = Run(Path(run_dir))
    model, meta = load_run_model(run.path, device)
    classes = [str(c.get("name", c.get("id"))) for c in sorted(meta.get("classes") or [], key=lambda c: c["id"])]
    if not classes:
        raise UserError(f"{run.path / 'job.json'}: expected 'classes' (id, name), found none")
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    return DeployedModel(model, str(meta.get("normalization") or "percentile"), int(meta.get("in_channels") or 1),
                         classes, pad_multiple(model), float(training.get("input_scale") or 1.0),
                         run.dataset, run.path, run.path, "run", why or f"run folder {run.path.name}", meta)


def _is_run(path: Path, dataset: str | None) -> bool:
    return (path / "model" / "config.json").is_file() and (path / "job.json").is_file()


def cv_fold_runs(run) -> list[Path]:
    """The fold runs of a CV run's architecture, seed and dataset in its sweep folder (a fold run: itself
    only; a refit: its k sibling fold runs that are complete); [] for a run without ``folds``."""
    from matseg_nb.runs import Sweep

    job = run.job()
    if not job.get("folds"):
        return []
    if not job.get("refit"):
        return [run.path]
    same = ("dataset", "encoder", "decoder", "seed", "folds", "encoder_weights")
    out = []
    for other in Sweep(run.path.parent).complete_runs():
        oj = other.job()
        if not oj.get("refit") and oj.get("fold") is not None and all(oj.get(k) == job.get(k) for k in same):
            out.append(other.path)
    return sorted(out)


def _load_run(path: Path, dataset: str | None, device: str) -> DeployedModel:
    from matseg_nb.runs import Run

    run = Run(path)
    if dataset is not None and dataset not in (run.dataset, Path(str(run.dataset)).name, run.job().get("dataset_slug")):
        raise UserError(f"--dataset {dataset}: expected the run's dataset, found run {path.name} trained on {run.dataset}")
    dm = from_run(path, device)
    dm.cv_runs = cv_fold_runs(run)
    return dm


def _sweep_dir(path: Path) -> Path:
    return path / "sweep" if (path / "sweep").is_dir() else path


def _is_sweep(path: Path, dataset: str | None) -> bool:
    from matseg_nb.runs import Sweep

    return path.is_dir() and Sweep(_sweep_dir(path)).is_sweep()


def _load_sweep(path: Path, dataset: str | None, device: str) -> DeployedModel:
    from matseg_nb.runs import Sweep

    sweep = Sweep(_sweep_dir(path))
    runs = sweep.complete_runs()
    datasets = sorted({str(r.dataset) for r in runs})
    if dataset is None:
        if len(datasets) != 1:
            raise UserError(f"--dataset: expected one of {', '.join(datasets) or '(no complete runs)'} for sweep "
                            f"{sweep.path}, found none")
        dataset = datasets[0]
    deployed = sweep.deployed_runs(dataset)
    if not deployed:
        raise UserError(f"--dataset {dataset}: expected a dataset the sweep {sweep.path} holds complete runs of, "
                        f"found {', '.join(datasets) or 'no complete runs'}")
    n = sum(1 for r in runs if dataset in (str(r.dataset), Path(str(r.dataset)).name))
    best = deployed[0]
    if len(deployed) > 1:  # k-fold CV without a refit: the fold ensemble
        from matseg_nb.models.ensemble import load_deployed_model

        dm = from_run(best.path, device)
        dm.model, _ = load_deployed_model([r.path for r in deployed], device)
        dm.cv_runs = [r.path for r in deployed]
        dm.source = "sweep"
        dm.why = (f"fold ensemble of {len(deployed)} runs ({best.job_id.rsplit('__', 2)[0]}...): highest mean "
                  f"out-of-fold IoU of {n} complete run(s) of {dataset}, no complete refit (runs.Sweep.deployed_runs)")
        return dm
    if best.job().get("refit"):
        why = (f"{best.job_id}: the refit on all images of the architecture and seed with the highest mean "
               f"out-of-fold IoU of {n} complete run(s) of {dataset} (runs.Sweep.deployed_runs)")
    else:
        val = best.best_val_iou()
        score = (f"best validation IoU {val:.3f}" if val is not None
                 else f"best test IoU {best.test_iou() or float('nan'):.3f} (no validation score)")
        why = f"{best.job_id}: {score} of {n} complete run(s) of {dataset} (runs.Sweep.best_run)"
    dm = from_run(best.path, device, why=why)
    dm.cv_runs = cv_fold_runs(best)
    dm.source = "sweep"
    return dm


MODEL_LOADERS: list[ModelLoader] = [
    ModelLoader("run", _is_run, _load_run),
    ModelLoader("sweep", _is_sweep, _load_sweep),
]

#: modules imported by :func:`resolve_model` before it looks for a loader (each may register one)
LOADER_MODULES: list[str] = ["matseg_nb.export.loader"]


def register_loader(loader: ModelLoader, first: bool = True) -> None:
    """Add ``loader`` (replacing one of the same name); ``first``: tried before the built-ins."""
    MODEL_LOADERS[:] = [lo for lo in MODEL_LOADERS if lo.name != loader.name]
    MODEL_LOADERS.insert(0 if first else len(MODEL_LOADERS), loader)


def resolve_model(model: str | os.PathLike, dataset: str | None = None, device: str = "cpu") -> DeployedModel:
    """The :class:`DeployedModel` of a MODEL argument (run folder, loop/sweep folder + ``dataset``, or
    anything a registered loader accepts). UserError naming the path when nothing accepts it."""
    for module in LOADER_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
    path = Path(model)
    if not path.exists():
        raise UserError(f"MODEL {model}: expected a run folder, a loop/sweep folder or a model package, found nothing")
    for loader in MODEL_LOADERS:
        if loader.accepts(path, dataset):
            return loader.load(path, dataset, device)
    raise UserError(f"MODEL {model}: expected a run folder (model/ + job.json), a loop/sweep folder or one of "
                    f"{', '.join(lo.name for lo in MODEL_LOADERS)}, found none of these")
