"""Plain folders with images/ + masks/ (no manifest): pairing, splits, volumes and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from _data_helpers import blob_mask, data_env, make_folder, snapshot, write_manifest, write_png, write_tiff  # noqa: F401

from matseg_nb.data import open_dataset
from matseg_nb.data.schema import SplitRule
from matseg_nb.data.splits import assign_splits, group_of
from matseg_nb.errors import UserError


def test_binary_255_masks_and_seeded_split(tmp_path, data_env):  # noqa: F811
    stems = [f"s{i}" for i in range(10)]
    root = make_folder(tmp_path / "ds", stems, mask_scale=255)
    before = snapshot(root)
    ds = open_dataset(str(root))
    assert ds.num_classes == 2 and ds.in_channels == 1 and ds.manifest.mask.kind == "binary"
    counts = [len(ds.samples(s)) for s in ("train", "val", "test")]
    assert counts == [8, 1, 1]  # 10 groups: val/test get floor(0.15 * 10) = 1 (docs/data.md)
    s = ds.samples("train")[0]
    assert set(np.unique(ds.load_mask(s)).tolist()) == {0, 1}
    assert ds.check() == []
    assert snapshot(root) == before


def test_index_masks_and_split_subfolders(tmp_path, data_env):  # noqa: F811
    split = {"a": "train", "b": "train", "c": "val", "d": "test"}
    root = make_folder(tmp_path / "ds", list(split), split_dirs=split, k=3, dtype=np.uint16)
    ds = open_dataset(root)
    assert ds.num_classes == 3 and ds.manifest.mask.kind == "index"
    assert {s.image.stem: s.split for s in ds.samples()} == split
    img = ds.load_image(ds.samples("val")[0])
    assert img.max() > 255  # 16-bit range kept


def test_mask_suffix_and_flat_masks(tmp_path, data_env):  # noqa: F811
    root = tmp_path / "ds"
    for i in range(3):
        write_tiff(root / "images" / "train" / f"x{i}.tif", np.zeros((8, 8), np.uint8))
        write_png(root / "masks" / f"x{i}_mask.png", blob_mask(8, 8))
    ds = open_dataset(root)
    assert len(ds.samples("train")) == 3 and all(s.mask.name.endswith("_mask.png") for s in ds.samples())


def test_group_split_keeps_tiles_together():
    groups = [group_of(f"mic{g}_tile{t:02d}") for g in range(7) for t in range(4)]
    assert groups[:4] == ["mic0"] * 4 and group_of("plain_name") == "plain_name"
    assignment = assign_splits(groups, SplitRule(kind="seeded", seed=5))
    assert set(assignment) == {f"mic{g}" for g in range(7)}
    assert sorted(assignment.values()).count("train") == 5
    assert assign_splits(groups, SplitRule(kind="seeded", seed=5)) == assignment
    few = assign_splits(["only", "two"], SplitRule(kind="seeded"))
    assert set(few.values()) == {"train"}


def test_volumes_read_as_slices_with_volume_group(tmp_path, data_env):  # noqa: F811
    root = tmp_path / "vol"
    for v in range(4):
        vol = (np.random.default_rng(v).random((5, 12, 12)) * 4000).astype(np.uint16)
        write_tiff(root / "images" / f"vol{v}.tif", vol)
        write_tiff(root / "masks" / f"vol{v}.tif", np.stack([blob_mask(12, 12, seed=z) for z in range(5)]))
    ds = open_dataset(root)
    assert len(ds.samples()) == 20 and ds.in_channels == 1
    split_of = {}
    for s in ds.samples():
        assert s.slice_index is not None and s.group == s.image.stem
        assert split_of.setdefault(s.group, s.split) == s.split
    s = ds.samples()[7]
    img, mask = ds.load_pair(s)
    assert img.shape == (1, 12, 12) and mask.shape == (12, 12) and s.name.endswith(f"_z{s.slice_index:04d}")


def test_multichannel_stack_with_single_page_mask(tmp_path, data_env):  # noqa: F811
    root = tmp_path / "afm"
    for i in range(3):
        write_tiff(root / "images" / f"scan{i}.tif", np.random.default_rng(i).normal(0, 5, (3, 16, 16)).astype(np.float32))
        write_png(root / "masks" / f"scan{i}.png", blob_mask(16, 16) * 255)
    ds = open_dataset(root)
    assert ds.in_channels == 3 and len(ds.samples()) == 3
    assert ds.load_image(ds.samples()[0]).shape == (3, 16, 16)


# ------------------------------------------------------------------ bad inputs
def test_missing_mask_names_the_image(tmp_path, data_env):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c"])
    (root / "masks" / "b.png").unlink()
    with pytest.raises(UserError) as err:
        open_dataset(root)
    assert len(err.value.problems) == 1 and "b.tif: expected a mask named b.*" in err.value.problems[0]


def test_shape_mismatch_names_the_mask(tmp_path, data_env, monkeypatch):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c"])
    write_png(root / "masks" / "c.png", np.zeros((32, 40), np.uint8))
    ds = open_dataset(root)
    problems = ds.check()
    assert len(problems) == 1 and "c.png: expected the image's shape (32, 32), found (32, 40)" in problems[0]
    bad = next(s for s in ds.samples() if s.image.stem == "c")
    with pytest.raises(UserError, match="c.png"):
        ds.load_pair(bad)


def test_corrupt_tiff_in_folder_is_one_line(tmp_path, data_env):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c", "d"])
    (root / "images" / "b.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(UserError) as err:
        open_dataset(root)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{root / 'images' / 'b.tif'}: expected a readable TIFF")
    # a TIFF with a valid header but broken pixel data is caught by check()
    good = (root / "images" / "a.tif").read_bytes()
    (root / "images" / "b.tif").write_bytes(good[: len(good) // 2])
    problems = open_dataset(root).check()
    assert len(problems) == 1 and problems[0].startswith(str(root / "images" / "b.tif"))


def test_empty_folder(tmp_path, data_env):  # noqa: F811
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(UserError, match=r"images: expected image files"):
        open_dataset(tmp_path / "empty")


def test_unknown_colour_without_default_class(tmp_path, data_env, monkeypatch):  # noqa: F811
    root = make_folder(tmp_path / "byo", ["a", "b", "c"], split_dirs={"a": "train", "b": "val", "c": "test"})
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:4] = (0, 0, 255)
    rgb[10, 10] = (0, 255, 0)
    write_png(root / "masks" / "val" / "b.png", rgb)
    for stem, split in (("a", "train"), ("c", "test")):
        write_png(root / "masks" / split / f"{stem}.png", np.where(blob_mask()[..., None] > 0, [0, 0, 255], 0).astype(np.uint8))
    man = write_manifest(
        tmp_path / "colours.yaml",
        availability="bring-your-own",
        source={"mirror_subdir": "byo", "licence": "MIT"},
        mask={"kind": "rgb", "colours": [{"rgb": [0, 0, 255], "class_id": 1}, {"rgb": [0, 0, 0], "class_id": 0}]},
    )
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(tmp_path))
    ds = open_dataset(str(man))
    problems = ds.check()
    assert len(problems) == 1
    assert "b.png: expected colours from the mask table, found 1 other colour(s) e.g. (0,255,0) at 1 pixels" in problems[0]
    train = ds.samples("train")[0]
    assert set(np.unique(ds.load_mask(train)).tolist()) == {0, 1}


def test_index_mask_value_out_of_range(tmp_path, data_env, monkeypatch):  # noqa: F811
    make_folder(tmp_path / "byo", ["a", "b", "c"], k=3)
    man = write_manifest(tmp_path / "m.yaml", availability="bring-your-own", split={"kind": "seeded"},
                         source={"mirror_subdir": "byo", "licence": "MIT"})  # 2 classes, masks hold id 2
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(tmp_path))
    problems = open_dataset(str(man)).check()
    assert len(problems) == 3 and all("expected class ids 0..1, found value(s) 2" in p for p in problems)
