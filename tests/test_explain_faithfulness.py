"""Faithfulness: the unconditional baselines (random pixels, random blocks, distance to A) and the test
conditional on proximity (H shuffled within rings of distance to A), validated on planted cases:

* a model whose prediction inside A depends on a distant marker: H passes the ring test;
* a map of pure proximity (-distance to A) fails it, and passes once the rings are merged into one;
* a random map fails both; over 200 random maps the ring test's p-values are uniform (cheap statistic).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _explain_helpers import SourceModel, checker_image
from scipy import ndimage, stats
from torch import nn

from matseg_nb.errors import UserError
from matseg_nb.explain import FaithfulnessResult, faithfulness, heatmap
from matseg_nb.explain.faithfulness import forward_passes, ring_permutation_orders
from matseg_nb.explain.rings import monte_carlo_p, ring_partition

SRC = (8, 24, 8, 24)
MARKER = (4, 16, 4, 16)  # (y0, y1, x0, x1), far from A
SIZE = 64


def _setup(size: int = 64):
    model, img = SourceModel(SRC), checker_image(size, size, SRC)
    a = np.zeros((size, size), dtype=bool)
    a[40:60, 36:60] = True  # far from the source box
    return model, img, a


class MarkerModel(nn.Module):
    """Class-1 logit per pixel = ``local`` x (9x9 mean of x^2 around it - 1/3) + ``marker`` x (mean of x^2
    over the distant box ``MARKER`` - 1/2): the prediction inside A depends on its surroundings (proximity)
    and on a marker far away, which blur and noise deletions both change."""

    def __init__(self, local: float = 4.0, marker: float = 16.0):
        super().__init__()
        self.local, self.marker = local, marker
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sq = x[:, :1] ** 2
        near = F.avg_pool2d(sq, 9, stride=1, padding=4, count_include_pad=False) - 1 / 3
        y0, y1, x0, x1 = MARKER
        far = sq[:, :, y0:y1, x0:x1].mean(dim=(2, 3), keepdim=True) - 0.5
        logit = self.local * near + self.marker * far + 0 * self.dummy
        return torch.cat([torch.zeros_like(logit), logit], dim=1)


def _marker_case():
    img = np.random.default_rng(7).random((1, SIZE, SIZE)).astype(np.float32)  # texture, mean x^2 = 1/3
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    y0, y1, x0, x1 = MARKER
    img[0, y0:y1, x0:x1] = (((yy // 2) + (xx // 2)) % 2)[y0:y1, x0:x1]  # checkerboard: mean x^2 = 1/2
    a = np.zeros((SIZE, SIZE), dtype=bool)
    a[40:56, 40:56] = True
    return MarkerModel(), img, a


def _faith(model, img, a, hmap, **kw):
    kw = {"window": 8, "cell": 4, "n_draws": 20, "max_batch": 64, **kw}
    return faithfulness(model, img, a, hmap, **kw)


def test_marker_model_passes_the_ring_test():
    """H of a model that reads a distant marker points at it: shuffling H within rings loses it."""
    model, img, a = _marker_case()
    res = heatmap(model, img, a, kernel="blur", window=8, stride=4, max_batch=32)
    y0, y1, x0, x1 = MARKER
    assert res.map[y0:y1, x0:x1].mean() > 3 * res.map[a].mean()  # the planted answer is in H
    faith = _faith(model, img, a, res.map)
    c = faith.conditional
    assert c is not None and c.n_perm == 39 and c.n_rings >= 4 and sum(c.cells_per_ring) == (SIZE // 4) ** 2
    assert c.p_value == pytest.approx(1 / 40) and faith.beyond_proximity
    assert c.observed_score > max(c.scores)
    text = faith.summary()
    assert "Beyond proximity to A, H points at pixels that change the prediction" in text
    assert "ring-permutation p = 0.025" in text
    assert FaithfulnessResult.from_json(faith.to_json()) == faith


def test_proximity_map_fails_the_ring_test_but_passes_without_rings():
    """-distance to A adds nothing beyond proximity, even for a model driven by A's surroundings only: over 6
    seeds (validation noise, shuffles) it is not shown beyond proximity more than once. With all cells in one ring (no conditioning) the same map passes
    every time, so the rings, not the score, are what make it fail."""
    _, img, a = _marker_case()
    model = MarkerModel(marker=0.0)  # the prediction inside A depends on its surroundings only
    proximity = -ndimage.distance_transform_edt(~a)
    ring_p, one_ring_p = [], []
    for seed in range(6):
        faith = _faith(model, img, a, proximity, seed=seed)
        ring_p.append(faith.conditional.p_value)
        one = _faith(model, img, a, proximity, seed=seed, cells_per_ring=10_000, n_draws=1)
        assert one.conditional.n_rings == 1 and any("one ring" in n for n in one.notes)
        one_ring_p.append(one.conditional.p_value)
    assert sum(p <= 0.05 for p in ring_p) <= 1 and np.mean(ring_p) > 0.3, ring_p
    assert max(one_ring_p) <= 0.05, one_ring_p
    assert "H adds nothing shown beyond proximity to A" in faith.summary()


def test_random_map_fails_both():
    model, img, a = _marker_case()
    for seed in (0, 1):
        faith = _faith(model, img, a, np.random.default_rng(50 + seed).random((SIZE, SIZE)), seed=seed)
        assert not faith.beyond_proximity and not faith.faithful


def test_ring_test_level_is_uniform_over_random_maps():
    """200 random maps, 19 shuffles each, scored by a cheap linear deletion statistic (an influence map
    T that falls with distance to A plus a distant marker, summed over the deleted pixels): P(p <= 0.05)
    is 1/20 exactly under the null, so the number of rejections is Binomial(200, 0.05)."""
    a = np.zeros((48, 48), dtype=bool)
    a[28:44, 28:44] = True
    dist = ndimage.distance_transform_edt(~a)
    influence = np.exp(-dist / 6.0)
    influence[2:10, 2:10] += 1.0
    t = influence.ravel()
    rings = ring_partition(a, cell=4)
    assert rings.n_rings == 18
    k = [int(f * t.size) for f in (0.05, 0.1, 0.2)]

    def score(order):
        return float(np.mean([t[order[:n]].sum() for n in k]))

    rng = np.random.default_rng(0)
    p = []
    for _ in range(200):
        hmap = rng.random((48, 48)) + 0.02 * np.exp(-dist / 6.0)  # random beyond its proximity structure
        obs, null = ring_permutation_orders(hmap, rings, 19, rng)
        p.append(monte_carlo_p(score(obs[0]), [score(o) for o in null]))
    p = np.array(p)
    rejections = int(np.sum(p <= 0.05))
    lo, hi = stats.binom.ppf([0.0005, 0.9995], 200, 0.05)
    assert lo <= rejections <= hi, rejections
    assert 0.45 < p.mean() < 0.6  # E[p] = (1 + 20) / 2 / 20 = 0.525
    # the same maps with a planted marker in H are rejected nearly always (power of the same path)
    planted = [rng.random((48, 48)) for _ in range(20)]
    for h in planted:
        h[2:10, 2:10] += 1.0
    p_planted = [monte_carlo_p(score(o[0]), [score(q) for q in n])
                 for o, n in (ring_permutation_orders(h, rings, 19, rng) for h in planted)]
    assert np.mean(np.array(p_planted) <= 0.05) >= 0.9


def test_rings_partition_keeps_proximity():
    a = np.zeros((40, 40), dtype=bool)
    a[:, :4] = True
    rings = ring_partition(a, cell=4, cells_per_ring=20)
    # A is the first column of cells and distance grows along x only: each ring is two columns of cells
    ring_cols = rings.ring_of_cell.reshape(10, 10)
    assert (ring_cols == ring_cols[0]).all() and ring_cols[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert rings.ring_edges_px[0] == 0.0 and rings.ring_edges_px[1] == 6.5 and rings.n_rings == 5
    assert rings.ring_spans_px[1] == 4.0
    values = np.arange(100, dtype=float)
    shuffled = rings.permuted(values, np.random.default_rng(0))
    for r in range(rings.n_rings):
        in_r = rings.ring_of_cell == r
        assert sorted(shuffled[in_r]) == sorted(values[in_r])
    assert not np.array_equal(shuffled, values)
    odd = ring_partition(a, cell=4, cells_per_ring=30)  # 100 cells: the last 10 join the third ring
    assert np.bincount(odd.ring_of_cell).tolist() == [30, 30, 40]


def test_planted_map_passes_against_every_baseline():
    model, img, a = _setup()
    res = heatmap(model, img, a, kernel="blur", window=8, stride=4, max_batch=16)
    faith = faithfulness(model, img, a, res.map, window=8, heatmap_kernel="blur", n_draws=20, max_batch=32,
                         n_perm=0)
    assert set(faith.baselines) == {"random_pixels", "random_blocks", "distance_to_A"}
    assert faith.perturbation == "noise"  # validated with another perturbation than H's blur
    for b in faith.baselines.values():
        assert b.p_value == pytest.approx(1 / 21) and len(b.scores) == 20
    assert faith.faithful and faith.conditional is None
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
                             max_batch=64, n_perm=0)
        p_values.append(faith.baselines["random_pixels"].p_value)
        n_faithful += faith.faithful
    p = np.array(p_values)
    assert n_faithful <= 2  # a random map passes all three baselines about as rarely as the level says
    assert 0.3 < p.mean() < 0.7
    assert np.mean(p <= 0.05) <= 0.2
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_bad_inputs_for_the_test():
    model, img, a = _setup()
    with pytest.raises(UserError, match="expected at least one pixel inside A, found an empty mask"):
        faithfulness(model, img, np.zeros_like(a), np.zeros(a.shape), window=8)
    with pytest.raises(UserError, match="found A covering the whole 64x64 px image"):
        faithfulness(model, img, np.ones_like(a), np.zeros(a.shape), window=8)
    with pytest.raises(UserError, match="shape"):
        faithfulness(model, img, a[:10], np.zeros(a.shape), window=8)
    few = faithfulness(model, img, a, np.zeros(a.shape), window=8, n_draws=3, n_perm=5, fractions=(0.1,))
    assert sum("cannot reach" in n for n in few.notes) == 2
    assert forward_passes(1, 3, 5) == 1 + 9 + 6


def test_old_results_keep_their_sentence():
    """faithfulness.json written before the ring test (no ``conditional``) reads back with its old sentence."""
    model, img, a = _setup()
    faith = faithfulness(model, img, a, np.zeros(a.shape), window=8, n_draws=3, n_perm=0, fractions=(0.1,))
    d = faith.to_json()
    for key in ("conditional", "randomisation", "beyond_proximity"):
        d.pop(key)
    back = FaithfulnessResult.from_json(d)
    assert back.beyond_proximity is None and back.summary().startswith("H is not shown faithful")


def test_the_report_gives_the_new_sentences():
    """explain.json -> the report's answer: the ring test, the baselines and notes, in that order."""
    from matseg_nb.report.answer import explain_sentence

    model, img, a = _marker_case()
    faith = _faith(model, img, a, np.random.default_rng(3).random((SIZE, SIZE)), n_draws=3, fractions=(0.1,))
    text = explain_sentence({"faithfulness": faith.to_json()})
    assert text.startswith("H adds nothing shown beyond proximity to A") and "Unconditionally (3 draws" in text
    assert text.endswith("Note: 3 draws cannot reach p <= 0.05; use more.")


