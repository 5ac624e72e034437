"""Detection metrics, deployment threshold and readiness verdict.

Convention: the positive class is OOD (what a flag should catch); a sample is flagged when its
typicality score is below the threshold, so ``-score`` is the detection score.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def deployment_threshold(reference_scores: np.ndarray, percentile: float = 5.0) -> float:
    """Typicality threshold = the given percentile of reference typicality scores (flag if below)."""
    return float(np.percentile(np.asarray(reference_scores, dtype=float), percentile))


def flag(scores: np.ndarray, threshold: float) -> np.ndarray:
    """True where a sample is flagged as atypical (score < threshold)."""
    return np.asarray(scores, dtype=float) < threshold


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def detection_metrics(id_scores: np.ndarray, ood_scores: np.ndarray, threshold: float) -> dict:
    """AUROC, AUPRC, FPR@95%TPR, precision/recall/F1 at ``threshold``, and best-F1 (oracle threshold).

    id_scores, ood_scores: typicality scores (n_id,), (n_ood,); OOD is the positive class.
    """
    id_scores = np.asarray(id_scores, dtype=float)
    ood_scores = np.asarray(ood_scores, dtype=float)
    y = np.r_[np.zeros(len(id_scores)), np.ones(len(ood_scores))]
    s = -np.r_[id_scores, ood_scores]
    out: dict = {"n_id": int(len(id_scores)), "n_ood": int(len(ood_scores)), "threshold": float(threshold)}
    tp = float((ood_scores < threshold).sum())
    fp = float((id_scores < threshold).sum())
    p, r, f1 = _prf(tp, fp, len(ood_scores) - tp)
    out.update(precision_at_threshold=p, recall_at_threshold=r, f1_at_threshold=f1)
    if len(id_scores) == 0 or len(ood_scores) == 0:
        return out
    out["auroc"] = float(roc_auc_score(y, s))
    out["auprc"] = float(average_precision_score(y, s))
    fpr, tpr, _ = roc_curve(y, s)
    out["fpr_at_95tpr"] = float(fpr[np.searchsorted(tpr, 0.95, side="left")])
    best = (0.0, 0.0, 0.0, float("nan"))
    for t in np.unique(s):
        pred = s >= t
        bp, br, bf = _prf(float((pred & (y == 1)).sum()), float((pred & (y == 0)).sum()), float((~pred & (y == 1)).sum()))
        if bf > best[2]:
            best = (bp, br, bf, float(-t))
    out["best_f1_oracle_threshold"] = {"f1": best[2], "precision": best[0], "recall": best[1], "threshold": best[3]}
    return out


def verdict(auroc: float | None, readiness_threshold: float = 0.95) -> str:
    """'ready' when AUROC > threshold (paper Exp-2), else 'not ready' (or 'unknown' without AUROC)."""
    if auroc is None or not np.isfinite(auroc):
        return "unknown"
    return "ready" if auroc > readiness_threshold else "not ready"
