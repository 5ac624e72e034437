"""An exact, faster inference form of a model for explanations: BatchNorm folded, polyphase UNet upsampling.

:func:`fuse_for_explain` returns a deep copy of an eval-mode model with two rewrites, each equal to the
original up to float32 rounding (``tests/test_explain_fused.py`` checks both against float64):

* **BatchNorm folded** into the convolution before it (``torch.nn.utils.fusion.fuse_conv_bn_eval``; the
  BatchNorm becomes ``nn.Identity``) wherever the pair is a plain ``Conv2d`` -> ``BatchNorm2d`` with running
  statistics and the module's forward is known to apply them back to back (registry :data:`FOLD_RULES`:
  ``nn.Sequential`` children, including smp's ``Conv2dReLU`` and DeepLab's ASPP branches and separable
  convolutions; torchvision / timm ResNet blocks and smp's SE-ResNet(X)t blocks; the smp ResNet and timm
  feature-net stems; DeepLabV3's decoder). Anything else is left as it is.
* **Polyphase nearest-upsampling convolution** in smp ``Unet`` decoder blocks (:class:`PolyphaseDecoderBlock`):
  the block's first 3x3 convolution (padding 1, zeros) of ``cat([nearest_up2(low), skip])`` is
  ``conv_up(nearest_up2(low)) + conv_skip(skip)``, and ``conv_up`` on a nearest x2 upsampled map is four
  2x2 convolutions on the low-resolution map, one per output phase (p, q) (even/odd row, even/odd column):
  per axis, phase 0 reads low rows i - 1, i with kernel rows [w0, w1 + w2] and phase 1 reads i, i + 1 with
  [w0 + w1, w2] (:data:`PHASE_ROWS`); a zero padding of 1 px of the low map is the upsampled map's zero
  padding. The four phases, interleaved, are one stride-2 transposed convolution with a 4x4 kernel
  (:func:`polyphase_kernel`): 2.25x fewer multiply-adds on the upsampled half. Blocks whose upsampling is not exactly x2 at run time fall
  back to the original computation. The box decoder (:func:`matseg_nb.explain.shortcuts.decode_box`) uses
  the polyphase form on crops too (:meth:`PolyphaseDecoderBlock.conv1_on_box`).
* **Skip halves cached** (:class:`SkipHalves`, used by ``ProbFn`` after ``prepare``): ``conv_skip(skip)`` of
  the unperturbed image, recomputed per perturbed image only on each level's changed box (from the
  incremental encoder) grown by the convolution's 1 px reach.

:class:`matseg_nb.explain.forward.ProbFn` builds it once when ``shortcuts`` is on and runs every pass
(whole, box decoder, incremental encoder, the ``input_scale`` wrapper) on it; ``ProbFn.model`` stays the
model the user gave.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from matseg_nb.explain.boxes import Box, relative, take

# ---------------------------------------------------------------- BatchNorm folding


def _foldable(conv: nn.Module | None, bn: nn.Module | None) -> bool:
    """A plain Conv2d followed by a plain BatchNorm2d that uses its running statistics in eval mode."""
    return (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
            and bn.running_mean is not None and bn.running_var is not None and conv.out_channels == bn.num_features)


def _plain_sequential(m: nn.Module) -> bool:
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


def _last_conv_site(parent: nn.Module, name: str) -> tuple[nn.Module, str] | None:
    """(module, attribute) holding the convolution whose output ``parent.<name>`` returns: the child itself,
    or the last child of a plain Sequential (e.g. a separable convolution: depthwise then pointwise)."""
    child = getattr(parent, name, None)
    if type(child) is nn.Conv2d:
        return parent, name
    if _plain_sequential(child) and len(child) and type(child[-1]) is nn.Conv2d:
        return child, str(len(child) - 1)
    return None


def _consecutive(m: nn.Module) -> list[tuple[str, str]]:
    names = [n for n, _ in m.named_children()]
    return list(zip(names[:-1], names[1:], strict=True))


def _numbered(m: nn.Module) -> list[tuple[str, str]]:
    return [(f"conv{i}", f"bn{i}") for i in (1, 2, 3)]


def _is_timm_features(m: nn.Module) -> bool:
    try:
        from timm.models._features import FeatureDictNet
    except ImportError:  # pragma: no cover
        return False
    return type(m).__name__ in ("FeatureListNet", "FeatureDictNet") and isinstance(m, FeatureDictNet)


def _timm_feature_pairs(m: nn.Module) -> list[tuple[str, str]]:
    taps = set(getattr(m, "return_layers", {}))  # a tap between the pair would see the unfolded conv
    return [(a, b) for a, b in _consecutive(m) if a not in taps]


def _is_resnet_block(m: nn.Module) -> bool:
    kinds: list[type] = []
    try:
        from torchvision.models.resnet import BasicBlock, Bottleneck

        kinds += [BasicBlock, Bottleneck]
    except ImportError:  # pragma: no cover
        pass
    try:
        from timm.models.resnet import BasicBlock as TB
        from timm.models.resnet import Bottleneck as TBo

        kinds += [TB, TBo]
    except ImportError:  # pragma: no cover
        pass
    try:
        from segmentation_models_pytorch.encoders import _senet

        kinds += [_senet.SEBottleneck, _senet.SEResNetBottleneck, _senet.SEResNeXtBottleneck]
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    return type(m) in kinds


def _is_smp_resnet_stem(m: nn.Module) -> bool:
    try:
        from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
    except ImportError:  # pragma: no cover
        return False
    return type(m) is ResNetEncoder


def _is_deeplabv3_decoder(m: nn.Module) -> bool:
    try:
        from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3Decoder
    except ImportError:  # pragma: no cover
        return False
    return type(m) is DeepLabV3Decoder


#: module kind -> (is it that kind, the (conv, bn) attribute pairs its forward applies back to back)
FOLD_RULES: dict[str, tuple[Callable[[nn.Module], bool], Callable[[nn.Module], list[tuple[str, str]]]]] = {
    "sequential": (_plain_sequential, _consecutive),
    "timm-features": (_is_timm_features, _timm_feature_pairs),
    "resnet-block": (_is_resnet_block, _numbered),
    "smp-resnet-stem": (_is_smp_resnet_stem, lambda _m: [("conv1", "bn1")]),
    "deeplabv3-decoder": (_is_deeplabv3_decoder, lambda _m: [("conv", "bn")]),
}


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every registered Conv2d -> BatchNorm2d pair of the eval-mode ``model`` in place; returns how many."""
    n = 0
    for parent in list(model.modules()):
        for is_kind, pairs_of in FOLD_RULES.values():
            if not is_kind(parent):
                continue
            for conv_name, bn_name in pairs_of(parent):
                site = _last_conv_site(parent, conv_name)
                bn = getattr(parent, bn_name, None)
                if site is None or not _foldable(getattr(*site), bn):
                    continue
                setattr(site[0], site[1], fuse_conv_bn_eval(getattr(*site), bn))
                setattr(parent, bn_name, nn.Identity())
                n += 1
    return n


