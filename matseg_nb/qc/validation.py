"""Detector validation: AUROC with a 95% DeLong interval, harm of a shift, readiness verdict.

Positive class = the shifted / OOD set; a detector ranks by ``-typicality``. Images are scored with
the screening's crop key (:func:`matseg_nb.qc.screening.typicality_key`: inside the reference support,
detector score, minus the log nn-ratio): an image's statistic is the mean rank of its crops' keys among
the pooled crops of the two sets compared (:func:`matseg_nb.qc.conformal.image_rank_statistics`), per
detector. Crops outside the support, where PRDC features are 0 and detector scores saturate or tie,
thus rank below every crop inside, as in screening.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from matseg_nb.qc.conformal import image_rank_statistics

#: fewer images than this on either side -> "insufficient evidence" (the interval cannot support a claim)
MIN_IMAGES = 10
#: a shift is harmful when the mean per-image IoU drops by at least this much (absolute)
HARM_IOU_DROP = 0.05


def auroc_interval(id_scores: np.ndarray, ood_scores: np.ndarray, level: float = 0.95) -> dict:
    """AUROC of separating ``ood_scores`` (low typicality) from ``id_scores`` with a DeLong interval.

    The DeLong variance is floored at A_c(1 - A_c) / min(m, n) with A_c = AUROC kept 1/(2 m n) from
    0 and 1, so perfect separation at small n does not give a zero-width interval (docs/qc.md).
    Returns {"auroc", "low", "high", "n_id", "n_ood"} (None values when a side is empty)."""
    x = -np.asarray(ood_scores, dtype=float)  # positives: higher = more OOD
    y = -np.asarray(id_scores, dtype=float)
    m, n = x.size, y.size
    out = {"auroc": None, "low": None, "high": None, "n_id": int(n), "n_ood": int(m), "level": level}
    if m == 0 or n == 0:
        return out
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    auc = float(psi.mean())
    v10, v01 = psi.mean(1), psi.mean(0)
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    eps = 1.0 / (2 * m * n)
    a_c = min(max(auc, eps), 1 - eps)
    var = max(var, a_c * (1 - a_c) / min(m, n))
    z = float(norm.ppf(0.5 + level / 2))
    half = z * np.sqrt(var)
    out.update(auroc=auc, low=float(max(0.0, auc - half)), high=float(min(1.0, auc + half)))
    return out


def key_auroc_interval(id_keys: list[np.ndarray], ood_keys: list[np.ndarray], level: float = 0.95) -> dict:
    """:func:`auroc_interval` of per-image statistics from crop keys.

    ``id_keys``, ``ood_keys``: per image a (T_i, K) key (or (T_i,) score) array, higher = more typical.
    Each image's statistic is the mean rank of its crops among the pooled crops of both sets: a
    symmetric function of the pooled images, so exchangeable in-distribution images stay exchangeable
    (AUROC 0.5 in expectation) and a set entirely outside the support gets AUROC 1."""
    stats = image_rank_statistics([*id_keys, *ood_keys]) if (id_keys or ood_keys) else np.zeros(0)
    return auroc_interval(stats[:len(id_keys)], stats[len(id_keys):], level)


def harm(id_iou: np.ndarray | None, shifted_iou: np.ndarray | None, drop: float = HARM_IOU_DROP) -> dict:
    """Change of mean per-image IoU under a shift; "harmful", "harmless" or "unknown" (no masks)."""
    a = None if id_iou is None else np.asarray([v for v in id_iou if v is not None and np.isfinite(v)], float)
    b = None if shifted_iou is None else np.asarray([v for v in shifted_iou if v is not None and np.isfinite(v)], float)
    if a is None or b is None or not a.size or not b.size:
        return {"harm": "unknown", "iou_change": None, "threshold": drop}
    change = float(b.mean() - a.mean())
    return {"harm": "harmful" if change <= -drop else "harmless", "iou_change": change, "threshold": drop}


def readiness(rows: list[dict], threshold: float, detectors: tuple[str, ...], min_images: int = MIN_IMAGES
              ) -> tuple[str, str]:
    """(verdict, reason) over rows {"set", "harm", "detector", "low", "n_id", "n_ood"}.

    "ready" only when, on every harmful (or harm-unknown) shift, both GMM and OCSVM have a lower
    interval bound above ``threshold``; "insufficient evidence" when either detector is missing, no
    harmful shift was tested, or a harmful set has fewer than ``min_images`` images on a side."""
    missing = [d for d in ("gmm", "ocsvm") if d not in detectors]
    if missing:
        return "insufficient evidence", f"readiness needs both gmm and ocsvm; missing {', '.join(missing)}"
    relevant = [r for r in rows if r["harm"] != "harmless" and r["detector"] in ("gmm", "ocsvm")]
    if not relevant:
        return "insufficient evidence", "no harmful shift was tested (all tested shifts were harmless)"
    small = sorted({r["set"] for r in relevant if min(r["n_id"], r["n_ood"]) < min_images})
    failing = sorted({f"{r['set']} ({r['detector']})" for r in relevant
                      if r["low"] is None or r["low"] <= threshold})
    if failing and not small:
        return "not ready", f"lower 95% bound at or below {threshold:g} on: {', '.join(failing)}"
    if small:
        return "insufficient evidence", (f"fewer than {min_images} images on a side for: {', '.join(small)}")
    return "ready", f"lower 95% AUROC bound above {threshold:g} on every harmful shift under gmm and ocsvm"
