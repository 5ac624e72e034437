"""Electron-microscopy files through RosettaSciIO: Gatan DM3/DM4, EMD (Velox and NCEM/Berkeley),
TIA SER. Each 2-D image signal in the file becomes one channel, named by its title."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from matseg_nb.data.formats.base import ELECTRON_SUFFIXES, ImageData, bit_depth_of, pick_channels
from matseg_nb.errors import UserError

SUFFIXES = tuple(sorted(ELECTRON_SUFFIXES))  # the one suffix set: formats.base


def _plugin(suffix: str):
    if suffix in (".dm3", ".dm4"):
        from rsciio.digitalmicrograph import file_reader
    elif suffix == ".emd":
        from rsciio.emd import file_reader
    else:
        from rsciio.tia import file_reader
    return file_reader


def _instrument(metadata: dict) -> str | None:
    acq = (metadata.get("Acquisition_instrument") or {})
    for key in ("TEM", "SEM"):
        if key in acq:
            micro = acq[key].get("microscope")
            return f"{key} {micro}" if micro else key
    return None


def read(path: Path, channels: Sequence[str] | None) -> ImageData:
    """Images (2-D signals) of the file as channels; spectra and stacks are refused by name."""
    signals = _plugin(path.suffix.lower())(str(path))
    images = [s for s in signals if np.asarray(s["data"]).ndim == 2]
    if not images:
        shapes = ", ".join(str(np.shape(s["data"])) for s in signals) or "no signals"
        raise UserError(f"{path}: expected a 2-D image signal, found {shapes}")
    names = []
    for i, s in enumerate(images):
        title = ((s.get("metadata") or {}).get("General") or {}).get("title") or f"signal{i}"
        names.append(title if title not in names else f"{title}_{i}")
    keep = pick_channels(path, names, channels)
    chosen = [images[names.index(n)] for n in keep]
    shapes = {np.shape(s["data"]) for s in chosen}
    if len(shapes) > 1:
        raise UserError(f"{path}: expected channels of one size, found {sorted(shapes)}; pick one with channels")
    x_axis = chosen[0]["axes"][-1]
    unit = x_axis.get("units")
    known = unit and not str(unit).startswith("<undefined")
    data = np.stack([np.asarray(s["data"]) for s in chosen])
    return ImageData(
        data.astype(np.float32),
        keep,
        float(x_axis["scale"]) if known else None,
        str(unit) if known else None,
        bit_depth_of(np.asarray(chosen[0]["data"]).dtype),
        _instrument(chosen[0].get("metadata") or {}),
    )
