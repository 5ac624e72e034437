"""Shared helpers for the explain tests: tiny smp models, images, masks, a model with a known answer."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def tiny_model(arch: str = "Unet", in_channels: int = 1, classes: int = 3, seed: int = 0) -> nn.Module:
    """smp ``arch`` on the tiny timm encoder ``tu-test_resnet``, random weights, eval mode."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    model = getattr(smp, arch)(encoder_name="tu-test_resnet", encoder_weights=None,
                               in_channels=in_channels, classes=classes)
    return model.eval()


def rand_image(c: int = 1, h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((c, h, w)).astype(np.float32)


def box_mask(h: int = 48, w: int = 40, box=(10, 25, 12, 30)) -> np.ndarray:
    a = np.zeros((h, w), dtype=bool)
    a[box[0] : box[1], box[2] : box[3]] = True
    return a


class SourceModel(nn.Module):
    """Known answer: every pixel's class-1 logit is ``gain * (mean of x^2 over rows/cols src) - bias``.

    The prediction anywhere (hence inside any A) depends only on the source box ``src`` =
    (y0, y1, x0, x1); blurring a high-contrast texture there lowers mean(x^2) and flips pixels.
    """

    def __init__(self, src=(8, 24, 8, 24), gain: float = 40.0, bias: float = 18.0):
        super().__init__()
        self.src = src
        self.gain = gain
        self.bias = bias
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0, y1, x0, x1 = self.src
        s = (x[:, :, y0:y1, x0:x1] ** 2).mean(dim=(1, 2, 3))  # (B,)
        logit1 = (self.gain * s - self.bias)[:, None, None, None].expand(-1, 1, *x.shape[-2:])
        return torch.cat([torch.zeros_like(logit1), logit1], dim=1) + 0 * self.dummy


def checker_image(h: int = 64, w: int = 64, src=(8, 24, 8, 24)) -> np.ndarray:
    """(1, H, W): flat 0.5 everywhere, a 0/1 checkerboard (2 px squares) inside ``src``."""
    img = np.full((1, h, w), 0.5, dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    checker = (((yy // 2) + (xx // 2)) % 2).astype(np.float32)
    y0, y1, x0, x1 = src
    img[0, y0:y1, x0:x1] = checker[y0:y1, x0:x1]
    return img