# ---------------------------------------------------------------- polyphase UNet decoder blocks

#: per output phase p (even / odd row): which of the 3 kernel rows each of the 2 low-resolution taps sums
#: (phase 0 reads low rows i - 1, i; phase 1 reads i, i + 1)
PHASE_ROWS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],
                           [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)


def transposed_taps(rows: torch.Tensor = PHASE_ROWS) -> torch.Tensor:
    """The phases as the 4 taps (4, 3) of one stride-2 transposed convolution (padding 1) per axis: output row
    2 i + p reads low row i + a - 1 + p through tap k = 3 - 2 a - p, i.e. [w2, w1 + w2, w0 + w1, w0]."""
    return torch.stack([rows[1][1], rows[0][1], rows[1][0], rows[0][0]])


def polyphase_kernel(weight: torch.Tensor, rows: torch.Tensor = PHASE_ROWS) -> torch.Tensor:
    """3x3 kernels (C_out, C_in, 3, 3) -> the transposed-convolution kernel (C_in, C_out, 4, 4) of the four 2x2
    phase kernels; summed in float64, rounded once."""
    taps = transposed_taps(rows).to(torch.float64)
    return torch.einsum("ka,oiab,lb->iokl", taps, weight.double(), taps).to(weight.dtype).contiguous()


def _polyphase_ok(block: nn.Module) -> bool:
    """An smp UnetDecoderBlock with nearest upsampling, no attention, and a first convolution 3x3, stride 1,
    padding 1 (zeros), no dilation or groups, with BatchNorm folded (or no norm) before its ReLU."""
    try:
        from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoderBlock
    except ImportError:  # pragma: no cover
        return False
    if type(block) is not UnetDecoderBlock or block.interpolation_mode != "nearest":
        return False
    if not all(isinstance(a.attention, nn.Identity) for a in (block.attention1, block.attention2)):
        return False
    seq = block.conv1
    if not (_plain_sequential(seq) and len(seq) == 3 and isinstance(seq[1], nn.Identity)
            and type(seq[2]) is nn.ReLU):
        return False
    c = seq[0]
    return (type(c) is nn.Conv2d and c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1)
            and c.dilation == (1, 1) and c.groups == 1 and c.padding_mode == "zeros")


