"""Raw pixels of raster files (TIFF via tifffile, PNG/JPEG/BMP via imageio) and their (C, H, W) form.

The bottom of the readers: ``matseg_nb.data.formats.raster`` and ``matseg_nb.data.readers`` build on it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from matseg_nb.errors import UserError

TIFF_SUFFIXES = {".tif", ".tiff"}


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Silence tifffile's logger, e.g. the upstream Super1 masks are RGBA pages whose tifffile
    'shaped' description says (H, W, 3): "shaped series shape does not match page shape".
    We read pages directly, so that series metadata is irrelevant."""
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _page_array(page) -> np.ndarray:
    """One TIFF page as (H, W) or (H, W, S) in its native dtype."""
    arr = page.asarray()
    axes = getattr(page, "axes", "")
    if arr.ndim == 3 and axes.startswith("S"):  # planar-separate samples (S, H, W)
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _read_tiff(path: Path, page: int | None) -> np.ndarray:
    import tifffile

    with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
        pages = tif.pages
        if len(pages) == 0:
            raise ValueError("no image pages")
        if page is not None:
            if not 0 <= page < len(pages):
                raise ValueError(f"page {page} out of range 0..{len(pages) - 1}")
            return _page_array(pages[page])
        if len(pages) == 1:
            return _page_array(pages[0])
        return np.stack([_page_array(p) for p in pages])


def _read_other(path: Path, page: int | None) -> np.ndarray:
    import imageio.v3 as iio

    arr = np.asarray(iio.imread(path))
    if page not in (None, 0):
        raise ValueError(f"page {page} requested from a single-page file")
    return arr


RASTER_READERS: dict[str, Callable[[Path, int | None], np.ndarray]] = {
    ".tif": _read_tiff,
    ".tiff": _read_tiff,
    ".png": _read_other,
    ".jpg": _read_other,
    ".jpeg": _read_other,
    ".bmp": _read_other,
}


def read_with(reader: Callable[[Path, int | None], np.ndarray], path: Path, page: int | None) -> np.ndarray:
    """``reader(path, page)``; any failure but a UserError becomes one line naming the file and its kind."""
    try:
        return reader(path, page)
    except UserError:
        raise
    except Exception as err:  # corrupt / truncated / not an image
        kind = "TIFF" if path.suffix.lower() in TIFF_SUFFIXES else path.suffix.lstrip(".").upper()
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: expected a readable {kind} file, found {type(err).__name__}: {msg}") from None


def page_count(path: str | Path) -> int:
    """Number of pages (slices) in a TIFF; 1 for other formats."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return 1
    import tifffile

    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
            return len(tif.pages)
    except Exception as err:
        raise UserError(f"{path}: expected a readable TIFF file, found {type(err).__name__}: {err}") from None


def _equal_channels(arr: np.ndarray) -> bool:
    rgb = arr[..., :3]
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


def to_chw(arr: np.ndarray, channels: str = "auto", *, stacked: bool = False) -> np.ndarray:
    """Convert raw pixels to (C, H, W) float32 without rescaling.

    ``channels``: ``grayscale`` (RGB(A) averaged over R, G, B -> 1 channel), ``rgb`` (3 channels,
    alpha dropped), ``stack`` (all channels/pages kept) or ``auto`` (1 channel for 2-D arrays and
    RGB with equal channels, else rgb). ``stacked`` marks (Z, H, W) multi-page input, whose pages
    become channels.
    """
    if stacked:
        out = arr if arr.ndim == 3 else arr[..., 0]
        return np.ascontiguousarray(out, dtype=np.float32)
    if arr.ndim == 2:
        return arr.astype(np.float32)[None]
    if arr.ndim != 3:
        raise ValueError(f"expected a 2-D image or (H, W, C), found shape {arr.shape}")
    if channels == "auto":
        channels = "grayscale" if arr.shape[-1] == 1 or _equal_channels(arr) else "rgb"
    if channels == "grayscale":
        if arr.shape[-1] == 1:
            return arr[..., 0].astype(np.float32)[None]
        return arr[..., :3].astype(np.float32).mean(axis=-1)[None]
    if channels == "rgb":
        if arr.shape[-1] < 3:
            raise ValueError(f"expected an RGB image, found {arr.shape[-1]} channel(s)")
        return np.ascontiguousarray(np.moveaxis(arr[..., :3], -1, 0), dtype=np.float32)
    return np.ascontiguousarray(np.moveaxis(arr, -1, 0), dtype=np.float32)
