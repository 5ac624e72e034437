"""Cross-conformal screening statistics hold their level at the small N this field has (simulation).

Fold model k = the mean of the points (crops) outside fold k; typicality = minus the squared distance to it.
Calibration = each fold's held-out points under its own model, as `matseg_nb.qc.cross_conformal` expects.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from matseg_nb.qc.cross_conformal import (
    _mann_whitney_cdf,
    cross_conformal_batch_test,
    cross_conformal_image_pvalues,
    cross_conformal_pvalues,
)

LEVELS = (0.05, 0.1, 0.2, 0.5)


def _point_pvalues(n: int, folds: int, draws: int, seed: int, in_sample: bool = False) -> np.ndarray:
    """Cross-conformal p-value of one exchangeable test point, ``draws`` times (2-D Gaussian data)."""
    rng = np.random.default_rng(seed)
    out = np.empty(draws)
    fold = np.arange(n) % folds
    for r in range(draws):
        x, t = rng.normal(size=(n, 2)), rng.normal(size=(1, 2))
        cal, new = [], []
        for k in range(folds):
            mu = x.mean(0) if in_sample else x[fold != k].mean(0)  # in_sample: the model saw its calibration
            cal.append(-((x[fold == k] - mu) ** 2).sum(1))
            new.append(-((t - mu) ** 2).sum(1))
        out[r] = cross_conformal_pvalues(cal, new)[0]
    return out


def _valid(p: np.ndarray, level: float) -> bool:
    """P(p <= level) within 3 Monte-Carlo standard errors of at most ``level``."""
    return (p <= level).mean() <= level + 3 * np.sqrt(level * (1 - level) / p.size)


@pytest.mark.parametrize("n", [5, 8, 12, 18, 30])
def test_point_pvalues_are_valid_and_nearly_uniform(n):
    """Super-uniform at every level, and no more conservative than the exact split-conformal
    floor(level (N+1)) / (N+1) by more than Monte-Carlo error plus 0.03."""
    p = _point_pvalues(n, min(5, n), 2000, seed=n)
    for level in LEVELS:
        assert _valid(p, level), (n, level, (p <= level).mean())
        exact = np.floor(level * (n + 1)) / (n + 1)
        assert (p <= level).mean() >= exact - 3 * np.sqrt(level * (1 - level) / p.size) - 0.03, (n, level)


def test_the_validity_check_rejects_in_sample_calibration():
    """Calibrating on points the model was fitted to gives anti-conservative p-values; the check catches it."""
    p = _point_pvalues(5, 5, 2000, seed=1, in_sample=True)
    assert not _valid(p, 0.2)


def test_identical_fold_models_give_the_split_conformal_pvalue_over_all_points():
    rng = np.random.default_rng(0)
    cal = rng.normal(size=12)
    s = rng.normal(size=4)
    folds = np.arange(12) % 3
    p = cross_conformal_pvalues([cal[folds == k] for k in range(3)], [s, s, s])
    assert np.allclose(p, (1 + (cal[None, :] <= s[:, None]).sum(1)) / 13)


def test_lexicographic_keys_and_shape_errors():
    cal = [np.array([[1.0, 0.2], [0.0, 5.0]]), np.array([[1.0, 0.9]])]
    new = [np.array([[1.0, 0.5]]), np.array([[1.0, 0.5]])]
    # under model 0: (1, .5) >= (1, .2) and (0, 5); under model 1: (1, .5) < (1, .9)
    assert cross_conformal_pvalues(cal, new)[0] == pytest.approx((1 + 2 + 0) / 4)
    with pytest.raises(ValueError, match="one calibration and one score array per fold"):
        cross_conformal_pvalues(cal, new[:1])


def test_mann_whitney_null_matches_scipy_exact():
    rng = np.random.default_rng(3)
    for m, n in ((3, 4), (5, 18), (9, 7)):
        b, c = rng.normal(-0.4, 1, m), rng.normal(size=n)
        u = int((b[:, None] > c[None, :]).sum())
        assert _mann_whitney_cdf(m, n)[u] == pytest.approx(mannwhitneyu(b, c, alternative="less").pvalue)


def _image_draws(n: int, m: int, draws: int, seed: int, shift: float = 0.0, folds: int = 5, tiles: int = 8):
    """Per draw: image p-values (m,) and the batch p-value; images = tiles around an image offset."""
    rng = np.random.default_rng(seed)
    fold = np.arange(n) % folds
    p_img, p_batch = [], []
    for _ in range(draws):
        images = [rng.normal(size=2) * 0.7 + rng.normal(size=(tiles, 2)) for _ in range(n)]
        new = [rng.normal(size=2) * 0.7 + rng.normal(size=(tiles, 2)) + [shift, 0.0] for _ in range(m)]
        cal_imgs, new_tiles = [], []
        for k in range(folds):
            mu = np.concatenate([a for a, f in zip(images, fold, strict=True) if f != k]).mean(0)
            cal_imgs.append([-((a - mu) ** 2).sum(1) for a, f in zip(images, fold, strict=True) if f == k])
            new_tiles.append([-((a - mu) ** 2).sum(1) for a in new])
        p, _ = cross_conformal_image_pvalues([np.concatenate(c) for c in cal_imgs], new_tiles)
        p_img.append(p)
        p_batch.append(cross_conformal_batch_test(cal_imgs, new_tiles)["p_value"])
    return np.concatenate(p_img), np.array(p_batch)


@pytest.mark.parametrize("n,m", [(6, 3), (18, 4), (30, 6)])
def test_image_and_batch_pvalues_hold_their_level(n, m):
    p_img, p_batch = _image_draws(n, m, 600, seed=n)
    for level in (0.05, 0.1, 0.2):
        assert _valid(p_img, level), (n, level)
        assert _valid(p_batch, level), (n, level, (p_batch <= level).mean())


def test_batch_test_has_power_against_a_planted_shift():
    """18 held-out images in 5 folds vs 4 new images shifted by 2 image-SD: caught most of the time."""
    _, p_batch = _image_draws(18, 4, 200, seed=7, shift=2.0)
    assert (p_batch <= 0.05).mean() >= 0.7
