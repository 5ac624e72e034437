"""Screening statistics: conformal p-values per unit, per-image combination, batch test, words.

Convention: a typicality score is higher for more typical inputs. Calibration scores come from
in-distribution images the model was not trained on (the validation split).

* :func:`conformal_pvalues` (Bates et al., Ann. Statist. 2023, marginal conformal p-value):
  p(s) = (1 + #{j: c_j <= s}) / (n_cal + 1); super-uniform for a test point exchangeable with the
  calibration points, ties counted against the test point (conservative).
* :func:`combine_tile_pvalues`: an image's tiles give dependent p-values; twice their median is a
  valid p-value under arbitrary dependence (Rueschendorf 1982; Meng 1993), capped at 1.
* :func:`batch_test`: one-sided Wilcoxon rank-sum (Mann-Whitney) test that the batch's per-image
  typicality is lower than the calibration images', exact permutation p-value; exact under
  exchangeability of images. "too few images to tell" when even a batch ranked entirely below every
  calibration image could not reach the level (1 / C(n_cal + m, m) > level).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest, mannwhitneyu


def conformal_pvalues(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values (m,) of ``scores`` against ``calibration`` typicality scores.

    1-D inputs (n,), (m,): scalar scores. 2-D inputs (n, 2), (m, 2): (primary, tie-break) scores compared
    lexicographically, so a detector score that saturates (equal far from the reference) is ordered by
    the second column (e.g. minus the log nn-ratio)."""
    cal = np.asarray(calibration, dtype=float)
    s = np.asarray(scores, dtype=float)
    m = s.shape[0]
    if cal.shape[0] == 0:
        return np.ones(m)
    if cal.ndim == 1:
        below = np.searchsorted(np.sort(cal), s, side="right")  # #{c_j <= s}
    else:
        c0, c1, s0, s1 = cal[None, :, 0], cal[None, :, 1], s[:, None, 0], s[:, None, 1]
        below = ((c0 < s0) | ((c0 == s0) & (c1 <= s1))).sum(1)
    return (1.0 + below) / (cal.shape[0] + 1.0)


def combine_tile_pvalues(pvalues: np.ndarray) -> float:
    """Valid p-value of one image from its tiles' dependent p-values: min(1, 2 * median)."""
    p = np.asarray(pvalues, dtype=float)
    return float(min(1.0, 2.0 * np.median(p))) if p.size else 1.0


def smallest_batch_pvalue(n_calibration: int, n_batch: int) -> float:
    """Smallest attainable p-value of the rank-sum test: 1 / C(n_cal + m, m)."""
    if n_calibration < 1 or n_batch < 1:
        return 1.0
    return 1.0 / math.comb(n_calibration + n_batch, n_batch)


def batch_test(calibration: np.ndarray, batch: np.ndarray, level: float = 0.05) -> dict:
    """Rank-sum test of batch image typicality (m,) vs calibration image typicality (n,).

    Returns {"test", "p_value", "verdict", "smallest_possible_p"}; verdict "in distribution",
    "shifted" (p <= level) or "too few images to tell"."""
    cal = np.asarray(calibration, dtype=float)
    b = np.asarray(batch, dtype=float)
    floor = smallest_batch_pvalue(cal.size, b.size)
    out = {"test": "one-sided Wilcoxon rank-sum (batch less typical than calibration), exact",
           "level": level, "smallest_possible_p": floor, "p_value": None}
    if floor > level:
        out["verdict"] = "too few images to tell"
        return out
    method = "exact" if np.unique(np.r_[cal, b]).size == cal.size + b.size else "asymptotic"
    if method == "asymptotic":
        p = _permutation_rank_sum(cal, b)
    else:
        p = float(mannwhitneyu(b, cal, alternative="less", method="exact").pvalue)
    out["p_value"] = p
    out["verdict"] = "shifted" if p <= level else "in distribution"
    return out


def _permutation_rank_sum(cal: np.ndarray, b: np.ndarray, n_perm: int = 20000, seed: int = 0) -> float:
    """Monte-Carlo permutation p-value of the rank sum (ties -> mid-ranks), for tied data."""
    from scipy.stats import rankdata

    x = np.r_[b, cal]
    r = rankdata(x)
    m = b.size
    obs = r[:m].sum()
    rng = np.random.default_rng(seed)
    perm = np.array([r[rng.permutation(x.size)[:m]].sum() for _ in range(n_perm)])
    return float((1 + (perm <= obs + 1e-9).sum()) / (n_perm + 1))


def flag_count_test(n_flagged: int, n: int, alpha: float) -> float | None:
    """One-sided binomial p-value of ``n_flagged`` of ``n`` flags against rate ``alpha`` (None for n = 0).

    Reported beside the rank-sum test; conservative flags (2 x median) make it conservative too."""
    if n == 0:
        return None
    return float(binomtest(int(n_flagged), int(n), alpha, alternative="greater").pvalue)


def reason(p_value: float, alpha: float, smallest_p: float) -> str:
    """Plain sentence for one image's p-value."""
    pct = max(0, min(100, round(100 * (1 - p_value))))
    if smallest_p > alpha:
        return (f"cannot be flagged at alpha={alpha:g}: the calibration set is too small "
                f"(smallest possible p-value {smallest_p:.2g})")
    if p_value <= alpha:
        return f"flagged: its median crop is less typical than {pct}% of validation crops (p={p_value:.2g} <= {alpha:g})"
    return f"typical: p={p_value:.2g} > {alpha:g}"
