"""The fused inference form (:mod:`matseg_nb.explain.fused`): BatchNorm folded and polyphase UNet decoder blocks
give the original model's numbers within the float32 rounding bound against float64 (``tensor_bound``: 4 x the
plain float32 model's own max error, floored at 8 eps32 x the scale), on whole passes, through the
``input_scale`` wrapper and on crops in the box decoder; the original model is untouched; a polyphase kernel
with one tap row not summed, or the phases swapped, fails the same bound."""

from __future__ import annotations

import copy

import pytest
import torch
from _explain_helpers import assert_tensor_exact, probs64, rand_image, tiny_model
from test_explain_shortcuts import decoder_logits, resnet18_model

from matseg_nb.explain import ProbFn
from matseg_nb.explain.fused import PHASE_ROWS, PolyphaseDecoderBlock, fuse_for_explain, polyphase_unet
from matseg_nb.models.tiling import with_input_scale


def _randomise_bn(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean = 0.4 * torch.rand(bn.num_features, generator=g) - 0.2
            bn.running_var = 0.5 + torch.rand(bn.num_features, generator=g)
            bn.weight.data = 0.5 + torch.rand(bn.num_features, generator=g)
            bn.bias.data = 0.4 * torch.rand(bn.num_features, generator=g) - 0.2
    return model


def _logits64(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model(x), copy.deepcopy(model).double()(x.double())


@pytest.mark.parametrize("arch", ["Unet", "DeepLabV3Plus", "DeepLabV3"])
def test_fused_whole_pass_equals_the_model(arch):
    model = _randomise_bn(resnet18_model(arch))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_explain(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.model.encoder.modules())
    assert fused.folded >= 20 and fused.polyphase == (5 if arch == "Unet" else 0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.as_tensor(rand_image(2, 64, 96, seed=4)).reshape(2, 1, 64, 96)
    plain, ref = _logits64(model, x)
    with torch.no_grad():
        assert_tensor_exact(fused.model(x), plain, ref, f"fused {arch}")
        cl = copy.deepcopy(fused.model).to(memory_format=torch.channels_last)
        assert_tensor_exact(cl(x.contiguous(memory_format=torch.channels_last)), plain, ref, "channels_last")


def test_fused_through_the_scaled_wrapper_and_probfn():
    model = with_input_scale(_randomise_bn(resnet18_model("Unet")), 0.5)
    x = torch.as_tensor(rand_image(1, 128, 112, seed=5))[None]
    fn = ProbFn(model)
    assert fn.model is model and fn.fused is not None and fn.core is fn.fused.model.inner
    assert fn.shortcut_names[:2] == ["input_scale 0.5 (window footprint at model scale)",
                                     "fused BN (30 convolutions) + polyphase UNet decoder (5 blocks)"]
    plain = ProbFn(model, shortcuts=False)
    assert plain.fused is None and "fused" not in " ".join(plain.shortcut_names)
    assert_tensor_exact(fn(x), plain(x), probs64(model, x), "ProbFn through input_scale")
    assert fn.exact() is fn
    # the box decoder on crops runs the polyphase blocks too
    box = (40, 70, 10, 50)
    assert_tensor_exact(fn(x, crop=box), plain(x, crop=box), probs64(model, x, box), "box decoder, fused")
    assert fn.used_box_decoder


@pytest.mark.parametrize("box", [(0, 96, 0, 96), (10, 40, 51, 90), (91, 96, 0, 5), (33, 34, 60, 61)])
def test_polyphase_blocks_on_crops_equal_the_whole_decoder(box):
    from matseg_nb.explain.shortcuts import decode_box, decoder_reads

    model = _randomise_bn(tiny_model("Unet"))
    fused = fuse_for_explain(model).model
    assert all(isinstance(b, PolyphaseDecoderBlock) for b in fused.decoder.blocks)
    with torch.no_grad():
        feats = fused.encoder(torch.as_tensor(rand_image(1, 96, 96, seed=6))[None])
        shapes = [tuple(f.shape[-2:]) for f in feats]
        plain, ref = decoder_logits(model, feats, box)
        reads = decoder_reads(fused, shapes, box)
        crops = [feats[0]] + [f[..., reads[lv][0] : reads[lv][1], reads[lv][2] : reads[lv][3]]
                              for lv, f in enumerate(feats) if lv]
        origins = [(0, 0)] + [(reads[lv][0], reads[lv][2]) for lv in range(1, 6)]
        assert_tensor_exact(decode_box(fused, crops, box, origins, shapes), plain, ref, f"polyphase on {box}")


def test_polyphase_falls_back_when_the_upsampling_is_not_x2():
    model = _randomise_bn(tiny_model("Unet"))
    fused = fuse_for_explain(model).model
    blk, orig = fused.decoder.blocks[2], model.decoder.blocks[2]
    n_low = blk.low_channels
    low, skip = torch.randn(1, n_low, 5, 7), torch.randn(1, orig.conv1[0].in_channels - n_low, 11, 13)
    with torch.no_grad():
        m64 = copy.deepcopy(orig).double()
        assert_tensor_exact(blk(low, 11, 13, skip), orig(low, 11, 13, skip), m64(low.double(), 11, 13, skip.double()),
                            "fallback at 11 x 13")


@pytest.mark.parametrize("planted", ["rows-not-summed", "phases-swapped"])
def test_planted_polyphase_error_fails_the_bound(planted):
    """A phase kernel whose second tap takes w1 only (w2 dropped), or phase 0 and 1 swapped, is detected."""
    rows = PHASE_ROWS.clone()
    if planted == "rows-not-summed":
        rows[0, 1] = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    else:
        rows = rows[[1, 0]]
    model = _randomise_bn(resnet18_model("Unet"))
    x = torch.as_tensor(rand_image(1, 64, 64, seed=7))[None]
    plain, ref = _logits64(model, x)
    good = fuse_for_explain(model, polyphase=False).model
    bad = copy.deepcopy(good)
    assert polyphase_unet(good) == polyphase_unet(bad, rows) == 5
    with torch.no_grad():
        assert_tensor_exact(good(x), plain, ref, "right phases")
        with pytest.raises(AssertionError, match="float32 bound"):
            assert_tensor_exact(bad(x), plain, ref, planted)


def _windows_batch(x: torch.Tensor, wins: list) -> torch.Tensor:
    xb = x.repeat(len(wins), 1, 1, 1)
    for b, (y0, y1, x0, x1) in enumerate(wins):
        xb[b, :, y0:y1, x0:x1] = 0.5
    return xb


def test_cached_skip_halves_equal_whole_passes():
    """After ``prepare``, whole-decoder passes take each block's skip convolution from the prepared image outside
    the changed boxes (through the input_scale wrapper too)."""
    for scale in (1.0, 0.5):
        model = with_input_scale(_randomise_bn(resnet18_model("Unet")), scale)
        x = torch.as_tensor(rand_image(1, 150, 170, seed=8))[None]
        fn, plain = ProbFn(model), ProbFn(model, shortcuts=False)
        fn.prepare(x)
        assert fn._skips is not None and fn.shortcut_names[-1] == "incremental UNet skip convolutions (changed boxes only)"
        wins = [(0, 16, 0, 16), (134, 150, 154, 170), (60, 76, 80, 96), (140, 150, 0, 10)]
        xb = _windows_batch(x, wins)
        ref = plain(xb)
        assert (ref - plain(x)).abs().max() > 1e-4
        assert_tensor_exact(fn(xb, windows=wins), ref, probs64(model, xb), f"skip halves, scale {scale}")
        fn.prepare(None)
        assert fn._skips is None


def test_skip_halves_on_a_box_too_small_fail(monkeypatch):
    """Planted: recomputing the skip convolution on the changed box without its 1 px reach is detected."""
    import matseg_nb.explain.boxes as boxes

    model = _randomise_bn(resnet18_model("Unet"))
    x = torch.as_tensor(rand_image(1, 128, 128, seed=9))[None]
    wins = [(40, 56, 60, 76), (100, 116, 8, 24)]
    xb = _windows_batch(x, wins)
    plain = ProbFn(model, shortcuts=False)(xb)
    fn = ProbFn(model)
    fn.prepare(x)
    real = boxes.grow
    monkeypatch.setattr(boxes, "grow", lambda b, m, h, w: real(b, m - 1, h, w))
    with pytest.raises(AssertionError, match="float32 bound"):
        assert_tensor_exact(fn(xb, windows=wins), plain, probs64(model, xb), "skip box without its reach")
