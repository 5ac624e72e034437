"""Detector validation statistics: AUROC interval coverage by simulation, harm split, readiness verdict."""

import numpy as np
from scipy.stats import norm

from matseg_nb.qc.results import ShiftCheck, ValidationResult
from matseg_nb.qc.validation import auroc_interval, harm, readiness


def test_auroc_interval_coverage_by_simulation():
    true_auc = float(norm.cdf(1.0 / np.sqrt(2)))  # binormal, unit variances, mean shift 1
    hits = 0
    reps = 400
    for seed in range(reps):
        rng = np.random.default_rng(seed)
        ci = auroc_interval(rng.normal(0, 1, 30), rng.normal(-1, 1, 30))
        hits += ci["low"] <= true_auc <= ci["high"]
    assert hits / reps >= 0.92, hits / reps


def test_perfect_separation_at_small_n_keeps_a_width():
    ci = auroc_interval(np.arange(5.0), -np.arange(1.0, 6.0))
    assert ci["auroc"] == 1.0 and ci["low"] < 0.95


def test_harm_split_and_readiness():
    assert harm([0.8, 0.82], [0.81, 0.8])["harm"] == "harmless"
    assert harm([0.8, 0.82], [0.5, 0.6])["harm"] == "harmful"
    assert harm([0.8], None)["harm"] == "unknown"
    rows = [{"set": "noise", "harm": "harmful", "detector": d, "low": 0.97, "n_id": 20, "n_ood": 20}
            for d in ("gmm", "ocsvm")]
    rows += [{"set": "bright", "harm": "harmless", "detector": d, "low": 0.3, "n_id": 20, "n_ood": 20}
             for d in ("gmm", "ocsvm")]
    assert readiness(rows, 0.9, ("gmm", "ocsvm"))[0] == "ready"  # harmless shift does not count
    assert readiness(rows, 0.98, ("gmm", "ocsvm"))[0] == "not ready"
    assert readiness(rows, 0.9, ("ocsvm",))[0] == "insufficient evidence"
    small = [dict(r, n_id=5, n_ood=5) for r in rows]
    assert readiness(small, 0.9, ("gmm", "ocsvm"))[0] == "insufficient evidence"


def test_validation_result_round_trip():
    res = ValidationResult("ready", "why", 0.9, "val", "train",
                           [ShiftCheck("noise", "gmm", 1.0, 0.95, 1.0, 20, 20, "harmful", -0.2)], ["gmm", "ocsvm"])
    assert ValidationResult.from_json(res.to_json()) == res and "harmful" in res.summary()