def _deletion_case():
    from _explain_helpers import box_mask, rand_image, tiny_model

    from matseg_nb.explain.faithfulness import validation_perturbation

    model, img, a = tiny_model("Unet"), rand_image(1, 64, 64, seed=3), box_mask(64, 64, (20, 36, 24, 44))
    x = torch.as_tensor(img)
    rng = np.random.default_rng(0)
    orders = {"first": [rng.permutation(64 * 64)], "second": [rng.permutation(64 * 64)]}
    return model, x, a, validation_perturbation(x, "blur", 8, 0).field, orders, [0.05, 0.2]


def test_deletion_curves_on_a_box_equal_whole_passes_to_float32_rounding():
    """Deletion scores through ``crop`` = A's box (the UNet box decoder runs) and any batch size equal the
    float64 computation on whole images within the float32 bound 4 K max|p32 - p64| per A pixel; a box one
    pixel short of A's is caught."""
    from _explain_helpers import EPS32, probs64

    from matseg_nb.explain import ProbFn
    from matseg_nb.explain.boxes import mask_box
    from matseg_nb.explain.faithfulness import deletion_batch, deletion_curves

    model, x, a, field, orders, fracs = _deletion_case()
    at = torch.as_tensor(a.astype(np.float32))
    assert mask_box(at) == (20, 36, 24, 44)
    fn = ProbFn(model)
    assert fn.box_decoder and deletion_batch(fn, (64, 64)) == 8 and deletion_batch(fn, (512, 512)) == 4
    z64 = probs64(model, x[None])[0]
    n_a = float(a.sum())
    ref, wrong = {}, {}
    for name, (order,) in orders.items():
        for f in fracs:
            xp = x.clone().reshape(1, -1)
            idx = torch.as_tensor(order[: int(round(f * a.size))])
            xp[:, idx] = field.reshape(1, -1)[:, idx]
            xp = xp.reshape(x.shape)
            ref.setdefault((name, 0), []).append(float(((z64 - probs64(model, xp[None])[0]).abs() * at).sum()) / n_a)
            short = (20, 35, 24, 44)  # one row short of A's box
            zs, zps = (fn(v[None], crop=short)[0] * at[20:35, 24:44] for v in (x, xp))
            wrong.setdefault((name, 0), []).append(float((zs - zps).abs().sum()) / n_a)
    bound = max(_score_bound(model, x), 8 * EPS32 * max(max(v) for v in ref.values()))
    for batch in (None, 1, 3):
        got = deletion_curves(fn, x, at, field, orders, fracs, max_batch=batch)
        err = max(abs(g - r) for key in ref for g, r in zip(got[key], ref[key], strict=True))
        assert err <= bound, f"batch {batch}: max error {err:.3g} > float32 bound {bound:.3g}"
    assert max(abs(g - r) for key in ref for g, r in zip(wrong[key], ref[key], strict=True)) > 10 * bound


