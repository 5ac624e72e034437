"""Incremental ResNet encoder: after a window perturbation, recompute each block only where its output
changes *and* is read later.

The encoder (registry :data:`ENCODER_CHAINS`: smp's ``ResNetEncoder`` of torchvision blocks, timm's
ResNet family through smp's ``tu-`` encoders, smp's ``SENetEncoder``) is a chain of *units*: the stem, the
max-pool and every residual block. A unit of stride s whose output unit u sees
input rows ``[s u - a, s u + b]`` (its *reach* (a, b), from the main path's kernels, strides, paddings
and dilations; the shortcut sees less) changes only where its input changed, grown by the reach. For
one window :func:`plan` propagates the changed box forward through the units, then walks back from the
boxes the decoder reads (``reads``; the whole map when ``None``) so that each unit is computed on
``changed ∩ needed`` only, from an input crop aligned to its stride. Everything else comes from the
unperturbed image's cached unit outputs (about 0.5 kB per input pixel for ResNet50). For encoders of
local operations the result equals the whole forward pass to float32 rounding
(``tests/test_explain_shortcuts.py``). Encoders with squeeze-excitation blocks (SE-ResNet, SE-ResNeXt)
are only *approximately* incremental (:mod:`.squeeze_excite`: ``approximate=True``); each such unit is
then computed on its whole changed box, so that its SE mean update sees the whole change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from matseg_nb.explain.boxes import Box, is_empty, join, meet, relative, shift, take
from matseg_nb.explain.squeeze_excite import SECache, is_se, se_modules

_LOCAL = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Sequential, nn.Identity)


@dataclass(frozen=True)
class Unit:
    """One step of the encoder chain: ``fn`` maps (B, C, h, w) to (B, C', h / stride, w / stride)."""

    name: str
    fn: nn.Module
    stride: int
    reach: tuple[int, int]  # (a, b) input units, see the module docstring
    level: int | None  # index in the encoder's feature list of the output, if it is one
    se: tuple[nn.Module, ...] = ()  # its squeeze-excitation modules (global: approximate mode only)


class _Stem(nn.Module):
    def __init__(self, conv1: nn.Module, bn1: nn.Module, relu: nn.Module) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu = conv1, bn1, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))


def _pair(v) -> int:
    if isinstance(v, int):
        return v
    if v[0] != v[1]:
        raise ValueError(f"incremental encoder: expected square kernels/strides, found {v}")
    return int(v[0])


def unit_reach(module: nn.Module) -> tuple[int, tuple[int, int]]:
    """(stride, (a, b)) of a local module, from its main path's convolutions and poolings in order of
    definition (``downsample`` shortcuts skipped: they see less)."""
    rf, jump, pad = 1, 1, 0
    for name, m in module.named_modules():
        if "downsample" in name or not isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            continue
        k, s, p, d = (_pair(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation))
        pad += p * jump
        rf += (k - 1) * d * jump
        jump *= s
    return jump, (pad, rf - 1 - pad)


def _chain(stem: nn.Module, pool: nn.Module, layers: nn.Module) -> list[Unit]:
    chain: list[tuple[str, nn.Module, int | None]] = [("stem", stem, 1), ("maxpool", pool, None)]
    for level, layer in enumerate(("layer1", "layer2", "layer3", "layer4"), start=2):
        blocks = list(getattr(layers, layer))
        chain += [(f"{layer}.{i}", b, level if i == len(blocks) - 1 else None) for i, b in enumerate(blocks)]
    return [Unit(name, fn, *unit_reach(fn), level, tuple(se_modules(fn))) for name, fn, level in chain]


def resnet_units(enc: nn.Module) -> list[Unit]:
    """The unit chain of an smp ``ResNetEncoder`` (depth 5): stem, max-pool, the blocks of layer1..4."""
    return _chain(_Stem(enc.conv1, enc.bn1, enc.relu), enc.maxpool, enc)


def _timm_units(enc: nn.Module) -> list[Unit]:
    m = enc.model
    return _chain(_Stem(m.conv1, m.bn1, m.act1), m.maxpool, m)


def _senet_units(enc: nn.Module) -> list[Unit]:
    return _chain(enc.layer0, enc.layer0_pool, enc)


