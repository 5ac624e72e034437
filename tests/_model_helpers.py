"""The one smp-style test model: an smp architecture on the tiny timm encoder ``tu-test_resnet`` (random
weights, built offline in milliseconds). Tests that need a particular encoder pass ``encoder=``."""

from __future__ import annotations

import torch
from torch import nn

TINY_ENCODER = "tu-test_resnet"


def tiny_smp(arch: str = "Unet", *, in_channels: int = 1, classes: int = 2, encoder: str = TINY_ENCODER,
             seed: int | None = 0, eval_mode: bool = True, **options) -> nn.Module:
    """``smp.<arch>(encoder, encoder_weights=None, in_channels, classes, **options)``; ``seed`` seeds torch
    first (None: leave the generator alone); ``eval_mode``: in eval mode (BatchNorm statistics fixed)."""
    import segmentation_models_pytorch as smp

    if seed is not None:
        torch.manual_seed(seed)
    model = getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                               classes=classes, **options)
    return model.eval() if eval_mode else model
