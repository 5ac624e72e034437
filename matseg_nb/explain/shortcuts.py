"""Exact shortcuts for counterfactual heatmaps: compute only what a window perturbation can change.

Both rules give the numbers of the whole forward pass (to float32 rounding; tests compare them) and
apply only where their assumptions hold; other models run the whole forward pass.

* **Decoder on a box** (smp ``Unet`` with its default decoder: nearest x2 upsampling, 3x3 convolutions,
  no attention, no centre block, head without upsampling). H needs Z on A's bounding box only, and
  every decoder block is local, so block k is evaluated on the box grown by its two 3x3 convolutions
  (1 px each) and halved per level. The encoder still runs on the whole image: its deep stages see
  everything.
* **Incremental early encoder** (smp ``ResNetEncoder``: torchvision ResNet/ResNeXt, no squeeze-excitation
  or other global pooling before layer3). A window changes the stem, layer1 and layer2 features only
  within their receptive field (RF). They are recomputed on an input crop around the window, aligned
  to their stride (8 px) and grown by the RF span plus one stride each side, and pasted into the
  unperturbed image's cached features; layer3, layer4 and the decoder then run on the pasted features.

The RF offsets come from the layer chain: a unit u of stride J sees input rows
``[J u - P, J u - P + rf - 1]`` (P: accumulated padding, rf: RF size); residual shortcuts see less.
"""

from __future__ import annotations

import torch
from torch import nn

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open, px


def _grow(box: Box, m: int, h: int, w: int) -> Box:
    return max(0, box[0] - m), min(h, box[1] + m), max(0, box[2] - m), min(w, box[3] + m)


def _halve(box: Box) -> Box:
    return box[0] // 2, -(-box[1] // 2), box[2] // 2, -(-box[3] // 2)


def _take(t: torch.Tensor, box: Box) -> torch.Tensor:
    return t[..., box[0] : box[1], box[2] : box[3]]


def _within(inner: Box, outer: Box) -> Box:
    """``inner`` in the coordinates of ``outer``'s top-left corner."""
    return inner[0] - outer[0], inner[1] - outer[0], inner[2] - outer[2], inner[3] - outer[2]


# ---------------------------------------------------------------- decoder on a box (smp Unet)


def supports_box(model: nn.Module) -> bool:
    """True for an smp ``Unet`` whose decoder and head are purely local (see module docstring)."""
    try:
        from segmentation_models_pytorch import Unet
    except ImportError:  # pragma: no cover
        return False
    if not isinstance(model, Unet) or getattr(model, "classification_head", None) is not None:
        return False
    dec, head = model.decoder, model.segmentation_head
    if not isinstance(dec.center, nn.Identity) or not isinstance(head[1], nn.Identity):
        return False
    conv = head[0]
    if not (isinstance(conv, nn.Conv2d) and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.padding == (conv.kernel_size[0] // 2, conv.kernel_size[1] // 2)):
        return False
    for blk in dec.blocks:
        if blk.interpolation_mode != "nearest":
            return False
        if not all(isinstance(a.attention, nn.Identity) for a in (blk.attention1, blk.attention2)):
            return False
    return True


def levels_halve(features: list[torch.Tensor]) -> bool:
    """True when each feature level (input included) is exactly twice the next coarser one, as
    :func:`decode_box` needs."""
    hw = [tuple(f.shape[-2:]) for f in features]
    return all(a == (2 * b[0], 2 * b[1]) for a, b in zip(hw[:-1], hw[1:], strict=True))


def decode_box(model: nn.Module, features: list[torch.Tensor], box: Box) -> torch.Tensor:
    """Logits (B, K, y1 - y0, x1 - x0) of ``model`` (``supports_box``) on ``box`` of the full-resolution
    output, from the encoder ``features``; equal to ``model.segmentation_head(model.decoder(features))``
    cropped to ``box``."""
    dec = model.decoder
    shapes = [tuple(f.shape[-2:]) for f in features][::-1]  # coarse -> fine
    feats = features[1:][::-1]
    head, skips = feats[0], feats[1:]
    if not levels_halve(features):
        raise ValueError(f"decode_box: expected each level twice the previous, found {shapes}")

    def block(i: int, out: Box) -> torch.Tensor:
        h, w = shapes[i + 1]
        grown = _grow(out, 2, h, w)  # two 3x3 convolutions
        src = _halve(grown)
        prev = _take(head, src) if i == 0 else block(i - 1, src)
        up = prev.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # == nearest x2
        up = _take(up, _within(grown, (2 * src[0], 0, 2 * src[2], 0)))
        z = up if i >= len(skips) else torch.cat([up, _take(skips[i], grown)], dim=1)
        blk = dec.blocks[i]
        return _take(blk.conv2(blk.conv1(z)), _within(out, grown))

    h, w = shapes[-1]
    k = model.segmentation_head[0].kernel_size[0] // 2
    grown = _grow(box, k, h, w)
    logits = model.segmentation_head(block(len(dec.blocks) - 1, grown))
    return _take(logits, _within(box, grown))


# ---------------------------------------------------------------- incremental early encoder (ResNet)


def _early_modules(enc: nn.Module):
    return [("conv1", enc.conv1), ("maxpool", enc.maxpool)] + [
        (f"{n}.{sub}", m) for n in ("layer1", "layer2") for sub, m in getattr(enc, n).named_modules()
    ]


def supports_incremental(model: nn.Module) -> bool:
    """True when ``model.encoder`` is smp's ``ResNetEncoder`` (depth 5) with only local operations
    before layer3."""
    try:
        from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
    except ImportError:  # pragma: no cover
        return False
    enc = getattr(model, "encoder", None)
    if not isinstance(enc, ResNetEncoder) or getattr(enc, "_depth", 5) != 5:
        return False
    glob = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    return not any(isinstance(m, glob) for _, m in _early_modules(enc))


def early_reach(enc: nn.Module) -> tuple[int, int]:
    """(a, b) px such that a layer2 unit u (stride 8) sees input rows within ``[8u - a, 8u + b]``,
    from the main path's kernels, strides, paddings and dilations (shortcuts see less)."""
    rf, jump, pad = 1, 1, 0
    for name, m in _early_modules(enc):
        if "downsample" in name or not isinstance(m, nn.Conv2d | nn.MaxPool2d):
            continue
        k, s, p, d = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding, m.dilation))
        pad += p * jump
        rf += (k - 1) * d * jump
        jump *= s
    return pad, rf - 1 - pad


