"""Pixel size through the loop: per-sample pixel size from the files, descriptors in µm where known
(px otherwise), the mask mapping saved next to the results by the data stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _data_helpers import data_env, run_cli, write_bmp, write_png, write_tiff  # noqa: F401

from matseg_nb.compare.descriptors import compute_descriptors, estimate_difficulty
from matseg_nb.data import open_dataset

RADIUS = 8


def _disc_pair(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Two discs of radius 8 px (class 1) on a dark background; image uint8, mask 0/127 grey levels."""
    yy, xx = np.mgrid[:size, :size]
    disc = np.zeros((size, size), bool)
    for cy, cx in ((16, 16), (44, 44)):
        disc |= (yy - cy) ** 2 + (xx - cx) ** 2 <= RADIUS**2
    return np.where(disc, 200, 40).astype(np.uint8), np.where(disc, 127, 0).astype(np.uint8)


def _folder(root, pixel_um: list[float | None]):
    img, mask = _disc_pair()
    for i, size in enumerate(pixel_um):
        if size is None:
            write_bmp(root / "images" / f"s{i}.bmp", img)
        else:
            write_tiff(root / "images" / f"s{i}.tif", img, resolution=(1e4 / size, 1e4 / size),
                       resolutionunit="CENTIMETER")
        write_png(root / "masks" / f"s{i}.png", mask)
    return root


def test_descriptors_in_um_when_every_image_is_calibrated(tmp_path, data_env):  # noqa: F811
    root = _folder(tmp_path / "cal", [0.5] * 4)
    ds = open_dataset(root)
    assert [ds.pixel_size_um_of(s) for s in ds.samples()] == pytest.approx([0.5] * 4)
    d = compute_descriptors(root)
    assert d.pixel_size_um == pytest.approx(0.5) and d.pixel_size_spread == pytest.approx(0.0)
    assert 15 < d.feature_diameter_median_px < 18  # 2 * radius, up to the disc's pixelation
    assert d.feature_diameter_median_um == pytest.approx(0.5 * d.feature_diameter_median_px)
    assert d.feature_width_um == pytest.approx(0.5 * d.feature_width_px)
    assert any("feature sizes in µm" in n for n in d.notes)
    reason = next(r for r in estimate_difficulty(d)[1] if "features" in r)
    assert f"px = {d.feature_width_um:.3g} µm" in reason


def test_descriptors_in_px_only_when_a_pixel_size_is_unknown(tmp_path, data_env):  # noqa: F811
    d = compute_descriptors(_folder(tmp_path / "mixed", [0.5, None, 0.5, None]))
    assert d.feature_diameter_median_px > 15 and d.feature_width_px > 0
    assert d.feature_diameter_median_um is None and d.feature_width_um is None
    assert any("pixel size unknown" in n and "px only" in n for n in d.notes)
    d = compute_descriptors(_folder(tmp_path / "bmp", [None] * 4))
    assert d.pixel_size_um is None and any("0 of" in n for n in d.notes)


def test_each_image_converted_with_its_own_pixel_size(tmp_path, data_env):  # noqa: F811
    """The same discs at 1 µm/px are twice as large in µm as at 0.5 µm/px."""
    root = _folder(tmp_path / "two", [0.5, 0.5, 1.0, 1.0])
    ds = open_dataset(root)
    used = ds.samples("train") + ds.samples("val")
    sizes = sorted(ds.pixel_size_um_of(s) for s in used)
    d = compute_descriptors(root)
    assert d.pixel_size_spread == pytest.approx(max(sizes) / min(sizes) - 1)
    px = d.feature_diameter_median_px
    lo, hi = d.feature_diameter_iqr_um
    assert max(sizes) == 2 * min(sizes)  # both pixel sizes among the images used
    assert lo == pytest.approx(min(sizes) * px, rel=0.05) and hi > 1.5 * lo


def test_data_stage_saves_the_mask_mapping(tmp_path, monkeypatch, data_env):  # noqa: F811
    from matseg_nb.pipeline import run_demo

    root = _folder(tmp_path / "grey", [0.5] * 4)
    (root / "classes.yaml").write_text("classes:\n  - {name: matrix, value: 0}\n  - {name: disc, value: 127}\n")
    assert run_cli(["init", str(root), "--device", "cpu"], monkeypatch) == 0
    run_demo(root / "profile.json", tmp_path / "out", stages=["data"], log=lambda _: None)
    name = open_dataset(root).name
    record = json.loads((tmp_path / "out" / "data" / f"{name}.classes.json").read_text())
    assert record["dataset"] == name and record["kind"] == "grey" and record["source"].endswith("classes.yaml")
    assert record["classes"] == [{"id": 0, "name": "matrix", "value": 0}, {"id": 1, "name": "disc", "value": 127}]
    assert record["lines"] == ["0 matrix <- grey 0", "1 disc <- grey 127"]


def test_manifest_mapping_record_lists_colours_and_default(data_env):  # noqa: F811
    from matseg_nb.data import load_manifest
    from matseg_nb.data.dataset import Dataset
    from matseg_nb.data.decode import mask_mapping_record

    record = mask_mapping_record(Dataset(load_manifest("nasa-super1"), [], [], None))
    assert record["source"] == "manifest" and record["kind"] == "rgb" and record["default_class"] == 0
    assert record["classes"][1] == {"id": 1, "name": "secondary_gamma_prime", "value": [[0, 0, 255]]}
    assert record["lines"][0] == "0 matrix <- any other colour"
