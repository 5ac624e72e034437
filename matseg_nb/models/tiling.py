"""Sliding-window inference at full resolution with weighted blending (Hann, Gaussian or constant), streamed
in horizontal bands so that memory stays bounded for any image size."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from matseg_nb.models.build import pad_multiple


def _ceil_to(n: int, m: int) -> int:
    return int(math.ceil(n / m) * m)


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    s = list(range(0, length - tile, stride))
    return s + [length - tile]


def _hann_1d(n: int) -> torch.Tensor:
    """Hann window with a floor so that border pixels covered by one tile keep a non-zero weight."""
    i = torch.arange(n, dtype=torch.float32)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * (i + 0.5) / n)).clamp_min(1e-3)


def _gaussian_1d(n: int) -> torch.Tensor:
    """exp(-x^2 / 2 sigma^2), x centred on the tile, sigma = n / 8 (nnU-Net's and MONAI's choice)."""
    x = torch.arange(n, dtype=torch.float32) - (n - 1) / 2.0
    return torch.exp(x**2 / (-2 * (0.125 * n) ** 2))


#: blending window per name: (th, tw) -> weights; "constant" = plain averaging of overlapping tiles
BLEND_WINDOWS = {
    "hann": lambda th, tw: _hann_1d(th)[:, None] * _hann_1d(tw)[None, :],
    "gaussian": lambda th, tw: (_gaussian_1d(th)[:, None] * _gaussian_1d(tw)[None, :]).clamp_min(1e-3),
    "constant": lambda th, tw: torch.ones(th, tw),
}


def blend_window(th: int, tw: int, blend: str = "gaussian") -> torch.Tensor:
    """(th, tw) float32 blending weights of one tile (> 0 everywhere)."""
    try:
        return BLEND_WINDOWS[blend](th, tw)
    except KeyError:
        raise ValueError(f"blend: expected one of {sorted(BLEND_WINDOWS)}, found {blend!r}") from None


def pad_to_multiple(x: torch.Tensor, multiple: int, min_hw: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Pad (..., H, W) at bottom/right to multiples of ``multiple`` (and at least ``min_hw``); reflect when possible."""
    h, w = x.shape[-2:]
    ph = max(_ceil_to(h, multiple), min_hw[0]) - h
    pw = max(_ceil_to(w, multiple), min_hw[1]) - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    squeeze = x.ndim == 3
    y = F.pad(x[None] if squeeze else x, (0, pw, 0, ph), mode=mode)
    return y[0] if squeeze else y


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one padded (hp, wp) image go: tile (th, tw) px, top rows ``ys``, left columns ``xs``
    (raster order: every x for ys[0], then ys[1], ...)."""

    hp: int
    wp: int
    th: int
    tw: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def coords(self) -> list[tuple[int, int]]:
        return [(y, x) for y in self.ys for x in self.xs]


def plan_tiles(hp: int, wp: int, tile: int, overlap: int, multiple: int = 1) -> TilePlan:
    """Tiles of ``tile`` px (rounded up to ``multiple``, clipped to the image) overlapping by ``overlap`` px;
    the last tile of a row/column is flush with the image edge."""
    tile = _ceil_to(max(tile, multiple), multiple)
    th, tw = min(tile, hp), min(tile, wp)
    stride_h = max(th - overlap, multiple) if th > overlap else max(th // 2, 1)
    stride_w = max(tw - overlap, multiple) if tw > overlap else max(tw // 2, 1)
    return TilePlan(hp, wp, th, tw, tuple(_starts(hp, th, stride_h)), tuple(_starts(wp, tw, stride_w)))


def blend_coverage(plan: TilePlan, blend: str = "gaussian") -> torch.Tensor:
    """(hp, wp) sum over tiles of each tile's NORMALISED weight at each pixel (1 everywhere by construction:
    a blended probability is a convex combination of the tiles' probabilities)."""
    win = blend_window(plan.th, plan.tw, blend)
    norm = torch.zeros(plan.hp, plan.wp)
    for y, x in plan.coords:
        norm[y : y + plan.th, x : x + plan.tw] += win
    cov = torch.zeros(plan.hp, plan.wp)
    for y, x in plan.coords:
        cov[y : y + plan.th, x : x + plan.tw] += win / norm[y : y + plan.th, x : x + plan.tw]
    return cov


