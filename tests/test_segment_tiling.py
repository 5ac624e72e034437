"""Tiled inference for deployment: equal to a whole-image forward where it must be, blending weights sum to
1, any size, input_scale models, bounded bands, flip TTA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from matseg_nb.models import build_model
from matseg_nb.models.tiling import (
    ScaledInputModel,
    blend_coverage,
    iter_tiled_bands,
    plan_tiles,
    predict_tiled,
)


class Pointwise(nn.Module):
    """1x1 convolution: its output at a pixel depends on that pixel only, so any tiling equals the whole
    forward exactly, whatever the blending (a convex combination of equal values)."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, k, 1)
        self.encoder = nn.Identity()
        self.encoder.output_stride = 1

    def forward(self, x):
        return self.conv(x)


def _whole(model, x):
    with torch.no_grad():
        return model(x[None])[0].softmax(0)


def test_single_tile_equals_whole_forward_without_blending():
    model, _ = build_model("tu-test_resnet", "Unet", 1, 3, "none")
    model.eval()
    x = torch.rand(1, 96, 128)
    for blend in ("gaussian", "hann", "constant"):
        probs = predict_tiled(model, x, 3, tile=128, overlap=32, blend=blend)
        assert (probs - _whole(model, x)).abs().max() <= 1e-5


@pytest.mark.parametrize("hw", [(100, 77), (64, 64), (131, 250), (7, 300)])
def test_many_tiles_any_size_equal_whole_forward_for_pointwise_model(hw):
    model = Pointwise().eval()
    x = torch.rand(1, *hw)
    probs = predict_tiled(model, x, 3, tile=32, overlap=8, blend="gaussian", batch_size=3)
    assert probs.shape == (3, *hw)
    assert (probs - _whole(model, x)).abs().max() <= 1e-5


@pytest.mark.parametrize("blend", ["gaussian", "hann", "constant"])
def test_blending_weights_sum_to_one(blend):
    for hp, wp, tile, overlap in [(300, 260, 96, 32), (64, 200, 64, 16), (97, 97, 40, 20)]:
        cov = blend_coverage(plan_tiles(hp, wp, tile, overlap), blend)
        assert cov.shape == (hp, wp) and (cov - 1).abs().max() < 1e-5


def test_plan_covers_image_flush_at_edges():
    plan = plan_tiles(1000, 640, 256, 64)
    assert plan.ys[0] == 0 and plan.ys[-1] + plan.th == 1000 and plan.xs[-1] + plan.tw == 640
    assert all(b - a <= 256 - 64 for a, b in zip(plan.ys, plan.ys[1:], strict=False))


def test_bands_cover_every_row_once_with_bounded_height():
    model = Pointwise().eval()
    x = torch.rand(1, 300, 90)
    rows, max_band = 0, 0
    last = 0
    for y0, y1, band in iter_tiled_bands(model, x, 3, tile=64, overlap=16, batch_size=2, blend="gaussian"):
        assert y0 == last and band.shape == (3, y1 - y0, 90)
        last, rows, max_band = y1, rows + (y1 - y0), max(max_band, y1 - y0)
    assert rows == 300 and max_band <= 64


def test_input_scale_model_tiles_like_its_whole_forward():
    inner, _ = build_model("tu-test_resnet", "Unet", 1, 2, "none")
    model = ScaledInputModel(inner, 0.5).eval()
    x = torch.rand(1, 128, 128)
    probs = predict_tiled(model, x, 2, tile=128, overlap=0)  # one tile: exact
    assert (probs - _whole(model, x)).abs().max() <= 1e-5
    big = predict_tiled(model, torch.rand(1, 300, 200), 2, tile=128, overlap=32, blend="gaussian")
    assert big.shape == (2, 300, 200) and torch.allclose(big.sum(0), torch.ones(300, 200), atol=1e-5)


def test_flip_tta_is_exact_for_a_flip_equivariant_model_and_changes_a_conv_net():
    model = Pointwise().eval()
    x = torch.rand(1, 70, 50)
    assert (predict_tiled(model, x, 3, 32, 8, tta=True) - predict_tiled(model, x, 3, 32, 8)).abs().max() < 1e-6
    net, _ = build_model("tu-test_resnet", "Unet", 1, 3, "none")
    net.eval()
    y = torch.rand(1, 64, 64)
    assert (predict_tiled(net, y, 3, 64, tta=True) - predict_tiled(net, y, 3, 64)).abs().max() > 1e-4
