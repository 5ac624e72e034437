"""Comparison over folds x seeds: synthetic CV run folders with known answers (no training), the corrected
fold interval's coverage, and a sweep mixing CV and holdout jobs for one dataset (compared separately)."""

from __future__ import annotations

import csv
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matseg_nb.compare import compare_sweeps, load_runs
from matseg_nb.compare.aggregate import best_table, cell_table
from matseg_nb.compare.pipeline import ComparisonResult
from matseg_nb.compare.stats import cv_interval

DATASET = "nasa-super1"


def _write_rows(path: Path, ious) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "class_id", "class_name", "iou", "dice"])
        for name, v in ious.items():
            w.writerow([name, 0, "background", 0.99, 0.99])
            w.writerow([name, 1, "phase", v, 2 * v / (1 + v)])


def write_cv_job(sweep: Path, decoder: str, seed: int, fold: int | None, folds: int | None,
                 test_ious: list[float], oof_ious: dict[str, float] | None = None) -> str:
    """One complete run folder; a CV job (fold/folds set) also gets oof_per_image.csv and metrics["cv"/"oof"]."""
    tag = f"__f{fold}of{folds}" if folds else ""
    crc = zlib.crc32(f"{decoder}{seed}{fold}".encode())
    jid = f"{DATASET}__resnet18__{decoder}__s{seed}{tag}__{crc:08x}"
    d = sweep / jid
    d.mkdir(parents=True)
    (d / "job.json").write_text(json.dumps({"job_id": jid, "dataset": DATASET, "encoder": "resnet18",
                                            "decoder": decoder, "seed": seed, "encoder_weights": "none",
                                            "fold": fold, "folds": folds}))
    _write_rows(d / "per_image.csv", {f"test{i}": v for i, v in enumerate(test_ious)})
    mean = float(np.mean(test_ious))
    metrics = {"dataset_level": {"iou": mean, "dice": 2 * mean / (1 + mean), "wiou": mean - 0.1,
                                 "pixel_accuracy": 0.95},
               "per_image_mean": {"iou": mean}, "per_class": {}, "epochs_run": 3, "best_epoch": 2,
               "train_time_s": 1.0, "latency_s_per_image": 0.01, "n_params": 10, "encoder_weights": "none",
               "best_val": {"val_iou": 0.99}}  # the crop-validation score must NOT select a CV job
    if folds:
        _write_rows(d / "oof_per_image.csv", oof_ious)
        oof = float(np.mean(list(oof_ious.values())))
        metrics["cv"] = {"fold": fold, "folds": folds, "val_groups": [f"g{fold}"]}
        metrics["oof"] = {"dataset_level": {"iou": oof}, "per_image_mean": {"iou": oof}, "n_images": len(oof_ious)}
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "COMPLETE").write_text(json.dumps({"job_id": jid, "finished_at": "2026-01-01T00:00:00Z"}))
    return jid


def cv_sweep(root: Path, folds: int = 3, seeds=(0, 1), unet_oof: float = 0.80, dlv3p_oof: float = 0.70,
             unet_test: float = 0.60, dlv3p_test: float = 0.75) -> Path:
    """Unet wins on out-of-fold validation, DeepLabV3Plus on test: validation must choose Unet."""
    rng = np.random.default_rng(1)
    sweep = root / "cv"
    for decoder, oof, test in (("Unet", unet_oof, unet_test), ("DeepLabV3Plus", dlv3p_oof, dlv3p_test)):
        for seed in seeds:
            for fold in range(folds):
                oof_ious = {f"pool{fold}_{i}": oof + rng.normal(0, 0.01) for i in range(2)}
                test_ious = list(test + rng.normal(0, 0.01, 8))
                write_cv_job(sweep, decoder, seed, fold, folds, test_ious, oof_ious)
    return sweep


def test_folds_x_seeds_are_the_units_and_oof_selects(tmp_path):
    rs = load_runs([cv_sweep(tmp_path)])
    assert set(rs.runs["protocol"]) == {"3-fold CV"} and sorted(set(rs.runs["fold"])) == [0, 1, 2]
    assert len(rs.oof) == 2 * 2 * 3 * 2  # decoders x seeds x folds x images: every pool image scored per seed
    assert rs.oof.groupby(["decoder", "seed"])["image"].nunique().eq(6).all()
    cells = cell_table(rs)
    unet = cells[cells["decoder"] == "Unet"].iloc[0]
    assert unet["runs"] == "3 folds x 2 seeds" and unet["n_folds"] == 3
    assert unet["val_iou"] == pytest.approx(0.80, abs=0.01)  # the OOF IoU, not best_val (0.99)
    assert unet["val_interval"].startswith("[")  # 3 folds: a (corrected) interval is printed
    best, _ = best_table(rs, cells)
    row = best.iloc[0]
    assert row["decoder"] == "Unet" and row["selected_on"] == "out-of-fold validation (3-fold CV)"
    assert row["scored_on"] == "test" and row["runner_up_iou"] > row["iou"]  # test disagrees: reported, not used
    assert row["n_paired_runs"] == 6 and row["p_beats_runner_up"] == 0.0  # (seed, fold) pairs on test


