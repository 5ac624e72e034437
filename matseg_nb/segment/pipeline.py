"""Segment a batch of images: per-image work written atomically, resume by content key, chunks on executors.

:func:`segment_images` is what ``matseg segment``, notebook 07 and the dashboard call. Per image
(:func:`segment_one`): read (``matseg_nb.data``), normalise as in training, tiled inference with Gaussian
blending streamed in bands (``models.tiling.iter_tiled_bands``), mask + overlay (+ probabilities), the
measurements (:mod:`.measure`), the QC p-value and flag (:mod:`.screen`), then the image's record, last.
A rerun skips every image whose record holds the same content key (sha256 of the file) and a segmented
status; a changed file, a failed image or a missing one is (re)done. The batch summary and the bias table
are written at the end, and segment.json says ``"complete": true``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from matseg_nb.errors import UserError
from matseg_nb.jsonio import JsonRecord
from matseg_nb.segment.folder import (
    NOT_SEGMENTED,
    SEGMENTED,
    BiasRow,
    ImageRecord,
    SegmentFolder,
    SummaryRow,
    default_classes,
)
from matseg_nb.segment.inputs import InputImage, collect_inputs, content_key, pixel_size_note, read_input
from matseg_nb.segment.measure import length_unit_for, measure_mask
from matseg_nb.segment.model import DeployedModel, resolve_model
from matseg_nb.segment.screen import SCREENER_MISSING

#: longest side of an overlay preview (px); larger images are previewed downsampled
OVERLAY_MAX_SIDE = 2048
#: exit codes of ``matseg segment`` (docs/segment.md)
EXIT_ALL_SEGMENTED, EXIT_SOME_NOT_SEGMENTED, EXIT_USAGE = 0, 1, 2


@dataclass
class SegmentSettings(JsonRecord):
    """How images are segmented. ``tile`` / ``overlap`` px at full input resolution; ``blend``:
    ``gaussian`` (default), ``hann`` or ``constant``; ``tta``: mean over flips; ``probs``: write probability
    maps; ``qc``: screen each image against the run's calibration set at level ``alpha``;
    ``pixel_size_um``: overrides every file's and manifest's; ``length_unit``: µm or nm (default: nm below
    5 nm pixels); ``batch_size``: tiles per forward pass; ``device``: torch device; ``channel``: the channel
    of multi-channel files to segment (name or 0-based index, ``inputs.read_input``)."""

    tile: int = 512
    overlap: int = 128
    blend: str = "gaussian"
    tta: bool = False
    probs: bool = False
    qc: bool = True
    alpha: float = 0.05
    pixel_size_um: float | None = None
    length_unit: str | None = None
    batch_size: int = 4
    device: str = "cpu"
    channel: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change a mask (a resumed folder must have been made with the same)."""
        return {"tile": self.tile, "overlap": self.overlap, "blend": self.blend, "tta": self.tta,
                **({"channel": self.channel} if self.channel is not None else {})}


@dataclass
class SegmentOutcome:
    """What a batch produced: the records (input order), summary, bias rows, the folder, warnings."""

    folder: SegmentFolder
    records: list[ImageRecord]
    summary: list[SummaryRow]
    bias: list[BiasRow]
    bias_info: dict[str, Any]
    model: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0
    qc: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_ALL_SEGMENTED if all(r.segmented for r in self.records) else EXIT_SOME_NOT_SEGMENTED


