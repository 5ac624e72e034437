"""Sliding-window inference at full resolution with smooth (Hann) blending."""

from __future__ import annotations

import math

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


def _window_1d(n: int) -> torch.Tensor:
    """Hann window with a floor so that border pixels covered by one tile keep a non-zero weight."""
    i = torch.arange(n, dtype=torch.float32)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * (i + 0.5) / n)).clamp_min(1e-3)


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
) -> torch.Tensor:
    """Class probabilities (K, H, W) float32 on CPU for one image (C, H, W) of any size.

    The image is padded (reflect) to the model's input multiple (``pad_multiple``), cut into tiles of
    ``tile`` px (rounded up to that multiple) overlapping by ``overlap`` px, softmaxed per tile and blended
    with a 2-D Hann window; an image that fits one tile gets a single forward pass. ``amp``: autocast
    (default: on when the model is on CUDA). The model is used as given (call ``.eval()`` first).
    ``progress``: a ``tqdm.auto`` bar over the tiles when there is more than one batch of them.
    """
    device = next(model.parameters()).device
    amp = device.type == "cuda" if amp is None else amp
    m = pad_multiple(model)
    x = torch.as_tensor(image_chw, dtype=torch.float32)
    if x.ndim != 3:
        raise ValueError(f"image_chw: expected (C, H, W), found shape {tuple(x.shape)}")
    _, h, w = x.shape
    tile = _ceil_to(max(tile, m), m)
    xp = pad_to_multiple(x, m)
    hp, wp = xp.shape[-2:]
    th, tw = min(tile, hp), min(tile, wp)
    stride_h = max(th - overlap, m) if th > overlap else max(th // 2, 1)
    stride_w = max(tw - overlap, m) if tw > overlap else max(tw // 2, 1)
    coords = [(y, x_) for y in _starts(hp, th, stride_h) for x_ in _starts(wp, tw, stride_w)]
    single = len(coords) == 1
    weight = torch.ones(th, tw) if single else _window_1d(th)[:, None] * _window_1d(tw)[None, :]
    acc = torch.zeros(num_classes, hp, wp)
    norm = torch.zeros(hp, wp)
    channels_last = device.type == "cuda"
    from tqdm.auto import tqdm

    bar = tqdm(total=len(coords), desc="tiles", unit="tile", leave=False,
               disable=not progress or len(coords) <= batch_size)
    for i in range(0, len(coords), batch_size):
        chunk = coords[i : i + batch_size]
        batch = torch.stack([xp[:, y : y + th, x_ : x_ + tw] for y, x_ in chunk]).to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, enabled=amp):
            logits = model(batch)
        if logits.shape[1] != num_classes:
            raise ValueError(f"num_classes: expected the model's {logits.shape[1]} outputs, found {num_classes}")
        probs = logits.float().softmax(dim=1).cpu()
        for (y, x_), p in zip(chunk, probs, strict=True):
            acc[:, y : y + th, x_ : x_ + tw] += p * weight
            norm[y : y + th, x_ : x_ + tw] += weight
        bar.update(len(chunk))
    bar.close()
    return (acc / norm)[:, :h, :w].contiguous()


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