def _stem(enc: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return enc.relu(enc.bn1(enc.conv1(x)))


class EarlyStageCache:
    """Encoder features of one image, reused for perturbed copies that differ from it inside windows.

    ``EarlyStageCache(model.encoder, x)`` with x (1, C, H, W), H and W multiples of 8;
    ``features(xb, windows)`` -> the encoder's feature list for the batch xb (B, C, H, W) whose image
    b differs from x only inside ``windows[b]`` = (y0, y1, x0, x1) px.
    """

    STRIDE = 8  # layer2's stride: crops and pasted regions align to it

    def __init__(self, enc: nn.Module, x: torch.Tensor) -> None:
        if x.shape[-2] % self.STRIDE or x.shape[-1] % self.STRIDE:
            raise ValueError(f"EarlyStageCache: expected H, W multiples of 8, found {tuple(x.shape[-2:])}")
        self.enc, self.x = enc, x
        s = _stem(enc, x)
        l1 = enc.layer1(enc.maxpool(s))
        self.early = [s, l1, enc.layer2(l1)]  # strides 2, 4, 8
        a, b = early_reach(enc)
        self.margin = a + b + self.STRIDE  # crop margin around a window, px
        self.reach = (a, b)

    def _regions(self, win: Box) -> tuple[Box, Box]:
        """(input crop, pasted region), both aligned to 8 px."""
        h, w = self.x.shape[-2:]
        st, m = self.STRIDE, self.margin
        down, up = (lambda v: v // st * st), (lambda v: -(-v // st) * st)
        crop = (max(0, down(win[0] - m)), min(h, up(win[1] + m)), max(0, down(win[2] - m)), min(w, up(win[3] + m)))
        a, b = self.reach
        paste = (0 if crop[0] == 0 else up(crop[0] + a), h if crop[1] == h else down(crop[1] - b),
                 0 if crop[2] == 0 else up(crop[2] + a), w if crop[3] == w else down(crop[3] - b))
        return crop, paste

    def features(self, xb: torch.Tensor, windows: list[Box]) -> list[torch.Tensor]:
        if xb.shape[1:] != self.x.shape[1:] or len(windows) != xb.shape[0]:
            raise ValueError(f"EarlyStageCache: expected a batch of {tuple(self.x.shape[1:])} images with one window "
                             f"each, found {tuple(xb.shape)} and {len(windows)} windows")
        n = xb.shape[0]
        early = [f.expand(n, -1, -1, -1).clone(memory_format=torch.preserve_format) for f in self.early]
        groups: dict[tuple[int, int], list[tuple[int, Box, Box]]] = {}  # crops of one size run as a batch
        for i, win in enumerate(windows):
            crop, paste = self._regions(win)
            groups.setdefault((crop[1] - crop[0], crop[3] - crop[2]), []).append((i, crop, paste))
        for items in groups.values():
            s = _stem(self.enc, torch.cat([_take(xb[i : i + 1], crop) for i, crop, _ in items]))
            l1 = self.enc.layer1(self.enc.maxpool(s))
            parts = (s, l1, self.enc.layer2(l1))
            for k, (i, crop, paste) in enumerate(items):
                for full, part, scale in zip(early, parts, (2, 4, 8), strict=True):
                    dst = tuple(v // scale for v in paste)
                    src = tuple(v // scale for v in _within(paste, crop))
                    _take(full[i : i + 1], dst).copy_(_take(part[k : k + 1], src))
        l3 = self.enc.layer3(early[2])
        return [xb, *early, l3, self.enc.layer4(l3)]
