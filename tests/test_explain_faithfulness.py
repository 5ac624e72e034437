"""Faithfulness on a constructed model whose answer is known (prediction depends on a source box only)."""

from __future__ import annotations

import numpy as np
from _explain_helpers import SourceModel, checker_image

from matseg_nb.explain import faithfulness, heatmap

SRC = (8, 24, 8, 24)


def _setup():
    model, img = SourceModel(SRC), checker_image(64, 64, SRC)
    a = np.zeros((64, 64), dtype=bool)
    a[40:60, 36:60] = True  # far from the source box
    return model, img, a


def test_heatmap_lights_up_only_windows_touching_the_source():
    model, img, a = _setup()
    res = heatmap(model, img, a, kernel="blur", window=8, stride=8, max_batch=16)
    touching = np.zeros_like(res.valid)
    for i, y in enumerate(res.ys):
        for j, x in enumerate(res.xs):
            touching[i, j] = y < SRC[1] and y + 8 > SRC[0] and x < SRC[3] and x + 8 > SRC[2]
    assert np.all(res.grid[~touching] == 0)
    assert np.all(res.grid[touching] > 1.0)


def test_top_influence_blur_beats_random_and_background():
    model, img, a = _setup()
    res = heatmap(model, img, a, kernel="blur", window=8, stride=4, max_batch=16)
    faith = faithfulness(model, img, a, res.map, k_main=0.05, sigma=2.0, seed=1)
    top, rnd, bottom = (faith["at_k_main"][k] for k in ("top", "random", "bottom"))
    # 5% of 64x64 = 205 px, all inside the 256-px source: the whole of A flips
    assert top["flip"] == 1.0 and top["l1_per_pixel"] > 1.0
    assert bottom["l1"] == 0.0  # lowest-influence pixels are outside the source: no change at all
    assert rnd["l1"] < top["l1"] / 3
    assert faith["ratio_top_random"] > 3 and faith["top_beats_random"]
    assert faith["auc"]["top"] > faith["auc"]["random"] > faith["auc"]["bottom"] == 0.0
    curve = faith["curves"]["top"]
    assert curve[0]["fraction"] == 0.0 and curve[0]["l1"] == 0.0
    assert len(curve) == len(faith["fractions"])


def test_constant_heatmap_behaves_like_random_selection():
    model, img, a = _setup()
    faith = faithfulness(model, img, a, np.zeros((64, 64)), fractions=(0.0, 0.1), k_main=0.1, seed=3)
    assert faith["ratio_top_random"] is None or faith["ratio_top_random"] < 3


def test_random_blocks_baseline_is_contiguous_and_same_size():
    from matseg_nb.explain.faithfulness import _orders

    orders = _orders(np.zeros((20, 30)), seed=0, block=8)
    first = orders["random_blocks"][:64]  # the first 64 pixels = exactly one full 8x8 block
    rows, cols = np.unravel_index(first, (20, 30))
    assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8
    assert sorted(orders["random_blocks"].tolist()) == list(range(600))
    model, img, a = _setup()
    res = heatmap(model, img, a, kernel="blur", window=8, stride=4, max_batch=16)
    faith = faithfulness(model, img, a, res.map, fractions=(0.0, 0.05), k_main=0.05, sigma=2.0, block=8)
    assert set(faith["curves"]) == {"top", "random", "bottom", "random_blocks"}
    assert faith["ratio_top_random_blocks"] is None or faith["ratio_top_random_blocks"] > 1
