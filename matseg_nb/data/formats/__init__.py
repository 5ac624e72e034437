"""File-format readers by extension: every reader returns an :class:`ImageData`.

One module per family: :mod:`.raster` (TIFF via tifffile, BMP/PNG/JPEG via imageio),
:mod:`.electron` (Gatan DM3/DM4, Velox/NCEM EMD, TIA SER via RosettaSciIO) and :mod:`.afm`
(Gwyddion, Asylum, Bruker, JPK via AFMReader). The instrument readers need the optional
``formats`` extra (``pip install matseg-nb[formats]``); without it they fail with a one-line
error naming the missing package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from matseg_nb.data.formats.base import (  # noqa: F401 - the formats' shared names, re-exported
    AFM_SUFFIXES,
    ELECTRON_SUFFIXES,
    RASTER_SUFFIXES,
    SUPPORTED_SUFFIXES,
    ImageData,
    Reader,
    bit_depth_of,
    pick_channels,
    pixel_size_um,
)
from matseg_nb.errors import UserError


def _registry() -> dict[str, Reader]:
    from matseg_nb.data.formats import afm, electron, raster

    table: dict[str, Reader] = {}
    for module in (raster, electron, afm):
        for suffix in module.SUFFIXES:
            table[suffix] = module.read
    return table


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
