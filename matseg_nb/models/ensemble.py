"""The deployed model of a dataset: one run's model, or the fold ensemble of a cross-validated one.

A fold ensemble averages the class probabilities of the k fold models (nnU-Net's default after 5-fold CV);
its ``forward`` returns the log of that mean, so ``softmax(forward(x))`` is the mean probability and every
caller that softmaxes logits (``matseg_nb.models.tiling.predict_tiled``) predicts with the ensemble unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from matseg_nb.errors import UserError

#: probability floor before the log (float32-safe)
EPS = 1e-8


class FoldEnsemble(nn.Module):
    """Mean softmax of ``members`` (each maps (B, C_in, H, W) to (B, n_classes, H, W) logits); returns
    (B, n_classes, H, W) log mean probabilities."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("expected at least one fold model, found none")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([m(x).softmax(dim=1) for m in self.members]).mean(dim=0)
        return probs.clamp_min(EPS).log()


def load_deployed_model(run_dirs: Sequence[str | os.PathLike], device: str = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode, job.json of the first run + ``"ensemble"``: the run folders) from
    ``matseg_nb.runs.Sweep.deployed_runs``: one run gives its model, several give a :class:`FoldEnsemble`."""
    from matseg_nb.models.io import load_run_model

    if not run_dirs:
        raise UserError("deployed model: expected at least one complete run folder, found none")
    loaded = [load_run_model(d, device) for d in run_dirs]
    meta = dict(loaded[0][1], ensemble=[str(d) for d in run_dirs])
    if len(loaded) == 1:
        return loaded[0][0], meta
    return FoldEnsemble([m for m, _ in loaded]).to(device).eval(), meta