#: flips (dims of an (N, C, H, W) batch) averaged by test-time augmentation, nnU-Net's mirroring in 2-D
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))


def _tile_probs(model: nn.Module, batch: torch.Tensor, num_classes: int, amp: bool, tta: bool) -> torch.Tensor:
    """(N, K, th, tw) float32 softmax of one batch of tiles (mean over flips with ``tta``)."""
    out = None
    for dims in TTA_FLIPS if tta else ((),):
        x = batch.flip(dims) if dims else batch
        with torch.autocast(device_type=batch.device.type, enabled=amp):
            logits = model(x)
        if logits.shape[1] != num_classes:
            raise ValueError(f"num_classes: expected the model's {logits.shape[1]} outputs, found {num_classes}")
        p = logits.float().softmax(dim=1)
        p = p.flip(dims) if dims else p
        out = p if out is None else out + p
    return out / len(TTA_FLIPS) if tta else out


@torch.no_grad()
def iter_tiled_bands(
    model: nn.Module,
    image_chw: torch.Tensor,
    num_classes: int,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    amp: bool | None = None,
    blend: str = "hann",
    tta: bool = False,
    progress: bool = False,
    timer: dict | None = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Blended class probabilities of one image (C, H, W), streamed as horizontal bands.

    Yields ``(y0, y1, probs)`` with ``probs`` (K, y1 - y0, W) float32 on CPU, top to bottom, covering
    rows 0..H once. The image is padded to the model's input multiple (``pad_multiple``), cut into tiles
    (:func:`plan_tiles`), softmaxed per tile (mean over flips with ``tta``) and blended with the
    ``blend`` window (:data:`BLEND_WINDOWS`): each pixel is sum_t w_t p_t / sum_t w_t. A band is yielded
    once no later tile touches it, so the accumulators hold about one row of tiles (K x (tile + stride) x W
    float32), never the whole image. An image that fits one tile gets a single forward pass, unweighted.
    ``timer``: when given, ``timer["forward_s"]`` accumulates the seconds spent in forward passes.
    """
    device = next(model.parameters()).device
    amp = device.type == "cuda" if amp is None else amp
    m = pad_multiple(model)
    x = torch.as_tensor(image_chw, dtype=torch.float32)
    if x.ndim != 3:
        raise ValueError(f"image_chw: expected (C, H, W), found shape {tuple(x.shape)}")
    _, h, w = x.shape
    xp = pad_to_multiple(x, m)
    plan = plan_tiles(xp.shape[-2], xp.shape[-1], tile, overlap, m)
    th, tw = plan.th, plan.tw
    coords = plan.coords
    weight = torch.ones(th, tw) if len(coords) == 1 else blend_window(th, tw, blend)
    row_end = {y: (r + 1) * len(plan.xs) for r, y in enumerate(plan.ys)}  # tiles done when row y is complete
    top = 0  # first row held in the accumulators
    acc = torch.zeros(num_classes, 0, plan.wp)
    norm = torch.zeros(0, plan.wp)
    channels_last = device.type == "cuda"
    from matseg_nb.progress import progress_bar

    bar = progress_bar(total=len(coords), desc="tiles", unit="tile", leave=False,
               disable=not progress or len(coords) <= batch_size)
    done = 0
    for i in range(0, len(coords), batch_size):
        chunk = coords[i : i + batch_size]
        batch = torch.stack([xp[:, y : y + th, x_ : x_ + tw] for y, x_ in chunk]).to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        probs = _tile_probs(model, batch, num_classes, amp, tta).cpu()
        if timer is not None:
            timer["forward_s"] = timer.get("forward_s", 0.0) + time.perf_counter() - t0
        bottom = max(y for y, _ in chunk) + th
        if bottom > top + acc.shape[1]:
            grow = bottom - top - acc.shape[1]
            acc = torch.cat([acc, torch.zeros(num_classes, grow, plan.wp)], dim=1)
            norm = torch.cat([norm, torch.zeros(grow, plan.wp)], dim=0)
        for (y, x_), p in zip(chunk, probs, strict=True):
            acc[:, y - top : y - top + th, x_ : x_ + tw] += p * weight
            norm[y - top : y - top + th, x_ : x_ + tw] += weight
        done += len(chunk)
        bar.update(len(chunk))
        # rows above the first tile row not yet complete are final
        pending = [y for y in plan.ys if row_end[y] > done]
        final = pending[0] if pending else plan.hp
        if final > top:
            cut = final - top
            y1 = min(final, h)
            if y1 > top:
                yield top, y1, (acc[:, : y1 - top, :w] / norm[: y1 - top, :w]).contiguous()
            acc, norm = acc[:, cut:].clone(), norm[cut:].clone()
            top = final
        if top >= h:
            break
    bar.close()


@torch.no_grad()
def predict_tiled(
    model: nn.Module,
    image_chw: torch.Tensor,
    num_classes: int,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    amp: bool | None = None,
    progress: bool = False,
    blend: str = "hann",
    tta: bool = False,
) -> torch.Tensor:
    """Class probabilities (K, H, W) float32 on CPU for one image (C, H, W) of any size.

    The image is padded (reflect) to the model's input multiple (``pad_multiple``), cut into tiles of
    ``tile`` px (rounded up to that multiple) overlapping by ``overlap`` px, softmaxed per tile and blended
    with a 2-D ``blend`` window (``hann``, ``gaussian`` or ``constant``); an image that fits one tile gets a
    single forward pass. ``tta``: mean over horizontal/vertical flips. ``amp``: autocast (default: on when
    the model is on CUDA). The model is used as given (call ``.eval()`` first). ``progress``: a
    ``tqdm.auto`` bar over the tiles when there is more than one batch of them. The tiles are streamed by
    :func:`iter_tiled_bands`; this function only stacks its bands (callers that want bounded memory for
    huge images consume the bands instead).
    """
    x = torch.as_tensor(image_chw, dtype=torch.float32)
    if x.ndim != 3:
        raise ValueError(f"image_chw: expected (C, H, W), found shape {tuple(x.shape)}")
    out = torch.empty(num_classes, x.shape[1], x.shape[2])
    for y0, y1, band in iter_tiled_bands(model, x, num_classes, tile, overlap, batch_size, amp, blend, tta, progress):
        out[:, y0:y1] = band
    return out


class _ScaledEncoder(nn.Module):
    """``encoder`` of a :class:`ScaledInputModel`: resamples its input like the model does (QC's encoder
    features see what the model sees); ``output_stride`` in input pixels (what ``pad_multiple`` reads)."""

    def __init__(self, owner: ScaledInputModel) -> None:
        super().__init__()
        object.__setattr__(self, "_owner", owner)  # not a submodule: no duplicate parameters

    @property
    def output_stride(self) -> int:
        return self._owner.input_multiple

    def forward(self, x: torch.Tensor):
        return self._owner.inner.encoder(self._owner.resample(x))


class ScaledInputModel(nn.Module):
    """A segmentation model trained on images resampled by ``input_scale`` (< 1: more context per pixel
    of compute), applied at the original resolution: the input (N, C, H, W) is area-resampled to
    ``input_scale`` x (H, W) (rounded to the inner model's multiple), the logits are upsampled bilinearly back
    to (H, W). Every prediction path (``predict_tiled``, QC, explanations) therefore sees full-size inputs
    and outputs; ``load_run_model`` returns this wrapper when the run's ``training.input_scale`` is not 1."""

    def __init__(self, inner: nn.Module, input_scale: float) -> None:
        super().__init__()
        if not 0 < input_scale <= 1:
            raise ValueError(f"input_scale: expected a value in (0, 1], found {input_scale}")
        self.inner, self.input_scale = inner, float(input_scale)
        object.__setattr__(self, "encoder", _ScaledEncoder(self))

    @property
    def inner_multiple(self) -> int:
        return pad_multiple(self.inner)

    @property
    def input_multiple(self) -> int:
        """Input side multiple (input px) whose resampled size is a multiple of the inner model's."""
        return int(math.ceil(self.inner_multiple / self.input_scale))

    def resample(self, x: torch.Tensor) -> torch.Tensor:
        m = self.inner_multiple
        size = [max(m, int(round(s * self.input_scale / m)) * m) for s in x.shape[-2:]]
        return F.interpolate(x, size=size, mode="area")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(self.resample(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def with_input_scale(model: nn.Module, input_scale: float | None) -> nn.Module:
    """``model`` itself when ``input_scale`` is 1 (or None), else a :class:`ScaledInputModel` around it."""
    if input_scale is None or float(input_scale) == 1.0:
        return model
    return ScaledInputModel(model, float(input_scale))
