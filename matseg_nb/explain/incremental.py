"""Incremental ResNet encoder: after a window perturbation, recompute each block only where its output
changes *and* is read later.

The encoder (smp ``ResNetEncoder``: torchvision ResNet/ResNeXt blocks, all operations local) is a chain
of *units*: the stem, the max-pool and every residual block. A unit of stride s whose output unit u sees
input rows ``[s u - a, s u + b]`` (its *reach* (a, b), from the main path's kernels, strides, paddings
and dilations; the shortcut sees less) changes only where its input changed, grown by the reach. For
one window :func:`plan` propagates the changed box forward through the units, then walks back from the
boxes the decoder reads (``reads``; the whole map when ``None``) so that each unit is computed on
``changed ∩ needed`` only, from an input crop aligned to its stride. Everything else comes from the
unperturbed image's cached unit outputs (about 0.5 kB per input pixel for ResNet50). The result equals
the whole forward pass to float32 rounding (``tests/test_explain_shortcuts.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from matseg_nb.explain.boxes import Box, is_empty, join, meet, relative, shift, take

_LOCAL = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Sequential, nn.Identity)


@dataclass(frozen=True)
class Unit:
    """One step of the encoder chain: ``fn`` maps (B, C, h, w) to (B, C', h / stride, w / stride)."""

    name: str
    fn: nn.Module
    stride: int
    reach: tuple[int, int]  # (a, b) input units, see the module docstring
    level: int | None  # index in the encoder's feature list of the output, if it is one


class _Stem(nn.Module):
    def __init__(self, enc: nn.Module) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu = enc.conv1, enc.bn1, enc.relu

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
        if "downsample" in name or not isinstance(m, nn.Conv2d | nn.MaxPool2d):
            continue
        k, s, p, d = (_pair(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation))
        pad += p * jump
        rf += (k - 1) * d * jump
        jump *= s
    return jump, (pad, rf - 1 - pad)


def resnet_units(enc: nn.Module) -> list[Unit]:
    """The unit chain of an smp ``ResNetEncoder`` (depth 5): stem, max-pool, the blocks of layer1..4."""
    chain: list[tuple[str, nn.Module, int | None]] = [("stem", _Stem(enc), 1), ("maxpool", enc.maxpool, None)]
    for level, layer in enumerate(("layer1", "layer2", "layer3", "layer4"), start=2):
        blocks = list(getattr(enc, layer))
        chain += [(f"{layer}.{i}", b, level if i == len(blocks) - 1 else None) for i, b in enumerate(blocks)]
    return [Unit(name, fn, *unit_reach(fn), level) for name, fn, level in chain]


def supports_incremental(model: nn.Module) -> bool:
    """True when ``model.encoder`` is smp's ``ResNetEncoder`` (depth 5) built from torchvision blocks of
    local operations only (no squeeze-excitation or other global pooling)."""
    try:
        from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
        from torchvision.models.resnet import BasicBlock, Bottleneck
    except ImportError:  # pragma: no cover
        return False
    enc = getattr(model, "encoder", None)
    if not isinstance(enc, ResNetEncoder) or getattr(enc, "_depth", 5) != 5:
        return False
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        for block in getattr(enc, layer):
            if type(block) not in (BasicBlock, Bottleneck):
                return False
            if not all(isinstance(m, _LOCAL) for m in block.children()):
                return False
    return all(isinstance(m, _LOCAL) for m in (enc.conv1, enc.bn1, enc.relu, enc.maxpool))


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
    downstream (by the decoder)."""
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
    None; when ``reads`` is None all levels are whole maps (origin (0, 0)).
    """

    def __init__(self, enc: nn.Module, x: torch.Tensor) -> None:
        self.units = resnet_units(enc)
        self.x = x
        outs, cur = [], x
        for unit in self.units:
            cur = unit.fn(cur)
            outs.append(cur)
        self.outs = outs
        self.sizes = [tuple(x.shape[-2:])] + [tuple(o.shape[-2:]) for o in outs]
        self.level_unit = {u.level: k for k, u in enumerate(self.units) if u.level is not None}

    @staticmethod
    def bytes_per_pixel(enc: nn.Module, x: torch.Tensor) -> float:
        """Cache size per input pixel (bytes) for images like x (B, C, H, W), from a 64x64 probe."""
        probe = x.new_zeros((1, x.shape[1], 64, 64))
        total = 0
        for unit in resnet_units(enc):
            probe = unit.fn(probe)
            total += probe.numel() * probe.element_size()
        return total / 64**2

    def level_shapes(self) -> list[tuple[int, int]]:
        """(h, w) of each encoder feature level, the input first."""
        return [self.sizes[0]] + [self.sizes[self.level_unit[lv] + 1] for lv in range(1, 6)]

    def plan(self, window: Box, reads: dict[int, Box] | None = None) -> list[Step]:
        if reads is None:
            reads = {lv: (0, h, 0, w) for lv, (h, w) in enumerate(self.level_shapes()) if lv}
        return plan(self.units, self.sizes, window, reads)

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
                batch = torch.cat([self._unit_input(xb, k, i, plans[i], done[i]) for i in items])
                out = unit.fn(batch)
                for j, i in enumerate(items):
                    step = plans[i][k]
                    origin = (step.crop[0] // unit.stride, step.crop[2] // unit.stride)
                    done[i][k] = take(out[j : j + 1], shift(step.box, origin))
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
        base = take(self.outs[k], box)
        out = base.expand(len(parts), -1, -1, -1).clone(memory_format=torch.preserve_format)
        for j, (pbox, t) in enumerate(parts):
            inter = None if pbox is None else meet(pbox, box)
            if inter is not None:
                take(out[j : j + 1], relative(inter, box)).copy_(
                    take(t, relative(inter, pbox)))
        return out
