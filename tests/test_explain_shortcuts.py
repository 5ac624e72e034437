"""Exact heatmap shortcuts: the UNet decoder on a box and the incremental ResNet encoder give the
numbers of whole forward passes (pure functions first, then through ``heatmap``).

Every comparison is against the same quantity computed in float64, within the float32 rounding bound of
that tensor (``_explain_helpers.tensor_bound``: 4 x the plain float32 computation's own max error, floored
at 8 eps32 x its scale; heatmaps: ``reference64``), so it holds on every CPU kernel path (ONEDNN_MAX_CPU_ISA
unset, AVX2, AVX512_CORE) while a box one pixel short (``test_explain_exactness.py``) fails it."""

from __future__ import annotations

import pytest
import torch
from _explain_helpers import (
    assert_float32_exact,
    assert_tensor_exact,
    box_mask,
    probs64,
    rand_image,
    reference64,
    tiny_model,
)
from _model_helpers import tiny_smp

from matseg_nb.explain import ProbFn, heatmap, heatmap_literal
from matseg_nb.explain.incremental import plan, resnet_units, supports_incremental
from matseg_nb.explain.shortcuts import decoder_reads, supports_box


def resnet18_model(arch: str, seed: int = 0) -> torch.nn.Module:
    """smp ``arch`` on torchvision-style resnet18 (smp ResNetEncoder) with non-trivial BatchNorm statistics."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    model = getattr(smp, arch)(encoder_name="resnet18", encoder_weights=None, in_channels=1, classes=3).eval()
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    return model


def poison_outside(feats: list[torch.Tensor], reads: dict) -> list[torch.Tensor]:
    """Copies of the feature maps with NaN everywhere except the box ``reads[level]`` of each level."""
    out = [f.clone() for f in feats]
    for lv, f in enumerate(out):
        keep = torch.zeros(f.shape[-2:], dtype=torch.bool)
        if lv in reads:
            r = reads[lv]
            keep[r[0] : r[1], r[2] : r[3]] = True
        f[..., ~keep] = float("nan")
    return out


def decoder_logits(model: torch.nn.Module, feats: list[torch.Tensor], box) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole decoder and head's logits on ``box``: (float32, float64 on the same float32 features)."""
    import copy

    m64 = copy.deepcopy(model).double()
    crop = (..., slice(box[0], box[1]), slice(box[2], box[3]))
    with torch.no_grad():
        plain = model.segmentation_head(model.decoder(feats))[crop]
        ref = m64.segmentation_head(m64.decoder([f.double() for f in feats]))[crop]
    return plain, ref


def test_box_arithmetic():
    from matseg_nb.explain.boxes import area, clip, grow, halve, join, meet, relative

    assert halve((3, 9, 0, 1)) == (1, 5, 0, 1)  # covers rows 3..8 at half resolution
    assert grow((0, 4, 5, 8), 2, 6, 9) == (0, 6, 3, 9)
    assert meet((0, 4, 0, 4), (4, 8, 0, 4)) is None and meet((0, 4, 0, 4), (2, 8, 1, 2)) == (2, 4, 1, 2)
    assert join(None, (1, 2, 3, 4)) == (1, 2, 3, 4) and join((0, 1, 0, 1), (5, 6, 5, 6)) == (0, 6, 0, 6)
    assert relative((5, 7, 9, 10), (4, 8, 8, 12)) == (1, 3, 1, 2)
    assert clip((-3, 40, 2, 5), (32, 4)) == (0, 32, 2, 4) and area((0, 32, 2, 4)) == 64


