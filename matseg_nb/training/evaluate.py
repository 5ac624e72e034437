"""Full-resolution tiled test evaluation: confusion matrices, predicted masks, latency."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from matseg_nb.metrics import confusion_matrix
from matseg_nb.models.tiling import predict_tiled
from matseg_nb.training.data import Split


def predict_split(model: nn.Module, split: Split, num_classes: int, tile: int, overlap: int
                  ) -> tuple[list[np.ndarray], list[torch.Tensor], float]:
    """(predicted class maps (H, W) uint8, confusion matrices, mean seconds per image of ``predict_tiled``)."""
    model.eval()
    device = next(model.parameters()).device
    preds, cms, times = [], [], []
    for img, mask in zip(split.images, split.masks, strict=True):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        probs = predict_tiled(model, torch.from_numpy(img), num_classes, tile, overlap)
        pred = probs.argmax(0)
        times.append(time.perf_counter() - t0)
        cms.append(confusion_matrix(pred, torch.from_numpy(mask), num_classes))
        preds.append(pred.numpy().astype(np.uint8))
    return preds, cms, float(np.mean(times)) if times else float("nan")
