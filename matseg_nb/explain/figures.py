"""Figures: image, expert mask A, heatmap overlay and the deletion curves side by side."""

from __future__ import annotations

import numpy as np


def _display(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    img = img[0] if img.shape[0] in (1, 2) or img.shape[0] > 3 else np.moveaxis(img, 0, -1)
    lo, hi = np.percentile(img, [0.5, 99.5])
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def explanation_figure(image, mask, hmap, faith: dict | None = None, title: str = ""):
    """Matplotlib figure (1 x 4): image (C, H, W), A (H, W), heatmap overlay (H, W), deletion curve."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    disp = _display(image)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.4))
    cmap = "gray" if disp.ndim == 2 else None
    axes[0].imshow(disp, cmap=cmap)
    axes[0].set_title("image")
    axes[1].imshow(disp, cmap=cmap)
    axes[1].imshow(np.ma.masked_where(~(np.asarray(mask) > 0), np.ones(np.shape(mask))), cmap="autumn", alpha=0.7)
    axes[1].set_title(f"expert mask A ({int((np.asarray(mask) > 0).sum())} px)")
    axes[2].imshow(disp, cmap=cmap)
    im = axes[2].imshow(hmap, cmap="inferno", alpha=0.6)
    axes[2].contour(np.asarray(mask) > 0, levels=[0.5], colors="cyan", linewidths=0.8)
    fig.colorbar(im, ax=axes[2], fraction=0.046, label="H (L1 change in A)")
    axes[2].set_title("influence heatmap H")
    for ax in axes[:3]:
        ax.axis("off")
    if faith:
        for name, style in (("top", "-o"), ("random", "--s"), ("random_blocks", "-.d"), ("bottom", ":^")):
            if name not in faith["curves"]:
                continue
            pts = faith["curves"][name]
            axes[3].plot([100 * p["fraction"] for p in pts], [p["l1_per_pixel"] for p in pts], style,
                         label=f"{name} (AUC {faith['auc'][name]:.3g})")
        ratio = faith.get("ratio_top_random")
        axes[3].set_title(f"deletion curve; top/random at {100 * faith['k_main']:.0f}%: "
                          + ("n/a" if ratio is None else f"{ratio:.2f}x"))
        axes[3].set_xlabel("pixels blurred (% of image)")
        axes[3].set_ylabel("L1 change in A per A pixel")
        axes[3].legend(fontsize=8)
    else:
        axes[3].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
