"""Run and sweep folders: the one typed reader and writer of what a training job leaves on disk.

A run folder (one per job, named by its job id) holds::

    job.json        the effective job plus provenance (versions, device, classes, split sizes)
    history.csv     one row per epoch: epoch, train_loss, val_loss, val_iou, val_dice, lr, epoch_time_s
    metrics.json    test metrics: dataset_level {iou, dice, wiou, pixel_accuracy, ...}, per_image_mean,
                    per_class, and scalars (epochs_run, best_epoch, best_val, train_time_s, ...)
    per_image.csv   one row per (test image, class): image, class_id, class_name, iou, dice, ...
    oof_per_image.csv  the same for the out-of-fold images of a cross-validation job
    progress.json   the live epoch while training (the dashboard's status rows)
    model/          the saved model (``matseg_nb.models.save_model``)
    predictions/    <image stem>.png, the predicted class ids of each test image
    oof_predictions/  the same for the out-of-fold images of a cross-validation fold job (what the fold
                    model predicted on the images it did not train on)
    COMPLETE        written last by the sweep (``matseg_nb.run_marker``): the folder is finished
    error.json      written instead when the job failed

A sweep folder holds run folders plus ``sweep.json`` (the job ids) and ``summary.json`` (times).
Every reader in the package (status, compare, report, dashboard, QC, explain) goes through
:class:`Run` and :class:`Sweep`; every write is atomic (``matseg_nb.atomic``).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from matseg_nb.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from matseg_nb.errors import UserError
from matseg_nb.jsonio import finite_float

JOB_FILE = "job.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "per_image.csv"
OOF_PER_IMAGE_FILE = "oof_per_image.csv"
PROGRESS_FILE = "progress.json"
MODEL_DIR = "model"
PREDICTIONS_DIR = "predictions"
OOF_PREDICTIONS_DIR = "oof_predictions"
SWEEP_FILE = "sweep.json"
SUMMARY_FILE = "summary.json"

RunStatus = Literal["complete", "failed", "running", "incomplete", "pending"]
#: the dataset-level metrics a run reports (metrics.json "dataset_level"), all in [0, 1]
METRIC_KEYS = ("iou", "dice", "wiou", "pixel_accuracy")


class RunFileError(UserError):
    """A run-folder file exists but cannot be read (corrupted JSON, wrong shape); the message names it."""


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when absent; RunFileError when unreadable or not an object."""
    from matseg_nb.jsonio import read_json_object

    return read_json_object(path, RunFileError)


_number = finite_float  # a finite float, or None (missing, null, NaN, not a number)


def parse_job_id(job_id: str) -> dict:
    """``<dataset>__<encoder>__<decoder>__s<seed>[__f<fold>of<k>]__<hash8>`` -> dict (missing parts are None).

    The one parser of the id ``matseg_nb.profiles.Job.expected_id`` builds; prefer ``job.json`` (``Run.job``)
    and use this only where a folder has none."""
    parts = job_id.split("__")
    out: dict = {"dataset": None, "encoder": None, "decoder": None, "seed": None, "fold": None, "folds": None}
    for part in parts[4:-1]:
        cv = re.fullmatch(r"f(\d+)of(\d+)", part)
        if cv:
            out.update(fold=int(cv.group(1)), folds=int(cv.group(2)))
    if len(parts) >= 2:  # a shorter id (older or hand-made folders) gives what it has
        out.update(dict(zip(("dataset", "encoder", "decoder"), parts[:3], strict=False)))
    if len(parts) >= 4:
        seed = parts[3][1:] if parts[3].startswith("s") else parts[3]
        out["seed"] = int(seed) if seed.lstrip("-").isdigit() else None
    return out


