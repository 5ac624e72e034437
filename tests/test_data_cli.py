"""``matseg data list | check | preview`` exit codes and output."""

from __future__ import annotations

import numpy as np
from _data_helpers import data_env, make_folder, run_cli, snapshot, write_png  # noqa: F401


def test_list(capsys, monkeypatch):
    assert run_cli(["data", "list"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "nasa-super1" in out and "bring-your-own" in out and "afm-crystallites" in out


def test_check_real_ebc1_reports_missing_and_fractions(capsys, monkeypatch, data_env, tmp_path):  # noqa: F811
    assert run_cli(["data", "check", "nasa-ebc1", "--json", str(tmp_path / "s.json")], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "train   16 pairs" in out and "crack=0.0027" in out
    assert out.count("missing: EBC1/train/") == 2 and "2 listed file(s) missing" in out
    assert (tmp_path / "s.json").is_file()


def test_check_bad_folder_exits_2_one_line_per_file(capsys, monkeypatch, data_env, tmp_path):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c", "d"])
    write_png(root / "masks" / "a.png", np.zeros((10, 10), np.uint8))
    (root / "images" / "c.tif").write_bytes((root / "images" / "b.tif").read_bytes()[:300])
    assert run_cli(["data", "check", str(root)], monkeypatch) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error: ")]
    assert len(err) == 2
    assert any("a.png" in line for line in err) and any("c.tif" in line for line in err)


def test_check_unknown_name_exits_2(capsys, monkeypatch, data_env):  # noqa: F811
    assert run_cli(["data", "check", "no-such-set"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no-such-set: expected a manifest name") and "Traceback" not in err


def test_preview_folder_and_real(monkeypatch, data_env, tmp_path):  # noqa: F811
    root = make_folder(tmp_path / "ds", ["a", "b", "c"], mask_scale=255)
    before = snapshot(root)
    out = tmp_path / "out" / "p.png"
    assert run_cli(["data", "preview", str(root), "--out", str(out), "-n", "2"], monkeypatch) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert snapshot(root) == before
    real = tmp_path / "super1.png"
    assert run_cli(["data", "preview", "nasa-super1", "--out", str(real)], monkeypatch) == 0
    import imageio.v3 as iio

    assert iio.imread(real).shape[0] > 600
