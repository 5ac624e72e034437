"""Plain-folder mask encodings decoded automatically: grey levels, RGB colours, classes.yaml,
and named errors for anti-aliased and JPEG masks."""

from __future__ import annotations

import numpy as np
import pytest
from _data_helpers import data_env, make_folder, run_cli, write_png  # noqa: F401

from matseg_nb.data import open_dataset
from matseg_nb.errors import UserError


def _grey_masks(root, levels=(0, 127, 255)):
    for i, stem in enumerate(["a", "b", "c"]):
        m = np.full((32, 32), levels[0], np.uint8)
        m[:10] = levels[1]
        m[20:, : 8 + i] = levels[2]
        write_png(root / "masks" / f"{stem}.png", m)
    return m


def test_grey_level_masks_map_to_ids_in_increasing_order(tmp_path, data_env, capsys, monkeypatch):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c"])
    last = _grey_masks(root)
    ds = open_dataset(root)
    assert ds.num_classes == 3
    ids = ds.load_mask([s for s in ds.samples() if s.image.stem == "c"][0])
    assert np.array_equal(ids, np.select([last == 127, last == 255], [1, 2], 0))
    assert run_cli(["data", "check", str(root)], monkeypatch) == 0
    assert "mask classes: 0 background <- grey 0; 1 class_1 <- grey 127; 2 class_2 <- grey 255" in capsys.readouterr().out


def test_rgb_colour_masks_black_is_background(tmp_path, data_env):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c"])
    for stem in "abc":
        m = np.zeros((32, 32, 3), np.uint8)
        m[:8] = (255, 0, 0)
        m[8:12] = (0, 0, 255)
        write_png(root / "masks" / f"{stem}.png", m)
    ds = open_dataset(root)
    ids = ds.load_mask(ds.samples()[0])
    # black -> 0, then RGB order: (0,0,255) -> 1, (255,0,0) -> 2
    assert ids[0, 0] == 2 and ids[9, 0] == 1 and ids[20, 0] == 0 and ds.num_classes == 3


def test_rgb_without_black_most_common_colour_is_background(tmp_path, data_env):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c"])
    for stem in "abc":
        m = np.full((32, 32, 3), (200, 200, 0), np.uint8)
        m[:5] = (10, 250, 10)
        write_png(root / "masks" / f"{stem}.png", m)
    ds = open_dataset(root)
    ids = ds.load_mask(ds.samples()[0])
    assert ids[20, 0] == 0 and ids[0, 0] == 1


def test_classes_yaml_overrides_order_and_names(tmp_path, data_env):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c"])
    last = _grey_masks(root)
    (root / "classes.yaml").write_text(
        "classes:\n  - {name: matrix, value: 127}\n  - {name: pore, value: 0}\n  - {name: precipitate, value: 255}\n")
    ds = open_dataset(root)
    assert ds.class_names == ["matrix", "pore", "precipitate"]
    ids = ds.load_mask([s for s in ds.samples() if s.image.stem == "c"][0])
    assert np.array_equal(ids, np.select([last == 0, last == 255], [1, 2], 0))
    (root / "classes.yaml").write_text("classes:\n  - {name: a, value: 0}\n  - {name: b, value: 300}\n")
    with pytest.raises(UserError, match=r"classes.yaml: classes\[1\].value: expected an integer grey level 0..255"):
        open_dataset(root)


def test_anti_aliased_colour_mask_named_error(tmp_path, data_env):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c"])
    m = np.zeros((32, 32, 3), np.uint8)
    m[..., 0] = np.arange(32)[None, :] * 8  # a red ramp: 32 colours along the edge
    write_png(root / "masks" / "b.png", m)
    with pytest.raises(UserError, match=r"b.png: expected at most 16 distinct colours .* found 32 .*anti-aliasing"):
        open_dataset(root)


def test_jpeg_mask_named_error(tmp_path, data_env):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c"])
    (root / "masks" / "a.png").unlink()
    write_png(root / "masks" / "a.jpg", np.zeros((32, 32), np.uint8))
    with pytest.raises(UserError, match=r"a.jpg: expected a lossless mask \(PNG, TIFF, BMP\), found JPEG"):
        open_dataset(root)


def test_classes_yaml_default_class_decodes_drawings_over_the_micrograph(tmp_path, data_env):  # noqa: F811
    """Super1-style masks: pure colours drawn over the grey image (hundreds of colours); a classes.yaml
    with a `default: true` class decodes them, where the automatic scan refuses them as anti-aliased."""
    root = make_folder(tmp_path / "ds", ["a", "b", "c"])
    rng = np.random.default_rng(0)
    for stem in ("a", "b", "c"):
        grey = rng.integers(0, 256, (32, 32), dtype=np.uint8)
        m = np.repeat(grey[..., None], 3, axis=-1)
        m[:4] = (0, 0, 255)
        m[4:6] = (255, 0, 0)
        write_png(root / "masks" / f"{stem}.png", m)
    with pytest.raises(UserError, match="colours"):
        open_dataset(root)
    (root / "classes.yaml").write_text(
        "classes:\n  - {name: matrix, default: true}\n  - {name: secondary, rgb: [0, 0, 255]}\n"
        "  - {name: tertiary, rgb: [255, 0, 0]}\n")
    ds = open_dataset(root)
    assert ds.class_names == ["matrix", "secondary", "tertiary"]
    ids = ds.load_mask(ds.samples()[0])
    assert (ids[:4] == 1).all() and (ids[4:6] == 2).all() and (ids[6:] == 0).all()
    (root / "classes.yaml").write_text(
        "classes:\n  - {name: a, default: true}\n  - {name: b, default: true}\n  - {name: c, rgb: [0, 0, 255]}\n")
    with pytest.raises(UserError, match=r"classes\[1\]: expected at most one 'default: true' class"):
        open_dataset(root)
