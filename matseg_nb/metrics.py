"""Segmentation metrics from confusion matrices (paper appendix, Eq. 1-3). Definitions: docs/metrics.md.

A confusion matrix ``cm`` is a (K, K) int64 tensor, rows = ground-truth class, columns = predicted class,
so ``cm[t, p]`` counts pixels of true class ``t`` predicted as ``p``. Per class c:
``TP = cm[c, c]``, ``FN = row_c - TP``, ``FP = col_c - TP``.

- IoU_c  = TP / (TP + FP + FN)                              (Eq. 1)
- Dice_c = 2 TP / (2 TP + FP + FN)                          (Eq. 2)
- PA_c   = TP / (TP + FN)   (per-class pixel accuracy = recall)
- wIoU (key ``wiou``): Cho 2024's boundary-distance weighted IoU (Pattern Recognition Letters 185:101-107),
  as in the author's reference code (github.com/engzenia/wIoU): each pixel of ground-truth class c weighs
  ``exp(-alpha * d / (max d + 0.01))``, d = Euclidean distance (px) to the nearest pixel of another class,
  max over the image; ``wIoU_c = W(TP) / (W(GT) + W(FP))``. Pixels at class boundaries weigh ~1, deep
  interiors exp(-alpha); alpha -> 0 gives plain IoU. Needs label maps: :func:`boundary_weighted_confusion`
  gives a (K, K) weighted confusion matrix that the functions below accept as ``wcm``.
- wIoU_class_freq (key ``wiou_class_freq``): Eq. 3 of the seed paper with class-frequency weights,
  ``sum_i w_i [Z_i = c and Z*_i = c] / sum_i w_i [Z_i = c or Z*_i = c]``, pixel weight
  ``w_i = (w_true + w_pred) / 2`` from the pixel's ground-truth AND predicted class,
  ``w_k = (1/f_k) / sum_j (1/f_j)``, f_k = fraction of ground-truth pixels of class k in the evaluated set
  (w_k = 0 when f_k = 0). Using the predicted class too makes false positives on the abundant background
  cost as much as misses (:func:`class_frequency_wiou`).

A class with a zero denominator (absent from both ground truth and prediction of an image) scores NaN and
is left out of that image's means (nanmean). Means are over FOREGROUND classes (ids 1..K-1); class 0 is the
background/matrix. With K == 1 (degenerate) the single class is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

SUMMARY_KEYS = ("iou", "dice", "wiou", "wiou_class_freq", "pixel_accuracy")
#: per-class scores of :func:`per_class_scores` (per_image.csv / metrics.json["per_class"] columns)
PER_CLASS_KEYS = ("iou", "dice", "pixel_accuracy", "wiou", "wiou_class_freq")


def confusion_matrix(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, num_classes: int) -> torch.Tensor:
    """(K, K) int64 confusion matrix of class-id maps of equal shape (any shape), via ``torch.bincount``.

    Target values outside 0..K-1 (e.g. an ignore label) are skipped; predictions must be in range.
    """
    pred_t = torch.as_tensor(pred).reshape(-1).long()
    target_t = torch.as_tensor(target).reshape(-1).long()
    if pred_t.shape != target_t.shape:
        raise ValueError(f"pred and target sizes differ: {tuple(pred_t.shape)} vs {tuple(target_t.shape)}")
    keep = (target_t >= 0) & (target_t < num_classes)
    pred_t, target_t = pred_t[keep], target_t[keep]
    if pred_t.numel() and (int(pred_t.min()) < 0 or int(pred_t.max()) >= num_classes):
        raise ValueError(f"predicted class ids must lie in 0..{num_classes - 1}")
    idx = target_t * num_classes + pred_t
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).to(torch.int64)


def class_frequencies(cm: torch.Tensor) -> np.ndarray:
    """(K,) fraction of ground-truth pixels per class (row sums / total); zeros when cm is empty."""
    rows = cm.sum(dim=1).double().numpy()
    total = rows.sum()
    return rows / total if total > 0 else np.zeros_like(rows)


def class_weights(freq: np.ndarray) -> np.ndarray:
    """(K,) inverse-frequency weights normalised to sum 1 over classes present (f_k > 0); 0 for absent classes."""
    freq = np.asarray(freq, dtype=np.float64)
    inv = np.where(freq > 0, 1.0 / np.where(freq > 0, freq, 1.0), 0.0)
    s = inv.sum()
    return inv / s if s > 0 else inv


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _wiou_terms(cm: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Eq. 3 numerator and denominator; a pixel in ``cm[t, p]`` weighs (w_t + w_p) / 2."""
    pixel_w = (weights[:, None] + weights[None, :]) / 2.0 * cm  # (K, K) weighted counts
    num = np.diag(pixel_w)
    # union of class c: row c (GT c) + column c (predicted c) - the diagonal cell counted twice
    den = pixel_w.sum(axis=1) + pixel_w.sum(axis=0) - num
    return num, den