def _is_resnet(enc: nn.Module) -> bool:
    from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return isinstance(enc, ResNetEncoder) and getattr(enc, "_depth", 5) == 5 and all(
        type(b) in (BasicBlock, Bottleneck) for lay in (enc.layer1, enc.layer2, enc.layer3, enc.layer4) for b in lay)


def _is_timm_resnet(enc: nn.Module) -> bool:
    from segmentation_models_pytorch.encoders.timm_universal import TimmUniversalEncoder
    from timm.models.resnet import BasicBlock, Bottleneck

    if not isinstance(enc, TimmUniversalEncoder) or getattr(enc, "_depth", 5) != 5:
        return False
    m = enc.model
    names = [n for n, _ in m.named_children()]
    return (names == ["conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
            and list(getattr(m, "return_layers", {})) == ["act1", "layer1", "layer2", "layer3", "layer4"]
            and all(type(b) in (BasicBlock, Bottleneck) and getattr(b, "drop_path", None) is None
                    for lay in (m.layer1, m.layer2, m.layer3, m.layer4) for b in lay))


def _is_senet(enc: nn.Module) -> bool:
    from segmentation_models_pytorch.encoders import _senet
    from segmentation_models_pytorch.encoders.senet import SENetEncoder

    blocks = (_senet.SEBottleneck, _senet.SEResNetBottleneck, _senet.SEResNeXtBottleneck)
    return isinstance(enc, SENetEncoder) and getattr(enc, "_depth", 5) == 5 and all(
        type(b) in blocks for lay in (enc.layer1, enc.layer2, enc.layer3, enc.layer4) for b in lay)


#: encoder kind -> (is it that kind, its unit chain)
ENCODER_CHAINS: dict[str, tuple] = {
    "resnet": (_is_resnet, resnet_units),
    "timm-resnet": (_is_timm_resnet, _timm_units),
    "senet": (_is_senet, _senet_units),
}


def encoder_units(enc: nn.Module | None) -> list[Unit] | None:
    """The unit chain of ``enc`` when a registered chain matches and every leaf module is local or a
    registered SE module (:mod:`.squeeze_excite`), else None."""
    if enc is None:
        return None
    for is_kind, units_of in ENCODER_CHAINS.values():
        try:
            if not is_kind(enc):
                continue
        except ImportError:  # pragma: no cover
            continue
        units = units_of(enc)
        for u in units:
            inside_se = {id(x) for s in u.se for x in s.modules()}
            if not all(isinstance(m, _LOCAL) or id(m) in inside_se for m in u.fn.modules()
                       if not list(m.children()) or is_se(m)):
                return None
        return units
    return None


def has_squeeze_excitation(model: nn.Module) -> bool:
    """True when ``model.encoder`` has a registered chain whose units contain SE modules."""
    units = encoder_units(getattr(model, "encoder", None))
    return bool(units) and any(u.se for u in units)


def supports_incremental(model: nn.Module, approximate: bool = False) -> bool:
    """True when ``model.encoder`` has a registered unit chain of local operations only (exact), or, with
    ``approximate``, local operations and squeeze-excitation blocks (the approximate mode)."""
    units = encoder_units(getattr(model, "encoder", None))
    return units is not None and (approximate or not any(u.se for u in units))


# ---------------------------------------------------------------- box arithmetic, one axis at a time


def _forward_span(lo: int, hi: int, unit: Unit, n_out: int) -> tuple[int, int]:
    """Output units whose input span meets input rows [lo, hi)."""
    s, (a, b) = unit.stride, unit.reach
    return max(0, -(-(lo - b) // s)), min(n_out, (hi - 1 + a) // s + 1)


def _input_span(lo: int, hi: int, unit: Unit, n_in: int) -> tuple[int, int]:
    """Input rows (start aligned to the stride) from which output units [lo, hi) are computed exactly."""
    s, (a, b) = unit.stride, unit.reach
    return max(0, (s * lo - a) // s * s), min(n_in, s * (hi - 1) + b + 1)


@dataclass(frozen=True)
class Step:
    """What one unit does for one window: compute output ``box`` from input ``crop`` (None: nothing)."""

    crop: Box | None
    box: Box | None


def plan(units: list[Unit], sizes: list[tuple[int, int]], window: Box, reads: dict[int, Box]) -> list[Step]:
    """Per unit, the input crop and the output box to recompute after perturbing ``window`` (input px).

    ``sizes``: (h, w) of the input followed by each unit's output; ``reads``: feature level -> box read
    downstream (by the decoder). Units with SE modules compute their whole changed box."""
    changed: list[Box | None] = []
    cur: Box | None = window
    for k, unit in enumerate(units):
        if cur is not None:
            (h, w) = sizes[k + 1]
            ys, xs = _forward_span(cur[0], cur[1], unit, h), _forward_span(cur[2], cur[3], unit, w)
            cur = None if is_empty((*ys, *xs)) else (*ys, *xs)
        changed.append(cur)
    steps: list[Step] = [Step(None, None)] * len(units)
    needed_next: Box | None = None  # input crop of the unit after k
    for k in range(len(units) - 1, -1, -1):
        unit = units[k]
        need = join(needed_next, reads.get(unit.level) if unit.level is not None else None)
        if unit.se:
            need = join(need, changed[k])
        box = None if (is_empty(need) or changed[k] is None) else meet(changed[k], need)
        crop = None
        if box is not None:
            (h, w) = sizes[k]
            crop = (*_input_span(box[0], box[1], unit, h), *_input_span(box[2], box[3], unit, w))
        steps[k] = Step(crop, box)
        needed_next = crop
    return steps


class IncrementalEncoder:
    """Unit outputs of one image, reused for perturbed copies that differ from it inside windows.

    ``IncrementalEncoder(model.encoder, x)`` with x (1, C, H, W); ``features(xb, windows, reads)`` ->
    (features, origins): the encoder's feature list for the batch xb (B, C, H, W) whose image b differs
    from x only inside ``windows[b]`` (px). With ``reads`` (level -> box) level L is only the crop
    ``reads[L]`` of the full map, whose top-left corner is ``origins[L]``, and levels not in ``reads`` are
    None; when ``reads`` is None all levels are whole maps (origin (0, 0)). ``approximate``: encoders with
    squeeze-excitation (:mod:`.squeeze_excite`, not exact); without it they raise ValueError.
    """

    def __init__(self, enc: nn.Module, x: torch.Tensor, approximate: bool = False) -> None:
        units = encoder_units(enc)
        if units is None or (any(u.se for u in units) and not approximate):
            raise ValueError(f"IncrementalEncoder: no exact unit chain for {type(enc).__name__}")
        self.units = units
        self.x = x
        self.se = SECache()
        outs, cur = [], x
        with self.se.capture([s for u in self.units for s in u.se]):
            for unit in self.units:
                cur = unit.fn(cur)
                outs.append(cur)
        self.outs = outs
        self.sizes = [tuple(x.shape[-2:])] + [tuple(o.shape[-2:]) for o in outs]
        self.level_unit = {u.level: k for k, u in enumerate(self.units) if u.level is not None}

    @staticmethod
    def bytes_per_pixel(enc: nn.Module, x: torch.Tensor) -> float:
        """Cache size per input pixel (bytes) for images like x (B, C, H, W), from a 64x64 probe (unit
        outputs and, with SE blocks, their inputs)."""
        probe = x.new_zeros((1, x.shape[1], 64, 64))
        total = 0
        units = encoder_units(enc) or []
        se = SECache()
        with se.capture([s for u in units for s in u.se]):
            for unit in units:
                probe = unit.fn(probe)
                total += probe.numel() * probe.element_size()
        return (total + se.nbytes()) / 64**2

    def level_shapes(self) -> list[tuple[int, int]]:
        """(h, w) of each encoder feature level, the input first."""
        return [self.sizes[0]] + [self.sizes[self.level_unit[lv] + 1] for lv in range(1, 6)]

    def work_fraction(self, window: Box) -> float:
        """Share of the whole encoder's work (multiply-adds, from each unit's parameters x output area) that
        recomputing after a change in ``window`` takes, with every level read whole."""
        from matseg_nb.explain.boxes import area

        total = done = 0.0
        for k, step in enumerate(self.plan(window)):
            h, w = self.sizes[k + 1]
            full = sum(p.numel() for p in self.units[k].fn.parameters()) * h * w + h * w
            total += full
            done += full * (area(step.box) / (h * w) if step.box is not None else 0.0)
        return done / total if total else 1.0

    def plan(self, window: Box, reads: dict[int, Box] | None = None) -> list[Step]:
        if reads is None:
            reads = {lv: (0, h, 0, w) for lv, (h, w) in enumerate(self.level_shapes()) if lv}
        return plan(self.units, self.sizes, window, reads)

    def changed_levels(self, window: Box) -> dict[int, Box | None]:
        """Feature level -> the box (level px) outside which the whole-map features of an image that differs
        from the prepared one inside ``window`` equal the prepared ones (None: nowhere changed)."""
        steps = self.plan(window)
        return {lv: steps[k].box for lv, k in self.level_unit.items()}

    def features(self, xb: torch.Tensor, windows: list[Box], reads: dict[int, Box] | None = None
                 ) -> tuple[list[torch.Tensor | None], list[tuple[int, int]]]:
        if xb.shape[1:] != self.x.shape[1:] or len(windows) != xb.shape[0]:
            raise ValueError(f"IncrementalEncoder: expected a batch of {tuple(self.x.shape[1:])} images with "
                             f"one window each, found {tuple(xb.shape)} and {len(windows)} windows")
        plans = [self.plan(w, reads) for w in windows]
        done: list[list[torch.Tensor | None]] = [[None] * len(self.units) for _ in windows]
        groups: dict[tuple, list[int]] = {}  # images whose crops have the same sizes run as one batch
        for i, steps in enumerate(plans):
            key = tuple(None if s.crop is None else (s.crop[1] - s.crop[0], s.crop[3] - s.crop[2]) for s in steps)
            groups.setdefault(key, []).append(i)
        for items in groups.values():
            for k, unit in enumerate(self.units):
                if plans[items[0]][k].crop is None:
                    continue
                parts = [self._unit_input(xb, k, i, plans[i], done[i]) for i in items]
                batch = parts[0] if len(parts) == 1 else torch.cat(parts)
                origins = [(plans[i][k].crop[0] // unit.stride, plans[i][k].crop[2] // unit.stride) for i in items]
                if unit.se:
                    boxes = [(shift(plans[i][k].box, o), plans[i][k].box) for i, o in zip(items, origins, strict=True)]
                    with self.se.local_scales(list(unit.se), boxes):
                        out = unit.fn(batch)
                else:
                    out = unit.fn(batch)
                for j, i in enumerate(items):
                    done[i][k] = take(out[j : j + 1], shift(plans[i][k].box, origins[j]))
        feats, origins = [xb], [(0, 0)]
        for lv, (h, w) in enumerate(self.level_shapes()[1:], start=1):
            if reads is not None and lv not in reads:  # not recomputed where it changed: not returned
                feats.append(None)
                origins.append((0, 0))
                continue
            k = self.level_unit[lv]
            box = reads[lv] if reads is not None else (0, h, 0, w)
            feats.append(self._assemble(k, box, [(plans[i][k].box, done[i][k]) for i in range(len(windows))]))
            origins.append((box[0], box[2]))
        return feats, origins

    def _unit_input(self, xb, k: int, i: int, steps: list[Step], done: list) -> torch.Tensor:
        crop = steps[k].crop
        if k == 0:
            return take(xb[i : i + 1], crop)
        return self._assemble(k - 1, crop, [(steps[k - 1].box, done[k - 1])])

    def _assemble(self, k: int, box: Box, parts: list[tuple[Box | None, torch.Tensor | None]]) -> torch.Tensor:
        """Crop ``box`` of unit k's cached output, one copy per part, with each part's recomputed
        region (its box, its tensor) pasted in."""
        if len(parts) == 1 and parts[0][0] == box:  # recomputed on exactly this box: nothing cached in it
            return parts[0][1]
        base = take(self.outs[k], box)
        out = base.expand(len(parts), -1, -1, -1).clone(memory_format=torch.preserve_format)
        for j, (pbox, t) in enumerate(parts):
            inter = None if pbox is None else meet(pbox, box)
            if inter is not None:
                take(out[j : j + 1], relative(inter, box)).copy_(
                    take(t, relative(inter, pbox)))
        return out
