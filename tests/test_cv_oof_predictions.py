"""Fold runs of a k-fold CV over all annotated images save their out-of-fold masks (oof_predictions/), and
the out-of-fold measurement error is measured on them: in compare's measurement column (empty without them)
and in segment's cv_oof_bias (the same rows as predicting the held-out images again)."""

from __future__ import annotations

import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
from _training_helpers import make_folder, tiny_job


def _classes(sweep: Path) -> list[str]:
    from matseg_nb.runs import Run

    return [c["name"] for c in Run(next(sweep.iterdir())).provenance()["classes"]]


@pytest.fixture(scope="module")
def cv_sweep(tmp_path_factory) -> tuple[Path, Path]:
    """(sweep, data): two real fold runs (tiny encoder, 64 px, 1 step) of a 2-fold CV over 6 images."""
    from matseg_nb.run_marker import write_marker
    from matseg_nb.training.runner import run_job
    from matseg_nb.training.spec import as_job

    root = tmp_path_factory.mktemp("cvoof")
    data = make_folder(root / "data", {"train": 3, "val": 1, "test": 2}, hw=(64, 64))
    sweep = root / "sweep"
    for fold in (0, 1):
        job = as_job({**tiny_job(data, max_epochs=1, steps_per_epoch=1), "fold": fold, "folds": 2, "pool": "all"})
        run_job(job, sweep / job.job_id, threads=1, echo=None)
        write_marker(sweep / job.job_id, job.job_id, "2026-01-01T00:00:00+00:00", 1.0)
    return sweep, data


def _truth(data: Path, name: str) -> np.ndarray:
    return iio.imread(next(data.glob(f"masks/*/{name}.png")))


def _without_oof_masks(sweep: Path, dest: Path) -> Path:
    """A copy of ``sweep`` as fold runs from before oof_predictions/ left it."""
    shutil.copytree(sweep, dest)
    for folder in dest.glob("*/oof_predictions"):
        shutil.rmtree(folder)
    return dest


def test_fold_runs_save_the_masks_their_oof_scores_come_from(cv_sweep):
    from matseg_nb.runs import Run

    sweep, data = cv_sweep
    seen = []
    for run in [Run(p) for p in sorted(sweep.iterdir())]:
        saved = run.predictions(oof=True)
        rows = pd.DataFrame(run.per_image_rows(oof=True))
        assert set(saved) == set(rows["image"]) and saved  # one mask per out-of-fold image
        assert not set(saved) & set(run.predictions())  # pool 'all': no test images at all
        for name, png in saved.items():
            pred, truth = iio.imread(png), _truth(data, name)
            assert pred.dtype == np.uint8 and pred.shape == truth.shape
            for cid in (1, 2):  # the saved mask is the one the out-of-fold IoU was computed from
                inter, union = np.sum((pred == cid) & (truth == cid)), np.sum((pred == cid) | (truth == cid))
                (iou,) = rows.loc[(rows["image"] == name) & (rows["class_id"] == cid), "iou"]
                assert (union == 0 and pd.isna(iou)) or abs(iou - inter / union) < 1e-5
        seen += list(saved)
    assert sorted(seen) == ["test0", "test1", "train0", "train1", "train2", "val0"]  # each image once


def test_compare_measurement_column_is_the_out_of_fold_error(cv_sweep, tmp_path):
    from matseg_nb.compare.pipeline import compare_sweeps
    from matseg_nb.runs import Run

    sweep, data = cv_sweep
    diffs: dict[int, list[float]] = {1: [], 2: []}  # area fraction (%) prediction - truth per pooled image
    for path in sorted(sweep.iterdir()):
        for name, png in Run(path).predictions(oof=True).items():
            pred, truth = iio.imread(png), _truth(data, name)
            for cid in diffs:
                diffs[cid].append(100.0 * (np.mean(pred == cid) - np.mean(truth == cid)))
    expected = max(abs(float(np.mean(v))) for v in diffs.values())
    compare_sweeps([sweep], tmp_path / "cmp")
    (cell,) = pd.read_csv(tmp_path / "cmp" / "complete_table.csv").to_dict("records")
    assert abs(cell["af_abs_bias_pp"] - expected) < 1e-9
    names = _classes(sweep)
    assert cell["measurement_error"].startswith(f"{names[1]}: area ") and cell["measurement_error"].endswith("(out of fold)")
    assert f"{names[1]}: area {np.mean(diffs[1]):+.2f} pp" in cell["measurement_error"]
    assert "out of fold" in (tmp_path / "cmp" / "complete_table.md").read_text()

    old = _without_oof_masks(sweep, tmp_path / "old-sweep")  # older fold runs: no masks, no column
    compare_sweeps([old], tmp_path / "cmp-old")
    (cell,) = pd.read_csv(tmp_path / "cmp-old" / "complete_table.csv").to_dict("records")
    assert pd.isna(cell["af_abs_bias_pp"]) and cell["measurement_error"] == "—"


def test_segment_cv_oof_bias_uses_the_saved_masks_and_matches_re_prediction(cv_sweep, tmp_path):
    from matseg_nb.segment.bias import cv_oof_bias
    from matseg_nb.segment.pipeline import SegmentSettings, predict_mask

    sweep, _ = cv_sweep
    calls = []

    def predict(model, image):
        calls.append(1)
        return predict_mask(model, image, SegmentSettings(tile=64, overlap=16))[0]

    runs = sorted(sweep.iterdir())
    rows, info = cv_oof_bias(runs, _classes(sweep), None, predict)
    assert not calls and set(info["source"].values()) == {"saved"} and "saved at training time" in info["note"]
    old = sorted(_without_oof_masks(sweep, tmp_path / "old-sweep").iterdir())
    again, info_again = cv_oof_bias(old, _classes(sweep), None, predict)
    assert len(calls) == 6 and set(info_again["source"].values()) == {"re-predicted"}
    assert info["n_images"] == info_again["n_images"] == 6 and info["fold_of"] == info_again["fold_of"]
    by_key = {r.key: r for r in again}
    assert sorted(by_key) == sorted(r.key for r in rows)
    for r in rows:
        other = by_key[r.key]
        assert r.n == other.n and set(r.per_image) == set(other.per_image)
        for name, value in r.per_image.items():
            assert (value is None and other.per_image[name] is None) or abs(value - other.per_image[name]) < 1e-9


def test_matseg_segment_on_a_real_cv_sweep_measures_out_of_fold_from_the_saved_masks(cv_sweep, tmp_path):
    """The held-out groups are read where training.runner writes them (job.json's top-level ``cv``)."""
    from matseg_nb.cli import main
    from matseg_nb.segment import SegmentFolder

    sweep, data = cv_sweep
    out = tmp_path / "out"
    assert main(["segment", str(sweep), str(data / "images" / "test" / "test0.png"), "--out", str(out), "--no-qc",
                 "--tile", "64", "--overlap", "16"]) == 0
    info = SegmentFolder(out).bias_info()
    assert info["method"] == "out-of-fold" and info["n_images"] == 6
    assert set(info["source"].values()) == {"saved"} and "saved at training time" in info["note"]
