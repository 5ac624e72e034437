"""matseg segment end to end on a tiny real model: formats, bad input (one line each), resume after kill -9,
changed files redone, exit codes, the dask executor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from matseg_nb.cli import main
from matseg_nb.segment import SegmentFolder


def _run(tmp_path: Path, dataset: str = "nasa-super1") -> Path:
    from _sweep_helpers import write_fake_run

    from matseg_nb.models import build_model, save_model

    path = write_fake_run(tmp_path / "loop" / "sweep", f"{dataset}__tiny", dataset=dataset, extra_job={
        "classes": [{"id": 0, "name": "matrix"}, {"id": 1, "name": "precipitate"}], "in_channels": 1,
        "normalization": "percentile", "training": {"input_scale": 1.0}})
    model, _ = build_model("tu-test_resnet", "Unet", 1, 2, "none")
    save_model(model, path / "model")
    return path


def _tif16(path: Path, seed: int, size: int = 96, pixel_um: float | None = None) -> Path:
    arr = (np.random.default_rng(seed).random((size, size)) * 60000).astype(np.uint16)
    kw = {"resolution": (1e4 / pixel_um, 1e4 / pixel_um), "resolutionunit": "CENTIMETER"} if pixel_um else {}
    tifffile.imwrite(path, arr, **kw)
    return path


def _seg(*args: str) -> int:
    return main(["segment", *args, "--no-qc", "--tile", "64", "--overlap", "16"])


def test_formats_outputs_and_exit_code(tmp_path, capsys):
    run = _run(tmp_path)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    _tif16(imgs / "a16.tif", 0)
    Image.fromarray((np.random.default_rng(1).random((70, 90)) * 255).astype(np.uint8)).save(imgs / "b8.bmp")
    (imgs / "broken.tif").write_bytes(b"II*\x00garbage")
    rgb = (np.random.default_rng(2).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(imgs / "colour.png")
    out = tmp_path / "out"
    rc = _seg(str(run), str(imgs), "--out", str(out), "--pixel-size", "0.02")
    text = capsys.readouterr().out
    assert rc == 1  # two inputs were not segmented
    f = SegmentFolder.open(out)
    recs = {r.name: r for r in f.images()}
    assert recs["a16"].segmented and recs["b8"].segmented and f.is_complete()
    assert recs["broken"].status_line.startswith("not segmented: unreadable: ") and "broken.tif" in recs["broken"].reason
    assert recs["colour"].reason.startswith("expected 1 channel(s) like the model's training images, found 3")
    assert f.mask_array(recs["b8"]).shape == (70, 90)
    assert set(np.unique(f.mask_array(recs["a16"]))) <= {0, 1}
    assert (out / recs["a16"].overlay).is_file()
    assert recs["a16"].quantity("precipitate", "eqd_median").unit == "µm"
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "µm" in text and "model error" in text and "segments.csv" in text
    assert len((out / "segments.csv").read_text().splitlines()) == 5


def test_bad_input_one_line_each(tmp_path, capsys):
    run = _run(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    good = _tif16(tmp_path / "good.tif", 0)

    def one_error(*args: str) -> str:
        assert _seg(*args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        return err[0]

    assert one_error(str(run), str(empty), "--out", str(tmp_path / "o1")).startswith(
        f"error: INPUT {empty}: expected image files (.bmp ")
    assert "--dataset nasa-ebc1: expected a dataset the sweep" in one_error(
        str(tmp_path / "loop"), str(good), "--dataset", "nasa-ebc1", "--out", str(tmp_path / "o2"))
    assert "expected a run folder" in one_error(str(tmp_path / "nope"), str(good), "--out", str(tmp_path / "o3"))
    assert "expected files matching the pattern" in one_error(str(run), str(tmp_path / "*.dm4"), "--out",
                                                              str(tmp_path / "o4"))


def test_disagreeing_pixel_sizes_are_warned_and_stated(tmp_path, capsys):
    run = _run(tmp_path)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    _tif16(imgs / "a.tif", 0, pixel_um=0.5)
    _tif16(imgs / "b.tif", 1, pixel_um=0.25)
    assert _seg(str(run), str(imgs), "--out", str(tmp_path / "out")) == 0
    text = capsys.readouterr().out
    assert "warning: pixel sizes disagree across inputs: 0.25 µm (1 image(s), e.g. b); 0.5 µm" in text
    f = SegmentFolder.open(tmp_path / "out")
    assert "disagree" in f.pixel_size()["note"] and f.pixel_size()["um"] is None
    assert {r.name: r.pixel_size_um for r in f.images()} == pytest.approx({"a": 0.5, "b": 0.25})


def test_kill_minus_9_resumes_only_missing_and_redoes_changed(tmp_path):
    run = _run(tmp_path)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(10):
        _tif16(imgs / f"i{i:02d}.tif", i, size=256)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "matseg_nb", "segment", str(run), str(imgs), "--out", str(out), "--no-qc",
           "--tile", "64", "--overlap", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "records"
    deadline = time.time() + 120
    while time.time() < deadline and not (records.is_dir() and len(list(records.glob("*.json"))) >= 2):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.stem: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 2 <= len(before) < 10, "the kill should land mid-folder"
    assert not SegmentFolder(out).is_complete()
    changed = sorted(before)[0]
    _tif16(imgs / f"{changed}.tif", 99, size=256)  # new content, same name
    time.sleep(0.01)
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    after = {p.stem: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert len(after) == 10 and SegmentFolder(out).is_complete()
    redone = {n for n in before if after[n] != before[n]}
    assert redone == {changed}  # finished images skipped, the changed one redone
    assert not list(out.rglob("*.tmp*")) and not list(out.rglob(".*"))


def test_dask_executor_gives_the_same_masks(tmp_path):
    run = _run(tmp_path)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        _tif16(imgs / f"d{i}.tif", i)
    assert _seg(str(run), str(imgs), "--out", str(tmp_path / "local")) == 0
    assert _seg(str(run), str(imgs), "--out", str(tmp_path / "dask"), "--executor", "dask", "--workers", "2",
                "--chunk-size", "2") == 0
    a, b = SegmentFolder(tmp_path / "local"), SegmentFolder(tmp_path / "dask")
    for ra, rb in zip(a.images(), b.images(), strict=True):
        assert ra.name == rb.name and np.array_equal(a.mask_array(ra), b.mask_array(rb))
