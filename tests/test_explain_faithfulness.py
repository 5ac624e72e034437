"""Faithfulness as a permutation test: uniform p-values for a random map, small for a planted map, and a
map that only highlights A's surroundings does not pass against the distance-to-A baseline."""

from __future__ import annotations

import numpy as np
import pytest
from _explain_helpers import SourceModel, checker_image
from scipy import ndimage, stats

from matseg_nb.errors import UserError
from matseg_nb.explain import FaithfulnessResult, faithfulness, heatmap

SRC = (8, 24, 8, 24)


def _setup(size: int = 64):
    model, img = SourceModel(SRC), checker_image(size, size, SRC)
    a = np.zeros((size, size), dtype=bool)
    a[40:60, 36:60] = True  # far from the source box
    return model, img, a


def test_planted_map_passes_against_every_baseline():
    model, img, a = _setup()
    res = heatmap(model, img, a, kernel="blur", window=8, stride=4, max_batch=16)
    faith = faithfulness(model, img, a, res.map, window=8, heatmap_kernel="blur", n_draws=20, max_batch=32)
    assert set(faith.baselines) == {"random_pixels", "random_blocks", "distance_to_A"}
    assert faith.perturbation == "noise"  # validated with another perturbation than H's blur
    for b in faith.baselines.values():
        assert b.p_value == pytest.approx(1 / 21) and len(b.scores) == 20
    assert faith.faithful
    text = faith.summary()
    assert "faithful at level 0.05" in text and "distance to A p = 0.048" in text
    back = FaithfulnessResult.from_json(faith.to_json())
    assert back == faith


def test_random_map_p_values_are_uniform_over_seeds():
    model, img, a = _setup(48)
    a = np.zeros((48, 48), bool)
    a[30:44, 30:44] = True
    p_values, n_faithful = [], 0
    for seed in range(30):
        hmap = np.random.default_rng(100 + seed).random((48, 48))
        faith = faithfulness(model, img, a, hmap, window=8, fractions=(0.05, 0.1), n_draws=19, seed=seed,
                             max_batch=64)
        p_values.append(faith.baselines["random_pixels"].p_value)
        n_faithful += faith.faithful
    p = np.array(p_values)
    assert n_faithful <= 2  # a random map passes all three baselines about as rarely as the level says
    assert 0.3 < p.mean() < 0.7
    assert np.mean(p <= 0.05) <= 0.2
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_map_of_a_surroundings_is_not_faithful_against_distance_baseline():
    """The trivial explanation 'distance to A' is itself not accepted as faithful: it ties its own baseline."""
    model, img, a = _setup()
    trivial = -ndimage.distance_transform_edt(~a)
    faith = faithfulness(model, img, a, trivial, window=8, n_draws=20, max_batch=64)
    assert faith.baselines["distance_to_A"].p_value > 0.05 and not faith.faithful
    assert "not shown faithful" in faith.summary()


def test_bad_inputs_for_the_test():
    model, img, a = _setup()
    with pytest.raises(UserError, match="empty"):
        faithfulness(model, img, np.zeros_like(a), np.zeros(a.shape), window=8)
    with pytest.raises(UserError, match="shape"):
        faithfulness(model, img, a[:10], np.zeros(a.shape), window=8)
    whole = faithfulness(model, img, np.ones_like(a), np.zeros(a.shape), window=8, n_draws=3, fractions=(0.1,))
    assert any("whole image" in n for n in whole.notes) and any("cannot reach" in n for n in whole.notes)
