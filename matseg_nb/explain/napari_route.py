"""napari route for experts at a desktop: image + prediction + a Labels layer for A.

``open_annotation_viewer`` shows the image, the model's prediction (optional) and an editable
Labels layer "A" (label 1 = inside); ``save_labels_layer`` writes it in the same PNG + JSON
format as the Jupyter painter (tool "napari"). A dock button saves to ``save_path``.
napari is optional (``pip install "napari[pyqt5]"``); it is imported only here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matseg_nb.errors import UserError
from matseg_nb.explain.annotation import load_annotation, save_annotation


def _napari():
    try:
        import napari
    except ImportError:  # pragma: no cover - depends on the environment
        raise UserError('napari: expected it installed (pip install "napari[pyqt5]"), found it missing') from None
    return napari


def save_labels_layer(layer, png: str | Path, image_path: str | Path | None = None) -> Path:
    """Save a napari Labels layer (H, W) as annotation A (nonzero = inside)."""
    data = np.asarray(layer.data)
    if data.ndim != 2:
        raise UserError(f"labels layer {layer.name!r}: expected 2-D data (H, W), found shape {data.shape}")
    return save_annotation(data > 0, png, image_path, tool="napari")


def open_annotation_viewer(image: np.ndarray, prediction: np.ndarray | None = None,
                           mask: np.ndarray | str | Path | None = None, save_path: str | Path | None = None,
                           image_path: str | Path | None = None, show: bool = True):
    """Open a viewer; returns (viewer, labels_layer). ``image`` (C, H, W) or (H, W)."""
    napari = _napari()
    img = np.asarray(image)
    hw = img.shape[-2:]
    if isinstance(mask, (str, Path)):
        mask = load_annotation(mask, hw)
    viewer = napari.Viewer(show=show, title="matseg-nb: draw the expert mask A")
    if img.ndim == 3 and img.shape[0] == 3:
        viewer.add_image(np.moveaxis(img, 0, -1), name="image", rgb=True)
    else:
        viewer.add_image(img[0] if img.ndim == 3 else img, name="image")
    if prediction is not None:
        viewer.add_labels(np.asarray(prediction).astype(np.int32), name="prediction", opacity=0.35)
    data = np.zeros(hw, dtype=np.uint8) if mask is None else (np.asarray(mask) > 0).astype(np.uint8)
    layer = viewer.add_labels(data, name="A", opacity=0.6)
    layer.selected_label = 1
    layer.mode = "paint"
    if save_path is not None:
        _add_save_dock(viewer, layer, save_path, image_path)
    return viewer, layer


def _add_save_dock(viewer, layer, save_path, image_path) -> None:
    from qtpy.QtWidgets import QPushButton

    button = QPushButton(f"save A to {Path(save_path).name}")
    button.clicked.connect(lambda *_: save_labels_layer(layer, save_path, image_path))
    viewer.window.add_dock_widget(button, area="right", name="save A")
