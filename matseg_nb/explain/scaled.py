"""Exact shortcuts through input wrappers: the window's footprint at the model's scale is the changed box.

:class:`matseg_nb.models.tiling.ScaledInputModel` area-resamples the input (B, C, H, W) to (h, w), runs its
inner model there and upsamples the logits bilinearly (``align_corners=False``) back to (H, W). Both
resamplings are local: inner pixel i (per axis) averages input rows ``[floor(i H / h), ceil((i + 1) H / h))``
(PyTorch's ``area`` = adaptive average pooling), and output row Y reads inner rows ``i0, i0 + 1`` with
``i0 = floor(max(0, (Y + 0.5) h / H - 0.5))``. So a window perturbed at full resolution changes the inner
input only on :func:`area_footprint` of it, and logits on a full-resolution box need the inner logits on
:func:`bilinear_reads` of it only. The inner model's own shortcuts (box decoder, incremental encoder) then
run on those boxes, and :func:`bilinear_box` upsamples the inner crop to the box. Equal to the wrapper's
forward pass to float32 rounding (``tests/test_explain_scaled.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from matseg_nb.explain.boxes import HW, Box


def _area_span(lo: int, hi: int, n_in: int, n_out: int) -> tuple[int, int]:
    """Inner units [a, b) whose averaging range [floor(i n_in / n_out), ceil((i + 1) n_in / n_out)) meets
    input rows [lo, hi)."""
    a = max(0, (lo * n_out) // n_in - 1)
    while a < n_out and math.ceil((a + 1) * n_in / n_out) <= lo:
        a += 1
    b = min(n_out, -(-(hi * n_out) // n_in) + 1)
    while b > a and (b - 1) * n_in // n_out >= hi:
        b -= 1
    return a, b


def area_footprint(window: Box, full: HW, inner: HW) -> Box:
    """The inner-input box (inner px) that changes when ``window`` (full px) of a (H, W) image changes."""
    return (*_area_span(window[0], window[1], full[0], inner[0]), *_area_span(window[2], window[3], full[1], inner[1]))


def _bilinear_taps(lo: int, hi: int, n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For output rows [lo, hi): (i0, i1, lambda1) as PyTorch's bilinear, align_corners=False, size given."""
    scale = n_in / n_out
    src = ((torch.arange(lo, hi, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0.0)
    i0 = src.floor().long()
    i1 = torch.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, src - i0


def _span_read(lo: int, hi: int, n_in: int, n_out: int) -> tuple[int, int]:
    i0, i1, _ = _bilinear_taps(lo, hi, n_in, n_out)
    return int(i0.min()), int(i1.max()) + 1


def bilinear_reads(box: Box, full: HW, inner: HW) -> Box:
    """The inner logits box (inner px) that bilinear upsampling to (H, W) reads for output ``box`` (full px)."""
    return (*_span_read(box[0], box[1], inner[0], full[0]), *_span_read(box[2], box[3], inner[1], full[1]))


def _matrix(lo: int, hi: int, read: tuple[int, int], n_in: int, n_out: int, like: torch.Tensor) -> torch.Tensor:
    i0, i1, l1 = _bilinear_taps(lo, hi, n_in, n_out)
    m = torch.zeros(hi - lo, read[1] - read[0], dtype=torch.float64)
    rows = torch.arange(hi - lo)
    m[rows, i0 - read[0]] += 1.0 - l1
    m[rows, i1 - read[0]] += l1
    return m.to(like.device, like.dtype)


def bilinear_box(logits: torch.Tensor, read: Box, inner: HW, full: HW, box: Box) -> torch.Tensor:
    """``logits`` (B, K, rows, cols) = the inner logits on ``read`` -> the bilinear upsampling to (H, W)
    cropped to ``box``: (B, K, y1 - y0, x1 - x0). On the whole inner map it is the wrapper's own
    ``F.interpolate`` (O(output) work; the dense matrices below cost O(output x read) and took 80 ms per batch
    of 4 at 512 px); on a crop, one small matrix per axis."""
    if tuple(read) == (0, inner[0], 0, inner[1]) and tuple(logits.shape[-2:]) == tuple(inner):
        up = F.interpolate(logits.float(), size=tuple(full), mode="bilinear", align_corners=False)
        return up[..., box[0] : box[1], box[2] : box[3]]
    my = _matrix(box[0], box[1], (read[0], read[1]), inner[0], full[0], logits)
    mx = _matrix(box[2], box[3], (read[2], read[3]), inner[1], full[1], logits)
    return torch.einsum("yr,bkrc,xc->bkyx", my, logits.float().contiguous(), mx)


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class InputMap:
    """A wrapper whose inner model sees a locally resampled input: ``resample`` (B, C, H, W) -> inner input;
    ``window`` / ``reads`` map boxes (full, inner sizes); ``upsample`` brings inner logits on a read box back
    to a full-resolution box; ``name`` goes into the heatmap's line."""

    inner: nn.Module
    name: str
    resample: Callable[[torch.Tensor], torch.Tensor]
    window: Callable[[Box, HW, HW], Box]
    reads: Callable[[Box, HW, HW], Box]
    upsample: Callable[[torch.Tensor, Box, HW, HW, Box], torch.Tensor]


def _input_scale(model: nn.Module) -> InputMap | None:
    from matseg_nb.models.tiling import ScaledInputModel

    if type(model) is not ScaledInputModel:
        return None
    return InputMap(model.inner, f"input_scale {model.input_scale:g} (window footprint at model scale)",
                    model.resample, area_footprint, bilinear_reads, bilinear_box)


#: wrapper kind -> fn(model) -> its InputMap, or None when ``model`` is not that wrapper
INPUT_MAPS: dict[str, Callable[[nn.Module], InputMap | None]] = {"input_scale": _input_scale}


def input_map_for(model: nn.Module) -> InputMap | None:
    """The registered :class:`InputMap` of ``model``, or None (the model is not a known wrapper)."""
    for make in INPUT_MAPS.values():
        found = make(model)
        if found is not None:
            return found
    return None