def class_frequency_wiou(cm: torch.Tensor, weights: np.ndarray | None = None) -> float:
    """Class-frequency wIoU (Eq. 3, both-class pixel weights) pooled over foreground classes."""
    return summarize(cm, weights)["wiou_class_freq"]


#: Cho 2024's boundary importance factor alpha (the reference code's default, ``alpha = 1``)
BOUNDARY_ALPHA = 1.0


def boundary_distance_map(target: np.ndarray, num_classes: int) -> np.ndarray:
    """(H, W) normalised boundary distance in [0, 1): for a pixel of ground-truth class c, its Euclidean
    distance (px) to the nearest pixel of another class divided by (the largest such distance of class c
    in the image + 0.01), as Cho's reference code. A class covering the whole image has no boundary (0)."""
    from scipy.ndimage import distance_transform_edt

    t = np.asarray(target)
    out = np.zeros(t.shape, dtype=np.float64)
    for c in range(num_classes):
        m = t == c
        if not m.any() or m.all():
            continue
        d = distance_transform_edt(m)
        out[m] = d[m] / (d.max() + 0.01)
    return out


def boundary_weight_map(target: np.ndarray, num_classes: int, alpha: float = BOUNDARY_ALPHA) -> np.ndarray:
    """(H, W) pixel weights ``exp(-alpha * boundary_distance_map)`` in (exp(-alpha), 1]."""
    return np.exp(-float(alpha) * boundary_distance_map(target, num_classes))