class PolyphaseDecoderBlock(nn.Module):
    """An smp UnetDecoderBlock (``_polyphase_ok``) whose first convolution runs as the four 2x2 phase
    convolutions of the low-resolution input, interleaved (one stride-2 transposed convolution with a 4x4
    kernel: :func:`polyphase_kernel`; measured faster here than four convolutions and strided copies), plus a
    3x3 convolution of the skip; same interface and attributes (``conv1`` kept for the fallback, ``conv2``,
    ``attention1/2``, ``interpolation_mode``)."""

    def __init__(self, block: nn.Module, low_channels: int, rows: torch.Tensor = PHASE_ROWS) -> None:
        super().__init__()
        self.interpolation_mode = "nearest"
        self.conv1, self.conv2 = block.conv1, block.conv2
        self.attention1, self.attention2 = block.attention1, block.attention2
        conv = block.conv1[0]
        w = conv.weight.detach()
        if not 0 < low_channels <= w.shape[1]:
            raise ValueError(f"PolyphaseDecoderBlock: expected 1..{w.shape[1]} low channels, found {low_channels}")
        self.low_channels, self.out_channels = int(low_channels), int(w.shape[0])
        self.register_buffer("up_weight", polyphase_kernel(w[:, :low_channels], rows))
        self.register_buffer("up_bias", conv.bias.detach().clone() if conv.bias is not None else None)
        skip = w[:, low_channels:].contiguous()
        self.register_buffer("skip_weight", skip if skip.shape[1] else None)

    def skip_conv(self, skip: torch.Tensor) -> torch.Tensor:
        """``conv_skip(skip)``, no bias: the skip half of the first convolution, (B, C_skip, H, W) -> (B, C_out, H, W)."""
        return F.conv2d(skip, self.skip_weight, None, padding=1)

    def up_conv(self, low: torch.Tensor) -> torch.Tensor:
        """``conv_up(nearest_up2(low))`` with the bias: (B, C_low, h, w) -> (B, C_out, 2h, 2w)."""
        return F.conv_transpose2d(low, self.up_weight, self.up_bias, stride=2, padding=1)

    def first_conv(self, low: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        """The block's first convolution and ReLU on ``cat([nearest_up2(low), skip])`` (the skip at 2h x 2w)."""
        up = self.up_conv(low)
        if skip is not None:
            up = up.add_(self.skip_conv(skip))
        return self.conv1[2](up)

    def conv1_on_box(self, low: torch.Tensor, src: Box, grown: Box, skip: torch.Tensor | None) -> torch.Tensor:
        """The first convolution's output (after ReLU) on the crop ``grown`` (block-level px) of the upsampled
        map, from ``low`` = the low-resolution map on ``src`` (the halved ``grown``) and ``skip`` = the skip
        features on ``grown``. The original block zero-pads the upsampled crop at ``grown``'s edges; here the
        upsampled half is computed on the whole crop 2 ``src`` (zero padding at its edges, which are the map's
        edges where ``grown``'s are), so the two agree everywhere except on ``grown``'s inner border rows,
        which :func:`matseg_nb.explain.shortcuts.decode_box` discards after the second convolution."""
        up = take(self.up_conv(low), relative(grown, (2 * src[0], 2 * src[1], 2 * src[2], 2 * src[3])))
        if skip is not None:
            up = up + self.skip_conv(skip)
        return self.conv1[2](up)

    def forward(self, feature_map: torch.Tensor, target_height: int, target_width: int,
                skip_connection: torch.Tensor | None = None) -> torch.Tensor:
        h, w = int(feature_map.shape[-2]), int(feature_map.shape[-1])
        if (int(target_height), int(target_width)) != (2 * h, 2 * w):  # not an exact x2: the original block
            z = F.interpolate(feature_map, size=(target_height, target_width), mode="nearest")
            if skip_connection is not None:
                z = self.attention1(torch.cat([z, skip_connection], dim=1))
            return self.attention2(self.conv2(self.conv1(z)))
        return self.attention2(self.conv2(self.first_conv(feature_map, skip_connection)))


def _unet_parts(model: nn.Module) -> Iterator[tuple[nn.Module, list[int]]]:
    """(UnetDecoder, low-resolution channels per block) of every smp Unet inside ``model``."""
    try:
        from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
    except ImportError:  # pragma: no cover
        return
    for m in model.modules():
        dec, enc = getattr(m, "decoder", None), getattr(m, "encoder", None)
        if type(dec) is not UnetDecoder or not hasattr(enc, "out_channels"):
            continue
        lows = [int(enc.out_channels[-1])] + [int(b.conv2[0].out_channels) for b in list(dec.blocks)[:-1]]
        yield dec, lows


def polyphase_unet(model: nn.Module, rows: torch.Tensor = PHASE_ROWS) -> int:
    """Replace every eligible smp UnetDecoderBlock of ``model`` (BatchNorm already folded) in place by a
    :class:`PolyphaseDecoderBlock`; returns how many."""
    n = 0
    for dec, lows in list(_unet_parts(model)):
        for i, (blk, low) in enumerate(zip(list(dec.blocks), lows, strict=True)):
            if _polyphase_ok(blk) and 0 < low <= blk.conv1[0].in_channels:
                dec.blocks[i] = PolyphaseDecoderBlock(blk, low, rows)
                n += 1
    return n


# ---------------------------------------------------------------- the fused copy


@dataclass
class Fused:
    """The fused copy of a model and what was rewritten: ``folded`` Conv+BN pairs, ``polyphase`` blocks."""

    model: nn.Module
    folded: int = 0
    polyphase: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        """For the heatmap's line, e.g. "fused BN (20 convolutions) + polyphase UNet decoder (5 blocks)"."""
        parts = ([f"fused BN ({self.folded} convolutions)"] if self.folded else []) + (
            [f"polyphase UNet decoder ({self.polyphase} blocks)"] if self.polyphase else [])
        return " + ".join(parts) or None


def fuse_for_explain(model: nn.Module, polyphase: bool = True,
                     memory_format: torch.memory_format | None = None) -> Fused:
    """A deep copy of ``model`` in eval mode with BatchNorm folded and (``polyphase``) the smp UNet decoder
    blocks in polyphase form, on the model's device, its weights in ``memory_format`` (default: channels_last
    when the model's are; oneDNN took a slow path for small crops with mixed formats). The original is
    untouched."""
    fused = copy.deepcopy(model).eval()
    with torch.no_grad():
        folded = fold_batchnorm(fused)
        blocks = polyphase_unet(fused) if polyphase else 0
    if memory_format is None:
        last = any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                   for p in model.parameters())
        memory_format = torch.channels_last if last else torch.contiguous_format
    ref = next(model.parameters(), None)
    fused = fused.to(ref.device if ref is not None else None, memory_format=memory_format)
    for p in fused.parameters():
        p.requires_grad_(False)
    return Fused(fused, folded, blocks)


