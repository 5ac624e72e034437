"""Statistics for sweep comparisons (choices documented in docs/compare.md).

- :func:`bootstrap_ci`: two-level percentile bootstrap of a mean score over (seed x image) -- seeds and
  test images are resampled independently with replacement, B = 2000 resamples, fixed RNG seed.
- :func:`paired_test`: two-sided paired sign-flip permutation test on per-image score differences
  (exact over all 2^n sign patterns for n <= 16, else 20 000 Monte-Carlo patterns with a fixed seed);
  "not testable" when even the most extreme outcome could not reach ``alpha`` (n < 6 at alpha = 0.05).
- :func:`kendall_tau` / :func:`rank_stability`: Kendall's tau-b between two datasets' architecture scores.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as sstats

N_BOOT = 2000
BOOT_SEED = 12345
PERM_SEED = 2024
EXACT_MAX_N = 16
N_PERM = 20000


def bootstrap_ci(
    scores: np.ndarray, level: float = 0.95, n_boot: int = N_BOOT, seed: int = BOOT_SEED
) -> tuple[float, float, float]:
    """Mean and percentile CI of a (n_seeds, n_images) score matrix (NaN = missing).

    Each resample draws seeds and images with replacement (independently) and takes the nanmean of the
    selected sub-matrix. A 1-D input is one seed. Returns ``(mean, lo, hi)``; NaNs when empty.
    """
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if s.size == 0 or np.all(np.isnan(s)):
        return math.nan, math.nan, math.nan
    mean = float(np.nanmean(s))
    n_s, n_i = s.shape
    if n_s * n_i == 1:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    si = rng.integers(0, n_s, size=(n_boot, n_s))
    ii = rng.integers(0, n_i, size=(n_boot, n_i))
    chunk = max(1, 2_000_000 // (n_s * n_i))  # bound memory: (chunk, n_s, n_i) floats at a time
    parts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample of only missing cells -> NaN, dropped
        for start in range(0, n_boot, chunk):
            sub = s[si[start:start + chunk, :, None], ii[start:start + chunk, None, :]]  # (b, n_s, n_i)
            parts.append(np.nanmean(sub.reshape(sub.shape[0], -1), axis=1))
    boots = np.concatenate(parts)
    boots = boots[~np.isnan(boots)]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return mean, float(lo), float(hi)


@dataclass
class PairedResult:
    """Outcome of :func:`paired_test`. ``verdict``: significant | not significant | not testable (n=..)."""

    method: str
    n: int
    mean_diff: float
    p_value: float
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


def min_testable_n(alpha: float = 0.05) -> int:
    """Smallest n whose exact two-sided sign-flip test can reach p < alpha (2 / 2^n < alpha)."""
    n = 1
    while 2.0 / 2**n >= alpha:
        n += 1
    return n


def _sign_flip_p(d: np.ndarray, seed: int) -> tuple[float, str]:
    n = d.size
    obs = abs(d.mean())
    if n <= EXACT_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        method = f"exact sign-flip permutation (2^{n})"
    else:
        rng = np.random.default_rng(seed)
        signs = rng.choice((1.0, -1.0), size=(N_PERM, n))
        signs[0] = 1.0
        method = f"sign-flip permutation ({N_PERM} MC)"
    null = np.abs(signs @ d) / n
    p = float(np.mean(null >= obs - 1e-12))
    return p, method


def paired_test(a: np.ndarray, b: np.ndarray, alpha: float = 0.05, seed: int = PERM_SEED) -> PairedResult:
    """Is ``a`` (best) different from ``b`` (runner-up) over the same test images? Two-sided.

    ``a``, ``b``: (n_images,) per-image scores in the same image order (NaN pairs are dropped).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    d = a[ok] - b[ok]
    n = int(d.size)
    mean_diff = float(d.mean()) if n else math.nan
    if n < min_testable_n(alpha):
        return PairedResult("sign-flip permutation", n, mean_diff, math.nan, f"not testable (n={n})")
    if np.allclose(d, 0.0):
        return PairedResult("sign-flip permutation", n, mean_diff, 1.0, "not significant (identical)")
    p, method = _sign_flip_p(d, seed)
    verdict = "significant" if p < alpha else "not significant"
    return PairedResult(method, n, mean_diff, p, verdict)


def kendall_tau(scores_a: dict[str, float], scores_b: dict[str, float]) -> tuple[float, int]:
    """Kendall's tau-b between two {architecture: score} maps over their common, finite keys.

    Returns ``(tau, n_common)``; tau is NaN with fewer than 2 common architectures or a constant side.
    """
    keys = sorted(k for k in set(scores_a) & set(scores_b)
                  if np.isfinite(scores_a[k]) and np.isfinite(scores_b[k]))
    if len(keys) < 2:
        return math.nan, len(keys)
    x = [scores_a[k] for k in keys]
    y = [scores_b[k] for k in keys]
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan, len(keys)
    return float(sstats.kendalltau(x, y).statistic), len(keys)


def rank_stability(cells: pd.DataFrame, score: str = "iou") -> tuple[pd.DataFrame, float]:
    """Kendall's tau between every pair of datasets' architecture rankings.

    ``cells``: one row per (dataset, arch) with a ``score`` column. Returns the pairwise table
    (dataset_a, dataset_b, n_common, tau) and the mean tau over defined pairs (NaN when none):
    1 = the same ranking everywhere (context does not matter), 0 = unrelated, -1 = reversed.
    """
    maps = {ds: dict(zip(g["arch"], g[score], strict=True)) for ds, g in cells.groupby("dataset", sort=True)}
    rows = []
    for a, b in itertools.combinations(sorted(maps), 2):
        tau, n = kendall_tau(maps[a], maps[b])
        rows.append({"dataset_a": a, "dataset_b": b, "n_common": n, "tau": tau})
    table = pd.DataFrame(rows, columns=["dataset_a", "dataset_b", "n_common", "tau"])
    taus = table["tau"].dropna()
    return table, float(taus.mean()) if len(taus) else math.nan