@dataclass(frozen=True)
class RunMetrics:
    """``metrics.json`` of a finished run. Scores are fractions in [0, 1] (None when not computed)."""

    iou: float | None
    dice: float | None = None
    wiou: float | None = None
    pixel_accuracy: float | None = None
    best_val_iou: float | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    train_time_s: float | None = None
    latency_s_per_image: float | None = None
    n_params: int | None = None
    encoder_weights: str | None = None
    n_images: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = METRICS_FILE) -> RunMetrics:
        """Parse metrics.json content; RunFileError when ``dataset_level`` is not an object."""
        level = data.get("dataset_level")
        if not isinstance(level, dict):
            raise RunFileError(f"{source}: expected an object 'dataset_level', found {type(level).__name__}")
        best_val = data.get("best_val") if isinstance(data.get("best_val"), dict) else {}
        ints = {k: (int(v) if (v := _number(data.get(k))) is not None else None)
                for k in ("epochs_run", "best_epoch", "n_params", "n_images")}
        return cls(
            **{k: _number(level.get(k)) for k in METRIC_KEYS},
            best_val_iou=_number(best_val.get("val_iou", data.get("best_val_iou"))),
            train_time_s=_number(data.get("train_time_s")),
            latency_s_per_image=_number(data.get("latency_s_per_image")),
            encoder_weights=data.get("encoder_weights"), raw=dict(data), **ints,
        )

    def to_dict(self) -> dict[str, Any]:
        """The metrics.json form (``raw`` extended by the typed fields)."""
        out = dict(self.raw)
        level = dict(out.get("dataset_level") or {})
        level.update({k: getattr(self, k) for k in METRIC_KEYS if getattr(self, k) is not None})
        out["dataset_level"] = level
        for key in ("epochs_run", "best_epoch", "train_time_s", "latency_s_per_image", "n_params",
                    "encoder_weights", "n_images"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.best_val_iou is not None:
            out.setdefault("best_val", {})["val_iou"] = self.best_val_iou
        return out


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise RunFileError(f"{path}: expected a CSV table, found unreadable text ({exc})") from None


def _cell(value: Any) -> Any:
    """A CSV cell: '' for None/NaN, 6 significant digits for real numbers, the value otherwise."""
    if value is None:
        return ""
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"):
        return "" if math.isnan(float(value)) else f"{float(value):.6g}"
    return value


def _csv_text(rows: Iterable[Mapping[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()


@dataclass(frozen=True)
class Run:
    """One run folder. ``job_id`` is the folder's name; nothing is read until asked."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def job_id(self) -> str:
        return self.path.name

    # -- state ----------------------------------------------------------------------------------------
    @property
    def is_complete(self) -> bool:
        """True when the ``COMPLETE`` marker names this job (and job.json agrees)."""
        from matseg_nb.run_marker import is_complete

        return is_complete(self.path, self.job_id)

    def error(self) -> dict[str, Any] | None:
        """error.json of a failed job (type, message, traceback), or None."""
        from matseg_nb.run_marker import read_error

        return read_error(self.path)

    def error_line(self) -> str | None:
        """One line ``Type: message`` of a failed job, or None."""
        err = self.error()
        if err is None:
            return None
        text = f"{err.get('type', 'Error')}: {err.get('message', '')}".strip()
        return text.splitlines()[0] if text else "failed"

    def status(self, listed: str | None = None) -> RunStatus:
        """complete / failed / running / incomplete / pending (``listed``: what summary.json says)."""
        from matseg_nb.run_marker import read_running

        if self.is_complete:
            return "complete"
        if self.error() is not None or listed == "failed":
            return "failed"
        if not self.path.is_dir():
            return "pending"
        if read_running(self.path) is not None or listed == "running":
            return "running"
        return "incomplete"

    # -- reading --------------------------------------------------------------------------------------
    def job(self) -> dict[str, Any]:
        """The effective job (job.json's ``job`` entry, or job.json itself); {} when absent."""
        meta = _read_json_object(self.path / JOB_FILE) or {}
        job = meta.get("job") if isinstance(meta.get("job"), dict) else meta
        return {**job, "job_id": job.get("job_id") or meta.get("job_id") or self.job_id}

    def provenance(self) -> dict[str, Any]:
        """job.json in full (versions, git commit, device, classes, split sizes ...); {} when absent."""
        return _read_json_object(self.path / JOB_FILE) or {}

    @property
    def dataset(self) -> str | None:
        """The dataset reference of the job (job.json, else the job id's first part)."""
        job = self.job()
        return job.get("dataset") or parse_job_id(self.job_id)["dataset"]

    def metrics(self) -> RunMetrics | None:
        """metrics.json, typed; None when absent; RunFileError (naming the file) when corrupted."""
        data = _read_json_object(self.path / METRICS_FILE)
        return None if data is None else RunMetrics.from_dict(data, str(self.path / METRICS_FILE))

    def test_iou(self) -> float | None:
        """Dataset-level test IoU, or None when the run has none or its metrics.json is unreadable."""
        try:
            metrics = self.metrics()
        except RunFileError:
            return None
        return metrics.iou if metrics else None

    def progress(self) -> dict[str, Any] | None:
        """progress.json (the live epoch, max_epochs, val_iou of a training job); None when absent or
        unreadable (it is rewritten every epoch, so a half-written file is not an error)."""
        try:
            return _read_json_object(self.path / PROGRESS_FILE)
        except RunFileError:
            return None

    def history(self) -> list[dict[str, float | None]]:
        """history.csv rows with numbers parsed (empty cells -> None); [] when absent."""
        return [{k: _number(v) for k, v in row.items()} for row in _csv_rows(self.path / HISTORY_FILE)]

    def best_val_iou(self) -> float | None:
        """Best validation IoU: metrics.json's best_val first, else the best history.csv epoch."""
        try:
            metrics = self.metrics()
        except RunFileError:
            metrics = None
        if metrics and metrics.best_val_iou is not None:
            return metrics.best_val_iou
        try:
            values = [r.get("val_iou") for r in self.history()]
        except RunFileError:
            return None
        values = [v for v in values if v is not None]
        return max(values) if values else None

    def per_image_path(self, oof: bool = False) -> Path:
        """per_image.csv, or oof_per_image.csv (``oof``: the out-of-fold images of a cross-validation job)."""
        return self.path / (OOF_PER_IMAGE_FILE if oof else PER_IMAGE_FILE)

    def per_image_rows(self, oof: bool = False) -> list[dict[str, Any]]:
        """per_image.csv (``oof``: oof_per_image.csv) rows (image, class_id, class_name, iou, dice, ...) with
        numbers parsed; [] when absent."""
        out = []
        for row in _csv_rows(self.per_image_path(oof)):
            out.append({k: (v if k in ("image", "class_name") else _number(v)) for k, v in row.items()})
        return out

    def per_image_foreground(self, oof: bool = False) -> dict[str, dict[str, float | None]]:
        """Per test image (``oof``: per out-of-fold image): nanmean of iou/dice over foreground classes
        (class_id >= 1; all classes when only one class is listed), the convention of ``matseg_nb.metrics``."""
        rows = self.per_image_rows(oof)
        if rows and not {"image", "class_id", "iou"} <= set(rows[0]):
            raise RunFileError(f"{self.per_image_path(oof)}: expected columns image, class_id, iou, ..., "
                               f"found {sorted(rows[0])}")
        classes = {r["class_id"] for r in rows}
        fg = [r for r in rows if (r["class_id"] or 0) >= 1] if len(classes) > 1 else rows
        out: dict[str, dict[str, float | None]] = {}
        for image in sorted({r["image"] for r in fg}):
            mine = [r for r in fg if r["image"] == image]
            out[image] = {}
            for key in ("iou", "dice"):
                vals = [r.get(key) for r in mine if r.get(key) is not None]
                out[image][key] = sum(vals) / len(vals) if vals else None
        return out

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_DIR

    def prediction_path(self, image_stem: str, oof: bool = False) -> Path:
        """predictions/<stem>.png (``oof``: oof_predictions/<stem>.png)."""
        return self.path / (OOF_PREDICTIONS_DIR if oof else PREDICTIONS_DIR) / f"{image_stem}.png"

    def predictions(self, oof: bool = False) -> dict[str, Path]:
        """Image stem (sample name) -> predicted-mask PNG (uint8 class ids) of each test image (``oof``: of
        each out-of-fold image of a cross-validation fold job); {} when none were saved."""
        folder = self.path / (OOF_PREDICTIONS_DIR if oof else PREDICTIONS_DIR)
        return {p.stem: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}

    # -- writing --------------------------------------------------------------------------------------
    def write_job(self, meta: Mapping[str, Any]) -> Path:
        """Write job.json (the job's fields plus provenance) atomically."""
        return _write_json(self.path / JOB_FILE, dict(meta))

    def write_history(self, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> Path:
        path = self.path / HISTORY_FILE
        atomic_write_text(path, _csv_text(rows, columns))
        return path

    def write_metrics(self, metrics: RunMetrics | Mapping[str, Any]) -> Path:
        data = metrics.to_dict() if isinstance(metrics, RunMetrics) else dict(metrics)
        return _write_json(self.path / METRICS_FILE, data)

    def write_per_image(self, rows: Iterable[Mapping[str, Any]], columns: list[str], oof: bool = False) -> Path:
        path = self.per_image_path(oof)
        atomic_write_text(path, _csv_text(rows, columns))
        return path

    def write_prediction(self, image_stem: str, png: bytes, oof: bool = False) -> Path:
        """Write one predicted-mask PNG atomically (``oof``: into oof_predictions/)."""
        path = self.prediction_path(image_stem, oof)
        atomic_write_bytes(path, png)
        return path

    def mark_complete(self, started_at: str, duration_s: float) -> dict[str, Any]:
        """Write the ``COMPLETE`` marker (last, atomically)."""
        from matseg_nb.run_marker import write_marker

        return write_marker(self.path, self.job_id, started_at, duration_s)

    def write_error(self, error: Mapping[str, Any]) -> Path:
        """Write error.json ({type, message, traceback})."""
        return _write_json(self.path / "error.json", dict(error))


def _write_json(path: Path, data: dict[str, Any]) -> Path:
    atomic_write_json(path, data)
    return path


@dataclass(frozen=True)
class SweepJob:
    """One job of a sweep as its folders say: run, status, and the one-line error of a failed job."""

    run: Run
    status: RunStatus
    error: str | None = None
    listed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def job_id(self) -> str:
        return self.run.job_id


@dataclass(frozen=True)
class Sweep:
    """A sweep folder: run folders plus sweep.json / summary.json."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def open(cls, path: str | os.PathLike) -> Sweep:
        """The sweep in ``path``; UserError (one line) when it is not a sweep folder."""
        sweep = cls(Path(path))
        if not sweep.path.is_dir():
            raise UserError(f"{sweep.path}: expected a sweep folder, found nothing there")
        if not sweep.is_sweep():
            raise UserError(f"{sweep.path}: expected a sweep folder ({SWEEP_FILE}, {SUMMARY_FILE} or run "
                            f"folders with {JOB_FILE}), found none of them")
        return sweep

    def is_sweep(self) -> bool:
        return (self.path / SWEEP_FILE).exists() or (self.path / SUMMARY_FILE).exists() or bool(self._folders())

    def sweep_meta(self) -> dict[str, Any]:
        """sweep.json ({} when absent or unreadable: the run folders are the truth)."""
        try:
            return _read_json_object(self.path / SWEEP_FILE) or {}
        except RunFileError:
            return {}

    def summary(self) -> dict[str, Any]:
        """summary.json ({} when absent or unreadable)."""
        try:
            return _read_json_object(self.path / SUMMARY_FILE) or {}
        except RunFileError:
            return {}

    def listed(self) -> dict[str, dict[str, Any]]:
        """Job id -> what sweep.json and summary.json say about it (status, error, times), in order."""
        out: dict[str, dict[str, Any]] = {}
        meta = self.sweep_meta()
        for jid in meta.get("job_ids", []) or []:
            out.setdefault(str(jid), {})
        for job in meta.get("jobs", []) or []:
            if isinstance(job, dict) and job.get("job_id"):
                out.setdefault(str(job["job_id"]), {}).update(job)
        entries = self.summary().get("jobs", [])
        if isinstance(entries, dict):
            entries = [dict(v, job_id=k) for k, v in entries.items() if isinstance(v, dict)]
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("job_id"):
                out.setdefault(str(entry["job_id"]), {}).update(entry)
        return out

    def _folders(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and any((p / n).exists() for n in (JOB_FILE, "COMPLETE", "error.json", METRICS_FILE)))

    def job_ids(self) -> list[str]:
        """Listed jobs in their order, then run folders no list names."""
        listed = list(self.listed())
        return listed + [n for n in self._folders() if n not in listed]

    def run(self, job_id: str) -> Run:
        return Run(self.path / job_id)

    def jobs(self) -> list[SweepJob]:
        """Every job with its status (nothing dropped: failed, incomplete and pending jobs too)."""
        listed = self.listed()
        out = []
        for jid in self.job_ids():
            info = listed.get(jid, {})
            run = self.run(jid)
            status = run.status(info.get("status"))
            error = None
            if status == "failed":
                error = run.error_line() or str(info.get("error") or "failed (no error.json)")
            elif status == "pending":
                error = str(info.get("error") or "no run folder")
            elif status == "incomplete":
                error = "no COMPLETE marker"
            out.append(SweepJob(run, status, error, info))
        return out

    def complete_runs(self) -> list[Run]:
        return [j.run for j in self.jobs() if j.status == "complete"]

    def best_run(self, dataset: str | None = None, architecture: str | None = None) -> Run | None:
        """The complete run (of ``dataset``: its reference, folder name or slug; of ``architecture``:
        ``"<encoder>+<decoder>"``, e.g. the comparison's pick, then the best of its seeds) with the highest
        best-epoch VALIDATION IoU; the highest test IoU only when no candidate has a validation score (runs
        without validation). The test split never chooses otherwise."""
        candidates: list[tuple[Run, float | None, float | None]] = []
        for run in self.complete_runs():
            try:
                job = run.job()
                names = (run.dataset, Path(str(run.dataset)).name, job.get("dataset_slug"))
                if dataset is not None and dataset not in names:
                    continue
                if job.get("refit"):  # trained on every image: its validation score is on training images
                    continue
                if architecture is not None and f"{job.get('encoder')}+{job.get('decoder')}" != architecture:
                    continue
                run.metrics()  # unreadable test metrics: not a candidate
                candidates.append((run, run.best_val_iou(), run.test_iou()))
            except RunFileError:  # corrupted run files: not a candidate
                continue
        by_val = [(val, run) for run, val, _ in candidates if val is not None]
        scored = by_val or [(test, run) for run, _, test in candidates if test is not None]
        return max(scored, key=lambda pair: pair[0])[1] if scored else None

    def deployed_runs(self, dataset: str | None = None, architecture: str | None = None) -> list[Run]:
        """The run folders deployment uses for ``dataset`` (see :meth:`best_run` for how it is named).

        Without cross-validation: ``[best_run(dataset, architecture)]``. With k-fold CV the architecture is the
        one with the highest mean per-image out-of-fold IoU (``architecture`` fixes it, e.g. the comparison's
        pick) and the seed the one with the highest mean out-of-fold IoU; deployment uses that seed's FOLD
        ENSEMBLE: the k fold runs, whose class probabilities ``matseg_nb.models.ensemble.load_deployed_model``
        averages (chosen by measurement over a refit on all images: docs/compare.md, "Deployed model after
        CV"). A profile with ``evaluation.refit`` also has a refit run (trained on the whole pool); when it is
        complete it is returned instead: ``[refit]``. [] when nothing complete matches.
        """
        groups: dict[tuple[str, int], list[tuple[Run, list[float]]]] = {}
        refits: dict[tuple[str, int], Run] = {}
        for run in self.complete_runs():
            try:
                job = run.job()
                names = (run.dataset, Path(str(run.dataset)).name, job.get("dataset_slug"))
                arch = f"{job.get('encoder')}+{job.get('decoder')}"
                if (dataset is not None and dataset not in names) or job.get("folds") is None:
                    continue
                if architecture is not None and arch != architecture:
                    continue
                if job.get("refit"):
                    refits[(arch, int(job.get("seed", 0)))] = run
                    continue
                oof = [v["iou"] for v in run.per_image_foreground(oof=True).values() if v.get("iou") is not None]
            except RunFileError:
                continue
            groups.setdefault((arch, int(job.get("seed", 0))), []).append((run, oof))
        if not groups:
            best = self.best_run(dataset, architecture)
            return [best] if best is not None else []

        def mean(values: list[float]) -> float:
            return sum(values) / len(values) if values else -math.inf

        by_arch: dict[str, list[float]] = {}
        for (arch, _), members in groups.items():
            by_arch.setdefault(arch, []).extend(v for _, oof in members for v in oof)
        arch = max(sorted(by_arch), key=lambda a: mean(by_arch[a]))
        seeds = {seed: members for (a, seed), members in groups.items() if a == arch}
        seed = max(sorted(seeds), key=lambda s: mean([v for _, oof in seeds[s] for v in oof]))
        if (arch, seed) in refits:
            return [refits[(arch, seed)]]
        return sorted((run for run, _ in seeds[seed]), key=lambda r: r.job_id)
