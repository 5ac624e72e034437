"""Heatmap: the fast construction, the literal loop and Captum's Occlusion all equal H computed in float64,
within the float32 rounding bound of ``_explain_helpers.reference64`` (grids and maps: a map pixel is a mean
of grid values, so the same bound holds); the bound holds on every CPU kernel path."""

from __future__ import annotations

import numpy as np
import pytest
from _explain_helpers import assert_float32_exact, box_mask, rand_image, reference64, tiny_model

from matseg_nb.errors import UserError
from matseg_nb.explain import KERNELS, heatmap, heatmap_captum, heatmap_literal, upsample
from matseg_nb.explain.grid import grid_locations, region_grid_mask


def assert_maps_exact(ref, window, stride, shape, *maps) -> None:
    """Each image-sized map equals the float64 reference's spread map within the float32 bound."""
    grid, bound = ref
    ref_map = upsample(np.nan_to_num(grid), ~np.isnan(grid), shape, window, stride)
    for m in maps:
        err = float(np.abs(m.astype(np.float64) - ref_map).max())
        assert err <= bound, f"max |map - map64| = {err:.3g} > float32 bound {bound:.3g}"


@pytest.mark.parametrize("arch", ["Unet", "DeepLabV3Plus"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("stride", [4, 8])
def test_fast_equals_literal_and_captum(arch, channels, stride):
    model = tiny_model(arch, channels)
    img, a = rand_image(channels), box_mask()
    fast = heatmap(model, img, a, kernel="blur", window=8, stride=stride, max_batch=7)
    lit = heatmap_literal(model, img, a, kernel="blur", window=8, stride=stride)
    cap = heatmap_captum(model, img, a, kernel="blur", window=8, stride=stride, perturbations_per_eval=5)
    assert fast.grid.shape == (len(grid_locations((48, 40), 8, stride)[0]), len(grid_locations((48, 40), 8, stride)[1]))
    assert fast.grid.max() > 1e-3  # the perturbations do change the prediction in A
    ref = reference64(model, img, a, kernel="blur", window=8, stride=stride)
    assert_float32_exact(fast.grid, ref)
    assert_float32_exact(lit.grid, ref)
    assert_maps_exact(ref, 8, stride, (48, 40), fast.map, lit.map, cap.map)
    assert fast.map.shape == (48, 40)


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_every_kernel_matches_literal_and_captum(kernel):
    model = tiny_model("Unet", 1)
    img, a = rand_image(1), box_mask()
    fast = heatmap(model, img, a, kernel=kernel, window=8, stride=8, max_batch=4)
    lit = heatmap_literal(model, img, a, kernel=kernel, window=8, stride=8)
    cap = heatmap_captum(model, img, a, kernel=kernel, window=8, stride=8, perturbations_per_eval=3)
    ref = reference64(model, img, a, kernel=kernel, window=8, stride=8)
    assert_float32_exact(fast.grid, ref)
    assert_float32_exact(lit.grid, ref)
    assert_maps_exact(ref, 8, 8, (48, 40), fast.map, cap.map)
    assert fast.grid.max() > 0


def test_deeplabv3_binary_model_and_stride_one():
    model = tiny_model("DeepLabV3", 1, classes=1)  # binary: K = 2 as [1 - p, p]
    img, a = rand_image(1, 32, 32), box_mask(32, 32, (8, 20, 8, 20))
    fast = heatmap(model, img, a, kernel="constant", window=24, stride=1, max_batch=16)
    lit = heatmap_literal(model, img, a, kernel="constant", window=24, stride=1)
    assert fast.grid.shape == (9, 9)
    ref = reference64(model, img, a, kernel="constant", window=24, stride=1)
    assert_float32_exact(fast.grid, ref)
    assert_float32_exact(lit.grid, ref)


def test_region_restriction_computes_only_touching_windows():
    model = tiny_model("Unet", 1)
    img, a = rand_image(1), box_mask()
    region = box_mask(box=(0, 8, 0, 8))
    fast = heatmap(model, img, a, window=8, stride=4, region=region, max_batch=3)
    full = heatmap_literal(model, img, a, window=8, stride=4)
    assert fast.valid.sum() == 4  # windows at rows/cols 0 and 4 touch the 8x8 corner
    grid, bound = reference64(model, img, a, window=8, stride=4)
    assert np.abs(fast.grid[fast.valid] - grid[fast.valid]).max() <= bound
    assert np.abs(full.grid - grid).max() <= bound
    assert np.all(fast.grid[~fast.valid] == 0)
    assert np.all(fast.map[16:, 16:] == 0)


def test_grid_and_upsampling_rules():
    ys, xs = grid_locations((10, 7), 4, 3)
    assert ys == [0, 3, 6] and xs == [0, 3]  # ceil((L - w) / s) + 1 starts, last window clipped (Captum)
    grid = np.arange(6, dtype=float).reshape(3, 2)
    valid = np.ones_like(grid, dtype=bool)
    spread = upsample(grid, valid, (10, 7), 4, 3, "spread")
    assert spread[0, 0] == 0 and spread[3, 3] == pytest.approx((0 + 1 + 2 + 3) / 4)
    assert spread[9, 6] == pytest.approx(5)
    near = upsample(grid, valid, (10, 7), 4, 3, "nearest")
    assert near[4, 4] == 3 and near[9, 6] == 5
    corner = np.zeros((10, 7), dtype=bool)
    corner[9, 6] = True
    touching = region_grid_mask(corner, 4, 3)
    assert touching.sum() == 1 and touching[2, 1]


def test_bad_inputs_are_user_errors():
    model = tiny_model("Unet", 1)
    img = rand_image(1)
    with pytest.raises(UserError, match="mask A: expected shape"):
        heatmap(model, img, np.ones((10, 10)))
    with pytest.raises(UserError, match="empty mask"):
        heatmap(model, img, np.zeros((48, 40)), window=8, stride=8)
    with pytest.raises(UserError, match="kernel"):
        heatmap(model, img, box_mask(), kernel="sharpen")
    with pytest.raises(UserError, match=r"--window: expected 1..40 px \(the image is 48x40\), found 64"):
        heatmap(model, img, box_mask(), window=64)
    with pytest.raises(UserError, match="--stride: expected >= 1 px, found 0"):
        heatmap(model, img, box_mask(), window=8, stride=0)