def test_batch_size_changes_no_statistic():
    """The same seed gives the same draws, shuffles and p-values in batches of 1 and by default."""
    model, x, a, *_ = _deletion_case()
    hmap = np.random.default_rng(1).random(a.shape).astype(np.float32)
    kw = {"window": 8, "cell": 4, "n_draws": 3, "n_perm": 5, "fractions": (0.1,)}
    one, auto = (faithfulness(model, x.numpy(), a, hmap, max_batch=b, **kw) for b in (1, None))
    bound = 2 * _score_bound(model, x)  # each within the float32 bound of the float64 scores
    for name in one.baselines:
        assert one.baselines[name].p_value == auto.baselines[name].p_value
        assert np.abs(np.subtract(one.baselines[name].scores, auto.baselines[name].scores)).max() <= bound
    assert one.conditional.p_value == auto.conditional.p_value
    assert np.abs(np.subtract(one.conditional.scores, auto.conditional.scores)).max() <= bound


def _score_bound(model, x: torch.Tensor) -> float:
    """The float32 rounding bound of a deletion score (per A pixel): 4 K max|p32 - p64| on the image."""
    from _explain_helpers import probs64

    from matseg_nb.explain import ProbFn

    z64 = probs64(model, x[None])[0]
    plain = ProbFn(model, shortcuts=False, channels_last=False)(x[None])[0]
    return max(4 * z64.shape[0] * float((plain.double() - z64).abs().max()), 1e-7)


