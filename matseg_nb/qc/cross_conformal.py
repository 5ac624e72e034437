"""Cross-conformal screening statistics: every annotated image calibrates, through its own fold's model.

With k-fold cross-validation, fold model k never saw its held-out images S_k, so a new image scored by
model k is exchangeable with S_k scored by model k (split conformal per fold). The cross-conformal
p-value (Vovk, Ann. Math. Artif. Intell. 2015) pools the K folds' counts:

    p(x) = (1 + sum_k #{i in S_k: c_i^(k) <= s_k(x)}) / (N + 1),     N = sum_k |S_k|

where s_k(x) is x's typicality under model k and c_i^(k) a held-out point's typicality under its own
fold's model (higher = more typical; keys compared lexicographically, ties counted against x, as in
:func:`matseg_nb.qc.conformal.conformal_pvalues`). With identical fold models it is the split-conformal
p-value over all N points (exactly super-uniform); in general its guarantee is P(p <= a) <= 2a (Barber,
Candes, Ramdas & Tibshirani, Ann. Statist. 2021, the jackknife+/CV+ argument), and it is close to
uniform when the fold models are alike; ``tests/test_cross_conformal.py`` measures the level by
simulation at N = 5-30 (docs/qc.md states the figures).

Images: a new image's crops get tile p-values as above, and its p-value is min(1, 2 x median) (valid
under dependence between crops, as in single-run screening). The batch test sums, over folds, the
Mann-Whitney counts of (new image less typical than held-out image) under that fold's model, with
per-fold image statistics that are symmetric in the fold's pooled images; the sum is referred to the
Mann-Whitney null of m new vs N held-out images, the distribution it has when the fold models agree
(different fold models decorrelate the folds' counts and shrink the sum's spread, so this reference
is conservative; measured by simulation in the tests). No I/O here.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from matseg_nb.qc.conformal import combine_tile_pvalues, conformal_pvalues, image_rank_statistics


def _count_at_most(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(m,) #{c_j <= s} of each score against the calibration keys (ties count; lexicographic keys)."""
    cal = np.asarray(calibration, dtype=float)
    if cal.shape[0] == 0:
        return np.zeros(np.asarray(scores).shape[0])
    return np.rint(conformal_pvalues(cal, scores) * (cal.shape[0] + 1) - 1)


def cross_conformal_pvalues(fold_calibration: list[np.ndarray], fold_scores: list[np.ndarray]) -> np.ndarray:
    """Cross-conformal p-values (m,) of m test points.

    ``fold_calibration[k]``: (n_k,) scores or (n_k, K) keys of fold k's held-out points under model k;
    ``fold_scores[k]``: (m,) or (m, K) of the same m test points under model k (higher = more typical).
    p = (1 + sum_k #{c <= s_k}) / (N + 1); 1 for every point when no fold has calibration points."""
    if len(fold_calibration) != len(fold_scores) or not fold_scores:
        raise ValueError(f"expected one calibration and one score array per fold, found {len(fold_calibration)} "
                         f"and {len(fold_scores)}")
    m = np.asarray(fold_scores[0]).shape[0]
    below = np.zeros(m)
    n = 0
    for cal, s in zip(fold_calibration, fold_scores, strict=True):
        if np.asarray(s).shape[0] != m:
            raise ValueError(f"expected {m} test points under every fold model, found {np.asarray(s).shape[0]}")
        below += _count_at_most(cal, s)
        n += np.asarray(cal).shape[0]
    return (1.0 + below) / (n + 1.0)


