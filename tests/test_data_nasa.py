"""The shipped manifests on the REAL mirror files (../shared/data/nasa-pmm)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile
from _data_helpers import data_env  # noqa: F401

from matseg_nb.data import list_manifests, open_dataset

# Regression values: pooled per-class pixel fractions per split, decoded from the real masks
# (also written in docs/data.md).
FRACTIONS = {
    "nasa-super1": {
        "train": {"matrix": 0.4906, "secondary_gamma_prime": 0.4876, "tertiary_gamma_prime": 0.0218},
        "val": {"matrix": 0.4708, "secondary_gamma_prime": 0.5093, "tertiary_gamma_prime": 0.0200},
        "test": {"matrix": 0.4777, "secondary_gamma_prime": 0.4959, "tertiary_gamma_prime": 0.0264},
    },
    "nasa-ebc1": {
        "train": {"background": 0.8139, "oxide_layer": 0.1834, "crack": 0.0027},
        "val": {"background": 0.7816, "oxide_layer": 0.2156, "crack": 0.0028},
        "test": {"background": 0.8445, "oxide_layer": 0.1530, "crack": 0.0025},
    },
}
SPLITS = {"nasa-super1": (10, 4, 4), "nasa-ebc1": (16, 3, 3)}
SIZES = {"nasa-super1": "512x512", "nasa-ebc1": "1024x1024"}


@pytest.mark.parametrize("name", sorted(FRACTIONS))
def test_class_fractions_and_splits(name, data_env):  # noqa: F811
    ds = open_dataset(name)
    summary = ds.describe()
    assert summary["problems"] == []
    assert tuple(summary["splits"][s]["pairs"] for s in ("train", "val", "test")) == SPLITS[name]
    for split, expected in FRACTIONS[name].items():
        got = summary["splits"][split]["class_fractions"]
        assert {k: round(v, 4) for k, v in got.items()} == expected, split
        assert summary["splits"][split]["image_sizes"] == {SIZES[name]: SPLITS[name][("train", "val", "test").index(split)]}


def test_super1_upstream_split_membership(nasa_root, data_env):  # noqa: F811
    ds = open_dataset("nasa-super1")
    for split in ("train", "val", "test"):
        expected = sorted(p.stem for p in (nasa_root / "Super1" / split).glob("*.tif"))
        got = sorted(s.image.stem for s in ds.samples(split))
        assert got == expected
        assert all(s.mask.parent.name == f"{split}_annot" and s.mask.stem == f"{s.image.stem}_mask" for s in ds.samples(split))
    assert ds.missing == []
    assert {s.group for s in ds.samples("val")} == {"spot1"}


def test_super1_metadata_and_loading(data_env):  # noqa: F811
    ds = open_dataset("nasa-super1")
    assert (ds.name, ds.modality, ds.num_classes, ds.in_channels) == ("nasa-super1", "SEM", 3, 1)
    assert [c.name for c in ds.classes] == ["matrix", "secondary_gamma_prime", "tertiary_gamma_prime"]
    s = ds.samples("train")[0]
    img, mask = ds.load_pair(s)
    assert img.shape == (1, 512, 512) and img.dtype == np.float32
    assert mask.shape == (512, 512) and mask.dtype == np.int64
    raw = tifffile.TiffFile(s.image).pages[0].asarray()
    assert np.array_equal(img[0], raw[..., 0].astype(np.float32))  # equal RGB channels -> one grey channel


def test_super1_mask_decoding_matches_pure_colours(data_env):  # noqa: F811
    """Independent count: pure blue = class 1, pure red = class 2, everything else = matrix."""
    ds = open_dataset("nasa-super1")
    for s in ds.samples("test"):
        rgba = tifffile.TiffFile(s.mask).pages[0].asarray()
        assert rgba.shape[-1] == 4  # the RGBA quirk is really there
        r, g, b = (rgba[..., i].astype(int) for i in range(3))
        blue = (r == 0) & (g == 0) & (b == 255)
        red = (r == 255) & (g == 0) & (b == 0)
        mask = ds.load_mask(s)
        assert np.array_equal(mask == 1, blue) and np.array_equal(mask == 2, red)
        assert np.array_equal(mask == 0, ~(blue | red))


def test_super1_tiff_quirk_is_quiet(data_env, caplog, recwarn):  # noqa: F811
    ds = open_dataset("nasa-super1")
    with caplog.at_level(logging.DEBUG, logger="tifffile"):
        ds.load_mask(ds.samples("train")[0])
    assert not [r for r in caplog.records if r.name.startswith("tifffile") and r.levelno >= logging.WARNING]
    assert not [w for w in recwarn if "tifffile" in str(w.filename) or "shape" in str(w.message)]


def test_ebc1_missing_images_are_reported_not_fatal(nasa_root, data_env):  # noqa: F811
    ds = open_dataset("nasa-ebc1")
    assert sorted(ds.missing) == [
        "EBC1/train/120718#4-B1_50cyc_14260025.tif",
        "EBC1/train/122018#3_100cyc-1426C0017.tif",
    ]
    annotated = sorted(p.stem for p in (nasa_root / "EBC1" / "train_annot").glob("*.tif"))
    assert len(annotated) == 18 and len(ds.samples("train")) == 16
    assert {s.image.stem for s in ds.samples("train")} == set(annotated) - {
        "120718#4-B1_50cyc_14260025", "122018#3_100cyc-1426C0017"}
    assert ds.describe()["missing"] == ds.missing
    mask = ds.load_mask(ds.samples("val")[0])
    assert set(np.unique(mask).tolist()) <= {0, 1, 2}
    assert ds.in_channels == 1 and ds.load_image(ds.samples("val")[0]).shape == (1, 1024, 1024)


def test_all_shipped_manifests_validate():
    names = list_manifests()
    assert {"nasa-super1", "nasa-ebc1"} <= set(names)
    paper = {"l-pbf", "fractography", "afm-crystallites", "al-mg-si-sc", "al-pitting", "contact-corrosion", "carbon"}
    assert paper <= set(names)