# ----------------------------------------------------------------------------- one image
def overlay_rgb(image_chw: np.ndarray, mask: np.ndarray, colors: list[tuple[int, int, int]],
                alpha: float = 0.45) -> np.ndarray:
    """(h, w, 3) uint8 preview: the first channel (0.5/99.5 percentile stretched) blended with the class
    colours (class 0 left grey); downsampled so that the longer side is at most ``OVERLAY_MAX_SIDE``."""
    step = max(1, int(np.ceil(max(mask.shape) / OVERLAY_MAX_SIDE)))
    img = np.asarray(image_chw[0, ::step, ::step], dtype=np.float32)
    m = mask[::step, ::step]
    lo, hi = np.percentile(img, [0.5, 99.5]) if img.size else (0.0, 1.0)
    scale = 255.0 / (hi - lo if hi > lo else 1.0)
    grey = np.clip((img - lo) * scale, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    palette = np.asarray(colors, dtype=np.float32)
    fg = m > 0
    if fg.any():
        ids = np.clip(m[fg], 0, len(palette) - 1)
        rgb[fg] = ((1 - alpha) * grey[fg][:, None] + alpha * palette[ids]).astype(np.uint8)
    return rgb


def predict_mask(dm: DeployedModel, image_chw: np.ndarray, settings: SegmentSettings, timer: dict | None = None
                 ) -> tuple[np.ndarray, float, np.ndarray | None]:
    """(mask (H, W) class ids, mean top-class probability, probabilities (K, H, W) float16 or None) of one
    native image: normalised as in training, tiled inference streamed in bands (bounded memory)."""
    import torch

    from matseg_nb.data import normalize_image
    from matseg_nb.models.tiling import iter_tiled_bands

    x = torch.from_numpy(normalize_image(image_chw, dm.normalization))
    _, h, w = x.shape
    k = dm.num_classes
    mask = np.empty((h, w), np.uint8 if k <= 256 else np.uint16)
    probs = np.empty((k, h, w), np.float16) if settings.probs else None
    conf = 0.0
    for y0, y1, band in iter_tiled_bands(dm.model, x, k, settings.tile, settings.overlap, settings.batch_size,
                                         blend=settings.blend, tta=settings.tta, timer=timer):
        top, idx = band.max(dim=0)
        mask[y0:y1] = idx.numpy()
        conf += float(top.double().sum())
        if probs is not None:
            probs[:, y0:y1] = band.numpy()
    return mask, conf / float(h * w), probs


def segment_one(dm: DeployedModel, image: InputImage, folder: SegmentFolder, settings: SegmentSettings,
                length_unit: str, screener=None, timer: dict | None = None, qc_note: str = "") -> ImageRecord:
    """Segment one image and write its outputs, its record last. Never raises for a bad file: the record
    says ``not segmented: <reason>``."""
    t0 = time.perf_counter()
    rec = ImageRecord(image.name, str(image.path), pixel_size_um=image.pixel_size_um,
                      pixel_size_source=image.pixel_size_source)
    try:
        rec.key = content_key(image.path, image.slice_index)
        img, channels = read_input(image, settings.channel)
    except (UserError, OSError) as err:
        line = err.problems[0] if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
        rec.reason = line if "expected channel" in line else f"unreadable: {line}"  # a channel it lacks
        folder.write_record(rec)
        return rec
    rec.height, rec.width = int(img.shape[1]), int(img.shape[2])
    if img.shape[0] != dm.in_channels:
        pick = "; pick one with --channel NAME|INDEX" if dm.in_channels == 1 and settings.channel is None else ""
        rec.reason = (f"expected {dm.in_channels} channel(s) like the model's training images, found "
                      f"{img.shape[0]} ({', '.join(channels)}) in {image.path.name}{pick}")
        folder.write_record(rec)
        return rec
    rec.channel = ", ".join(channels)
    try:
        mask, rec.mean_confidence, probs = predict_mask(dm, img, settings, timer)
    except (RuntimeError, ValueError) as err:  # e.g. an image the model cannot take; the others go on
        rec.reason = f"inference failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        folder.write_record(rec)
        return rec
    rec.mask = folder.write_mask(image.name, mask)
    classes = folder.classes() or default_classes(dm.class_names)
    rec.overlay = folder.write_overlay(image.name, overlay_rgb(img, mask, [c.color for c in classes]))
    if probs is not None:
        rec.probs = folder.write_probs(image.name, probs)
    rec.measurements = measure_mask(mask, dm.class_names, image.pixel_size_um, length_unit)
    if screener is not None:
        try:
            rec.qc_p_value, rec.qc_flag, rec.qc_note, keys = screener.screen(img, image.name, image.path)
            if keys is not None:
                rec.qc_keys = folder.write_qc_keys(image.name, keys)
        except (RuntimeError, ValueError, UserError) as err:
            line = err.problems[0] if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
            rec.qc_note = f"not screened: {line.splitlines()[0][:200]}"
    else:
        rec.qc_note = "not screened (QC off)" if not settings.qc else qc_note or "not screened"
    rec.status = SEGMENTED
    rec.seconds = round(time.perf_counter() - t0, 3)
    folder.write_record(rec)
    return rec


# ----------------------------------------------------------------------------- a chunk (one executor task)
def _done(folder: SegmentFolder, image: InputImage, settings: SegmentSettings) -> bool:
    """True when the image's record is segmented, its mask exists, its key matches the file's bytes, and
    (with QC on) it was screened or could not be (a record made with QC off is redone with QC on)."""
    rec = folder.record(image.name)
    if rec is None or not rec.segmented or rec.source != str(image.path) or not (folder.path / str(rec.mask)).is_file():
        return False
    if settings.qc and rec.qc_p_value is None and rec.qc_note in ("not screened (QC off)", SCREENER_MISSING):
        return False
    if settings.qc and rec.qc_p_value is not None and folder.qc_keys(rec) is None:
        return False  # screened by a version that kept no crop keys: the batch test needs them
    if settings.probs and not rec.probs:
        return False
    try:
        return rec.key == content_key(image.path, image.slice_index)
    except OSError:
        return False


def segment_chunk(model_ref: str, dataset: str | None, images: list[InputImage], out_dir: str,
                  settings: SegmentSettings, length_unit: str, progress: bool = False,
                  dm: DeployedModel | None = None) -> dict[str, int]:
    """Segment ``images`` that are not done yet into ``out_dir`` (one executor task; loads the model
    itself unless ``dm`` is given). Returns counts {segmented, not_segmented, skipped}."""
    folder = SegmentFolder(Path(out_dir))
    todo = [im for im in images if not _done(folder, im, settings)]
    counts = {"segmented": 0, "not_segmented": 0, "skipped": len(images) - len(todo)}
    if not todo:
        return counts
    dm = dm or resolve_model(model_ref, dataset, settings.device)
    from matseg_nb.segment.screen import open_screener

    screener, qc_note = open_screener(dm, settings) if settings.qc else (None, "")
    if screener is not None:
        scores, groups, info = screener.calibration()
        folder.write_qc_calibration(scores, groups, {**info, "run_dir": str(dm.calibration_run)})
    from tqdm.auto import tqdm

    for im in tqdm(todo, desc="segment", unit="image", disable=not progress):
        rec = segment_one(dm, im, folder, settings, length_unit, screener, qc_note=qc_note)
        counts["segmented" if rec.segmented else "not_segmented"] += 1
    return counts


# ----------------------------------------------------------------------------- executors
def _run_local(tasks: list[tuple], progress: bool, dm: DeployedModel) -> list[dict[str, int]]:
    return [segment_chunk(*t, progress=progress, dm=dm) for t in tasks]


def _run_cluster(name: str) -> Callable[[list[tuple], bool, int | None, str | None, Path], list[dict[str, int]]]:
    def run(tasks: list[tuple], progress: bool, workers: int | None, scheduler: str | None, out: Path):
        from matseg_nb.sweep.context import SweepContext
        from matseg_nb.sweep.executors import EXECUTORS

        ex = EXECUTORS[name](SweepContext(out, Path(os.devnull), workers=workers, scheduler=scheduler))
        try:
            futures = [ex.client.submit(segment_chunk, *t, key=f"matseg-segment-{i}-{os.getpid()}", pure=False)
                       for i, t in enumerate(tasks)]
            return ex.client.gather(futures)
        finally:
            ex.close()

    return run


#: executor name -> how chunks of images run (local: in this process; dask / slurm: one task per chunk)
SEGMENT_EXECUTORS = {"local": None, "dask": _run_cluster("dask"), "slurm": _run_cluster("slurm")}


def _chunks(items: list[InputImage], size: int) -> list[list[InputImage]]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


# ----------------------------------------------------------------------------- the batch
def _model_identity(dm: DeployedModel, settings: SegmentSettings) -> dict[str, Any]:
    return {"run_dir": str(dm.run_dir) if dm.run_dir else None, "job_id": dm.meta.get("job_id"),
            "source": dm.source, "classes": list(dm.class_names), **settings.fingerprint()}


def _check_resumable(folder: SegmentFolder, identity: dict[str, Any]) -> None:
    old = folder.meta().get("identity")
    if old and old != identity:
        changed = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
        raise UserError(f"--out {folder.path}: expected outputs of the same model and settings to resume, found "
                        f"outputs made with other {', '.join(changed)}; choose a new --out folder")


def segment_images(model: str | os.PathLike, inputs: list[str], out_dir: str | os.PathLike,
                   dataset: str | None = None, settings: SegmentSettings | None = None, executor: str = "local",
                   workers: int | None = None, scheduler: str | None = None, chunk_size: int = 16,
                   progress: bool = False, log: Callable[[str], None] | None = None) -> SegmentOutcome:
    """Segment every image named by ``inputs`` with ``model`` into ``out_dir`` (see the module docstring).

    ``executor``: ``local`` (this process), ``dask`` (a LocalCluster of ``workers`` processes, or
    ``scheduler``) or ``slurm``; images go in chunks of ``chunk_size``. ``log``: called with one line per
    event worth printing (which model and why). UserError for bad arguments (no images, unknown dataset,
    a folder made by another model)."""
    settings = settings or SegmentSettings()
    if executor not in SEGMENT_EXECUTORS:
        raise UserError(f"--executor: expected one of {', '.join(SEGMENT_EXECUTORS)}, found {executor!r}")
    images = collect_inputs(inputs, settings.pixel_size_um)
    dm = resolve_model(model, dataset, settings.device)
    say = log or (lambda _line: None)
    say(f"model: {dm.why}")
    folder = SegmentFolder(Path(out_dir))
    identity = _model_identity(dm, settings)
    _check_resumable(folder, identity)
    px, px_source, warnings = pixel_size_note(images)
    length_unit = settings.length_unit or length_unit_for([im.pixel_size_um for im in images])
    classes = default_classes(dm.class_names)
    folder.write_classes(classes)
    folder.write_meta({**folder.meta(), "version": 1, "complete": False, "identity": identity, "model": dm.info(),
                       "settings": settings.to_dict(), "inputs": [im.name for im in images],
                       "pixel_size": {"um": px, "source": px_source, "length_unit": length_unit,
                                      "note": warnings[0] if warnings else ""},
                       "warnings": warnings})
    for w in warnings:
        say(f"warning: {w}")
    tasks = [(str(model), dataset, chunk, str(folder.path), settings, length_unit)
             for chunk in _chunks(images, chunk_size if executor != "local" else len(images))]
    if executor == "local":
        counts = _run_local(tasks, progress, dm)
    else:
        counts = SEGMENT_EXECUTORS[executor](tasks, progress, workers, scheduler, folder.path)
    return finalize(folder, images, dm, settings, length_unit, warnings,
                    skipped=sum(c["skipped"] for c in counts))


def finalize(folder: SegmentFolder, images: list[InputImage], dm: DeployedModel, settings: SegmentSettings,
             length_unit: str, warnings: list[str], skipped: int = 0) -> SegmentOutcome:
    """Summary, bias table, full tables and ``complete`` in segment.json, from the records on disk."""
    from matseg_nb.segment.screen import batch_verdict
    from matseg_nb.segment.summary import batch_summary, run_test_bias

    records = []
    for im in images:
        rec = folder.record(im.name)
        records.append(rec if rec is not None else ImageRecord(im.name, str(im.path), status=NOT_SEGMENTED,
                                                                reason="no record (the task did not finish)"))
    cached = folder.meta().get("bias") or {}
    method = "out-of-fold" if dm.cv_runs else "test"
    bias_run = str(dm.cv_runs[0]) if dm.cv_runs else str(dm.run_dir) if dm.run_dir else None
    if (cached.get("run_dir") == bias_run and "rows" in cached and cached.get("method", "test") == method
            and cached.get("length_unit") == length_unit and "not_learned" in cached):
        bias = [BiasRow.from_dict(r) for r in cached["rows"]]
        bias_info = {k: v for k, v in cached.items() if k != "rows"}
    elif dm.cv_runs:  # k-fold CV: each pooled image measured by the fold model that did not train on it
        from matseg_nb.segment.bias import cv_oof_bias

        deployed = "refit" if dm.meta.get("refit") else "fold ensemble" if len(dm.cv_runs) > 1 else "fold model"
        bias, bias_info = cv_oof_bias(dm.cv_runs, dm.class_names, length_unit,
                                      lambda model, img: predict_mask(model, img, settings)[0], deployed)
    elif dm.run_dir is not None:
        bias, bias_info = run_test_bias(dm.run_dir, dm.class_names, length_unit)
    else:
        bias, bias_info = [], {"run_dir": None, "n_images": 0,
                               "note": "no run folder with test predictions: the model's error on these numbers is unknown"}
    bias_info["length_unit"] = length_unit
    summary = batch_summary(records, bias)
    qc = batch_verdict(folder, records, settings.alpha) if settings.qc else {}
    folder.write_tables(records, summary, bias)
    folder.update_meta(complete=True, images=[r.to_dict() for r in records], summary=[r.to_dict() for r in summary], qc=qc,
                       bias={**bias_info, "rows": [r.to_dict() for r in bias]},
                       counts={"images": len(records), "segmented": sum(r.segmented for r in records),
                               "flagged": sum(bool(r.qc_flag) for r in records), "skipped": skipped})
    return SegmentOutcome(folder, records, summary, bias, bias_info, dm.info(), warnings, skipped, qc)
