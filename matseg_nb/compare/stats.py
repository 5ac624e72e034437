"""Statistics for sweep comparisons (choices documented in docs/compare.md).

- :func:`paired_test`: two-sided paired sign-flip permutation test on per-image score differences
  (exact over all 2^n sign patterns for n <= 16, else 20 000 Monte-Carlo patterns with a fixed seed);
  "not testable" when even the most extreme outcome could not reach ``alpha`` (n < 6 at alpha = 0.05).
- :func:`t_interval`: Student-t interval of a mean over independent units (images, or folds); seeds are
  averaged within a unit first, so the interval is exact for normal unit means at any n >= 3 and declines
  ("insufficient evidence (n = 2)") below that. Measured coverage: tests/test_compare_stats.py.
- :func:`cv_interval`: interval of a k-fold CV mean over folds with the Nadeau-Bengio (2003) variance
  correction for overlapping training sets (``(1/k + n_val/n_train) s^2`` instead of ``s^2 / k``).
- :func:`prob_a_beats_b`: P(A > B) over paired (seed, fold) runs (Bouthillier et al., MLSys 2021).
- :func:`kendall_tau` / :func:`rank_stability`: Kendall's tau-b between two datasets' architecture scores.
- :func:`seed_noise_ceiling`: tau between seeds of the same dataset (the ranking noise floor of "context").
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as sstats

PERM_SEED = 2024
EXACT_MAX_N = 16
N_PERM = 20000


#: fewest independent units for which an interval is printed (n - 1 >= 2 degrees of freedom)
MIN_INTERVAL_N = 3


def insufficient(n: int) -> str:
    """The text printed instead of an interval or a test: ``insufficient evidence (n = 2)``."""
    return f"insufficient evidence (n = {n})"


def unit_means(scores: np.ndarray) -> np.ndarray:
    """Each unit's (column's) mean over seeds (rows) of a (n_seeds, n_units) score matrix, units without any
    score dropped; a 1-D input is one seed. Shape (n_units_scored,)."""
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if s.size == 0:
        return np.empty(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        units = np.nanmean(s, axis=0)
    return units[~np.isnan(units)]


def t_interval(scores: np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and Student-t interval of a (n_seeds, n_units) score matrix (NaN = missing).

    Units (columns: test images or folds) are the independent replicates; each unit's score is its mean
    over seeds, and the interval is ``mean +- t_{n-1} * sd / sqrt(n)`` over those n unit means. It covers
    the trained models' expected score on new images (image-to-image variation; the seed-to-seed spread is
    reported separately, as the seed SD and P(A beats B)). A 1-D input
    is one seed. Returns ``(mean, lo, hi, n)``; lo/hi are NaN when n < :data:`MIN_INTERVAL_N` (declined).
    """
    units = unit_means(scores)
    n = int(units.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(units.mean())
    if n < MIN_INTERVAL_N:
        return mean, math.nan, math.nan, n
    half = float(sstats.t.ppf(0.5 + level / 2.0, n - 1) * units.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def cv_interval(scores: np.ndarray, folds: int, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and corrected Student-t interval of a (n_seeds, k) matrix of per-fold scores (NaN = missing).

    Each fold's score is averaged over seeds; the k fold means share training images, so their spread
    underestimates the variance of their mean. Nadeau & Bengio (Machine Learning 52:239-281, 2003) replace
    ``s^2 / k`` by ``(1/k + n_val/n_train) s^2`` with ``n_val/n_train = 1/(k-1)`` for k-fold CV; the
    interval is then exact when fold scores are equicorrelated normal with correlation 1/k
    (tests/test_cv_compare.py). Returns ``(mean, lo, hi, n)``; lo/hi NaN below :data:`MIN_INTERVAL_N` folds.
    """
    units = unit_means(scores)
    n = int(units.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(units.mean())
    if n < MIN_INTERVAL_N or folds < 2:
        return mean, math.nan, math.nan, n
    factor = 1.0 / n + 1.0 / (folds - 1)
    half = float(sstats.t.ppf(0.5 + level / 2.0, n - 1) * math.sqrt(factor * units.var(ddof=1)))
    return mean, mean - half, mean + half, n


def prob_a_beats_b(a: np.ndarray, b: np.ndarray) -> float:
    """P(A > B) over paired runs (same seed and fold), ties counted 1/2; NaN pairs dropped (NaN if none)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    ok = ~(np.isnan(a) | np.isnan(b))
    if not ok.any():
        return math.nan
    d = a[ok] - b[ok]
    return float(np.mean((d > 0) + 0.5 * (d == 0)))


@dataclass
class PairedResult:
    """Outcome of :func:`paired_test`. ``verdict``: significant | not significant | not testable (n=..)."""

    method: str
    n: int
    mean_diff: float
    p_value: float
    verdict: str
    #: 95% interval of the mean difference (the corrected CV test only; NaN otherwise)
    ci_lo: float = math.nan
    ci_hi: float = math.nan

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
        return PairedResult("sign-flip permutation", n, mean_diff, math.nan, insufficient(n))
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

    ``cells``: one row per (dataset, arch) with a ``score`` column (and optionally ``base_dataset``: two
    protocols of the same dataset are not a pair of datasets and are skipped). Returns the pairwise table
    (dataset_a, dataset_b, n_common, tau) and the mean tau over defined pairs (NaN when none):
    1 = the same ranking everywhere (context does not matter), 0 = unrelated, -1 = reversed.
    """
    maps = {ds: dict(zip(g["arch"], g[score], strict=True)) for ds, g in cells.groupby("dataset", sort=True)}
    base = dict(zip(cells["dataset"], cells["base_dataset"], strict=True)) if "base_dataset" in cells else {}
    rows = []
    for a, b in itertools.combinations(sorted(maps), 2):
        if base and base.get(a) == base.get(b):
            continue
        tau, n = kendall_tau(maps[a], maps[b])
        rows.append({"dataset_a": a, "dataset_b": b, "n_common": n, "tau": tau})
    table = pd.DataFrame(rows, columns=["dataset_a", "dataset_b", "n_common", "tau"])
    taus = table["tau"].dropna()
    return table, float(taus.mean()) if len(taus) else math.nan


def seed_noise_ceiling(runs: pd.DataFrame, score: str = "iou") -> pd.DataFrame:
    """Kendall's tau between replicate rankings of the SAME dataset: every pair of seeds (or folds).

    ``runs``: one row per complete run with ``dataset``, ``arch``, ``seed`` and ``score`` (a ``fold``
    column, if present, is part of the replicate key). Two replicates of one dataset differ only by
    training noise, so their tau is what "no context effect" looks like. Returns (dataset, rep_a, rep_b,
    n_common, tau).
    """
    rep_cols = ["seed", "fold"] if "fold" in runs.columns else ["seed"]
    rows = []
    for ds, g in runs.groupby("dataset", sort=True):
        reps = {key: dict(zip(sub["arch"], sub[score], strict=True))
                for key, sub in g.groupby(rep_cols, sort=True)}
        for ra, rb in itertools.combinations(sorted(reps), 2):
            tau, n = kendall_tau(reps[ra], reps[rb])
            rows.append({"dataset": ds, "rep_a": str(ra), "rep_b": str(rb), "n_common": n, "tau": tau})
    return pd.DataFrame(rows, columns=["dataset", "rep_a", "rep_b", "n_common", "tau"])


def context_verdict(between: pd.Series, within: pd.Series) -> str:
    """Claim "context changes the ranking" only when datasets disagree more than seeds of one dataset do.

    ``between``: tau of dataset pairs; ``within``: tau of seed pairs on the same dataset. The claim needs
    at least 2 values on each side and a one-sided Mann-Whitney U test (between < within) at p < 0.05;
    otherwise the text says why not. The numbers are always in the text.
    """
    b = pd.Series(between, dtype=float).dropna().to_numpy()
    w = pd.Series(within, dtype=float).dropna().to_numpy()
    nums = (f"mean tau between datasets {b.mean():.2f} (n = {b.size}) vs between seeds of one dataset "
            f"{w.mean():.2f} (n = {w.size})" if b.size and w.size else
            f"{b.size} dataset pair(s) and {w.size} seed pair(s) with a defined tau")
    if b.size < 2 or w.size < 2:
        return f"no claim about context: {insufficient(min(b.size, w.size))}; {nums}"
    p = float(sstats.mannwhitneyu(b, w, alternative="less").pvalue)
    if p < 0.05:
        return f"context changes the ranking: {nums}, one-sided Mann-Whitney p = {p:.2g}"
    return (f"no evidence that context changes the ranking beyond seed noise: {nums}, "
            f"one-sided Mann-Whitney p = {p:.2g}")


# ------------------------------------------------------------------------ cross-validated paired comparison

#: power that "would decide" means in the power sentences
TARGET_POWER = 0.8
#: the largest number of images or seeds a power sentence names ("more than ..." beyond it)
MAX_PLANNED = 1000


def cv_paired_test(diff: np.ndarray, fold_of: np.ndarray, alpha: float = 0.05,
                   n_pairs: int = 1) -> PairedResult:
    """Is the mean paired out-of-fold difference ``diff`` (N,) (best minus runner-up, per image) non-zero?

    Nadeau-Bengio corrected resampled t test (Machine Learning 52:239-281, 2003) over the k fold means of the
    per-image differences (``fold_of``: the fold that scored each image): ``t = dbar / sqrt((1/k + 1/(k-1))
    s_f^2)`` with ``k - 1`` degrees of freedom, ``dbar`` the mean over all N images and ``s_f^2`` the variance
    of the fold means. ``n_pairs``: how many pairs the compared two were selected from on the same scores
    (p is Bonferroni-multiplied by it, capped at 1). Declines below 3 folds.
    """
    d = np.asarray(diff, dtype=np.float64)
    f = np.asarray(fold_of)
    ok = ~np.isnan(d)
    d, f = d[ok], f[ok]
    n = int(d.size)
    folds = np.unique(f)
    k = int(folds.size)
    method = f"Nadeau-Bengio corrected t over {k} folds ({n} out-of-fold images)"
    mean_diff = float(d.mean()) if n else math.nan
    if k < MIN_INTERVAL_N:
        return PairedResult(method, n, mean_diff, math.nan, insufficient(n) + f" in {k} fold(s)")
    means = np.array([d[f == j].mean() for j in folds])
    var = (1.0 / k + 1.0 / (k - 1)) * means.var(ddof=1)
    if var <= 0 or np.allclose(d, 0.0):
        return PairedResult(method, n, mean_diff, 1.0, "not significant (identical)")
    p = min(1.0, n_pairs * float(2 * sstats.t.sf(abs(mean_diff) / math.sqrt(var), k - 1)))
    half = float(sstats.t.ppf(0.975, k - 1) * math.sqrt(var))
    return PairedResult(method, n, mean_diff, p, "significant" if p < alpha else "not significant",
                        mean_diff - half, mean_diff + half)


def cv_per_image_sd(diff: np.ndarray, fold_of: np.ndarray) -> float:
    """Per-image SD equivalent of the fold-mean spread, ``sqrt(s_f^2 N / k)`` (it carries any correlation
    between images of one fold); NaN below 2 folds."""
    d = np.asarray(diff, dtype=np.float64)
    f = np.asarray(fold_of)
    ok = ~np.isnan(d)
    d, f = d[ok], f[ok]
    folds = np.unique(f)
    if folds.size < 2:
        return math.nan
    means = np.array([d[f == j].mean() for j in folds])
    return float(math.sqrt(means.var(ddof=1) * d.size / folds.size))


def power_at(n_images: int, delta: float, sd: float, folds: int | None = None, alpha: float = 0.05) -> float:
    """Power of the two-sided paired test at ``n_images`` when the true mean paired difference is ``delta``
    and the per-image SD is ``sd``: the corrected CV t test with ``folds - 1`` degrees of freedom when
    ``folds`` is set, else the paired t test (n - 1 df; the sign-flip test's large-sample equivalent).
    Noncentral t; 0 where the test cannot reject (n below :func:`min_testable_n` on holdout)."""
    if not (sd > 0) or not math.isfinite(delta):
        return math.nan
    ncp = abs(delta) * math.sqrt(n_images) / sd  # of the uncorrected t statistic over fold means (or images)
    if folds:
        k = min(folds, n_images)
        if k < MIN_INTERVAL_N:
            return 0.0
        # the corrected t is the uncorrected one divided by sqrt(k (1/k + 1/(k-1))): a higher threshold
        df = k - 1
        crit = sstats.t.ppf(1 - alpha / 2, df) * math.sqrt(k * (1.0 / k + 1.0 / (k - 1)))
    else:
        if n_images < min_testable_n(alpha):
            return 0.0
        df = n_images - 1
        crit = sstats.t.ppf(1 - alpha / 2, df)
    with np.errstate(all="ignore"):
        out = float(sstats.nct.sf(crit, df, ncp) + sstats.nct.cdf(-crit, df, ncp))
    if not math.isfinite(out):  # scipy's nct fails far in the tail: the normal approximation is exact there
        out = float(sstats.norm.sf(crit - ncp) + sstats.norm.cdf(-crit - ncp))
    return out


def images_for_power(delta: float, sd: float, folds: int | None = None, alpha: float = 0.05,
                     power: float = TARGET_POWER) -> int | None:
    """Smallest number of images whose test reaches ``power`` (:func:`power_at`); None beyond
    :data:`MAX_PLANNED` or when delta/sd are undefined."""
    if not (sd > 0) or not math.isfinite(delta) or delta == 0:
        return None
    lo = max(2, min_testable_n(alpha) if not folds else MIN_INTERVAL_N)
    if power_at(MAX_PLANNED, delta, sd, folds, alpha) < power:
        return None
    hi = MAX_PLANNED
    while lo < hi:  # power increases with n
        mid = (lo + hi) // 2
        if power_at(mid, delta, sd, folds, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


def seeds_for_power(diffs: np.ndarray, folds: int | None = None, alpha: float = 0.05,
                    power: float = TARGET_POWER) -> tuple[int | None, str]:
    """How many seeds (at the current images) would reach ``power``, from a (n_seeds, n_images) matrix of
    per-image paired differences: the per-image variance splits into a between-image part and a seed part
    ``s_w^2`` (mean within-image variance over seeds); S seeds leave ``s_b^2 + s_w^2 / S``. Returns
    ``(S or None, reason)``; None with a reason when one seed cannot tell or no number of seeds suffices."""
    m = np.atleast_2d(np.asarray(diffs, dtype=np.float64))
    m = m[:, ~np.isnan(m).any(axis=0)]
    n_seeds, n = m.shape
    if n_seeds < 2 or n < 2:
        return None, f"seed spread unknown ({n_seeds} seed): run 2 or more seeds to tell whether seeds help"
    within = float(m.var(axis=0, ddof=1).mean())
    between = max(float(m.mean(axis=0).var(ddof=1)) - within / n_seeds, 0.0)
    delta = float(m.mean())
    for s in range(1, MAX_PLANNED + 1):
        if power_at(n, delta, math.sqrt(between + within / s), folds, alpha) >= power:
            return s, ""
    return None, "more seeds alone cannot decide (the spread is between images, not seeds)"


def power_sentence(best: str, runner_up: str, delta: float, sd: float, n_images: int,
                   folds: int | None = None, alpha: float = 0.05, seed_diffs: np.ndarray | None = None) -> str:
    """"A vs B: 0.100 IoU apart (per-image SD 0.080, n = 18); about 9 more annotated images would decide at
    80% power" -- what would turn an undecided comparison into an answer, from the observed effect and spread
    (a plan, not a promise: the observed difference is itself uncertain)."""
    if not math.isfinite(delta) or not (sd > 0):
        return f"{best} vs {runner_up}: the spread of the paired differences is unknown (n = {n_images})"
    head = (f"{best} vs {runner_up}: {abs(delta):.3f} IoU apart{' (runner-up higher)' if delta < 0 else ''} "
            f"(per-image SD {sd:.3f}, n = {n_images})")
    need = images_for_power(delta, sd, folds, alpha)
    if need is None:
        imgs = f"more than {MAX_PLANNED} annotated images would be needed: practically tied"
    elif need <= n_images:
        imgs = (f"{n_images} images give {100 * power_at(n_images, delta, sd, folds, alpha):.0f}% power at this "
                "difference; the observed difference may be smaller than the true one, or the runs noisier")
    else:
        more = need - n_images
        imgs = f"about {more} more annotated image{'s' * (more != 1)} would decide at 80% power (n = {need})"
    text = f"{head}; {imgs}"
    if seed_diffs is not None:
        s, why = seeds_for_power(seed_diffs, folds, alpha)
        cur = np.atleast_2d(seed_diffs).shape[0]
        text += (f"; {why}" if s is None else
                 f"; or about {s} seeds in all (now {cur}) at the current images" if s > cur else "")
    return text
