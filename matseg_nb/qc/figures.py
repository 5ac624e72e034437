"""QC figures as PNG bytes: ROC curves of crop typicality (``roc.png``) and the gallery of the least typical
predictions (``gallery.png``, the paper's Figure 3)."""

from __future__ import annotations

import numpy as np

from matseg_nb.figures import figure_png
from matseg_nb.qc.features import ImageItem


def roc_png(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]) -> bytes:
    """One panel per level: per OOD set the ROC of its crops' typicality (positives) vs the held-out crops'.

    ``curves``: level -> set -> (held-out crop typicality (n,), set crop typicality (m,))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4.5), squeeze=False)
    for ax, (level, sets) in zip(axes[0], curves.items(), strict=True):
        for name, (ids, oods) in sets.items():
            y = np.r_[np.zeros(len(ids)), np.ones(len(oods))]
            fpr, tpr, _ = roc_curve(y, -np.r_[ids, oods])
            ax.plot(fpr, tpr, label=name, lw=1.2)
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(title=f"{level} level (crops)", xlabel="FPR (ID flagged)", ylabel="TPR (OOD flagged)")
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return figure_png(fig, dpi=110)


def gallery_png(rows: list[tuple[ImageItem, float, float]], num_classes: int) -> bytes:
    """Per row (image with ``pred`` and ``mask``, typicality, IoU): prediction, ground truth, pixel
    difference, overlay (title: IoU, typicality)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matseg_nb.data import normalize_image

    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 3.1 * len(rows)), squeeze=False)
    for r, (it, score, iou) in enumerate(rows):
        grey = normalize_image(it.image, "percentile").mean(0)
        diff = (it.pred != it.mask).astype(float)
        panels = [(it.pred, "prediction"), (it.mask, "ground truth"), (diff, "pixel difference")]
        for c, (a, title) in enumerate(panels):
            axes[r, c].imshow(a, cmap="gray" if c == 2 else "viridis", vmin=0, vmax=1 if c == 2 else num_classes - 1,
                              interpolation="nearest")
            axes[r, c].set_title(f"{title}" if c else f"{it.name}\n{title}", fontsize=7)
        axes[r, 3].imshow(grey, cmap="gray")
        axes[r, 3].imshow(np.ma.masked_equal(it.pred, 0), cmap="autumn", alpha=0.45, interpolation="nearest")
        axes[r, 3].set_title(f"overlay  IoU {iou:.3f}  typicality {score:.3g}", fontsize=7)
        for a in axes[r]:
            a.axis("off")
    fig.tight_layout()
    return figure_png(fig, dpi=90)
