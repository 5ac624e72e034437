"""Raster images: TIFF (tifffile pixels; pixel size and SEM vendor metadata through RosettaSciIO's
TIFF reader when installed) and BMP/PNG/JPEG (imageio/Pillow; no pixel size)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matseg_nb.data.formats.base import RASTER_SUFFIXES, ImageData, bit_depth_of, pick_channels

SUFFIXES = tuple(sorted(RASTER_SUFFIXES))  # the one suffix set: formats.base

# RosettaSciIO's TIFF reader keeps the vendor tag block under these original_metadata keys.
_VENDOR_KEYS = {
    "fei_metadata": "FEI/Thermo Fisher SEM",
    "CZ_SEM": "Zeiss SEM",
    "sem_metadata": "Zeiss SEM",
    "jeol_metadata": "JEOL SEM",
    "hitachi_metadata": "Hitachi SEM",
    "TVIPS_metadata": "TVIPS camera",
}


def _tiff_calibration(path: Path) -> tuple[float | None, str | None, str | None]:
    """(pixel size, unit, instrument) of a TIFF from RosettaSciIO; (None, None, None) when it
    has none, or when the optional ``rosettasciio`` package is not installed."""
    try:
        from rsciio.tiff import file_reader
    except ImportError:
        return None, None, None
    try:
        signal = file_reader(str(path), lazy=True)[0]
    except Exception:  # noqa: BLE001 - calibration is optional; the pixels come from tifffile
        return None, None, None
    original = signal.get("original_metadata", {}) or {}
    instrument = next((name for key, name in _VENDOR_KEYS.items() if key in original), None)
    axes = [a for a in signal.get("axes", []) if not a.get("navigate", False)]
    if not axes:
        return None, None, instrument
    x_axis = axes[-1]
    unit = x_axis.get("units")
    scale = x_axis.get("scale")
    if not unit or str(unit).startswith("<undefined") or scale in (None, 1.0) and not instrument:
        return None, None, instrument
    return float(scale), str(unit), instrument


def _tiff_resolution(path: Path) -> tuple[float | None, str | None]:
    """Pixel size in µm from the baseline XResolution/ResolutionUnit tags (inch or cm only)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        res, unit = tags.get("XResolution"), tags.get("ResolutionUnit")
        if res is None or unit is None or int(unit.value) not in (2, 3):
            return None, None
        num, den = res.value
        if not num or not den:
            return None, None
        per_um = (num / den) / (25400.0 if int(unit.value) == 2 else 10000.0)
        return 1.0 / per_um, "um"


def tiff_pixel_size(path: Path) -> tuple[float | None, str | None]:
    """(pixel size, unit) of a TIFF from its tags alone (vendor metadata, else XResolution)."""
    size, unit, _ = _tiff_calibration(path)
    return (size, unit) if size is not None else _tiff_resolution(path)


def read(path: Path, channels: Sequence[str] | None) -> ImageData:
    """(C, H, W) float32 in file units; channels of a multi-page TIFF are named ``page0``..."""
    from matseg_nb.data.formats.pixels import RASTER_READERS, page_count, read_with, to_chw

    suffix = path.suffix.lower()
    raw = read_with(RASTER_READERS[suffix], path, None)
    stacked = suffix in (".tif", ".tiff") and page_count(path) > 1
    chw = to_chw(raw, "auto", stacked=stacked)
    if stacked:
        names = [f"page{i}" for i in range(chw.shape[0])]
    elif chw.shape[0] == 1:
        names = ["intensity"]
    else:
        names = ["red", "green", "blue"][: chw.shape[0]]
    keep = pick_channels(path, names, channels)
    chw = chw[[names.index(n) for n in keep]]
    size, unit, instrument = None, None, None
    if suffix in (".tif", ".tiff"):
        size, unit, instrument = _tiff_calibration(path)
        if size is None:
            size, unit = _tiff_resolution(path)
    return ImageData(chw, keep, size, unit, bit_depth_of(raw.dtype), instrument)
