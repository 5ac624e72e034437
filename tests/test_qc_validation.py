"""Detector validation statistics: AUROC interval coverage by simulation, harm split, readiness verdict."""

import numpy as np
from scipy.stats import norm

from matseg_nb.qc.model import fit_qc
from matseg_nb.qc.results import ShiftCheck, ValidationResult
from matseg_nb.qc.screening import tile_keys
from matseg_nb.qc.validation import auroc_interval, harm, key_auroc_interval, readiness


def test_auroc_interval_coverage_by_simulation():
    true_auc = float(norm.cdf(1.0 / np.sqrt(2)))  # binormal, unit variances, mean shift 1
    hits = 0
    reps = 400
    for seed in range(reps):
        rng = np.random.default_rng(seed)
        ci = auroc_interval(rng.normal(0, 1, 30), rng.normal(-1, 1, 30))
        hits += ci["low"] <= true_auc <= ci["high"]
    assert hits / reps >= 0.92, hits / reps


def _key_images(rng, n, crops=8):
    """n images of in-support crop keys: a per-image effect plus crop noise in the score column."""
    return [np.c_[np.ones(crops), rng.normal(rng.normal(), 1, crops), rng.normal(size=crops)] for _ in range(n)]


def test_key_auroc_interval_covers_a_tie_between_exchangeable_sets():
    """Same distribution on both sides (image effect + crop noise, 3-column keys): 0.5 is in the interval."""
    hits, reps = 0, 300
    for seed in range(reps):
        rng = np.random.default_rng(seed)
        ci = key_auroc_interval(_key_images(rng, 12), _key_images(rng, 12))
        hits += ci["low"] <= 0.5 <= ci["high"]
    assert hits / reps >= 0.92, hits / reps


def _crop_keys(model, blocks, groups, n, saturate_at=None):
    """Per detector, per image crop keys; ``saturate_at`` {detector: value} replaces every crop's detector
    score by one value (a detector that cannot order crops outside the support, e.g. a GMM floor)."""
    scores, feats = model.score(blocks, groups)
    if saturate_at:
        scores = {d: np.full_like(v, saturate_at[d]) for d, v in scores.items()}
    return {d: [k[groups == i] for i in range(n)] for d, k in tile_keys(scores, feats, model.feature_names()).items()}


def test_set_outside_the_support_gets_auroc_one_under_gmm_and_ocsvm():
    """Crops all far outside the reference's k-NN support: PRDC features are 0 and detector scores saturate,
    yet the key ranks them below every in-support crop, so both detectors separate perfectly."""
    rng = np.random.default_rng(0)
    n_ref, n_id, n_ood, t, dim = 12, 10, 10, 8, 6

    def blocks(n, shift=0.0):
        x = rng.normal(size=(n * t, dim)) + shift
        return {"emb": x}, np.repeat(np.arange(n), t)

    model = fit_qc(*blocks(n_ref), k=5, detectors=("gmm", "ocsvm"), seed=0)
    id_blocks, ood_blocks = blocks(n_id), blocks(n_ood, shift=40.0)
    id_keys = _crop_keys(model, *id_blocks, n_id)
    ood_keys = _crop_keys(model, *ood_blocks, n_ood)
    id_scores, _ = model.score(*id_blocks)
    tie = {d: float(np.median(v)) for d, v in id_scores.items()}  # saturated scores amid the held-out ones
    tied_keys = _crop_keys(model, *ood_blocks, n_ood, saturate_at=tie)
    for d in ("gmm", "ocsvm"):
        assert all((k[:, 0] == 0).all() for k in ood_keys[d])  # every shifted crop outside the support
        assert key_auroc_interval(id_keys[d], ood_keys[d])["auroc"] == 1.0, d
        assert key_auroc_interval(id_keys[d], tied_keys[d])["auroc"] == 1.0, d
        id_means = [id_scores[d][id_blocks[1] == i].mean() for i in range(n_id)]
        assert auroc_interval(np.array(id_means), np.full(n_ood, tie[d]))["auroc"] < 0.75  # mean score: no
        same = key_auroc_interval(id_keys[d][:5], id_keys[d][5:])  # held-out vs held-out: no separation
        assert same["low"] <= 0.5 <= same["high"], (d, same)


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
