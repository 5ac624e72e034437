"""Exact shortcut for counterfactual heatmaps: the smp UNet decoder evaluated on a box only.

H needs Z on A's bounding box only. smp's ``Unet`` with its default decoder (nearest x2 upsampling,
3x3 convolutions, no attention, no centre block, head without upsampling) is local, so decoder block k
is evaluated on the box grown by its two 3x3 convolutions (1 px each) and halved per level (also in the
polyphase form of :mod:`.fused`, whose first convolution runs on the halved box); the
encoder features it reads are those boxes (:func:`decoder_reads`), which the incremental encoder
(:mod:`.incremental`) restricts its work to. Equal to the whole forward pass to float32 rounding
(``tests/test_explain_shortcuts.py``); other decoders run whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from matseg_nb.explain.boxes import Box, grow, halve, relative, shift, take

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


def levels_halve(shapes) -> bool:
    """True when each feature level's (h, w) (input first) is exactly twice the next coarser one's, as
    :func:`decode_box` needs."""
    hw = [(int(s[0]), int(s[1])) for s in shapes]
    return all(a == (2 * b[0], 2 * b[1]) for a, b in zip(hw[:-1], hw[1:], strict=True))


def _unet_blocks(shapes: list[tuple[int, int]], box: Box) -> list[tuple[Box, Box, Box]]:
    """Per decoder block i (coarse to fine): (output box, its input box ``grown`` at the block's level,
    ``src`` = the box read from the coarser level), for logits on ``box``; ``shapes`` coarse -> fine."""
    out_boxes: list[tuple[Box, Box, Box]] = []
    out = box
    for i in range(len(shapes) - 2, -1, -1):
        h, w = shapes[i + 1]
        grown = grow(out, 2, h, w)  # two 3x3 convolutions
        src = halve(grown)
        out_boxes.append((out, grown, src))
        out = src
    return out_boxes[::-1]


def decoder_reads(model: nn.Module, level_shapes: list[tuple[int, int]], box: Box) -> dict[int, Box]:
    """Feature level -> the box of it that :func:`decode_box` reads for logits on ``box`` (px);
    ``level_shapes``: (h, w) per encoder level, the input first."""
    shapes = level_shapes[::-1]
    k = model.segmentation_head[0].kernel_size[0] // 2
    blocks = _unet_blocks(shapes, grow(box, k, *shapes[-1]))
    n_levels = len(level_shapes)
    reads = {n_levels - 1: blocks[0][2]}  # the deepest level feeds block 0
    for i, (_, grown, _) in enumerate(blocks[: n_levels - 2]):  # skips: levels n-2 .. 1
        reads[n_levels - 2 - i] = grown
    return reads


def decode_box(model: nn.Module, features: list[torch.Tensor], box: Box,
               origins: list[tuple[int, int]] | None = None,
               level_shapes: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """Logits (B, K, y1 - y0, x1 - x0) of ``model`` (``supports_box``) on ``box`` of the full-resolution
    output, from the encoder ``features``; equal to ``model.segmentation_head(model.decoder(features))``
    cropped to ``box``. Features may be crops covering :func:`decoder_reads`, with top-left corners
    ``origins`` in maps of sizes ``level_shapes`` (default: whole maps)."""
    if level_shapes is None:
        level_shapes = [tuple(f.shape[-2:]) for f in features]
    if not levels_halve(level_shapes):
        raise ValueError(f"decode_box: expected each level twice the previous, found {level_shapes}")
    origins = origins or [(0, 0)] * len(features)
    shapes = level_shapes[::-1]  # coarse -> fine
    n = len(features)

    def read(level: int, b: Box) -> torch.Tensor:
        return take(features[level], shift(b, origins[level]))

    dec = model.decoder
    k = model.segmentation_head[0].kernel_size[0] // 2
    grown_box = grow(box, k, *shapes[-1])
    prev = None
    for i, (out, grown, src) in enumerate(_unet_blocks(shapes, grown_box)):
        low = read(n - 1, src) if i == 0 else prev
        skip = None if i >= n - 2 else read(n - 2 - i, grown)
        blk = dec.blocks[i]
        if hasattr(blk, "conv1_on_box"):  # polyphase form (:mod:`.fused`): the same numbers on the crop
            first = blk.conv1_on_box(low, src, grown, skip)
        else:
            up = F.interpolate(low, scale_factor=2.0, mode="nearest")  # as smp's block: local, crop-exact
            up = take(up, shift(grown, (2 * src[0], 2 * src[2])))
            first = blk.conv1(up if skip is None else torch.cat([up, skip], dim=1))
        prev = take(blk.conv2(first), relative(out, grown))
    logits = model.segmentation_head(prev)
    return take(logits, relative(box, grown_box))


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class BoxDecoder:
    """A decoder (and head) that can produce logits on a box only, from features read on boxes."""

    supports: Callable[[nn.Module], bool]
    applies: Callable[[nn.Module, list], bool]  # (model, level shapes): do the map sizes allow it
    reads: Callable[..., dict[int, Box]]  # (model, level shapes, box) -> level -> box read
    decode: Callable[..., torch.Tensor]  # (model, features, box, origins, level shapes) -> logits on box


def _deeplab() -> BoxDecoder:
    from matseg_nb.explain import deeplab_box as d

    return BoxDecoder(d.supports_deeplab_box, d.layout_applies, d.deeplab_reads, d.deeplab_decode_box)


BOX_DECODERS: dict[str, Callable[[], BoxDecoder]] = {
    "unet": lambda: BoxDecoder(supports_box, lambda _m, shapes: levels_halve(shapes), decoder_reads, decode_box),
    "deeplab": _deeplab,
}


def box_decoder_for(model: nn.Module) -> BoxDecoder | None:
    """The registered :class:`BoxDecoder` that supports ``model``, or None (whole decoder)."""
    for make in BOX_DECODERS.values():
        dec = make()
        if dec.supports(model):
            return dec
    return None
