"""A graph-friendly form of ``models.tiling.ScaledInputModel`` for export (dynamic H and W).

``ScaledInputModel`` computes its resampled size in Python, which a trace freezes. For ``input_scale`` = 1/n
(n integer) and inputs whose sides are multiples of ``input_multiple``, the same result is an n x n average
pool (== area resampling) and a bilinear upsampling by n, both shape-free in the graph."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from matseg_nb.errors import UserError


class TraceableScaledModel(nn.Module):
    """(N, C, H, W), H and W multiples of ``n * inner multiple`` -> (N, K, H, W) logits, as ScaledInputModel."""

    def __init__(self, inner: nn.Module, factor: int) -> None:
        super().__init__()
        self.inner, self.factor = inner, int(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(F.avg_pool2d(x, self.factor))
        return F.interpolate(logits, scale_factor=float(self.factor), mode="bilinear", align_corners=False)


def traceable(model: nn.Module) -> nn.Module:
    """``model`` itself, or for a ScaledInputModel its :class:`TraceableScaledModel` (input_scale 1/n only)."""
    from matseg_nb.models.tiling import ScaledInputModel

    if not isinstance(model, ScaledInputModel):
        return model
    factor = round(1 / model.input_scale)
    if abs(factor * model.input_scale - 1) > 1e-9:
        raise UserError(f"training.input_scale: expected 1/n (n integer) for an export with dynamic size, "
                        f"found {model.input_scale}")
    return TraceableScaledModel(model.inner, factor).eval()