def test_which_models_qualify():

    assert supports_box(tiny_model("Unet")) and supports_incremental(tiny_model("Unet"))  # timm ResNet chain
    assert not supports_box(tiny_model("DeepLabV3Plus"))
    scse = tiny_smp(in_channels=3, classes=1, seed=None, eval_mode=False, decoder_attention_type="scse")
    assert not supports_box(scse)  # scSE pools globally
    assert supports_incremental(resnet18_model("DeepLabV3Plus"))
    assert ProbFn(resnet18_model("Unet")).incremental  # on by default on CPU (off by default on CUDA)
    assert not ProbFn(resnet18_model("Unet"), incremental=False).incremental
    units = resnet_units(resnet18_model("Unet").encoder)
    geometry = [(u.name, u.stride, u.reach, u.level) for u in units]
    assert geometry[:4] == [("stem", 2, (3, 3), 1), ("maxpool", 2, (1, 1), None),
                            ("layer1.0", 1, (2, 2), None), ("layer1.1", 1, (2, 2), 2)]
    assert geometry[4] == ("layer2.0", 2, (3, 3), None)  # 3x3 stride 2, then 3x3 at the new stride
    assert [u.level for u in units if u.level] == [1, 2, 3, 4, 5]


def test_plan_follows_the_receptive_field_and_the_reads():
    units = resnet_units(resnet18_model("Unet").encoder)
    sizes = [(256, 256), (128, 128), (64, 64)] + [(64, 64)] * 2 + [(32, 32)] * 2 + [(16, 16)] * 2 + [(8, 8)] * 2
    whole = {lv: (0, s[0], 0, s[1]) for lv, s in enumerate([(256, 256), (128, 128), (64, 64), (32, 32), (16, 16),
                                                            (8, 8)]) if lv}
    steps = plan(units, sizes, (100, 116, 100, 116), whole)
    assert steps[0].box == (49, 60, 49, 60)  # stem: 7x7 stride 2 pad 3 -> rows 2u - 3 .. 2u + 3 meet 100..115
    assert steps[0].crop == (94, 122, 94, 122)  # rows 95 .. 121 for those units, start aligned to 2
    # the change only grows, and every crop is aligned to its unit's stride
    for u, s in zip(units, steps, strict=True):
        assert s.crop[0] % u.stride == 0 and s.crop[2] % u.stride == 0
    assert steps[-1].box == (0, 8, 0, 8)  # layer4 sees everything
    # reading only a corner of layer4 (and nothing else) shrinks the deep units' work
    corner = plan(units, sizes, (100, 116, 100, 116), {5: (0, 2, 0, 2)})
    assert corner[-1].box == (0, 2, 0, 2) and corner[-1].crop == (0, 4, 0, 4)  # two 3x3 convolutions: +2
    far = plan(units, sizes, (240, 256, 240, 256), {5: (0, 1, 0, 1), 1: (0, 4, 0, 4)})
    assert far[0].box is None  # the stem change at the far corner is never read


@pytest.mark.parametrize("box", [(0, 70, 0, 90), (0, 9, 0, 13), (61, 70, 77, 90), (20, 45, 30, 31)])
def test_decoder_on_box_equals_whole_forward(box):
    model = tiny_model("Unet")
    x = torch.as_tensor(rand_image(1, 70, 90))[None]  # padded to 96 x 96 inside ProbFn
    whole = ProbFn(model, shortcuts=False)(x, crop=box)
    fast = ProbFn(model)
    assert fast.box_decoder
    assert_tensor_exact(fast(x, crop=box), whole, probs64(model, x, box), f"box decoder on {box}")


@pytest.mark.parametrize("box", [(0, 96, 0, 96), (10, 40, 50, 90), (90, 96, 0, 5)])
def test_decode_box_reads_only_decoder_reads(box):
    from matseg_nb.explain.shortcuts import decode_box

    model = tiny_model("Unet")
    with torch.no_grad():
        feats = model.encoder(torch.as_tensor(rand_image(1, 96, 96))[None])
        shapes = [tuple(f.shape[-2:]) for f in feats]
        plain, ref = decoder_logits(model, feats, box)
        whole = decode_box(model, feats, box)
        assert_tensor_exact(whole, plain, ref, "decode_box on whole maps")
        reads = decoder_reads(model, shapes, box)
        assert sorted(reads) == [1, 2, 3, 4, 5]
        assert_tensor_exact(decode_box(model, poison_outside(feats, reads), box), plain, ref, "NaN outside reads")
        crops = [feats[0]] + [f[..., reads[lv][0] : reads[lv][1], reads[lv][2] : reads[lv][3]]
                              for lv, f in enumerate(feats) if lv]
        origins = [(0, 0)] + [(reads[lv][0], reads[lv][2]) for lv in range(1, 6)]
        assert_tensor_exact(decode_box(model, crops, box, origins, shapes), plain, ref, "decode_box on crops")


