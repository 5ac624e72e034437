"""Annotation masks A (PNG + JSON), boundary masks from ground truth, and the painter model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from matseg_nb.errors import UserError
from matseg_nb.explain import (
    PainterModel,
    boundary_annotation_from_gt,
    load_annotation,
    load_annotation_meta,
    save_annotation,
    save_boundary_annotation,
)


def test_save_and_load_round_trip(tmp_path):
    img_path = tmp_path / "img.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(img_path)
    a = np.zeros((20, 30), bool)
    a[5:9, 3:17] = True
    png = save_annotation(a, tmp_path / "A.png", image_path=img_path, tool="painter")
    raw = np.asarray(Image.open(png))
    assert raw.dtype == np.uint8 and raw.shape == (20, 30) and set(np.unique(raw)) == {0, 255}
    np.testing.assert_array_equal(load_annotation(png, (1, 20, 30)), a)
    meta = json.loads((tmp_path / "A.json").read_text())
    assert meta["shape"] == [20, 30] and meta["tool"] == "painter" and meta["pixels"] == 56
    assert meta["image"] == str(img_path) and len(meta["image_sha256"]) == 64 and meta["created"]
    assert load_annotation_meta(png) == meta


def test_wrong_size_and_missing_file_are_user_errors(tmp_path):
    png = save_annotation(np.ones((20, 30)), tmp_path / "A.png")
    with pytest.raises(UserError, match=r"A.png: expected an annotation of the image's size 21x30 .*found 20x30"):
        load_annotation(png, (3, 21, 30))
    with pytest.raises(UserError, match="no such file"):
        load_annotation(tmp_path / "nope.png", (20, 30))


def test_boundary_annotation_from_gt(tmp_path):
    gt = np.zeros((20, 20), np.int64)
    gt[:, 10:] = 1
    a1 = boundary_annotation_from_gt(gt, width=1)
    assert a1[:, 9:11].all() and a1.sum() == 40
    a3 = boundary_annotation_from_gt(gt, width=3)
    assert a3[:, 7:13].all() and a3.sum() == 120
    assert not boundary_annotation_from_gt(np.zeros((5, 5), int)).any()
    png = save_boundary_annotation(gt, tmp_path / "B.png", width=3)
    meta = load_annotation_meta(png)
    assert meta["tool"] == "gt-boundary" and "ground truth" in meta["notes"] and meta["boundary_width"] == 3


def test_painter_strokes_undo_clear_save(tmp_path):
    p = PainterModel((40, 50), image_path=None)
    m = p.stroke([(10, 10)], radius=3)
    assert m[10, 10] and m[10, 13] and not m[10, 14] and m.sum() == 29  # disc of radius 3
    p.stroke([(5, 30), (45, 30)], radius=2)  # horizontal line y=30, x 5..45: no gaps
    assert p.mask[30, 5:46].all() and not p.mask[33, 20]
    before_erase = p.mask.copy()
    p.stroke([(20, 30), (30, 30)], radius=2, erase=True)
    assert not p.mask[30, 20:31].any() and p.mask[30, 10]
    assert p.undo() and np.array_equal(p.mask, before_erase)
    p.clear()
    assert not p.mask.any()
    assert p.undo() and np.array_equal(p.mask, before_erase)
    p.undo()
    p.undo()
    assert not p.mask.any() and not p.undo()
    p.stroke([(0, 0), (49, 39)], radius=1)
    out = p.save(tmp_path / "A.png")
    np.testing.assert_array_equal(load_annotation(out, (40, 50)), p.mask)


def test_painter_listeners_and_clipping():
    p = PainterModel((10, 10))
    calls = []
    p.listeners.append(lambda model: calls.append(int(model.mask.sum())))
    p.stroke([(-5, -5), (100, 100)], radius=1)  # leaves the canvas: clipped, no error
    assert p.mask[0, 0] and p.mask[9, 9] and calls and calls[-1] == p.mask.sum()
    p.extend_stroke(3, 3)  # no active stroke: ignored
    assert calls[-1] == p.mask.sum()
