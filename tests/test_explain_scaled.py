"""Exact shortcuts through the ``input_scale`` wrapper (:mod:`matseg_nb.explain.scaled`): the footprint and
read boxes are exactly where the resamplings change / read, the heatmap through a ScaledInputModel equals the
float64 reference within the float32 bound with all shortcuts running, and a footprint one pixel short fails."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _explain_helpers import assert_float32_exact, box_mask, rand_image, reference64
from test_explain_exactness import _model

from matseg_nb.explain import ProbFn, heatmap
from matseg_nb.explain.scaled import area_footprint, bilinear_box, bilinear_reads
from matseg_nb.models.tiling import with_input_scale


@pytest.mark.parametrize(("full", "inner"), [((64, 96), (32, 48)), ((67, 83), (32, 64)), ((100, 96), (64, 64))])
def test_footprint_and_reads_match_the_resamplings(full, inner):
    """Brute force: the inner pixels that change when one window changes, and the inner logits a box reads."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        y0, x0 = int(rng.integers(0, full[0] - 5)), int(rng.integers(0, full[1] - 5))
        win = (y0, y0 + int(rng.integers(1, 6)), x0, x0 + int(rng.integers(1, 6)))
        x = torch.zeros(1, 1, *full)
        x[..., win[0] : win[1], win[2] : win[3]] = 1.0
        hit = F.interpolate(x, size=inner, mode="area")[0, 0] != 0
        fy, fx = hit.any(1).nonzero()[:, 0], hit.any(0).nonzero()[:, 0]
        assert area_footprint(win, full, inner) == (int(fy.min()), int(fy.max()) + 1, int(fx.min()), int(fx.max()) + 1)
        logits = torch.randn(1, 2, *inner, dtype=torch.float64)
        read = bilinear_reads(win, full, inner)
        up = F.interpolate(logits, size=full, mode="bilinear", align_corners=False)[..., win[0] : win[1], win[2] : win[3]]
        crop = logits[..., read[0] : read[1], read[2] : read[3]]
        torch.testing.assert_close(bilinear_box(crop.float(), read, inner, full, win), up.float(), rtol=1e-6, atol=1e-6)
        assert read[1] - read[0] <= win[1] - win[0] + 2 and read[3] - read[2] <= win[3] - win[2] + 2  # small


CASES = {
    "unet-0.5-odd": ("Unet", 0.5, 67, 83),
    "unet-0.75": ("Unet", 0.75, 96, 100),
    "deeplabv3plus-0.5": ("DeepLabV3Plus", 0.5, 96, 112),
}


@pytest.mark.parametrize("case", list(CASES))
def test_heatmap_through_scaled_wrapper_is_exact(case):
    arch, scale, h, w = CASES[case]
    model = with_input_scale(_model(arch, "resnet18"), scale)
    img, a = rand_image(1, h, w, seed=3), box_mask(h, w, (h // 2, h // 2 + 14, 10, 34))
    locations = [(0, 0), (1, 2), (2, 1), (3, 3), (2, 4)]
    lines: list[str] = []
    fast = heatmap(ProbFn(model, channels_last=False), img, a, window=16, stride=16, max_batch=4,
                   locations=locations, log=lines.append)
    names = fast.meta()["shortcuts"]
    assert names[0] == f"input_scale {scale:g} (window footprint at model scale)"
    assert names[1].startswith("fused BN (") and ("polyphase UNet decoder" in names[1]) == (arch == "Unet")
    assert names[2:] == [f"box decoder ({arch})", "incremental encoder (ResNetEncoder)"]
    assert "exact shortcuts: input_scale" in lines[0] and "incremental encoder" in lines[0]
    ref = reference64(model, img, a, window=16, stride=16, locations=locations)
    assert np.nanmax(ref[0]) > 1e-2
    assert_float32_exact(fast.grid, ref)


def test_footprint_one_pixel_short_fails(monkeypatch):
    import matseg_nb.explain.scaled as scaled

    model = with_input_scale(_model("Unet", "resnet18"), 0.5)
    img, a = rand_image(1, 67, 83, seed=3), box_mask(67, 83, (33, 47, 10, 34))
    locations = [(1, 2), (2, 1), (2, 4)]
    ref = reference64(model, img, a, window=16, stride=16, locations=locations)
    short = scaled.area_footprint
    monkeypatch.setattr(scaled, "area_footprint", lambda win, full, inner: (*short(win, full, inner)[:3],
                                                                            short(win, full, inner)[3] - 1))
    fast = heatmap(ProbFn(model, channels_last=False), img, a, window=16, stride=16, max_batch=4, locations=locations)
    with pytest.raises(AssertionError, match="float32 bound"):
        assert_float32_exact(fast.grid, ref)
