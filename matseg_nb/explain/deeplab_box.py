"""Exact shortcut for counterfactual heatmaps: smp DeepLabV3 / DeepLabV3+ decoders evaluated on a box only.

After ASPP everything is local: 1x1 and 3x3 (separable) convolutions, BatchNorm, ReLU and bilinear
x4/x8 upsampling (``align_corners=True``: output p reads inputs ``floor(p s)`` and the next, s =
(n_in - 1) / (n_out - 1)). So logits on A's box need each stage only on a box, found by walking back
from A's box; ASPP's branches read the deepest features around that box (zero padding outside the map,
as the whole forward pass), and its image-pooling branch, the one global part, averages the whole map.
Every convolution runs with padding 0 on a crop whose out-of-map part is zero; dilated ones run as a
sum over their kernel taps, skipping taps that only see padding. Equal to the whole
forward pass to float32 rounding (``tests/test_explain_shortcuts.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from matseg_nb.explain.boxes import HW, Box, area, clip, relative, take

_POINTWISE = (nn.BatchNorm2d, nn.ReLU, nn.Dropout, nn.Identity)


def _leaves(module: nn.Module) -> list[nn.Module]:
    """Modules of a (nested) Sequential in order of execution."""
    if isinstance(module, nn.Sequential):
        return [leaf for m in module for leaf in _leaves(m)]
    return [module]


def _local_chain(modules: list[nn.Module]) -> bool:
    return all((isinstance(m, nn.Conv2d) and m.stride == (1, 1) and m.padding_mode == "zeros"
                and isinstance(m.padding, tuple)) or isinstance(m, _POINTWISE) for m in modules)


def _chain_input_box(chain: list[nn.Module], out: Box) -> Box:
    """Input box (may leave the map) that the convolutions of ``chain`` need for outputs on ``out``."""
    box = out
    for m in reversed(chain):
        if isinstance(m, nn.Conv2d):
            (ph, pw), (dh, dw), (kh, kw) = m.padding, m.dilation, m.kernel_size
            box = (box[0] - ph, box[1] - ph + dh * (kh - 1), box[2] - pw, box[3] - pw + dw * (kw - 1))
    return box


def _read(t: torch.Tensor, t_box: Box, want: Box, hw: HW) -> torch.Tensor:
    """``want`` (map units, may leave the map) of the map region ``t_box`` held by t; zero outside the map."""
    inside = clip(want, hw)
    if inside[0] < t_box[0] or inside[1] > t_box[1] or inside[2] < t_box[2] or inside[3] > t_box[3]:
        raise ValueError(f"deeplab_box: {inside} is not within the computed region {t_box}")
    part = take(t, relative(inside, t_box))
    if inside == want:
        return part
    pad = (inside[2] - want[2], want[3] - inside[3], inside[0] - want[0], want[1] - inside[1])
    return F.pad(part, pad)


def _conv_by_taps(m: nn.Conv2d, x: torch.Tensor, x_box: Box, out: Box, hw: HW) -> torch.Tensor:
    """A dilated convolution on ``out`` as a sum over its kernel taps of 1x1 convolutions of shifted
    crops; taps that only see padding (most of ASPP's at rates 24 and 36 on small maps) are skipped."""
    (kh, kw), (ph, pw), (dh, dw) = m.kernel_size, m.padding, m.dilation
    acc = None
    for i in range(kh):
        for j in range(kw):
            src = (out[0] + i * dh - ph, out[1] + i * dh - ph, out[2] + j * dw - pw, out[3] + j * dw - pw)
            if area(clip(src, hw)) == 0:
                continue
            y = F.conv2d(_read(x, x_box, src, hw), m.weight[:, :, i : i + 1, j : j + 1], None, 1, 0, 1, m.groups)
            acc = y if acc is None else acc + y
    if acc is None:
        acc = x.new_zeros((x.shape[0], m.out_channels, out[1] - out[0], out[3] - out[2]))
    return acc if m.bias is None else acc + m.bias.view(1, -1, 1, 1)


def _run_chain(chain: list[nn.Module], t: torch.Tensor, t_box: Box, hw: HW, out: Box) -> torch.Tensor:
    """Outputs of ``chain`` (stride-1 convolutions with zero padding, point-wise modules) on ``out`` from
    its input t, which holds the map region ``t_box`` of a map of size ``hw``."""
    x, x_box = t, t_box
    for i, m in enumerate(chain):
        if not isinstance(m, nn.Conv2d):
            x = m(x)
            continue
        done = _chain_input_box(chain[i + 1 :], out)  # this convolution's output box
        if m.dilation != (1, 1):
            x = _conv_by_taps(m, x, x_box, done, hw)
        else:
            x = F.conv2d(_read(x, x_box, _chain_input_box(chain[i:], out), hw), m.weight, m.bias, 1, 0, 1, m.groups)
        x_box = done
    return _read(x, x_box, out, hw)


def _src_span(lo: int, hi: int, n_in: int, n_out: int) -> tuple[int, int]:
    """Input rows read by bilinear (align_corners) outputs [lo, hi) when n_in is resized to n_out."""
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return max(0, int(lo * scale) - 1), min(n_in, int((hi - 1) * scale) + 3)  # +-1 row against rounding


def _src_box(box: Box, hw_in: HW, hw_out: HW) -> Box:
    return (*_src_span(box[0], box[1], hw_in[0], hw_out[0]), *_src_span(box[2], box[3], hw_in[1], hw_out[1]))


def _lerp_axis(x: torch.Tensor, dim: int, lo: int, hi: int, n_in: int, n_out: int, origin: int) -> torch.Tensor:
    """Bilinear (align_corners=True) resize of one axis for outputs [lo, hi); x starts at input row origin."""
    if n_out > 1:
        scale = torch.tensor(n_in - 1, dtype=torch.float32) / torch.tensor(n_out - 1, dtype=torch.float32)
    else:
        scale = torch.tensor(0.0)
    src = scale * torch.arange(lo, hi, dtype=torch.float32)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    lam = (src - i0.float()).to(device=x.device, dtype=x.dtype)
    shape = [1] * x.dim()
    shape[dim] = -1
    lam = lam.view(shape)
    a = x.index_select(dim, (i0 - origin).to(x.device))
    b = x.index_select(dim, (i1 - origin).to(x.device))
    return a * (1 - lam) + b * lam


def _upsample(t: torch.Tensor, t_box: Box, hw_in: HW, hw_out: HW, out: Box) -> torch.Tensor:
    y = _lerp_axis(t, -2, out[0], out[1], hw_in[0], hw_out[0], t_box[0])
    return _lerp_axis(y, -1, out[2], out[3], hw_in[1], hw_out[1], t_box[2])


# ---------------------------------------------------------------- the two decoders


def _aspp_on_box(aspp: nn.Module, x: torch.Tensor, hw: HW, box: Box) -> torch.Tensor:
    """smp ``ASPP`` on ``box`` of the whole deepest map x (B, C, h, w)."""
    full = (0, hw[0], 0, hw[1])
    parts = []
    for branch in aspp.convs:
        if type(branch).__name__ == "ASPPPooling":  # global: the whole map's mean, then constant
            y = x
            for m in branch:
                y = m(y)
            parts.append(y.expand(-1, -1, box[1] - box[0], box[3] - box[2]))
        else:
            parts.append(_run_chain(_leaves(branch), x, full, hw, box))
    z = torch.cat(parts, dim=1)
    return _run_chain(_leaves(aspp.project), z, box, hw, box)


def _aspp_ok(aspp: nn.Module) -> bool:
    if type(aspp).__name__ != "ASPP":
        return False
    for branch in aspp.convs:
        leaves = _leaves(branch)
        if type(branch).__name__ == "ASPPPooling":
            if not (isinstance(leaves[0], nn.AdaptiveAvgPool2d) and leaves[0].output_size in (1, (1, 1))
                    and _local_chain(leaves[1:])):
                return False
        elif not _local_chain(leaves):
            return False
    return _local_chain(_leaves(aspp.project))


def _head_ok(head: nn.Module) -> bool:
    conv, up, act = head[0], head[1], head[2]
    up_ok = isinstance(up, nn.Identity) or (isinstance(up, nn.Upsample) and up.mode == "bilinear"
                                            and up.align_corners)
    return _local_chain([conv]) and up_ok and isinstance(getattr(act, "activation", None), nn.Identity)


def supports_deeplab_box(model: nn.Module) -> bool:
    """True for smp ``DeepLabV3`` / ``DeepLabV3Plus`` with their standard decoder and head."""
    try:
        from segmentation_models_pytorch import DeepLabV3, DeepLabV3Plus
    except ImportError:  # pragma: no cover
        return False
    if getattr(model, "classification_head", None) is not None or not _head_ok(model.segmentation_head):
        return False
    dec = model.decoder
    if isinstance(model, DeepLabV3Plus):
        return (_aspp_ok(dec.aspp[0]) and _local_chain(_leaves(dec.aspp)[1:]) and _local_chain(_leaves(dec.block1))
                and _local_chain(_leaves(dec.block2)) and dec.up.mode == "bilinear" and dec.up.align_corners)
    if isinstance(model, DeepLabV3):
        return _aspp_ok(dec.aspp) and _local_chain([dec.conv, dec.bn, dec.relu])
    return False


def _plus(model: nn.Module) -> bool:
    from segmentation_models_pytorch import DeepLabV3Plus

    return isinstance(model, DeepLabV3Plus)


def _layout(model: nn.Module, level_shapes: list[HW], box: Box) -> dict:
    """Every stage's output box, walking back from logits on ``box`` (px)."""
    dec, head = model.decoder, model.segmentation_head
    hw_img, hw_deep = level_shapes[0], level_shapes[-1]
    hw_dec = level_shapes[2] if _plus(model) else hw_deep
    b_head = _src_box(box, hw_dec, hw_img) if isinstance(head[1], nn.Upsample) else box
    b_dec = clip(_chain_input_box([head[0]], b_head), hw_dec)
    lay = dict(hw_img=hw_img, hw_deep=hw_deep, hw_dec=hw_dec, head=b_head, dec=b_dec)
    if _plus(model):
        lay["cat"] = clip(_chain_input_box(_leaves(dec.block2), b_dec), hw_dec)
        lay["aspp_tail"] = _src_box(lay["cat"], hw_deep, hw_dec)
        lay["aspp"] = clip(_chain_input_box(_leaves(dec.aspp)[1:], lay["aspp_tail"]), hw_deep)
    else:
        lay["aspp"] = clip(_chain_input_box([dec.conv], b_dec), hw_deep)
    return lay


def layout_applies(model: nn.Module, level_shapes: list[HW]) -> bool:
    """True when the maps have the sizes the upsampling factors imply (as the whole forward pass needs)."""
    hw_img, hw_deep = level_shapes[0], level_shapes[-1]
    f_head = model.segmentation_head[1].scale_factor if isinstance(model.segmentation_head[1], nn.Upsample) else 1
    if _plus(model):
        hw_dec, f = level_shapes[2], model.decoder.up.scale_factor
        return all(d == f * s for d, s in zip(hw_dec, hw_deep, strict=True)) and all(
            i == f_head * d for i, d in zip(hw_img, hw_dec, strict=True))
    return all(i == f_head * d for i, d in zip(hw_img, hw_deep, strict=True))


def deeplab_reads(model: nn.Module, level_shapes: list[HW], box: Box) -> dict[int, Box]:
    """Feature level -> box that :func:`deeplab_decode_box` reads: the whole deepest map (ASPP pools it)
    and, for DeepLabV3+, a box of the stride-4 level."""
    lay = _layout(model, level_shapes, box)
    deep = len(level_shapes) - 1
    reads = {deep: (0, lay["hw_deep"][0], 0, lay["hw_deep"][1])}
    if _plus(model):
        reads[2] = lay["cat"]
    return reads


def deeplab_decode_box(model: nn.Module, features: list[torch.Tensor | None], box: Box,
                       origins: list[tuple[int, int]] | None = None,
                       level_shapes: list[HW] | None = None) -> torch.Tensor:
    """Logits (B, K, y1 - y0, x1 - x0) on ``box`` (px), equal to the whole decoder and head's output there.
    ``features`` may be crops covering :func:`deeplab_reads` with top-left corners ``origins``."""
    level_shapes = level_shapes or [tuple(f.shape[-2:]) for f in features]
    origins = origins or [(0, 0)] * len(features)
    lay = _layout(model, level_shapes, box)
    dec, head = model.decoder, model.segmentation_head
    deep = features[-1]
    if tuple(deep.shape[-2:]) != tuple(lay["hw_deep"]):
        raise ValueError(f"deeplab_decode_box: expected the whole deepest map {lay['hw_deep']}, "
                         f"found {tuple(deep.shape[-2:])}")
    if _plus(model):
        aspp = _aspp_on_box(dec.aspp[0], deep, lay["hw_deep"], lay["aspp"])
        tail = _run_chain(_leaves(dec.aspp)[1:], aspp, lay["aspp"], lay["hw_deep"], lay["aspp_tail"])
        up = _upsample(tail, lay["aspp_tail"], lay["hw_deep"], lay["hw_dec"], lay["cat"])
        f2 = features[2]
        f2_box = (origins[2][0], origins[2][0] + f2.shape[-2], origins[2][1], origins[2][1] + f2.shape[-1])
        high = _run_chain(_leaves(dec.block1), f2, f2_box, lay["hw_dec"], lay["cat"])
        cat = torch.cat([up, high], dim=1)
        out = _run_chain(_leaves(dec.block2), cat, lay["cat"], lay["hw_dec"], lay["dec"])
    else:
        aspp = _aspp_on_box(dec.aspp, deep, lay["hw_deep"], lay["aspp"])
        out = _run_chain([dec.conv, dec.bn, dec.relu], aspp, lay["aspp"], lay["hw_deep"], lay["dec"])
    logits = _run_chain([head[0]], out, lay["dec"], lay["hw_dec"], lay["head"])
    if isinstance(head[1], nn.Upsample):
        logits = _upsample(logits, lay["head"], lay["hw_dec"], lay["hw_img"], box)
    return logits
