"""Preview figure: image / mask / overlay rows for a few samples (matplotlib Agg, PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matseg_nb.data.readers import normalize_image

#: class colours (RGB 0..1); class 0 is left transparent in overlays.
PALETTE = np.array(
    [[0.0, 0.0, 0.0], [0.12, 0.47, 0.71], [0.89, 0.10, 0.11], [1.0, 0.50, 0.05], [0.17, 0.63, 0.17],
     [0.58, 0.40, 0.74], [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.50, 0.50, 0.50], [0.74, 0.74, 0.13]]
)


def colourize(mask: np.ndarray) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) float RGB."""
    return PALETTE[mask % len(PALETTE)]


def pick_samples(ds, n: int) -> list:
    """Up to ``n`` samples, taken round-robin from train, val and test."""
    by_split = [ds.samples(s) for s in ("train", "val", "test")]
    picked, i = [], 0
    while len(picked) < n and any(i < len(s) for s in by_split):
        picked += [s[i] for s in by_split if i < len(s)]
        i += 1
    return picked[:n]


def preview_figure(ds, n: int = 4, alpha: float = 0.45):
    """A matplotlib Figure (no pyplot, so no GUI backend) with one row per sample: image, mask, overlay."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from matseg_nb.figures import add_scale_bar

    samples = pick_samples(ds, n)
    fig = Figure(figsize=(9, 3 * max(1, len(samples))), dpi=100)
    axes = fig.subplots(max(1, len(samples)), 3, squeeze=False)
    for row, s in zip(axes, samples, strict=False):
        img, mask = ds.load_pair(s)
        grey = normalize_image(img, "percentile")
        shown = grey[0] if grey.shape[0] != 3 else np.moveaxis(grey, 0, -1)
        rgb = np.repeat(grey[0][..., None], 3, -1) if grey.shape[0] != 3 else shown
        over = rgb.copy()
        fg = mask > 0
        over[fg] = (1 - alpha) * rgb[fg] + alpha * colourize(mask)[fg]
        row[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        add_scale_bar(row[0], ds.pixel_size_um_of(s))
        row[1].imshow(colourize(mask), interpolation="nearest")
        row[2].imshow(over)
        row[0].set_title(f"{s.split}: {s.name}", fontsize=8)
        row[1].set_title("mask", fontsize=8)
        row[2].set_title("overlay", fontsize=8)
        for ax in row:
            ax.set_axis_off()
    handles = [Patch(color=PALETTE[c.id % len(PALETTE)], label=f"{c.id} {c.name}") for c in ds.classes]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8)
    fig.suptitle(f"{ds.name} ({ds.modality}, {ds.material})", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return fig


def save_preview(ds, out_png: str | Path, n: int = 4) -> Path:
    """Write the preview PNG atomically; returns its path."""
    from matseg_nb.figures import save_figure

    return save_figure(preview_figure(ds, n), out_png)
