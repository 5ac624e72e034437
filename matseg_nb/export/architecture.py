"""The architecture source of a bioimage.io package's ``pytorch_state_dict`` weights: an smp model, with the run's
``input_scale`` = 1/n resampling (n x n average pool, bilinear upsampling back) around it.

Self-contained on purpose (imports torch and segmentation_models_pytorch only): the exporter copies this file
into the package as ``architecture.py``, and a consumer (bioimageio.core, deepImageJ's Python backends) builds
``MatsegNet(**kwargs)`` from it without matseg-nb."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class MatsegNet(nn.Module):
    """(N, C, H, W) normalized input -> (N, K, H, W) logits; H and W multiples of ``factor`` x the encoder's
    output stride. ``smp_config``: the run's smp ``config.json`` (``_model_class`` = the decoder class);
    ``factor``: n of input_scale = 1/n (1: no resampling)."""

    def __init__(self, smp_config: dict[str, Any], factor: int = 1) -> None:
        import segmentation_models_pytorch as smp

        super().__init__()
        config = {k: v for k, v in smp_config.items() if not k.startswith("_")}
        config["encoder_weights"] = None  # the trained weights come from the state dict, never a download
        self.net = smp.create_model(smp_config["_model_class"], **config)
        self.factor = int(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return self.net(x)
        logits = self.net(F.avg_pool2d(x, self.factor))
        return F.interpolate(logits, scale_factor=float(self.factor), mode="bilinear", align_corners=False)
