import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_score, roc_auc_score, roc_curve

from matseg_nb.qc.evaluate import deployment_threshold, detection_metrics, flag, verdict


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    ids, oods = rng.normal(1.0, 1.0, 60), rng.normal(-0.5, 1.0, 40)
    thr = deployment_threshold(ids, 5.0)
    assert thr == np.percentile(ids, 5.0)
    m = detection_metrics(ids, oods, thr)
    y = np.r_[np.zeros(60), np.ones(40)]
    s = -np.r_[ids, oods]
    pred = flag(np.r_[ids, oods], thr)
    assert abs(m["auroc"] - roc_auc_score(y, s)) < 1e-12
    assert abs(m["auprc"] - average_precision_score(y, s)) < 1e-12
    assert abs(m["f1_at_threshold"] - f1_score(y, pred)) < 1e-12
    assert abs(m["precision_at_threshold"] - precision_score(y, pred)) < 1e-12
    fpr, tpr, _ = roc_curve(y, s)
    assert m["fpr_at_95tpr"] == fpr[np.argmax(tpr >= 0.95)]
    best = max(f1_score(y, s >= t) for t in np.unique(s))
    assert abs(m["best_f1_oracle_threshold"]["f1"] - best) < 1e-12
    assert m["best_f1_oracle_threshold"]["f1"] >= m["f1_at_threshold"]


def test_verdict_rule():
    assert verdict(0.96) == "ready"
    assert verdict(0.95) == "not ready"  # strictly above the threshold, as in the paper's Exp-2
    assert verdict(0.9, readiness_threshold=0.85) == "ready"
    assert verdict(None) == "unknown"
