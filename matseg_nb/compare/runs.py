"""Load sweep folders into tidy pandas tables (input contract: docs/ARCHITECTURE.md, "Run folder").

Two tables come out of :func:`load_runs`:

- ``runs``: one row per job (complete, failed, incomplete or only listed in ``summary.json``/``sweep.json``)
  with columns :data:`RUN_COLUMNS`; metrics are NaN for jobs without a ``COMPLETE`` marker.
- ``per_image``: one row per (complete job, test image): ``job_id, dataset, encoder, decoder,
  encoder_weights, seed, fold, image, iou, dice`` where iou/dice are the nanmean over foreground classes
  (class_id >= 1, all classes when there is only one), the same convention as ``matseg_nb.metrics``.
- ``oof``: the same for the out-of-fold images of cross-validation jobs (``oof_per_image.csv``).
- ``per_class``: one row per (complete job, scored image, class): ``job_id, image, class_id, class_name, iou,
  gt_fraction, split`` (``test``, or ``oof`` for cross-validation jobs), for naming classes no model learned.

Refit jobs of a CV sweep (``__refitof<k>__``: the deployed model, trained on the whole pool, nothing held
out) are not compared and are left out. Cross-validation jobs (``metrics.json["cv"]``) carry ``fold`` (0..k-1) and ``folds`` (k); other jobs have
fold -1, folds 0. ``protocol`` is ``holdout`` or ``k-fold CV``; ``val_iou`` is the selection score: the
out-of-fold IoU (full images, the job's own fold) for CV jobs, the best-epoch validation IoU otherwise. When
one dataset was run with several protocols, its rows are relabelled ``<dataset> [<protocol>]`` so that
every comparison stays within one protocol (``base_dataset`` keeps the name).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from matseg_nb.errors import UserError
from matseg_nb.runs import Run, RunFileError, Sweep, parse_job_id  # noqa: F401 - parse_job_id re-exported

#: metrics.json["dataset_level"] keys; a key missing from an older run folder reads as NaN ("n/a")
METRIC_KEYS = ("iou", "dice", "wiou", "wiou_class_freq", "pixel_accuracy")
SCALAR_KEYS = ("epochs_run", "best_epoch", "train_time_s", "latency_s_per_image", "n_params")
RUN_COLUMNS = [
    "sweep", "job_id", "dataset", "base_dataset", "encoder", "decoder", "encoder_weights", "seed", "fold", "folds",
    "protocol", "status", "error", *METRIC_KEYS, "val_iou", "best_epoch_val_iou", *SCALAR_KEYS, "n_test_images",
    "run_dir",
]
ID_COLUMNS = ["job_id", "dataset", "encoder", "decoder", "encoder_weights", "seed", "fold"]


@dataclass
class RunSet:
    """``runs`` (one row per job), ``per_image`` (one row per complete job and test image) and ``oof``
    (one row per complete CV job and out-of-fold image)."""

    runs: pd.DataFrame
    per_image: pd.DataFrame
    oof: pd.DataFrame | None = None
    per_class: pd.DataFrame | None = None

    @property
    def complete(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "complete"]

    @property
    def failures(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] != "complete"]


def _provenance(job_dir: Path) -> dict:
    """job.json of a run folder (``Run.provenance``); {} when absent or unreadable (the row still loads)."""
    try:
        return Run(job_dir).provenance()
    except RunFileError:
        return {}


def _weights_label(value) -> str:
    """Normalise the encoder-weights field: None/''/'none' -> 'none', a path -> its file name."""
    if isinstance(value, dict):
        value = value.get("weights") or value.get("source") or value.get("encoder_weights")
    if value is None or str(value).strip().lower() in ("", "none", "null", "random", "scratch"):
        return "none"
    text = str(value)
    return text if text == "imagenet" else Path(text).name or text


def _identity(job_dir: Path, job: dict, metrics: dict, listed: dict) -> dict:
    ident = parse_job_id(job_dir.name)
    from_id = {"fold": ident.pop("fold"), "folds": ident.pop("folds")}
    for key in ("dataset", "encoder", "decoder", "seed"):
        for src in (job, listed):
            if src.get(key) is not None:
                ident[key] = src[key]
                break
    weights = metrics.get("encoder_weights", job.get("encoder_weights", listed.get("encoder_weights")))
    if weights == "file":  # metrics.json records the mode; job.json has the file itself
        weights = job.get("encoder_weights") or weights
    ident["encoder_weights"] = _weights_label(weights)
    ident["seed"] = int(ident["seed"]) if ident["seed"] is not None else -1
    cv = metrics.get("cv") if isinstance(metrics.get("cv"), dict) else {}
    fold = cv.get("fold", job.get("fold", listed.get("fold", from_id["fold"])))
    folds = cv.get("folds", job.get("folds", listed.get("folds", from_id["folds"])))
    ident["fold"] = int(fold) if folds else -1
    ident["folds"] = int(folds) if folds else 0
    ident["protocol"] = f"{int(folds)}-fold CV" if folds else "holdout"
    return {k: ("?" if v is None else v) for k, v in ident.items()}


def _num(value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _status(job_dir: Path, listed: dict) -> tuple[str, str]:
    """Status and one-line reason of a job, as ``matseg_nb.runs`` reads its folder."""
    run = Run(job_dir)
    status = run.status(str(listed.get("status") or "") or None)
    if status == "complete":
        return "complete", ""
    if status == "failed":
        return "failed", run.error_line() or str(listed.get("error") or "failed (no error.json)")
    if status == "pending":
        return str(listed.get("status") or "pending"), str(listed.get("error") or "no run folder")
    return status, "no COMPLETE marker"


def _per_image(job_dir: Path, oof: bool = False) -> pd.DataFrame:
    """Foreground-mean IoU/Dice per test image (``oof``: per out-of-fold image) of one run folder
    (``Run.per_image_foreground``); empty when the file is absent."""
    per_image = Run(job_dir).per_image_foreground(oof)
    rows = [{"image": image, "iou": v["iou"], "dice": v["dice"]} for image, v in per_image.items()]
    return pd.DataFrame(rows, columns=["image", "iou", "dice"]).astype({"iou": float, "dice": float})


PER_CLASS_COLUMNS = ["job_id", "image", "class_id", "class_name", "iou", "gt_fraction", "split"]


def _per_class(job_dir: Path, job_id: str, cv: bool) -> pd.DataFrame:
    """Per-class rows of a run folder's scored images: out-of-fold ones for CV jobs, test ones otherwise."""
    frames = []
    for oof in ((False, True) if cv else (False,)):
        rows = Run(job_dir).per_image_rows(oof)
        if rows and {"image", "class_id", "iou"} <= set(rows[0]):
            frames.append(pd.DataFrame(rows).assign(job_id=job_id, split="oof" if oof else "test"))
    if not frames:
        return pd.DataFrame(columns=PER_CLASS_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    for col in ("class_name", "gt_fraction"):
        if col not in out:
            out[col] = out["class_id"].astype(str) if col == "class_name" else math.nan
    return out[PER_CLASS_COLUMNS]


def is_refit(job_id: str, job: dict | None = None) -> bool:
    """True for the refit job of a CV sweep (id part ``refitof<k>``, or ``refit`` in job.json)."""
    return bool((job or {}).get("refit")) or any(re.fullmatch(r"refitof\d+", p) for p in job_id.split("__"))


def _listed_jobs(sweep: Path) -> dict[str, dict]:
    """Jobs named by ``summary.json`` and ``sweep.json`` (``matseg_nb.runs.Sweep.listed``)."""
    return Sweep(sweep).listed()


def _is_job_dir(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and any((path / name).exists() for name in ("job.json", "COMPLETE", "error.json", "metrics.json"))


def load_sweep(sweep: Path) -> tuple[list[dict], list[pd.DataFrame], list[pd.DataFrame]]:
    """Rows of ``runs``, per-image frames and per-class frames of one sweep folder."""
    sweep = Path(sweep)
    if not sweep.is_dir():
        raise UserError(f"{sweep}: expected a sweep folder, found nothing there")
    listed = _listed_jobs(sweep)
    names = sorted(set(listed) | {p.name for p in sweep.iterdir() if _is_job_dir(p)})
    rows, frames, class_frames = [], [], []
    for name in names:
        job_dir = sweep / name
        job = _provenance(job_dir)
        if is_refit(name, job):
            continue
        status, error = _status(job_dir, listed.get(name, {}))
        metrics = {}
        if status == "complete":
            try:
                typed = Run(job_dir).metrics()
                metrics = typed.raw if typed else {}
            except RunFileError as err:  # a corrupted metrics.json: the job is named, the rest still loads
                status, error = "failed", str(err)
        row = {"sweep": str(sweep), "job_id": name, **_identity(job_dir, job, metrics, listed.get(name, {}))}
        level = metrics.get("dataset_level", {}) or {}
        row.update({k: _num(level.get(k)) for k in METRIC_KEYS})
        row.update({k: _num(metrics.get(k)) for k in SCALAR_KEYS})
        best_val = metrics.get("best_val") if isinstance(metrics.get("best_val"), dict) else {}
        row["best_epoch_val_iou"] = _num(best_val.get("val_iou", metrics.get("best_val_iou")))
        oof_level = (metrics.get("oof") or {}).get("dataset_level") or {} if isinstance(metrics.get("oof"), dict) else {}
        # selection score: out-of-fold IoU for CV jobs, best-epoch validation IoU otherwise
        row["val_iou"] = _num(oof_level.get("iou")) if row["folds"] else row["best_epoch_val_iou"]
        row.update(status=status, error=error, run_dir=str(job_dir))
        if status == "complete":
            img = _per_image(job_dir)
            row["n_test_images"] = len(img)
            ids = {k: row[k] for k in ID_COLUMNS}
            if len(img):
                frames.append(img.assign(split="test", **ids))
            oof = _per_image(job_dir, oof=True) if row["folds"] else pd.DataFrame()
            if len(oof):
                frames.append(oof.assign(split="oof", **ids))
            class_frames.append(_per_class(job_dir, name, bool(row["folds"])))
        else:
            row["n_test_images"] = 0
        rows.append(row)
    return rows, frames, class_frames


def load_runs(sweep_dirs: list[Path] | list[str]) -> RunSet:
    """Read every job of every sweep folder; nothing is dropped (failed jobs keep their row)."""
    if not sweep_dirs:
        raise UserError("sweep_dirs: expected at least one sweep folder, found none")
    rows: list[dict] = []
    frames: list[pd.DataFrame] = []
    class_frames: list[pd.DataFrame] = []
    for sweep in sweep_dirs:
        r, f, c = load_sweep(Path(sweep))
        rows += r
        frames += f
        class_frames += c
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    runs["base_dataset"] = runs["dataset"]
    mixed = runs.groupby("dataset")["protocol"].nunique()
    for ds in mixed[mixed > 1].index:  # compare each protocol separately, labelled
        sel = runs["dataset"] == ds
        runs.loc[sel, "dataset"] = ds + " [" + runs.loc[sel, "protocol"] + "]"
    cols = [*ID_COLUMNS, "image", "iou", "dice"]
    images = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*cols, "split"])
    images["dataset"] = images["job_id"].map(dict(zip(runs["job_id"], runs["dataset"], strict=True)))
    per_image = images[images["split"] == "test"][cols].reset_index(drop=True)
    oof = images[images["split"] == "oof"][cols].reset_index(drop=True)
    class_frames = [c for c in class_frames if len(c)]
    per_class = (pd.concat(class_frames, ignore_index=True) if class_frames
                 else pd.DataFrame(columns=PER_CLASS_COLUMNS))
    return RunSet(runs=runs, per_image=per_image, oof=oof, per_class=per_class)


def mixed_protocols(runs: pd.DataFrame) -> list[str]:
    """One line per dataset that was run under several protocols (compared separately)."""
    out = []
    for base, grp in runs.groupby("base_dataset", sort=True):
        protocols = sorted(grp["protocol"].unique())
        if len(protocols) > 1:
            out.append(f"{base} was run with {' and '.join(protocols)}: compared separately as "
                       + ", ".join(f"'{d}'" for d in sorted(grp["dataset"].unique())))
    return out
