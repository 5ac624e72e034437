"""napari route under Xvfb: paint the Labels layer A programmatically and save it as PNG + JSON."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest
from _explain_helpers import rand_image

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def display():
    """Use $DISPLAY when set, else start Xvfb on a free display number (skipped without Xvfb)."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        pytest.skip("Xvfb not installed")
    num = next(n for n in range(90, 200) if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"))
    proc = subprocess.Popen([xvfb, f":{num}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    os.environ["DISPLAY"] = f":{num}"
    try:
        yield f":{num}"
    finally:
        os.environ.pop("DISPLAY", None)
        proc.terminate()
        proc.wait(timeout=10)


def test_paint_labels_layer_and_save(tmp_path, display):
    pytest.importorskip("napari")
    from matseg_nb.explain import load_annotation, load_annotation_meta
    from matseg_nb.explain.napari_route import open_annotation_viewer, save_labels_layer

    img = rand_image(1, 48, 64)
    pred = (img[0] > 0.5).astype(np.int64)
    viewer, layer = open_annotation_viewer(img, prediction=pred, save_path=tmp_path / "A.png", show=False)
    try:
        assert [lyr.name for lyr in viewer.layers] == ["image", "prediction", "A"]
        layer.paint((10, 20), 1)  # napari's own brush at (row, col), brush_size default
        layer.data[30:35, 40:50] = 1
        painted = np.asarray(layer.data) > 0
        assert painted[10, 20] and painted[32, 45] and not painted[0, 63]
        png = save_labels_layer(layer, tmp_path / "A.png")
        np.testing.assert_array_equal(load_annotation(png, img.shape), painted)
        assert load_annotation_meta(png)["tool"] == "napari"
    finally:
        viewer.close()
