"""Statistics of the comparison: paired test, Kendall's tau (interval coverage: test_compare_selection.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from matseg_nb.compare.stats import kendall_tau, min_testable_n, paired_test, rank_stability


def test_paired_test_picks_a_clear_winner():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.4, 0.8, size=12)
    a = b + 0.08 + rng.normal(0, 0.01, size=12)
    res = paired_test(a, b)
    assert res.verdict == "significant" and res.p_value < 0.001 and res.n == 12
    assert res.mean_diff == pytest.approx(np.mean(a - b))


def test_paired_test_exact_p_value_and_monte_carlo():
    b = np.full(6, 0.5)
    res = paired_test(b + 0.1, b)  # all 6 differences positive: exact p = 2 / 2^6
    assert res.p_value == pytest.approx(2 / 64) and res.verdict == "significant"
    rng = np.random.default_rng(1)
    big = rng.uniform(0.3, 0.7, size=30)
    res = paired_test(big + 0.05 + rng.normal(0, 0.02, 30), big)
    assert "MC" in res.method and res.verdict == "significant"


def test_paired_test_refuses_a_tie():
    b = np.linspace(0.5, 0.8, 12)
    res = paired_test(b + np.tile([0.02, -0.02], 6), b)
    assert res.verdict == "not significant" and res.p_value > 0.5
    same = paired_test(b, b.copy())
    assert same.verdict.startswith("not significant") and same.p_value == 1.0


def test_paired_test_with_too_few_images_is_not_testable():
    assert min_testable_n(0.05) == 6
    res = paired_test([0.9, 0.9, 0.9, 0.9], [0.1, 0.1, 0.1, 0.1])
    assert res.verdict == "insufficient evidence (n = 4)" and math.isnan(res.p_value)
    res = paired_test([0.9, np.nan, 0.8], [0.1, 0.2, np.nan])  # NaN pairs dropped
    assert res.n == 1


def test_kendall_tau_on_hand_made_rankings():
    a = {"u": 0.9, "d": 0.8, "p": 0.7, "x": 0.6}
    assert kendall_tau(a, dict(a))[0] == pytest.approx(1.0)
    assert kendall_tau(a, {k: -v for k, v in a.items()})[0] == pytest.approx(-1.0)
    one_swap = {"u": 0.8, "d": 0.9, "p": 0.7, "x": 0.6}
    assert kendall_tau(a, one_swap)[0] == pytest.approx(4 / 6)
    tau, n = kendall_tau(a, {"u": 0.1, "zz": 0.3})
    assert math.isnan(tau) and n == 1


def test_rank_stability_mean_over_dataset_pairs():
    rows = []
    for ds, scores in {"A": [4, 3, 2, 1], "B": [4, 3, 2, 1], "C": [1, 2, 3, 4]}.items():
        rows += [{"dataset": ds, "arch": f"m{i}", "iou": s} for i, s in enumerate(scores)]
    table, mean = rank_stability(pd.DataFrame(rows))
    got = {(r.dataset_a, r.dataset_b): r.tau for r in table.itertuples()}
    assert got[("A", "B")] == pytest.approx(1.0) and got[("A", "C")] == pytest.approx(-1.0)
    assert mean == pytest.approx(-1 / 3)
