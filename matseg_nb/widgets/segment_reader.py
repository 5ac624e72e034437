"""napari reader (npe2, ``matseg_nb/napari.yaml``): a ``matseg segment`` output folder opens as one image
layer (the overlay preview) and one labels layer (class ids, class names/colours from classes.json) per
segmented image, read only through :class:`matseg_nb.segment.SegmentFolder`. QC-flagged images say
``[QC flagged]`` in the layer name and ``metadata["qc_flag"]``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

LayerData = tuple[np.ndarray, dict[str, Any], str]


def read_segment_folder(path: str | os.PathLike) -> list[LayerData]:
    """Layer data tuples ``(data, kwargs, "image" | "labels")`` for every segmented image of the folder."""
    from PIL import Image

    from matseg_nb.segment import SegmentFolder

    folder = SegmentFolder.open(path)
    classes = folder.classes()
    colors = {c.id: tuple(v / 255 for v in c.color) + (1.0,) for c in classes}
    names = {c.id: c.name for c in classes}
    layers: list[LayerData] = []
    for rec in folder.images():
        if not rec.segmented:
            continue
        flag = " [QC flagged]" if rec.qc_flag else ""
        meta = {"source": rec.source, "qc_flag": rec.qc_flag, "qc_p_value": rec.qc_p_value,
                "class_names": names, "pixel_size_um": rec.pixel_size_um}
        overlay = folder.overlay_path(rec)
        if overlay is not None and overlay.is_file():
            layers.append((np.asarray(Image.open(overlay).convert("RGB")), {"name": f"{rec.name}{flag} overlay",
                                                                             "metadata": meta}, "image"))
        layers.append((folder.mask_array(rec).astype(np.int32), {
            "name": f"{rec.name}{flag} classes", "metadata": meta,
            "colormap": {**colors, None: (0, 0, 0, 0)}}, "labels"))
    return layers


def napari_get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """npe2 reader hook: :func:`read_segment_folder` when ``path`` is a segment output folder, else None."""
    if isinstance(path, list):
        path = path[0] if len(path) == 1 else ""
    return read_segment_folder if path and (Path(path) / "segment.json").is_file() else None
