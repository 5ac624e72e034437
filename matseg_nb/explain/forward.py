"""The model as a batched probability function: padded to the decoder's multiple, softmax, cropped.

``ProbFn(model)(x)`` maps a batch (B, C, H, W) float32 to class probabilities (B, K, H, W)
float32. A single-logit (binary) model gives K = 2 as ``[1 - sigmoid, sigmoid]``. Inputs are
reflect-padded at the bottom/right to a multiple of ``multiple`` px (default: the model's
``matseg_nb.models.pad_multiple``, at least 32) and outputs are cropped back, so any image size works with every decoder.
"""

from __future__ import annotations

import contextlib

import torch

from matseg_nb.models import pad_multiple, pad_to_multiple


def pad_batch(x: torch.Tensor, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) at the bottom/right to a multiple of ``multiple``; returns (padded, (H, W)).

    Uses ``matseg_nb.models.pad_to_multiple`` (reflect when possible, else replicate)."""
    return pad_to_multiple(x, multiple), (int(x.shape[-2]), int(x.shape[-1]))


def to_probs(logits: torch.Tensor) -> torch.Tensor:
    """Logits (B, K, H, W) -> probabilities; K = 1 (binary) becomes 2 channels [1 - p, p]."""
    logits = logits.float()
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1.0 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


class ProbFn:
    """Batched, padded, no-autograd probability function of a segmentation model.

    ``amp`` (fp16 autocast; bf16 on CPU when forced) defaults to True on CUDA only;
    ``channels_last`` defaults to True (1.5x faster convolutions on this CPU, same numbers to
    float32 rounding; :func:`heatmap_literal` / :func:`heatmap_captum` use plain NCHW); ``crop`` =
    (y0, y1, x0, x1) restricts the returned probabilities to a box (px) to save memory.
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None,
                 amp: bool | None = None, channels_last: bool | None = None, multiple: int | None = None):
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.amp = self.device.type == "cuda" if amp is None else bool(amp)
        self.channels_last = True if channels_last is None else bool(channels_last)
        self.pad_multiple = int(multiple or max(32, pad_multiple(model)))
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=fmt).eval()

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def __call__(self, x: torch.Tensor, crop: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """(B, C, H, W) -> probabilities (B, K, H, W) float32 (or the ``crop`` box of them)."""
        with torch.inference_mode():
            xp, (h, w) = pad_batch(x.to(self.device, torch.float32), self.pad_multiple)
            if self.channels_last:
                xp = xp.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                logits = self.model(xp)
            y0, y1, x0, x1 = crop if crop is not None else (0, h, 0, w)
            return to_probs(logits[:, :, y0:y1, x0:x1])
