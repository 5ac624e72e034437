"""Screening statistics: conformal p-values per unit, per-image combination, batch test, words.

Convention: a typicality score is higher for more typical inputs. Calibration scores come from
in-distribution images the model was not trained on (the validation split). A score is a scalar
(n,) or a lexicographic key (n, K): column 0 decides, later columns break its ties.

* :func:`conformal_pvalues` (Bates et al., Ann. Statist. 2023, marginal conformal p-value):
  p(s) = (1 + #{j: c_j <= s}) / (n_cal + 1); super-uniform for a test point exchangeable with the
  calibration points, ties counted against the test point (conservative).
* :func:`combine_tile_pvalues`: an image's tiles give dependent p-values; twice their median is a
  valid p-value under arbitrary dependence (Rueschendorf 1982; Meng 1993), capped at 1.
* :func:`image_rank_statistics`: per image, the mean rank of its tiles among the pooled tiles of the
  calibration and batch images (a symmetric function of the pooled sample, so exchangeable images give
  exchangeable statistics).
* :func:`batch_test`: one-sided Wilcoxon rank-sum (Mann-Whitney) test that the batch's per-image
  typicality is lower than the calibration images', exact permutation p-value; exact under
  exchangeability of images. "too few images to tell" when even a batch ranked entirely below every
  calibration image could not reach the level (1 / C(n_cal + m, m) > level), and also when no shift
  is found but the test would miss a strong shift more often than catch it (:func:`batch_power` below
  :data:`MIN_POWER` against :data:`STRONG_SHIFT_AUROC`): then "in distribution" would be a claim the
  images cannot support. Between :data:`MIN_POWER` and :data:`TARGET_POWER` the answer is "in
  distribution" with ``evidence`` "weak" (worded so, with the power, wherever it is shown).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.stats import binomtest, mannwhitneyu


def conformal_pvalues(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values (m,) of ``scores`` against ``calibration`` typicality scores.

    1-D inputs (n,), (m,): scalar scores. 2-D inputs (n, K), (m, K): keys compared lexicographically
    (column 0 first), e.g. (inside the reference support, detector score, minus the log nn-ratio)."""
    cal = np.asarray(calibration, dtype=float)
    s = np.asarray(scores, dtype=float)
    m = s.shape[0]
    if cal.shape[0] == 0:
        return np.ones(m)
    if cal.ndim == 1:
        below = np.searchsorted(np.sort(cal), s, side="right")  # #{c_j <= s}
    else:
        le = cal[None, :, -1] <= s[:, None, -1]
        for col in range(cal.shape[1] - 2, -1, -1):
            c, q = cal[None, :, col], s[:, None, col]
            le = (c < q) | ((c == q) & le)
        below = le.sum(1)
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


#: "in distribution" is strong evidence when the batch test detects a strong shift this often ...
TARGET_POWER = 0.8
#: ... weak evidence down to this power (a strong shift caught more often than missed); below it
#: "too few images to tell"
MIN_POWER = 0.5
#: ... where a strong shift makes a new image less typical than a calibration image with this
#: probability (image-level AUROC; normal location model, d = sqrt(2) * Phi^-1(AUROC) = 2.33)
STRONG_SHIFT_AUROC = 0.95


def image_rank_statistics(tile_keys: list[np.ndarray]) -> np.ndarray:
    """Per image (len(tile_keys),): mean rank of its tiles among all images' pooled tiles (ties: mid-ranks).

    ``tile_keys``: per image (T_i,) scores or (T_i, K) lexicographic keys (higher = more typical). The
    result is a symmetric function of the pooled images, so exchangeable images (calibration and
    in-distribution new ones) get exchangeable statistics: the rank-sum test on them is exact."""
    from scipy.stats import rankdata

    keys = [np.asarray(k, dtype=float).reshape(len(k), -1) for k in tile_keys]
    pooled = np.concatenate(keys) if keys else np.zeros((0, 1))
    _, order = np.unique(pooled, axis=0, return_inverse=True)  # rows sorted lexicographically
    ranks = rankdata(np.asarray(order).ravel())
    bounds = np.cumsum([0, *(len(k) for k in keys)])
    return np.array([ranks[a:b].mean() if b > a else np.nan for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


@lru_cache(maxsize=256)
def batch_power(n_calibration: int, n_batch: int, level: float = 0.05, auroc: float = STRONG_SHIFT_AUROC,
                draws: int = 4000) -> float:
    """Power of the exact one-sided rank-sum test at ``level`` with ``n_calibration`` vs ``n_batch`` images
    against a normal location shift of image AUROC ``auroc`` (Monte Carlo, fixed seed: deterministic)."""
    from scipy.stats import norm

    if smallest_batch_pvalue(n_calibration, n_batch) > level:
        return 0.0
    d = math.sqrt(2.0) * norm.ppf(auroc)
    rng = np.random.default_rng(20230101)
    cal = rng.normal(size=(draws, n_calibration))
    new = rng.normal(-d, 1.0, size=(draws, n_batch))
    method = "exact" if n_calibration * n_batch <= 2500 else "asymptotic"
    p = mannwhitneyu(new, cal, alternative="less", method=method, axis=1).pvalue
    return float((p <= level).mean())


def batch_test(calibration: np.ndarray, batch: np.ndarray, level: float = 0.05) -> dict:
    """Rank-sum test of batch image typicality (m,) vs calibration image typicality (n,).

    Returns {"test", "p_value", "verdict", "evidence", "smallest_possible_p", "power"}; verdict "shifted"
    (p <= level), "in distribution" (p > level and the test detects a strong shift with power >= MIN_POWER;
    ``evidence`` "strong" from TARGET_POWER, else "weak") or "too few images to tell" (otherwise);
    ``power`` is :func:`batch_power` at these sizes."""
    cal = np.asarray(calibration, dtype=float)
    b = np.asarray(batch, dtype=float)
    floor = smallest_batch_pvalue(cal.size, b.size)
    out = {"test": "one-sided Wilcoxon rank-sum (batch less typical than calibration), exact",
           "level": level, "smallest_possible_p": floor, "p_value": None, "evidence": "",
           "power": batch_power(int(cal.size), int(b.size), float(level))}
    if floor > level:
        out["verdict"] = "too few images to tell"
        return out
    method = "exact" if np.unique(np.r_[cal, b]).size == cal.size + b.size else "asymptotic"
    if method == "asymptotic":
        p = _permutation_rank_sum(cal, b)
    else:
        p = float(mannwhitneyu(b, cal, alternative="less", method="exact").pvalue)
    out["p_value"] = p
    if p <= level:
        out["verdict"] = "shifted"
    else:
        out["verdict"] = "in distribution" if out["power"] >= MIN_POWER else "too few images to tell"
        if out["verdict"] == "in distribution":
            out["evidence"] = "strong" if out["power"] >= TARGET_POWER else "weak"
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
