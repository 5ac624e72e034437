"""File-format readers by extension: every reader returns an :class:`ImageData`.

One module per family: :mod:`.raster` (TIFF via tifffile, BMP/PNG/JPEG via imageio),
:mod:`.electron` (Gatan DM3/DM4, Velox/NCEM EMD, TIA SER via RosettaSciIO) and :mod:`.afm`
(Gwyddion, Asylum, Bruker, JPK via AFMReader). The instrument readers need the optional
``formats`` extra (``pip install matseg-nb[formats]``); without it they fail with a one-line
error naming the missing package.
"""

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


def _registry() -> dict[str, Reader]:
    from matseg_nb.data.formats import afm, electron, raster

    table: dict[str, Reader] = {}
    for module in (raster, electron, afm):
        for suffix in module.SUFFIXES:
            table[suffix] = module.read
    return table


RASTER_SUFFIXES = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"})
ELECTRON_SUFFIXES = frozenset({".dm3", ".dm4", ".emd", ".ser"})
AFM_SUFFIXES = frozenset({".gwy", ".ibw", ".spm", ".jpk"})
SUPPORTED_SUFFIXES = RASTER_SUFFIXES | ELECTRON_SUFFIXES | AFM_SUFFIXES


def read_file(path: str | Path, channels: Sequence[str] | None = None) -> ImageData:
    """Read any supported image file. ``channels`` picks named channels (AFM, multi-signal EMD);
    None keeps every channel the file has. Raises :class:`UserError` naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    reader = _registry().get(suffix)
    if reader is None:
        raise UserError(f"{path}: expected one of {' '.join(sorted(SUPPORTED_SUFFIXES))}, found '{path.suffix}'")
    if not path.is_file():
        raise UserError(f"{path}: expected an image file, found nothing")
    try:
        data = reader(path, channels)
    except UserError:
        raise
    except ImportError as err:
        raise UserError(
            f"{path}: expected the optional reader package '{err.name}', found it missing; "
            "install it with pip install 'matseg-nb[formats]'"
        ) from None
    except Exception as err:  # corrupt / truncated / not this format
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: expected a readable {suffix.lstrip('.').upper()} file, found {type(err).__name__}: {msg}") from None
    arr = np.asarray(data.array)
    if arr.ndim != 3 or arr.shape[0] != len(data.channel_names):
        raise UserError(f"{path}: expected a 2-D image (per channel), found data of shape {arr.shape}")
    data.array = np.ascontiguousarray(arr, dtype=np.float32)
    return data


def file_pixel_size_um(path: str | Path) -> float | None:
    """Edge of one pixel in µm from the file's own calibration (TIFF: tags only, no pixels read);
    None for formats without one (BMP, PNG, JPEG), uncalibrated or unreadable files."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            from matseg_nb.data.formats.raster import tiff_pixel_size

            return pixel_size_um(*tiff_pixel_size(path))
        if suffix in RASTER_SUFFIXES:
            return None
        data = read_file(path)
    except Exception:  # noqa: BLE001 - the pixel size is optional; bad files are reported by the data check
        return None
    return pixel_size_um(data.pixel_size, data.pixel_unit)


def pick_channels(path: Path, available: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """The requested channel names (case-insensitive) or all; UserError for a missing one."""
    if wanted is None:
        return list(available)
    lookup = {name.lower(): name for name in available}
    missing = [w for w in wanted if w.lower() not in lookup]
    if missing:
        raise UserError(f"{path}: expected channel(s) {', '.join(missing)}, found {', '.join(available) or 'none'}")
    return [lookup[w.lower()] for w in wanted]
