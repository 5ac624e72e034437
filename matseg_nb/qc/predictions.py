"""The run's predictions for QC: each image predicted once (the same way for every set compared), the region
a prediction covers, and per-image IoU against the mask."""

from __future__ import annotations

import numpy as np

from matseg_nb.qc.features import FeatureContext, ImageItem


def predict_items(items: list[ImageItem], ctx: FeatureContext, tile: int, probs: bool = True,
                  crop: int | None = None) -> None:
    """Set ``pred`` (and ``probs`` when ``probs``) of every item not predicted yet; an image up to
    ``tile`` px on a side gets one forward pass (no tiles), the same for every set compared.

    ``crop`` (only without ``probs``): predict the centre ``crop`` px square of larger images; its box
    (top, left, size) goes to ``meta["pred_box"]`` and ``pred`` has the crop's shape (see :func:`pred_view`)."""
    import torch

    from matseg_nb.data import normalize_image
    from matseg_nb.models import predict_tiled

    with torch.no_grad():
        for it in items:
            if it.probs is None and (probs or it.pred is None):
                img = it.image
                h, w = img.shape[-2:]
                if crop and not probs and max(h, w) > crop:
                    size = min(crop, h, w)
                    box = ((h - size) // 2, (w - size) // 2, size)
                    it.meta["pred_box"] = box
                    img = img[..., box[0]:box[0] + size, box[1]:box[1] + size]
                x = torch.as_tensor(normalize_image(img, ctx.normalization))
                p = predict_tiled(ctx.model, x, ctx.num_classes, tile=tile).numpy()
                it.pred = p.argmax(0).astype(np.int64)
                it.probs = p if probs else None


def pred_view(it: ImageItem) -> ImageItem:
    """The item restricted to the region its ``pred`` covers (itself unless :func:`predict_items` cropped)."""
    box = it.meta.get("pred_box")
    if box is None:
        return it
    t, left, size = box
    sl = (slice(t, t + size), slice(left, left + size))
    return ImageItem(it.image[(..., *sl)], it.name, pred=it.pred, mask=None if it.mask is None else it.mask[sl],
                     meta=it.meta)


def image_iou(pred: np.ndarray, mask: np.ndarray, k: int) -> float:
    """Mean IoU over ``k`` classes of one image's prediction (H, W) against its mask (H, W)."""
    from matseg_nb.metrics import confusion_matrix, summarize

    return float(summarize(confusion_matrix(pred, mask, k))["iou"])