# ---------------------------------------------------------------- the skip half, cached for the prepared image


def skip_cache_applies(model: nn.Module, n_levels: int) -> bool:
    """True when ``model``'s smp UNet decoder (no centre block) runs every block in polyphase form and reads
    ``n_levels`` feature levels (input first), so that :class:`SkipHalves` can stand in for its skip halves."""
    dec = getattr(model, "decoder", None)
    blocks = list(getattr(dec, "blocks", []))
    return (bool(blocks) and isinstance(getattr(dec, "center", None), nn.Identity) and n_levels == len(blocks) + 1
            and all(isinstance(b, PolyphaseDecoderBlock) for b in blocks))


class SkipHalves:
    """The skip half ``conv_skip(skip)`` of every polyphase block for the prepared image, reused for perturbed
    copies whose skip features differ from it only inside known boxes (the incremental encoder's changed
    boxes): per image it is recomputed on each changed box grown by 1 px (the 3x3 convolution's reach), from
    the features on the box grown by 2 px (zero padding only at the map's edges, as the whole convolution),
    and taken from the cache elsewhere. ``levels``: the prepared image's feature maps, input first."""

    def __init__(self, model: nn.Module, levels: list[torch.Tensor]) -> None:
        self.blocks = list(model.decoder.blocks)
        n = len(levels)
        self.skip_level = [n - 2 - i if n - 2 - i >= 1 else None for i in range(len(self.blocks))]
        self.outs = {lv: blk.skip_conv(levels[lv])
                     for blk, lv in zip(self.blocks, self.skip_level, strict=True) if lv is not None}

    def decode(self, model: nn.Module, feats: list[torch.Tensor], changed: list[dict[int, Box | None]]
               ) -> torch.Tensor:
        """``model.decoder(feats)`` for a batch whose image b's level L differs from the prepared one only
        inside ``changed[b][L]`` (None: nowhere)."""
        from matseg_nb.explain.boxes import grow

        x = model.decoder.center(feats[-1])
        for blk, lv in zip(self.blocks, self.skip_level, strict=True):
            up = blk.up_conv(x)
            if lv is not None:
                base = self.outs[lv]
                up += base
                hh, ww = int(base.shape[-2]), int(base.shape[-1])
                for b, boxes in enumerate(changed):
                    box = boxes.get(lv)
                    if box is None:
                        continue
                    out_box, in_box = grow(box, 1, hh, ww), grow(box, 2, hh, ww)
                    new = blk.skip_conv(take(feats[lv][b : b + 1], in_box))
                    take(up[b : b + 1], out_box).add_(take(new, relative(out_box, in_box)) - take(base, out_box))
            x = blk.attention2(blk.conv2(blk.conv1[2](up)))
        return x