@pytest.mark.parametrize("arch", ["DeepLabV3Plus", "DeepLabV3"])
def test_deeplab_decoder_on_box_equals_whole_forward(arch):
    from matseg_nb.explain.deeplab_box import deeplab_decode_box, deeplab_reads, supports_deeplab_box

    model = resnet18_model(arch)
    assert supports_deeplab_box(model) and ProbFn(model).box_decoder
    x = torch.as_tensor(rand_image(1, 70, 90))[None]  # padded inside ProbFn
    plain, fast = ProbFn(model, shortcuts=False), ProbFn(model)
    for box in [(0, 70, 0, 90), (0, 9, 0, 13), (61, 70, 77, 90), (20, 45, 30, 31)]:  # the first: whole decoder
        assert_tensor_exact(fast(x, crop=box), plain(x, crop=box), probs64(model, x, box), f"{arch} on {box}")
    # the reads are all it needs: NaN elsewhere changes nothing
    with torch.no_grad():
        feats = model.encoder(torch.as_tensor(rand_image(1, 96, 96))[None])
        shapes = [tuple(f.shape[-2:]) for f in feats]
        for box in [(40, 60, 8, 30), (0, 96, 0, 96)]:
            logits, ref = decoder_logits(model, feats, box)
            whole = deeplab_decode_box(model, feats, box)
            assert_tensor_exact(whole, logits, ref, f"{arch} decode on {box}")
            reads = deeplab_reads(model, shapes, box)
            if arch == "DeepLabV3Plus" and box[1] < 96:
                assert reads[2][1] - reads[2][0] < shapes[2][0]  # only a box of the stride-4 level
            assert_tensor_exact(deeplab_decode_box(model, poison_outside(feats, reads), box), logits, ref,
                                f"{arch} NaN outside reads")


@pytest.mark.parametrize("arch", ["Unet", "DeepLabV3Plus"])
def test_incremental_encoder_equals_whole_forward(arch):
    model = resnet18_model(arch)
    x = torch.as_tensor(rand_image(1, 150, 170))[None]  # padded to 160 x 192: reflection near the edges
    plain, fast = ProbFn(model, channels_last=False, shortcuts=False), ProbFn(model)
    fast.prepare(x)
    assert fast.incremental
    wins = [(0, 16, 0, 16), (134, 150, 154, 170), (60, 76, 80, 96), (140, 150, 0, 10)]
    xb = x.repeat(len(wins), 1, 1, 1)
    for b, (y0, y1, x0, x1) in enumerate(wins):
        xb[b, :, y0:y1, x0:x1] = 0.5
    for box in [(0, 150, 0, 170), (10, 40, 100, 160)]:
        ref = plain(xb, crop=box)
        assert (ref - plain(x, crop=box)).abs().max() > 1e-4  # the windows do change the output
        assert_tensor_exact(fast(xb, crop=box, windows=wins), ref, probs64(model, xb, box), f"incremental {box}")
    # negative control: on an image larger than the RF, a wrong window misses the change
    x2 = torch.as_tensor(rand_image(1, 256, 256, seed=1))[None]
    fast.prepare(x2)
    x2b = x2.clone()
    x2b[..., :16, :16] = 0.5
    assert (fast(x2b, windows=[(200, 216, 200, 216)]) - plain(x2b)).abs().max() > 1e-3
    assert_tensor_exact(fast(x2b, windows=[(0, 16, 0, 16)]), plain(x2b), probs64(model, x2b), "right window")


