"""Image readers: TIFF (8/16-bit, float32, multi-page), PNG, JPEG, BMP -> channels-first float32;
instrument files (DM3/DM4, EMD, SER, AFM) through :mod:`matseg_nb.data.formats`.

Native intensity units are kept (a 16-bit file stays 0..65535, float stays float); scaling to
[0, 1] is :func:`normalize_image`'s job. Input files are only ever opened for reading.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from matseg_nb.data.formats import AFM_SUFFIXES, ELECTRON_SUFFIXES, SUPPORTED_SUFFIXES, read_file
from matseg_nb.data.formats.pixels import (  # noqa: F401 - page_count, to_chw, TIFF_SUFFIXES re-exported
    RASTER_READERS,
    TIFF_SUFFIXES,
    _quiet_tifffile,
    page_count,
    read_with,
    to_chw,
)
from matseg_nb.errors import UserError

INSTRUMENT_SUFFIXES = set(ELECTRON_SUFFIXES | AFM_SUFFIXES)
IMAGE_SUFFIXES = set(SUPPORTED_SUFFIXES)


def _read_instrument(path: Path, page: int | None) -> np.ndarray:
    """An instrument file's channels as (H, W) or (H, W, C), native units (float32)."""
    if page not in (None, 0):
        raise ValueError(f"page {page} requested from a single-image file")
    chw = read_file(path).array
    return chw[0] if chw.shape[0] == 1 else np.moveaxis(chw, 0, -1)


_READERS = {**RASTER_READERS, **dict.fromkeys(INSTRUMENT_SUFFIXES, _read_instrument)}


def read_array(path: str | Path, page: int | None = None) -> np.ndarray:
    """Raw pixels in the file's dtype: (H, W), (H, W, C), or (Z, H, W[, C]) for a multi-page
    TIFF read whole (``page=None``). Raises :class:`UserError` naming the file when unreadable."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"{path}: expected one of {sorted(IMAGE_SUFFIXES)}, found '{path.suffix}'")
    if not path.is_file():
        raise UserError(f"{path}: expected an image file, found nothing")
    return read_with(reader, path, page)


def read_image(path: str | Path, slice_index: int | None = None, channels: str = "auto") -> np.ndarray:
    """Read an image as (C, H, W) float32 in native intensity units.

    ``slice_index`` picks one page of a multi-page TIFF (a volume slice); without it, the pages
    of a multi-page TIFF are channels (e.g. AFM height/phase/amplitude).
    """
    if Path(path).suffix.lower() in INSTRUMENT_SUFFIXES and slice_index is None:
        return read_file(path).array
    arr = read_array(path, page=slice_index)
    stacked = slice_index is None and Path(path).suffix.lower() in TIFF_SUFFIXES and page_count(path) > 1
    try:
        return to_chw(arr, channels, stacked=stacked)
    except ValueError as err:
        raise UserError(f"{path}: {err}") from None


def image_hw(path: str | Path, slice_index: int | None = None) -> tuple[int, int]:
    """(H, W) of an image, from the TIFF header when possible (no pixel decoding)."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
                page = tif.pages[slice_index or 0]
                return int(page.imagelength), int(page.imagewidth)
        except Exception as err:
            raise UserError(f"{path}: expected a readable TIFF file, found {type(err).__name__}: {err}") from None
    arr = read_array(path, page=slice_index)
    return int(arr.shape[0]), int(arr.shape[1])


def _dtype_max(img: np.ndarray) -> float:
    hi = float(np.nanmax(img)) if img.size else 1.0
    for limit in (1.0, 255.0, 65535.0, 4294967295.0):
        if hi <= limit:
            return limit
    return hi


def _percentile(img: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> np.ndarray:
    flat = img.reshape(img.shape[0], -1)
    p_lo, p_hi = np.percentile(flat, [lo, hi], axis=1)
    scale = np.where(p_hi > p_lo, p_hi - p_lo, 1.0)
    out = (img - p_lo[:, None, None]) / scale[:, None, None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


_NORMALIZERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "percentile": _percentile,
    "dtype": lambda img: np.clip(img / _dtype_max(img), 0.0, 1.0).astype(np.float32),
    "none": lambda img: img.astype(np.float32, copy=False),
}


def normalize_image(img: np.ndarray, mode: str = "percentile") -> np.ndarray:
    """Scale a (C, H, W) float32 image to [0, 1].

    ``percentile``: per channel, 0.5th..99.5th percentile -> 0..1, clipped (robust to hot pixels;
    works for 8-bit, 16-bit and float data alike). ``dtype``: divide by the smallest of
    1 / 255 / 65535 / 2**32-1 that bounds the data. ``none``: unchanged.
    ``<mode>+<weights>`` (e.g. ``percentile+micronet``, :func:`model_normalization`): ``mode``, then per channel
    ``(x - mean) / std`` with the statistics the encoder weights were trained with
    (``micronet.input_standardization``).
    """
    base, _, weights = mode.partition("+")
    try:
        fn = _NORMALIZERS[base]
    except KeyError:
        raise UserError(f"normalization: expected one of {sorted(_NORMALIZERS)}, found '{mode}'") from None
    if img.ndim != 3:
        raise UserError(f"normalization: expected a (C, H, W) image, found shape {img.shape}")
    out = fn(np.asarray(img, dtype=np.float32))
    if weights:
        from matseg_nb.micronet import input_standardization

        mean, std = input_standardization(weights, out.shape[0])
        out = ((out - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None])
    return out.astype(np.float32, copy=False)


def model_normalization(mode: str, encoder_weights: str | None) -> str:
    """The normalization of a model's inputs: the profile's ``mode``, plus ``+<weights>`` when the encoder
    weights were pretrained on standardized inputs (MicroNet: ``percentile`` -> ``percentile+micronet``), so
    the input normalization follows the weights. Recorded as job.json ``normalization``."""
    from matseg_nb.micronet import INPUT_STATS

    weights = str(encoder_weights or "").lower()
    return f"{mode}+{weights}" if weights in INPUT_STATS and "+" not in mode else mode