def boundary_weighted_confusion(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                                num_classes: int, alpha: float = BOUNDARY_ALPHA) -> np.ndarray:
    """(K, K) float64 confusion matrix whose cell [t, p] sums the boundary weights of the pixels with truth t
    and prediction p (pixels with a target outside 0..K-1 are skipped, as in :func:`confusion_matrix`)."""
    p = np.asarray(pred).astype(np.int64)
    t = np.asarray(target).astype(np.int64)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    keep = (t >= 0) & (t < num_classes)
    w = boundary_weight_map(np.where(keep, t, -1), num_classes, alpha)
    idx = t[keep] * num_classes + p[keep]
    return np.bincount(idx, weights=w[keep], minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def boundary_wiou(pred: np.ndarray, target: np.ndarray, num_classes: int, alpha: float = BOUNDARY_ALPHA) -> float:
    """Cho 2024 wIoU of one image: nanmean over foreground classes of ``W(TP) / (W(GT) + W(FP))``.

    ``pred``, ``target``: (H, W) class-id maps. NaN when no foreground class occurs in either.
    """
    wcm = boundary_weighted_confusion(pred, target, num_classes, alpha)
    cm = confusion_matrix(pred, target, num_classes)
    return summarize(cm, wcm=wcm)["wiou"]


def _weighted_iou(wcm: np.ndarray) -> np.ndarray:
    """Per-class ``W(TP) / (W(GT) + W(FP))`` of a weighted confusion matrix (NaN where the union weighs 0)."""
    w = np.asarray(wcm, dtype=np.float64)
    tp = np.diag(w)
    return _ratio(tp, w.sum(axis=1) + w.sum(axis=0) - tp)


def per_class_scores(cm: torch.Tensor, weights: np.ndarray | None = None,
                     wcm: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-class arrays (K,) of iou, dice, pixel_accuracy, wiou, wiou_class_freq (NaN where undefined), plus
    gt/pred pixel counts.

    ``weights`` (K,) are the class-frequency wIoU weights; default: ``class_weights`` of this cm's own
    frequencies. ``wcm``: the boundary-weighted confusion matrix of the same pixels
    (:func:`boundary_weighted_confusion`); without it ``wiou`` is NaN (not computable from counts).
    """
    c = cm.double().numpy()
    tp = np.diag(c)
    gt = c.sum(axis=1)
    pr = c.sum(axis=0)
    fp, fn = pr - tp, gt - tp
    w = class_weights(class_frequencies(cm)) if weights is None else np.asarray(weights, dtype=np.float64)
    wnum, wden = _wiou_terms(c, w)
    return {
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "pixel_accuracy": _ratio(tp, gt),
        "wiou": _weighted_iou(wcm) if wcm is not None else np.full(len(tp), np.nan),
        "wiou_class_freq": _ratio(wnum, wden),
        "gt_pixels": gt,
        "pred_pixels": pr,
    }


def foreground(num_classes: int) -> slice:
    """Classes averaged in summaries: 1..K-1 (class 0 = background excluded), or all when K == 1."""
    return slice(1, None) if num_classes > 1 else slice(0, None)


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


def summarize(cm: torch.Tensor, weights: np.ndarray | None = None, wcm: np.ndarray | None = None) -> dict[str, float]:
    """Scalar metrics of one confusion matrix (and its boundary-weighted twin ``wcm``).

    iou, dice, wiou (Cho 2024; NaN without ``wcm``): nanmean over foreground classes; wiou_class_freq:
    Eq. 3 pooled over foreground classes (sum of numerators / sum of denominators); pixel_accuracy:
    overall trace / total (all classes).
    """
    k = cm.shape[0]
    fg = foreground(k)
    pc = per_class_scores(cm, weights, wcm)
    c = cm.double().numpy()
    w = class_weights(class_frequencies(cm)) if weights is None else np.asarray(weights, dtype=np.float64)
    wnum, wden = _wiou_terms(c, w)
    den = wden[fg].sum()
    total = c.sum()
    return {
        "iou": _nanmean(pc["iou"][fg]),
        "dice": _nanmean(pc["dice"][fg]),
        "wiou": _nanmean(pc["wiou"][fg]),
        "wiou_class_freq": float(wnum[fg].sum() / den) if den > 0 else math.nan,
        "pixel_accuracy": float(np.trace(c) / total) if total > 0 else math.nan,
    }


def evaluate_confusions(
    cms: Sequence[torch.Tensor], class_names: Sequence[str], image_names: Sequence[str] | None = None,
    weighted_cms: Sequence[np.ndarray] | None = None,
) -> tuple[dict, list[dict]]:
    """Metrics of an evaluated split from per-image confusion matrices.

    ``weighted_cms``: per-image boundary-weighted confusion matrices (:func:`boundary_weighted_confusion`),
    needed for ``wiou`` (NaN / null without them). Returns ``(metrics, rows)``: metrics = {"dataset_level":
    summary of the pooled cms, "per_image_mean": nanmean over images of per-image summaries, "per_class":
    {name: {iou, dice, pixel_accuracy, wiou, wiou_class_freq, gt_fraction}} (pooled), "class_weights":
    {name: w}, "wiou_alpha", "n_images"}; rows = one dict per (image, class): image, class_id, class_name,
    iou, dice, pixel_accuracy, wiou, wiou_class_freq, gt_fraction, pred_fraction. Class-frequency weights
    always come from the pooled ground truth of the whole set.
    """
    if not cms:
        raise ValueError("no confusion matrices to evaluate")
    k = len(class_names)
    names = list(image_names) if image_names is not None else [str(i) for i in range(len(cms))]
    wcms = list(weighted_cms) if weighted_cms is not None else [None] * len(cms)
    if len(wcms) != len(cms):
        raise ValueError(f"expected one weighted confusion matrix per image ({len(cms)}), found {len(wcms)}")
    pooled = torch.stack([cm.to(torch.int64) for cm in cms]).sum(dim=0)
    pooled_w = np.sum(wcms, axis=0) if weighted_cms is not None else None
    weights = class_weights(class_frequencies(pooled))
    per_image = [summarize(cm, weights, w) for cm, w in zip(cms, wcms, strict=True)]
    per_image_mean = {key: _nanmean(np.array([s[key] for s in per_image], dtype=np.float64)) for key in SUMMARY_KEYS}
    pc = per_class_scores(pooled, weights, pooled_w)
    freq = class_frequencies(pooled)
    per_class = {
        class_names[c]: {
            "class_id": c,
            **{key: _nan_to_none(pc[key][c]) for key in PER_CLASS_KEYS},
            "gt_fraction": float(freq[c]),
        }
        for c in range(k)
    }
    rows: list[dict] = []
    for name, cm, wcm in zip(names, cms, wcms, strict=True):
        pci = per_class_scores(cm, weights, wcm)
        total = float(cm.sum())
        for c in range(k):
            rows.append(
                {
                    "image": name,
                    "class_id": c,
                    "class_name": class_names[c],
                    **{key: float(pci[key][c]) for key in PER_CLASS_KEYS},
                    "gt_fraction": float(pci["gt_pixels"][c] / total) if total else math.nan,
                    "pred_fraction": float(pci["pred_pixels"][c] / total) if total else math.nan,
                }
            )
    metrics = {
        "dataset_level": {k_: _nan_to_none(v) for k_, v in summarize(pooled, weights, pooled_w).items()},
        "per_image_mean": {k_: _nan_to_none(v) for k_, v in per_image_mean.items()},
        "per_class": per_class,
        "class_weights": {class_names[c]: float(weights[c]) for c in range(k)},
        "wiou_alpha": BOUNDARY_ALPHA,
        "n_images": len(cms),
    }
    return metrics, rows


def _nan_to_none(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def batch_confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion matrix of a batch (N, H, W) of predictions/targets, pooled over the batch."""
    return confusion_matrix(pred.detach().cpu(), target.detach().cpu(), num_classes)

