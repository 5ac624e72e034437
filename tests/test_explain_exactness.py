"""Exactness coverage of the heatmap shortcuts: each case equals the literal loop (one whole float32 forward
pass per location, no shortcuts) to 1e-5 relative (of the largest H), and the shortcuts really ran."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _explain_helpers import box_mask, rand_image

from matseg_nb.explain import ProbFn, heatmap, heatmap_literal


def _model(arch: str, encoder: str, channels: int = 1, **kw) -> torch.nn.Module:
    """smp ``arch`` on a torchvision-style ``encoder`` with non-trivial BatchNorm statistics."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, in_channels=channels, classes=3,
                               **kw).eval()
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    return model


CASES = {
    "resnet50-bottleneck-os16": (lambda: _model("DeepLabV3Plus", "resnet50", encoder_output_stride=16), 1, 64, 64),
    "resnet50-bottleneck-os8": (lambda: _model("DeepLabV3Plus", "resnet50", encoder_output_stride=8), 1, 64, 64),
    "deeplabv3-os8": (lambda: _model("DeepLabV3", "resnet18"), 1, 64, 64),
    "odd-size-padded": (lambda: _model("Unet", "resnet18"), 1, 67, 83),
    "multi-channel": (lambda: _model("Unet", "resnet18", channels=3), 3, 64, 64),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fast_heatmap_equals_literal_loop(case):
    build, channels, h, w = CASES[case]
    model = build()
    img, a = rand_image(channels, h, w, seed=3), box_mask(h, w, (h // 2, h // 2 + 14, 10, 34))
    locations = [(0, 0), (1, 2), (2, 1), (3, 3)]  # a few locations: corner, interior, near A
    fast = heatmap(ProbFn(model, channels_last=False), img, a, window=16, stride=16, max_batch=4,
                   locations=locations)
    assert fast.meta()["incremental"] and fast.meta()["box_decoder"], case  # both shortcuts ran
    lit = heatmap_literal(model, img, a, window=16, stride=16, locations=locations)
    assert lit.grid.max() > 1e-3 and lit.valid.sum() == 4
    np.testing.assert_allclose(fast.grid, lit.grid, rtol=1e-5, atol=1e-5 * lit.grid.max())


@pytest.mark.parametrize("arch", ["Unet", "DeepLabV3", "DeepLabV3Plus"])
def test_tiled_heatmap_equals_literal_loop_over_predict_tiled(arch):
    """On an image larger than the run's tile, H uses the reported (tiled) prediction path."""
    from _explain_helpers import tiny_model

    from matseg_nb.explain import TiledProbFn, prediction_fn
    from matseg_nb.explain.kernels import make_perturbation
    from matseg_nb.models.tiling import predict_tiled

    model, img, a = tiny_model(arch, 1), rand_image(1, 96, 80, seed=4), box_mask(96, 80, (40, 60, 20, 50))
    fn, note = prediction_fn(model, (96, 80), {"training": {"tile_size": 64, "tile_overlap": 32}})
    assert isinstance(fn, TiledProbFn) and note == ""
    locations = [(0, 0), (1, 1), (2, 2)]
    res = heatmap(fn, img, a, window=16, stride=24, locations=locations, max_batch=3)
    x = torch.as_tensor(img)
    pert = make_perturbation("blur", x, 16)
    z = predict_tiled(model, x, 3, 64, 32) * torch.as_tensor(a)
    for i, j in locations:
        zp = predict_tiled(model, pert.apply(x, res.ys[i], res.xs[j]), 3, 64, 32) * torch.as_tensor(a)
        lit = float((z - zp).abs().sum())
        assert res.grid[i, j] == pytest.approx(lit, rel=1e-5, abs=1e-6)
    if arch == "DeepLabV3":  # global pooling: the whole-image pass gives another H
        whole = heatmap(model, img, a, window=16, stride=24, locations=locations)
        assert np.abs(whole.grid - res.grid).max() > 1e-3 * res.grid.max()
    assert prediction_fn(model, (60, 60), {"training": {"tile_size": 64}})[0].__class__.__name__ == "ProbFn"
