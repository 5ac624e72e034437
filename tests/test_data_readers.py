"""Readers keep full dynamic range (8/16-bit, float32), stacks, PNG/JPEG, corrupt files, normalization."""

from __future__ import annotations

import numpy as np
import pytest
from _data_helpers import write_png, write_tiff

from matseg_nb.data import normalize_image, read_image
from matseg_nb.data.readers import image_hw, page_count
from matseg_nb.errors import UserError


def test_uint16_tiff_keeps_full_range(tmp_path):
    arr = np.linspace(0, 65535, 64 * 48).reshape(64, 48).astype(np.uint16)
    img = read_image(write_tiff(tmp_path / "a.tif", arr))
    assert img.shape == (1, 64, 48) and img.dtype == np.float32
    assert img.max() == 65535.0 and img.min() == 0.0
    assert len(np.unique(img)) > 256  # not squashed to 8 bits
    assert np.array_equal(img[0], arr.astype(np.float32))


def test_float32_tiff_keeps_values(tmp_path):
    arr = np.random.default_rng(0).normal(0, 1e3, (32, 32)).astype(np.float32)
    img = read_image(write_tiff(tmp_path / "f.tif", arr))
    assert np.array_equal(img[0], arr)
    assert img.min() < 0 and img.max() > 255


def test_multipage_stack_pages_as_channels_or_slices(tmp_path):
    stack = np.stack([np.full((16, 20), v, np.uint16) for v in (10, 2000, 40000)])
    path = write_tiff(tmp_path / "s.tif", stack, photometric="minisblack")
    assert page_count(path) == 3
    chw = read_image(path)
    assert chw.shape == (3, 16, 20) and chw[:, 0, 0].tolist() == [10, 2000, 40000]
    assert read_image(path, slice_index=2).shape == (1, 16, 20)
    assert read_image(path, slice_index=2)[0, 0, 0] == 40000
    assert image_hw(path, 1) == (16, 20)
    planar = write_tiff(tmp_path / "planar.tif", stack)  # one page, 3 planar samples (tifffile's RGB guess)
    assert page_count(planar) == 1
    assert read_image(planar, channels="stack")[:, 0, 0].tolist() == [10, 2000, 40000]


def test_png_jpeg_rgb(tmp_path):
    grey = np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1))
    assert read_image(write_png(tmp_path / "g.png", grey)).shape == (1, 24, 32)
    colour = np.zeros((24, 32, 3), np.uint8)
    colour[..., 0] = 200
    assert read_image(write_png(tmp_path / "c.png", colour)).shape == (3, 24, 32)
    equal = np.repeat(grey[..., None], 3, -1)
    assert read_image(write_png(tmp_path / "e.png", equal)).shape == (1, 24, 32)
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "j.jpg", equal)
    assert read_image(tmp_path / "j.jpg", channels="grayscale").shape == (1, 24, 32)
    assert read_image(write_png(tmp_path / "p16.png", (grey.astype(np.uint16) * 250))).max() == 62000


def test_corrupt_and_unsupported_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage-not-a-tiff" * 3)
    with pytest.raises(UserError) as err:
        read_image(bad)
    assert len(err.value.problems) == 1 and "broken.tif: expected a readable TIFF" in err.value.problems[0]
    with pytest.raises(UserError, match="x.xyz: expected one of"):
        read_image(tmp_path / "x.xyz")
    with pytest.raises(UserError, match="missing.tif: expected an image file"):
        read_image(tmp_path / "missing.tif")


def test_normalize_modes():
    img = np.stack([np.linspace(0, 65535, 1000, dtype=np.float32).reshape(20, 50)])
    p = normalize_image(img)
    assert p.dtype == np.float32 and p.min() == 0.0 and p.max() == 1.0
    d = normalize_image(img, "dtype")
    assert d.max() == pytest.approx(1.0) and d[0, 0, 1] == pytest.approx(img[0, 0, 1] / 65535)
    small = img / 257.0
    assert normalize_image(small, "dtype").max() == pytest.approx(1.0)
    assert normalize_image(small, "none") is not None and normalize_image(small, "none").max() == small.max()
    with pytest.raises(UserError, match="normalization"):
        normalize_image(img, "zscore-ish")
    with pytest.raises(UserError, match=r"\(C, H, W\)"):
        normalize_image(img[0])