def test_orders_equal_lexsort_with_the_same_draws():
    """The deletion orders (one stable sort of rank codes in tie-break order) are ``np.lexsort`` of the same
    random draws, element for element: ties (cells, blocks, distances, -0.0 and 0.0), a map with NaN."""
    from matseg_nb.explain.faithfulness import _block_order, _distance_order, _top_order, ranked

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, 1000)
    tie = rng.permutation(1000)
    assert np.array_equal(ranked(codes, tie), np.lexsort((tie, codes)))
    hmap = np.round(rng.random((40, 48)), 1)  # many ties
    hmap[0, :3] = [0.0, -0.0, 0.0]
    with_nan = hmap.copy()
    with_nan[5, 5] = np.nan
    for m in (hmap, with_nan, np.zeros((40, 48))):
        want = np.lexsort((np.random.default_rng(1).permutation(m.size), -m.ravel()))
        assert np.array_equal(_top_order(m, np.random.default_rng(1)), want)
    rings = ring_partition(box_mask_64(), 4, 8)
    values = np.round(rings.cell_means(np.random.default_rng(2).random((64, 64))), 1)
    want = np.lexsort((np.random.default_rng(3).permutation(64 * 64), -rings.to_map(values).ravel()))
    assert np.array_equal(_top_order(values, np.random.default_rng(3), rings.cell_of_pixel), want)
    r1, r2 = np.random.default_rng(4), np.random.default_rng(4)
    oy, ox = r2.integers(0, 8, size=2)
    by, bx = (np.arange(40) + oy) // 8, (np.arange(48) + ox) // 8
    rank = r2.permutation(int((by[:, None] * (bx.max() + 1) + bx[None, :]).max()) + 1)
    want = np.lexsort((r2.permutation(40 * 48), rank[(by[:, None] * (bx.max() + 1) + bx[None, :]).ravel()]))
    assert np.array_equal(_block_order((40, 48), 8, r1), want)
    dist = ndimage.distance_transform_edt(~box_mask_64())
    want = np.lexsort((np.random.default_rng(5).permutation(dist.size), dist.ravel()))
    assert np.array_equal(_distance_order(dist, np.random.default_rng(5)), want)


def box_mask_64() -> np.ndarray:
    a = np.zeros((64, 64), dtype=bool)
    a[20:36, 24:44] = True
    return a
