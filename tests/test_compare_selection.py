"""Small-n statistics and validation-based selection (numpy simulations, no models)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _compare_helpers import write_job, write_summary

from matseg_nb.compare.pipeline import compare_sweeps
from matseg_nb.compare.stats import context_verdict, paired_test, prob_a_beats_b, t_interval


@pytest.mark.parametrize("n_images", [3, 4, 6, 10])
@pytest.mark.parametrize("n_seeds", [1, 3])
def test_t_interval_coverage_within_two_points(n_images, n_seeds):
    """score = mu + image effect + seed effect + noise. The estimand is the trained models' expected score
    on new images (mu + mean seed effect of the seeds trained); 95% intervals cover it 93-97% of the time."""
    rng = np.random.default_rng(100 * n_images + n_seeds)
    mu, reps, hits = 0.5, 4000, 0
    for _ in range(reps):
        seed_effect = rng.normal(0, 0.03, (n_seeds, 1))
        scores = (mu + rng.normal(0, 0.1, (1, n_images)) + seed_effect
                  + rng.normal(0, 0.05, (n_seeds, n_images)))
        _, lo, hi, n = t_interval(scores)
        assert n == n_images
        target = mu + float(seed_effect.mean())
        hits += lo <= target <= hi
    assert abs(hits / reps - 0.95) <= 0.02, hits / reps


def test_t_interval_declines_below_three_units():
    mean, lo, hi, n = t_interval(np.array([[0.4, 0.6]]))
    assert mean == pytest.approx(0.5) and n == 2 and math.isnan(lo) and math.isnan(hi)


@pytest.mark.parametrize("n", [6, 8, 10])
def test_paired_test_level_under_the_null(n):
    """Symmetric differences (no true effect): rejection rate at alpha = 0.05 must not exceed 0.05 + 2 points."""
    rng = np.random.default_rng(n)
    reps, rejects = 1500, 0
    for _ in range(reps):
        b = rng.uniform(0.3, 0.7, n)
        a = b + rng.normal(0, 0.05, n)
        rejects += paired_test(a, b).verdict == "significant"
    assert rejects / reps <= 0.07, rejects / reps


def test_paired_test_declines_at_small_n():
    assert paired_test([0.9] * 5, [0.1] * 5).verdict == "insufficient evidence (n = 5)"


def test_prob_a_beats_b():
    assert prob_a_beats_b([0.5, 0.6, 0.7], [0.4, 0.6, 0.8]) == pytest.approx(0.5)
    assert math.isnan(prob_a_beats_b([np.nan], [0.2]))


def test_selection_uses_validation_not_test(tmp_path):
    """B is best on test but A is best on validation: A is selected, B's higher test score is reported."""
    sweep = tmp_path / "s"
    base = np.linspace(0.4, 0.7, 8)
    for seed in (0, 1):
        write_job(sweep, "ds", "enc", "Unet", seed, base, val_iou=0.80)            # A: best on validation
        write_job(sweep, "ds", "enc", "DeepLabV3", seed, base + 0.05, val_iou=0.60)  # B: best on test
    write_summary(sweep)
    paths = compare_sweeps([sweep], tmp_path / "o")
    row = pd.read_csv(paths["best_table_csv"]).iloc[0]
    assert row["decoder"] == "Unet" and row["selected_on"] == "validation" and row["scored_on"] == "test"
    assert row["runner_up_iou"] > row["iou"] and row["delta_iou"] < 0
    assert row["winner"].startswith("no significant difference between the top 2")
    md = paths["best_table_md"].read_text()
    assert "selected on" in md and "Selected on: validation" in md and "Unet for ds" not in md


def test_a_tie_gives_no_winner(tmp_path):
    sweep = tmp_path / "s"
    vals = np.linspace(0.5, 0.8, 10)
    write_job(sweep, "tie", "enc", "Unet", 0, vals + np.tile([0.01, -0.01], 5), val_iou=0.71)
    write_job(sweep, "tie", "enc", "DeepLabV3", 0, vals, val_iou=0.70)
    write_summary(sweep)
    paths = compare_sweeps([sweep], tmp_path / "o")
    row = pd.read_csv(paths["best_table_csv"]).iloc[0]
    assert row["winner"] == "no significant difference between the top 2"
    assert "Unet for tie" not in paths["summary_md"].read_text()


def test_context_claim_needs_more_disagreement_than_seed_noise():
    noisy = context_verdict(pd.Series([0.2, 0.4]), pd.Series([0.1, 0.3, 0.5]))
    assert noisy.startswith("no evidence that context changes the ranking") and "0.30" in noisy
    real = context_verdict(pd.Series([-0.6, -0.4, -0.5, -0.3]), pd.Series([0.8, 0.9, 1.0, 0.7, 0.9]))
    assert real.startswith("context changes the ranking")
    assert context_verdict(pd.Series([0.1]), pd.Series([0.9])).startswith("no claim about context")


def test_comparison_result_round_trips(tmp_path):
    from matseg_nb.compare.pipeline import ComparisonResult

    sweep = tmp_path / "s"
    for dec, v in (("Unet", 0.8), ("DeepLabV3", 0.6)):
        write_job(sweep, "ds", "enc", dec, 0, np.linspace(0.4, 0.7, 8), val_iou=v)
    write_summary(sweep)
    compare_sweeps([sweep], tmp_path / "o")
    res = ComparisonResult.load(tmp_path / "o")
    assert res.selected_on == "validation" and res.rows[0]["arch"] == "enc+Unet"
    assert ComparisonResult.from_json(res.to_json()) == res
    assert res.summary().startswith("Selected on validation, scored on test.")