def test_interior_windows_share_one_crop_batch():
    model = resnet18_model("Unet")
    x = torch.as_tensor(rand_image(1, 320, 320, seed=2))[None]
    plain, fast = ProbFn(model, shortcuts=False), ProbFn(model)
    fast.prepare(x)
    wins = [(150, 166, 150, 166), (140, 156, 130, 146), (0, 16, 300, 316)]  # two interior crops of one size
    regions = [fast._cache.plan(w)[0].crop for w in wins]
    assert regions[0][1] - regions[0][0] == regions[1][1] - regions[1][0] != regions[2][1] - regions[2][0]
    xb = x.repeat(3, 1, 1, 1)
    for b, (y0, y1, x0, x1) in enumerate(wins):
        xb[b, :, y0:y1, x0:x1] = 0.0
    box = (100, 200, 120, 220)
    assert_tensor_exact(fast(xb, crop=box, windows=wins), plain(xb, crop=box), probs64(model, xb, box), "shared")


def test_heatmap_with_shortcuts_equals_literal_loop():
    model = resnet18_model("Unet")
    img, a = rand_image(1, 64, 64), box_mask(64, 64, (40, 60, 8, 30))
    fast = heatmap(model, img, a, window=8, stride=8, max_batch=5)
    assert fast.meta()["box_decoder"] and fast.meta()["incremental"]
    lit = heatmap_literal(model, img, a, window=8, stride=8)
    assert fast.grid.max() > 1e-3
    ref = reference64(model, img, a, window=8, stride=8)
    plain = heatmap(ProbFn(model, shortcuts=False), img, a, window=8, stride=8, max_batch=5)
    assert not plain.meta()["incremental"]
    for grid in (fast.grid, lit.grid, plain.grid):
        assert_float32_exact(grid, ref)


def test_uneven_levels_fall_back_to_the_whole_decoder():
    from matseg_nb.explain.shortcuts import levels_halve

    even = [(64 // 2**i, 64 // 2**i) for i in range(6)]
    assert levels_halve(even)
    assert not levels_halve([*even[:3], (9, 8), *even[4:]])


def test_incremental_cache_over_budget_falls_back_to_whole_passes():
    from matseg_nb.explain.incremental import IncrementalEncoder

    model = resnet18_model("Unet")
    img, a = rand_image(1, 64, 64), box_mask(64, 64, (40, 60, 8, 30))
    x = torch.as_tensor(img)[None]
    bpp = IncrementalEncoder.bytes_per_pixel(model.encoder, x)
    with torch.no_grad():
        cache = IncrementalEncoder(model.encoder, x)
    assert bpp * 64 * 64 == sum(o.numel() * o.element_size() for o in cache.outs)  # the probe predicts it
    small = ProbFn(model, cache_mb=bpp * 64 * 64 / 2**20 / 2)  # half of what the cache needs
    small.prepare(x)
    assert not small.cached and "cache_mb" in small.cache_note
    res = heatmap(small, img, a, window=8, stride=8)
    assert not res.meta()["incremental"] and "incremental encoder off" in res.meta()["note"]
    assert_float32_exact(res.grid, reference64(model, img, a, window=8, stride=8))


def test_crops_over_half_the_image_use_the_whole_decoder():
    import dataclasses

    from matseg_nb.explain.forward import BOX_DECODER_MAX_FRACTION

    fn = ProbFn(tiny_model("Unet"))
    calls = []
    fn._box_dec = dataclasses.replace(fn._box_dec, decode=lambda *a, **k: calls.append(a[2]) or torch.zeros(1, 3, 1, 1))
    x = torch.as_tensor(rand_image(1, 64, 64))[None]
    fn(x, crop=(0, 64, 0, 64))
    side = int((BOX_DECODER_MAX_FRACTION * 64 * 64) ** 0.5)
    fn(x, crop=(0, side, 0, side))
    assert calls == [(0, side, 0, side)]