def test_two_folds_decline_the_fold_interval(tmp_path):
    cells = cell_table(load_runs([cv_sweep(tmp_path, folds=2, seeds=(0,))]))
    assert set(cells["val_interval"]) == {"insufficient evidence (n = 2)"}


def test_mixed_cv_and_holdout_are_compared_separately(tmp_path):
    sweep = cv_sweep(tmp_path)
    for decoder, v in (("Unet", 0.5), ("DeepLabV3Plus", 0.6)):
        write_cv_job(sweep, decoder, 0, None, None, [v] * 8)
    rs = load_runs([sweep])
    assert set(rs.runs["dataset"]) == {f"{DATASET} [3-fold CV]", f"{DATASET} [holdout]"}
    paths = compare_sweeps([sweep], tmp_path / "out")
    result = ComparisonResult.load(tmp_path / "out")
    by_ds = {r["dataset"]: r for r in result.rows}
    assert by_ds[f"{DATASET} [3-fold CV]"]["selected_on"] == "out-of-fold validation (3-fold CV)"
    assert by_ds[f"{DATASET} [holdout]"]["selected_on"] == "validation"
    assert any("compared separately" in n for n in result.notes) and "compared separately" in result.summary()
    assert result.selected_on.startswith("per dataset:")
    # two protocols of one dataset are not two datasets: no "context" tau between them
    assert pd.read_csv(paths["rank_stability_csv"]).empty
    md = paths["summary_md"].read_text()
    assert "3-fold CV" in md and "out-of-fold" in md and "oof_per_image.csv" in {p.name for p in paths.values()}


def test_old_run_folders_without_new_keys_read_as_missing(tmp_path):
    """Run folders written before ``wiou_class_freq`` / folds existed still load: the missing key is NaN."""
    sweep = tmp_path / "old"
    write_cv_job(sweep, "Unet", 0, None, None, [0.5, 0.6])
    write_cv_job(sweep, "DeepLabV3Plus", 0, None, None, [0.4, 0.6])
    rs = load_runs([sweep])
    assert rs.runs["wiou_class_freq"].isna().all() and (rs.runs["fold"] == -1).all()
    paths = compare_sweeps([sweep], tmp_path / "out")
    assert "wIoU (class freq.)" in paths["summary_md"].read_text()


@pytest.mark.parametrize("folds", [3, 5])
def test_corrected_fold_interval_coverage(folds):
    """Equicorrelated fold scores (correlation 1/k, the Nadeau-Bengio model): coverage within 2 points of 95%;
    the uncorrected t interval over folds undercovers."""
    rng = np.random.default_rng(folds)
    rho, sims, hit, naive = 1.0 / folds, 4000, 0, 0
    cov = 0.05**2 * ((1 - rho) * np.eye(folds) + rho)
    draws = rng.multivariate_normal(np.full(folds, 0.7), cov, size=sims)
    for scores in draws:
        _, lo, hi, n = cv_interval(scores[None, :], folds)
        assert n == folds
        hit += lo <= 0.7 <= hi
        half = 4.303 if folds == 3 else 2.776
        m, s = scores.mean(), scores.std(ddof=1) / np.sqrt(folds)
        naive += m - half * s <= 0.7 <= m + half * s
    assert abs(hit / sims - 0.95) <= 0.02
    assert naive / sims < 0.90


def test_pending_cv_job_keeps_its_protocol(tmp_path):
    """A fold listed in summary.json but not started yet is read from its id: no false 'mixed protocols'."""
    sweep = cv_sweep(tmp_path, seeds=(0,))
    jobs = [{"job_id": d.name, "status": "complete"} for d in sorted(sweep.iterdir()) if d.is_dir()]
    pending = f"{DATASET}__resnet18__Unet__s1__f0of3__0000abcd"
    (sweep / "summary.json").write_text(json.dumps({"jobs": [*jobs, {"job_id": pending, "status": "pending"}]}))
    rs = load_runs([sweep])
    row = rs.runs[rs.runs["job_id"] == pending].iloc[0]
    assert (row["status"], row["protocol"], row["fold"]) == ("pending", "3-fold CV", 0)
    assert set(rs.runs["dataset"]) == {DATASET}
