"""The segment-folder reader's layers open in a napari viewer under Xvfb (run with ``xvfb-run -a``)."""

from __future__ import annotations

import os

import pytest
from test_segment_batch import _run, _seg, _tif16

from matseg_nb.widgets.segment_reader import read_segment_folder

pytestmark = pytest.mark.gui


def test_segment_folder_opens_in_a_viewer(tmp_path):
    if not os.environ.get("DISPLAY"):
        pytest.skip("no X display: run under xvfb-run -a")
    napari = pytest.importorskip("napari")
    run = _run(tmp_path)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    _tif16(imgs / "a.tif", 0)
    out = tmp_path / "out"
    _seg(str(run), str(imgs), "--out", str(out))
    viewer = napari.Viewer(show=False)
    try:
        for data, kwargs, kind in read_segment_folder(out):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
        names = [layer.name for layer in viewer.layers]
        assert names == ["a overlay", "a classes"]
        assert type(viewer.layers["a classes"]).__name__ == "Labels"
        assert viewer.layers["a classes"].data.max() <= 1
    finally:
        viewer.close()
