"""AFM files through AFMReader: Gwyddion ``.gwy`` (every channel listed from the file), Asylum
``.ibw``, Bruker ``.spm`` and JPK ``.jpk`` (channels by name, default ``Height``). AFMReader
converts heights and pixel sizes to nanometres."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from matseg_nb.data.formats.base import AFM_SUFFIXES, ImageData, pick_channels
from matseg_nb.errors import UserError

SUFFIXES = tuple(sorted(AFM_SUFFIXES))  # the one suffix set: formats.base
DEFAULT_CHANNELS = ("Height",)
_INSTRUMENT = {".gwy": "AFM (Gwyddion file)", ".ibw": "AFM (Asylum Research)", ".spm": "AFM (Bruker)", ".jpk": "AFM (JPK)"}


_TO_NM = {"m": 1e9, "mm": 1e6, "um": 1e3, "nm": 1.0}


def _quiet() -> None:
    from loguru import logger

    logger.disable("AFMReader")


def _gwy_structure(path: Path) -> tuple[dict, dict[str, str]]:
    """AFMReader's parse of a Gwyddion file and its {channel title: id}."""
    from AFMReader.gwy import gwy_get_channels, gwy_read_object

    structure: dict = {}
    with path.open("rb") as handle:
        if handle.read(4) != b"GWYP":
            raise ValueError("not a Gwyddion GWYP file")
        gwy_read_object(handle, data_dict=structure)
    return structure, gwy_get_channels(gwy_file_structure=structure)


def gwy_channels(path: Path) -> list[str]:
    """Channel titles of a Gwyddion file, in file order."""
    _quiet()
    _, ids = _gwy_structure(path)
    return sorted(ids, key=lambda name: int(ids[name]))


def _read_gwy(path: Path, channels: Sequence[str] | None) -> ImageData:
    """Every (or the named) channel of a .gwy. AFMReader's parser; the planes are reshaped here to
    (yres, xres) and each channel keeps its own z unit (lengths -> nm, phase etc. as stored)."""
    _quiet()
    structure, ids = _gwy_structure(path)
    keep = pick_channels(path, sorted(ids, key=lambda name: int(ids[name])), channels)
    planes, sizes = [], []
    for name in keep:
        field = structure[f"/{ids[name]}/data"]
        xres, yres = int(field["xres"]), int(field["yres"])
        xy_unit = field.get("si_unit_xy", {}).get("unitstr", "")
        z_unit = field.get("si_unit_z", {}).get("unitstr", "")
        plane = np.asarray(field["data"], dtype=np.float64).reshape(yres, xres)
        planes.append(plane * _TO_NM.get(z_unit, 1.0))
        sizes.append(float(field["xreal"]) / xres * _TO_NM.get(xy_unit, 1.0))
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        raise UserError(f"{path}: expected channels of one size, found {sorted(shapes)}")
    return ImageData(np.stack(planes).astype(np.float32), keep, sizes[0], "nm", 64, _INSTRUMENT[".gwy"])


def _loader(suffix: str):
    if suffix == ".gwy":
        from AFMReader.gwy import load_gwy as load
    elif suffix == ".ibw":
        from AFMReader.ibw import load_ibw as load
    elif suffix == ".spm":
        from AFMReader.spm import load_spm as load
    else:
        from AFMReader.jpk import load_jpk as load
    return load


_CHANNEL_LIST = re.compile(r"not in \.\w+ channel list: (\[.*\])", re.DOTALL)


def _listed_channels(err: Exception) -> list[str] | None:
    """The channel names in AFMReader's "'X' not in .ibw channel list: [...]" error, None otherwise."""
    match = _CHANNEL_LIST.search(str(err))
    if match is None:
        return None
    try:
        names = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return None
    return [str(n) for n in names] if isinstance(names, list | tuple) else None


def _load_channel(load, path: Path, name: str, default: bool) -> tuple[np.ndarray, float]:
    """One channel through AFMReader. A missing channel is a one-line error listing the file's
    channels; the default ``Height`` falls back to the file's first height channel (Asylum names it
    ``HeightTrace``, Bruker ``Height Sensor``)."""
    try:
        return load(path, channel=name)
    except (KeyError, ValueError) as err:
        listed = _listed_channels(err)
        if listed is None and not isinstance(err, KeyError):
            raise
        if default and listed:
            height = next((n for n in listed if n.lower().startswith("height")), None)
            if height is not None and height != name:
                return load(path, channel=height)
        shown = ", ".join(listed) if listed else str(err).strip(chr(39))
        raise UserError(f"{path}: expected channel {name}, found {shown or 'none'}") from None


def read(path: Path, channels: Sequence[str] | None) -> ImageData:
    """(C, H, W) float32 in nm (heights; other channels in AFMReader's units), pixel size in nm."""
    suffix = path.suffix.lower()
    if suffix == ".gwy":
        return _read_gwy(path, channels)
    keep = list(channels or DEFAULT_CHANNELS)
    load = _loader(suffix)
    _quiet()  # after the import: AFMReader's modules enable their logger when imported
    planes, sizes = [], []
    for name in keep:
        image, px_nm = _load_channel(load, path, name, default=channels is None)
        planes.append(np.asarray(image, dtype=np.float64))
        sizes.append(float(px_nm))
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        raise UserError(f"{path}: expected channels of one size, found {sorted(shapes)}")
    return ImageData(np.stack(planes).astype(np.float32), keep, sizes[0], "nm", 64, _INSTRUMENT[suffix])
