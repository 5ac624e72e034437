"""What every format reader shares: :class:`ImageData`, the suffix sets (the package's one image-suffix
set: :data:`SUPPORTED_SUFFIXES`), pixel-size units and channel picking. Imports nothing of the package
but ``errors``, so each format module can build on it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matseg_nb.errors import UserError


@dataclass
class ImageData:
    """Pixels and what the file says about them.

    ``array``: (C, H, W) float32 in native units (counts, nm of height, degrees of phase ...).
    ``pixel_size``: edge of one pixel in ``pixel_unit`` (e.g. 2.5, "nm"), None when unknown.
    ``bit_depth``: bits per sample of the stored data (8, 16, 32, 64).
    """

    array: np.ndarray
    channel_names: list[str]
    pixel_size: float | None = None
    pixel_unit: str | None = None
    bit_depth: int | None = None
    instrument: str | None = None
    extra: dict = field(default_factory=dict)

    def metadata(self) -> dict:
        """JSON-safe metadata (no pixels)."""
        return {
            "shape": list(self.array.shape),
            "channel_names": list(self.channel_names),
            "pixel_size": self.pixel_size,
            "pixel_unit": self.pixel_unit,
            "pixel_size_um": pixel_size_um(self.pixel_size, self.pixel_unit),
            "bit_depth": self.bit_depth,
            "instrument": self.instrument,
        }


Reader = Callable[[Path, Sequence[str] | None], ImageData]

_UNIT_TO_UM = {"m": 1e6, "mm": 1e3, "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "nm": 1e-3, "a": 1e-4, "å": 1e-4, "pm": 1e-6}


def pixel_size_um(size: float | None, unit: str | None) -> float | None:
    """Pixel size in micrometres, None when the size or its unit is unknown."""
    if size is None or unit is None:
        return None
    factor = _UNIT_TO_UM.get(unit.strip().lower())
    return None if factor is None else float(size) * factor


def bit_depth_of(dtype: np.dtype) -> int:
    """Bits per sample of a numpy dtype (bool counts as 1)."""
    dtype = np.dtype(dtype)
    return 1 if dtype == np.bool_ else dtype.itemsize * 8


RASTER_SUFFIXES = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"})
ELECTRON_SUFFIXES = frozenset({".dm3", ".dm4", ".emd", ".ser"})
AFM_SUFFIXES = frozenset({".gwy", ".ibw", ".spm", ".jpk"})
SUPPORTED_SUFFIXES = RASTER_SUFFIXES | ELECTRON_SUFFIXES | AFM_SUFFIXES


def pick_channels(path: Path, available: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """The requested channel names (case-insensitive) or all; UserError for a missing one."""
    if wanted is None:
        return list(available)
    lookup = {name.lower(): name for name in available}
    missing = [w for w in wanted if w.lower() not in lookup]
    if missing:
        raise UserError(f"{path}: expected channel(s) {', '.join(missing)}, found {', '.join(available) or 'none'}")
    return [lookup[w.lower()] for w in wanted]
