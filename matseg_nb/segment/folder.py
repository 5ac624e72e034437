"""The one reader/writer of a segment output folder (``matseg segment ... --out DIR``).

Layout::

    <out>/
      segment.json        model (which, why selected), classes, pixel size, settings, "images" (every record, as
                          in records/), summary, bias, batch QC, warnings, "complete" (true once every input
                          has its record and the summary is written)
      segments.csv        one row per input image (segmented or not), written with the summary
      summary.csv         batch summary: one row per quantity (mean, 95 % interval, n, unit, bias, spread)
      bias.csv            the model's error on each quantity over the run's test images (pred - ground truth)
      classes.json        class ids, names and palette colours (R, G, B 0..255): the masks' sidecar
      masks/<name>.png    class ids at the input's size, uint8 PNG (uint16 TIFF when > 255 classes), lossless
      overlays/<name>.png preview: the image (8-bit grey) blended with the palette
      probs/<name>.tif    optional: class probabilities (K, H, W) float16
      records/<name>.json one :class:`ImageRecord` per input, written last for that image (resume key)
      qc/<name>.npy       the image's crop typicality keys (T, 3) (``qc.screening.typicality_key``)
      qc/calibration.npz  the calibration crops' keys and image labels of the run's screening, with
                          qc/calibration.json (run, reference and calibration splits, detector): with the
                          per-image keys, the batch test of ``matseg qc --new`` is redone from disk (resume)

Writes are atomic (``matseg_nb.atomic``). Every other module reads and writes these files only here.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from matseg_nb.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from matseg_nb.errors import UserError
from matseg_nb.jsonio import JsonRecord, read_json

SEGMENT_FILE = "segment.json"
TABLE_FILE = "segments.csv"
SUMMARY_FILE = "summary.csv"
BIAS_FILE = "bias.csv"
CLASSES_FILE = "classes.json"

SEGMENTED = "segmented"
NOT_SEGMENTED = "not segmented"

#: default palette (R, G, B): class 0 black, then tab10-like colours
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)


@dataclass
class ClassInfo(JsonRecord):
    """One class of the masks: ``id`` (pixel value), ``name``, ``color`` (R, G, B 0..255)."""

    id: int
    name: str
    color: tuple[int, int, int] = (0, 0, 0)


def default_classes(names: list[str]) -> list[ClassInfo]:
    """Classes 0..K-1 named ``names`` with the default palette (cycled)."""
    return [ClassInfo(i, n, PALETTE[i % len(PALETTE)]) for i, n in enumerate(names)]


@dataclass
class Quantity(JsonRecord):
    """One measured number: ``class_name``, ``name`` (area_fraction, count, number_density,
    eqd_median, eqd_q1, eqd_q3, border_count), ``value`` (None when undefined, e.g. no objects), ``unit``
    (``%``, ``1``, ``1/µm²``, ``1/px²``, ``µm``, ``nm``, ``px``)."""

    class_name: str
    name: str
    value: float | None
    unit: str

    @property
    def key(self) -> str:
        return f"{self.class_name}/{self.name}"


@dataclass
class ImageRecord(JsonRecord):
    """One input image. ``status``: ``segmented`` or ``not segmented`` (``reason`` says why).
    ``key``: sha256 of the file's bytes (a changed file gets a new key and is redone).
    Paths (``mask``, ``overlay``, ``probs``) are relative to the output folder. ``qc_p_value``: conformal
    p-value of the image against the run's calibration set (None when not screened, ``qc_note`` says
    why); ``qc_flag``: p <= alpha. ``mean_confidence``: mean over pixels of the top class probability.
    ``channel``: the file's channel(s) segmented (reader names, e.g. ``intensity``, ``page1``, ``Phase``).
    ``qc_keys``: its crops' typicality keys (``qc/<name>.npy``), the batch test's input.
    ``pixel_size_um``: the pixel size used for the measurements (None: sizes in px); ``pixel_size_source``:
    ``--pixel-size``, ``file``, ``manifest`` or ``unknown``."""

    name: str
    source: str
    key: str = ""
    status: str = NOT_SEGMENTED
    reason: str = ""
    height: int | None = None
    width: int | None = None
    channel: str = ""
    mask: str | None = None
    overlay: str | None = None
    probs: str | None = None
    qc_p_value: float | None = None
    qc_flag: bool | None = None
    qc_note: str = ""
    qc_keys: str | None = None
    mean_confidence: float | None = None
    pixel_size_um: float | None = None
    pixel_size_source: str = "unknown"
    measurements: list[Quantity] = field(default_factory=list)
    seconds: float | None = None

    @property
    def segmented(self) -> bool:
        return self.status == SEGMENTED

    @property
    def status_line(self) -> str:
        """``segmented`` or ``not segmented: <reason>``."""
        return self.status if self.segmented or not self.reason else f"{self.status}: {self.reason}"

    def quantity(self, class_name: str, name: str) -> Quantity | None:
        return next((q for q in self.measurements if q.class_name == class_name and q.name == name), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        rec = super().from_dict(data)
        rec.measurements = [q if isinstance(q, Quantity) else Quantity.from_dict(q) for q in rec.measurements or []]
        return rec


@dataclass
class SummaryRow(JsonRecord):
    """Batch summary of one quantity over the unflagged segmented images: ``mean``, 95 % interval of
    the mean (``lo``, ``hi``; t distribution, None below 2 images), ``n`` images; ``bias`` / ``spread``
    (mean and SD of model - ground truth on ``bias_n`` test images, same unit; None when unknown);
    ``flagged``: {image name: value} of the flagged images, left out of the mean."""

    class_name: str
    name: str
    unit: str
    mean: float | None
    lo: float | None
    hi: float | None
    n: int
    bias: float | None = None
    spread: float | None = None
    bias_n: int = 0
    flagged: dict[str, float | None] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.class_name}/{self.name}"


@dataclass
class BiasRow(JsonRecord):
    """The model's error on one quantity over the run's test images: per image ``pred - truth``;
    ``bias`` = mean, ``spread`` = SD (ddof 1; None below 2 images), ``n`` images, ``unit``
    (area fractions in percentage points ``pp``)."""

    class_name: str
    name: str
    unit: str
    bias: float | None
    spread: float | None
    n: int
    per_image: dict[str, float | None] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.class_name}/{self.name}"


def _safe_json(path: Path) -> dict[str, Any] | None:
    data = read_json(path)
    return data if isinstance(data, dict) else None


def _csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()


@dataclass
class SegmentFolder:
    """A segment output folder: typed reads (:meth:`images`, :meth:`summary`, :meth:`classes`, ...) and
    the writes the segment pipeline makes (:meth:`write_record`, :meth:`write_mask`, ...)."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    # ------------------------------------------------------------------ reading
    @classmethod
    def open(cls, path: str | os.PathLike) -> SegmentFolder:
        """An existing segment output folder; UserError when ``path`` is not one."""
        folder = cls(Path(path))
        if not (folder.path / SEGMENT_FILE).is_file():
            raise UserError(f"{folder.path}: expected a segment output folder ({SEGMENT_FILE}), found none")
        return folder

    def meta(self) -> dict[str, Any]:
        """segment.json ({} when absent or unreadable)."""
        return _safe_json(self.path / SEGMENT_FILE) or {}

    def is_complete(self) -> bool:
        """True once every input has its record and the summary is written."""
        return bool(self.meta().get("complete"))

    def records_dir(self) -> Path:
        return self.path / "records"

    def record(self, name: str) -> ImageRecord | None:
        data = _safe_json(self.records_dir() / f"{name}.json")
        return ImageRecord.from_dict(data) if data is not None else None

    def images(self) -> list[ImageRecord]:
        """Per-image records in input order (segment.json's ``inputs``), then any others by name."""
        order = [str(n) for n in self.meta().get("inputs", [])]
        found = {p.stem: p for p in self.records_dir().glob("*.json")} if self.records_dir().is_dir() else {}
        names = [n for n in order if n in found] + sorted(n for n in found if n not in order)
        out = []
        for n in names:
            rec = self.record(n)
            if rec is not None:
                out.append(rec)
        return out

    def classes(self) -> list[ClassInfo]:
        data = _safe_json(self.path / CLASSES_FILE) or {}
        return [ClassInfo.from_dict(c) for c in data.get("classes", [])]

    def summary(self) -> list[SummaryRow]:
        return [SummaryRow.from_dict(r) for r in self.meta().get("summary", [])]

    def bias(self) -> list[BiasRow]:
        return [BiasRow.from_dict(r) for r in (self.meta().get("bias") or {}).get("rows", [])]

    def bias_info(self) -> dict[str, Any]:
        """``{"rows": [...], "run_dir", "n_images", "note"}`` ({} when no bias was measured)."""
        return dict(self.meta().get("bias") or {})

    def model_info(self) -> dict[str, Any]:
        """Which model (``source``, ``run_dir``, ``arch``, ``dataset``) and ``why`` it was selected."""
        return dict(self.meta().get("model") or {})

    def pixel_size(self) -> dict[str, Any]:
        """``{"um": float | None, "source": str, "note": str}`` for the batch."""
        return dict(self.meta().get("pixel_size") or {"um": None, "source": "unknown", "note": ""})

    def warnings(self) -> list[str]:
        return [str(w) for w in self.meta().get("warnings", [])]

    def batch_qc(self) -> dict[str, Any]:
        """The batch screening verdict (``ScreeningResult.to_json()``-like dict; {} when not screened)."""
        return dict(self.meta().get("qc") or {})

    def mask_array(self, rec: ImageRecord) -> np.ndarray:
        """(H, W) class ids of a segmented image."""
        return read_mask(self.path / str(rec.mask))

    def overlay_path(self, rec: ImageRecord) -> Path | None:
        return self.path / rec.overlay if rec.overlay else None

    def probs_array(self, rec: ImageRecord) -> np.ndarray | None:
        """(K, H, W) float32 class probabilities, None when not written."""
        if not rec.probs:
            return None
        import tifffile

        return tifffile.imread(self.path / rec.probs).astype(np.float32)

    # ------------------------------------------------------------------ writing
    def write_meta(self, meta: dict[str, Any]) -> Path:
        return atomic_write_json(self.path / SEGMENT_FILE, meta)

    def update_meta(self, **fields: Any) -> Path:
        return self.write_meta({**self.meta(), **fields})

    def write_classes(self, classes: list[ClassInfo]) -> Path:
        return atomic_write_json(self.path / CLASSES_FILE, {"classes": [c.to_dict() for c in classes]})

    def write_record(self, rec: ImageRecord) -> Path:
        """The image's record, written last for that image (its presence means the image is done)."""
        return atomic_write_json(self.records_dir() / f"{rec.name}.json", rec.to_dict())

    def write_mask(self, name: str, mask: np.ndarray) -> str:
        """Class ids (H, W) -> ``masks/<name>.png`` (uint8) or ``.tif`` (uint16 when > 255 classes)."""
        mask = np.asarray(mask)
        if int(mask.max(initial=0)) <= 255:
            rel, data = f"masks/{name}.png", _png_bytes(mask.astype(np.uint8))
        else:
            rel, data = f"masks/{name}.tif", _tif_bytes(mask.astype(np.uint16))
        atomic_write_bytes(self.path / rel, data)
        return rel

    def write_overlay(self, name: str, rgb: np.ndarray) -> str:
        rel = f"overlays/{name}.png"
        atomic_write_bytes(self.path / rel, _png_bytes(np.asarray(rgb, dtype=np.uint8)))
        return rel

    def write_probs(self, name: str, probs: np.ndarray) -> str:
        rel = f"probs/{name}.tif"
        atomic_write_bytes(self.path / rel, _tif_bytes(np.asarray(probs, dtype=np.float16)))
        return rel

    def write_qc_keys(self, name: str, keys: np.ndarray) -> str:
        """An image's crop typicality keys (T, 3) float64 -> ``qc/<name>.npy``."""
        rel = f"qc/{name}.npy"
        atomic_write_bytes(self.path / rel, _npy_bytes(np.asarray(keys, dtype=np.float64)))
        return rel

    def qc_keys(self, rec: ImageRecord) -> np.ndarray | None:
        """(T, 3) crop typicality keys of a screened image; None when not stored or unreadable."""
        if not rec.qc_keys:
            return None
        try:
            return np.load(self.path / rec.qc_keys, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def write_qc_calibration(self, tile_scores: np.ndarray, tile_groups: np.ndarray, info: dict[str, Any]) -> Path:
        """The screening's calibration crops: keys (N, 3), image labels (N,) and ``info`` (run_dir,
        reference, calibration, detector, notes) -> ``qc/calibration.npz`` + ``qc/calibration.json``."""
        buf = io.BytesIO()
        np.savez(buf, tile_scores=np.asarray(tile_scores, dtype=np.float64), tile_groups=np.asarray(tile_groups))
        atomic_write_bytes(self.path / "qc" / "calibration.npz", buf.getvalue())
        return atomic_write_json(self.path / "qc" / "calibration.json", info)

    def qc_calibration(self) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        """(calibration keys (N, 3), image labels (N,), info) as written by :meth:`write_qc_calibration`."""
        info = _safe_json(self.path / "qc" / "calibration.json")
        try:
            with np.load(self.path / "qc" / "calibration.npz", allow_pickle=False) as z:
                return z["tile_scores"], z["tile_groups"], info or {}
        except (OSError, ValueError, KeyError):
            return None

    def write_tables(self, records: list[ImageRecord], summary: list[SummaryRow], bias: list[BiasRow]) -> list[Path]:
        """segments.csv, summary.csv and bias.csv (the full tables the terminal summary points to)."""
        return [atomic_write_text(self.path / TABLE_FILE, records_csv(records)),
                atomic_write_text(self.path / SUMMARY_FILE, _csv_text(
                    [{**r.to_dict(), "flagged": ";".join(r.flagged)} for r in summary],
                    ["class_name", "name", "unit", "mean", "lo", "hi", "n", "bias", "spread", "bias_n", "flagged"])),
                atomic_write_text(self.path / BIAS_FILE, _csv_text(
                    [r.to_dict() for r in bias], ["class_name", "name", "unit", "bias", "spread", "n"]))]


RECORD_COLUMNS = ["name", "source", "key", "status", "reason", "height", "width", "channel", "mask", "overlay", "probs",
                  "qc_p_value", "qc_flag", "qc_note", "mean_confidence", "pixel_size_um", "pixel_size_source"]


def records_csv(records: list[ImageRecord]) -> str:
    """segments.csv text: the record columns, then one ``<class>/<quantity> [<unit>]`` column per quantity."""
    qcols: list[str] = []
    rows = []
    for rec in records:
        row = {k: getattr(rec, k) for k in RECORD_COLUMNS}
        for q in rec.measurements:
            col = f"{q.key} [{q.unit}]"
            if col not in qcols:
                qcols.append(col)
            row[col] = q.value
        rows.append(row)
    return _csv_text(rows, RECORD_COLUMNS + qcols)


#: zlib level of the mask and overlay PNGs: 1 encodes about twice as fast as Pillow's default 6 for files
#: about 10 % larger (still lossless; benchmarks/segment.py, the share of time outside forward passes)
PNG_COMPRESS_LEVEL = 1


def _png_bytes(arr: np.ndarray) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", arr, extension=".png", compress_level=PNG_COMPRESS_LEVEL)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _tif_bytes(arr: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, compression="zlib")
    return buf.getvalue()


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """(H, W) int64 class ids of a mask this module wrote (PNG or TIFF)."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path).astype(np.int64)
    import imageio.v3 as iio

    return np.asarray(iio.imread(path)).astype(np.int64)