def cross_conformal_image_pvalues(fold_calibration_tiles: list[np.ndarray],
                                  fold_image_tiles: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(p-values (m,), typicality (m,)) of m new images from their crops.

    ``fold_calibration_tiles[k]``: (N_k,) or (N_k, K) crop keys of fold k's held-out images under model
    k (all crops pooled); ``fold_image_tiles[k][j]``: (T_j, ...) crop keys of new image j under model k
    (the same T_j crops under every model). Typicality = median crop cross-conformal p-value; p-value =
    min(1, 2 x median) (:func:`matseg_nb.qc.conformal.combine_tile_pvalues`)."""
    m = len(fold_image_tiles[0]) if fold_image_tiles else 0
    p, typ = np.ones(m), np.ones(m)
    for j in range(m):
        tp = cross_conformal_pvalues(fold_calibration_tiles, [tiles[j] for tiles in fold_image_tiles])
        typ[j] = float(np.median(tp)) if tp.size else 1.0
        p[j] = combine_tile_pvalues(tp)
    return p, typ


def fold_rank_counts(fold_calibration_images: list[list[np.ndarray]], fold_image_tiles: list[list[np.ndarray]]
                     ) -> tuple[float, int, int]:
    """(U, N, m): the summed Mann-Whitney count over folds of (new image more typical than held-out image)
    + 1/2 per tie, with N held-out and m new images.

    ``fold_calibration_images[k]``: per held-out image of fold k its (T_i, ...) crop keys under model k;
    ``fold_image_tiles[k]``: per new image its crop keys under model k. Per fold, an image's statistic is
    the mean rank of its crops among that fold's pooled crops (:func:`image_rank_statistics`)."""
    u, n_cal, m = 0.0, 0, len(fold_image_tiles[0]) if fold_image_tiles else 0
    for cal_imgs, new_imgs in zip(fold_calibration_images, fold_image_tiles, strict=True):
        if not cal_imgs or not new_imgs:
            continue
        stats = image_rank_statistics([*cal_imgs, *new_imgs])
        c, b = stats[:len(cal_imgs)], stats[len(cal_imgs):]
        u += float((b[:, None] > c[None, :]).sum() + 0.5 * (b[:, None] == c[None, :]).sum())
        n_cal += len(cal_imgs)
    return u, n_cal, m


@lru_cache(maxsize=512)
def _mann_whitney_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u) for u = 0..m*n, U the Mann-Whitney count of m vs n exchangeable continuous values."""
    # f[i][j] = distribution of U for sizes (i, j); recursion f(u; i, j) = i/(i+j) f(u-j; i-1, j) + j/(i+j) f(u; i, j-1)
    prev = [np.ones(1) for _ in range(n + 1)]  # i = 0: U = 0 with probability 1
    for i in range(1, m + 1):
        cur = [np.ones(1)]  # j = 0: U = 0
        for j in range(1, n + 1):
            f = np.zeros(i * j + 1)
            f[j:j + prev[j].size] += i / (i + j) * prev[j]          # the largest value is a new one: +j
            f[:cur[j - 1].size] += j / (i + j) * cur[j - 1]          # the largest value is a held-out one
            cur.append(f)
        prev = cur
    return np.cumsum(prev[n])


def cross_conformal_batch_test(fold_calibration_images: list[list[np.ndarray]],
                               fold_image_tiles: list[list[np.ndarray]], level: float = 0.05) -> dict:
    """One-sided test that the new images are less typical than the held-out images, over all folds.

    Returns {"test", "level", "u", "n_calibration", "n_batch", "p_value", "smallest_possible_p"}; the
    p-value is P(U_null <= U) under the Mann-Whitney null of m vs N (exact for m * N <= 4000, normal
    approximation with continuity correction above). Verdict words stay with the caller
    (:func:`matseg_nb.qc.conformal.batch_test` rules)."""
    u, n, m = fold_rank_counts(fold_calibration_images, fold_image_tiles)
    out = {"test": "one-sided cross-conformal rank-sum (batch less typical than the folds' held-out images)",
           "level": level, "u": u, "n_calibration": n, "n_batch": m, "p_value": None,
           "smallest_possible_p": 1.0 / math.comb(n + m, m) if n and m else 1.0}
    if not n or not m:
        return out
    if m * n <= 4000:
        out["p_value"] = float(_mann_whitney_cdf(m, n)[int(math.floor(u + 1e-9))])
    else:
        from scipy.stats import norm

        mu, sd = m * n / 2.0, math.sqrt(m * n * (m + n + 1) / 12.0)
        out["p_value"] = float(norm.cdf((u + 0.5 - mu) / sd))
    return out
