"""Format readers (tifffile, imageio, RosettaSciIO, AFMReader): pixels, channels, pixel size,
bad input; ``matseg data check`` on folders of each format with pixel sizes and the mix warning."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _data_helpers import blob_mask, data_env, run_cli, write_bmp, write_emd, write_gwy, write_png, write_tiff  # noqa: F401

from matseg_nb.data import open_dataset, read_image
from matseg_nb.data.formats import pixel_size_um, read_file
from matseg_nb.errors import UserError

pytest.importorskip("rsciio")
pytest.importorskip("AFMReader")


def test_bmp_8bit_values_and_no_pixel_size(tmp_path):
    arr = (np.arange(24 * 20) % 251).astype(np.uint8).reshape(24, 20)
    d = read_file(write_bmp(tmp_path / "a.bmp", arr))
    assert d.array.shape == (1, 24, 20) and d.array.dtype == np.float32
    assert np.array_equal(d.array[0], arr.astype(np.float32))
    assert d.bit_depth == 8 and d.channel_names == ["intensity"] and d.pixel_size is None


def test_tiff_16bit_with_resolution_tags(tmp_path):
    arr = np.linspace(0, 65535, 32 * 40).reshape(32, 40).astype(np.uint16)
    path = write_tiff(tmp_path / "a.tif", arr, resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER")
    d = read_file(path)
    assert np.array_equal(d.array[0], arr.astype(np.float32)) and d.bit_depth == 16
    assert d.pixel_size == pytest.approx(0.25) and d.pixel_unit == "um"
    assert read_file(write_tiff(tmp_path / "b.tif", arr)).pixel_size is None


def test_emd_pixel_size_and_values(tmp_path):
    arr = np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 300
    d = read_file(write_emd(tmp_path / "a.emd", {"HAADF": arr}, pixel_nm=2.5))
    assert d.array.shape == (1, 12, 16) and np.array_equal(d.array[0], arr.astype(np.float32))
    assert d.channel_names == ["HAADF"] and d.bit_depth == 16
    assert (d.pixel_size, d.pixel_unit) == (2.5, "nm") and d.metadata()["pixel_size_um"] == pytest.approx(0.0025)
    assert np.array_equal(read_image(tmp_path / "a.emd"), d.array)


def test_gwy_multichannel_afm(tmp_path):
    height = np.linspace(0, 20e-9, 8 * 10).reshape(8, 10)  # metres
    phase = np.full((8, 10), 12.5)
    path = write_gwy(tmp_path / "a.gwy", {"Height": (height, "m"), "Phase": (phase, "deg")}, pixel_m=4e-9)
    d = read_file(path)
    assert d.array.shape == (2, 8, 10) and d.channel_names == ["Height", "Phase"]
    assert np.allclose(d.array[0], height * 1e9, atol=1e-4)  # nm
    assert np.allclose(d.array[1], 12.5)  # degrees stay degrees
    assert d.pixel_size == pytest.approx(4.0) and d.pixel_unit == "nm" and "AFM" in d.instrument
    assert read_file(path, ["phase"]).array.shape == (1, 8, 10)
    with pytest.raises(UserError, match=r"a.gwy: expected channel\(s\) Amplitude, found Height, Phase"):
        read_file(path, ["Amplitude"])


def test_bad_inputs_one_line_naming_the_file(tmp_path):
    (tmp_path / "x.xyz").write_bytes(b"abc")
    with pytest.raises(UserError, match=r"x.xyz: expected one of .*\.dm4.*found '.xyz'"):
        read_file(tmp_path / "x.xyz")
    (tmp_path / "bad.dm4").write_bytes(b"\x00\x00\x00\x04not a dm file" * 8)
    with pytest.raises(UserError) as err:
        read_file(tmp_path / "bad.dm4")
    assert len(err.value.problems) == 1 and "bad.dm4: expected a readable DM4 file, found" in err.value.problems[0]
    (tmp_path / "bad.gwy").write_bytes(b"GWYQ....")
    with pytest.raises(UserError, match="bad.gwy: expected a readable GWY file"):
        read_file(tmp_path / "bad.gwy")
    assert pixel_size_um(3.0, "nm") == pytest.approx(0.003) and pixel_size_um(3.0, "furlong") is None


def _folder(root, write_image, n=3):
    for i in range(n):
        write_image(root / "images" / f"s{i}", i)
        write_png(root / "masks" / f"s{i}.png", blob_mask(16, 16, seed=i) * 255)
    return root


@pytest.mark.parametrize("fmt", ["bmp", "tif", "emd", "gwy"])
def test_data_check_on_folders_of_each_format(fmt, tmp_path, capsys, monkeypatch, data_env):  # noqa: F811
    img = (np.arange(256).reshape(16, 16) % 200).astype(np.uint8)
    writers = {
        "bmp": lambda stem, i: write_bmp(stem.with_suffix(".bmp"), img),
        "tif": lambda stem, i: write_tiff(stem.with_suffix(".tif"), img.astype(np.uint16) * 300,
                                          resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER"),
        "emd": lambda stem, i: write_emd(stem.with_suffix(".emd"), {"HAADF": img.astype(np.uint16)},
                                         pixel_nm=2.0 if i < 2 else 3.0),  # third image: 50% larger pixels
        "gwy": lambda stem, i: write_gwy(stem.with_suffix(".gwy"), {"Height": (img * 1e-10, "m"),
                                                                    "Phase": (img * 0.1, "deg")}, pixel_m=5e-9),
    }
    root = _folder(tmp_path / fmt, writers[fmt])
    assert run_cli(["data", "check", str(root), "--json", str(tmp_path / "s.json")], monkeypatch) == 0
    out, err = capsys.readouterr()
    assert "ok: 3 pairs checked" in out and "mask classes: 0 background <- 0; 1 foreground <- 1 or 255" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    sizes = sorted(r["pixel_size_um"] or 0 for r in summary["images"])
    expected = {"bmp": [0, 0, 0], "tif": [0.5] * 3, "emd": [0.002, 0.002, 0.003], "gwy": [0.005] * 3}[fmt]
    assert sizes == pytest.approx(expected)
    if fmt == "emd":
        assert "warning: pixel sizes differ by 50% (> 10%)" in err and "s2.emd" in err
    else:
        assert "warning" not in err
    if fmt == "bmp":
        assert "pixel size: unknown" in out
    if fmt == "gwy":
        ds = open_dataset(root)
        assert ds.in_channels == 2 and ds.manifest.channels.names == ["Height", "Phase"]
        assert ds.load_image(ds.samples()[0]).shape == (2, 16, 16)


def test_folder_bad_files_one_line_each(tmp_path, capsys, monkeypatch, data_env):  # noqa: F811
    img = np.zeros((16, 16), np.uint8)
    root = _folder(tmp_path / "ds", lambda stem, i: write_bmp(stem.with_suffix(".bmp"), img))
    (root / "images" / "notes.xyz").write_bytes(b"?")
    (root / "images" / "scan.txt").write_text("sidecar, ignored")
    write_png(root / "masks" / "orphan.png", img)
    assert run_cli(["data", "check", str(root)], monkeypatch) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error: ")]
    assert len(err) == 2, err
    assert any("notes.xyz: expected one of" in line for line in err)
    assert any("orphan.png: expected an image named orphan.* in" in line for line in err)
