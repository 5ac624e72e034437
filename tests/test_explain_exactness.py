"""Exactness coverage of the heatmap shortcuts: each case equals H computed in float64 on the same inputs
(one whole forward pass per location, no shortcuts) within the float32 rounding bound of
``_explain_helpers.reference64`` (4 |A| K max|p32 - p64|), which holds on every CPU kernel path
(ONEDNN_MAX_CPU_ISA unset, AVX2, AVX512_CORE); the shortcuts really ran; and a planted error (one box
off by one pixel, a window one pixel off) fails the same check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _explain_helpers import assert_float32_exact, box_mask, rand_image, reference64

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
    ref = reference64(model, img, a, window=16, stride=16, locations=locations)
    assert_float32_exact(fast.grid, ref)
    assert_float32_exact(lit.grid, ref)


PLANTED = {  # one box off by one pixel in each shortcut, and the perturbed window one pixel off
    "incremental-box-short": ("matseg_nb.explain.incremental", "_forward_span",
                              lambda f: lambda lo, hi, u, n: (f(lo, hi, u, n)[0], max(f(lo, hi, u, n)[0],
                                                                                      f(lo, hi, u, n)[1] - 1))),
    "unet-box-grown-short": ("matseg_nb.explain.shortcuts", "grow",
                             lambda f: lambda b, m, h, w: f(b, max(0, m - 1), h, w)),
    "window-off-by-one": ("matseg_nb.explain.kernels.Perturbation", "patch",
                          lambda f: lambda self, y0, x0: f(self, y0, x0 + 1)),
}


@pytest.mark.parametrize("planted", list(PLANTED))
def test_planted_error_fails_the_float32_bound(planted, monkeypatch):
    """The bound is tight enough to catch a real error: each planted error exceeds it."""
    import importlib

    module, attr, wrap = PLANTED[planted]
    mod_name, _, cls = module.rpartition(".") if module.endswith("Perturbation") else (module, "", "")
    target = getattr(importlib.import_module(mod_name), cls) if cls else importlib.import_module(module)
    model = CASES["odd-size-padded"][0]()
    img, a = rand_image(1, 67, 83, seed=3), box_mask(67, 83, (33, 47, 10, 34))
    locations = [(0, 0), (1, 2), (2, 1), (3, 3)]
    ref = reference64(model, img, a, window=16, stride=16, locations=locations)
    monkeypatch.setattr(target, attr, wrap(getattr(target, attr)))
    fast = heatmap(ProbFn(model, channels_last=False), img, a, window=16, stride=16, max_batch=4,
                   locations=locations)
    with pytest.raises(AssertionError, match="float32 bound"):
        assert_float32_exact(fast.grid, ref)


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
