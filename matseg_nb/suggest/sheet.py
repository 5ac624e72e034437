"""Contact sheet of ranked suggestions: one thumbnail per image with its rank and signals (PNG bytes)."""

from __future__ import annotations

import io

import numpy as np


def contact_sheet_png(images: list[np.ndarray], titles: list[str], columns: int = 5, thumb_in: float = 2.4
                      ) -> bytes:
    """PNG of ``images`` ((C, H, W), any intensity range; channel 0 shown, 1st-99th percentile stretch)
    in rank order with ``titles`` under each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(images))
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(thumb_in * cols, (thumb_in + 0.7) * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, title in zip(axes.ravel(), images, titles, strict=False):
        a = np.asarray(img, dtype=float)[0]
        lo, hi = np.percentile(a, [1, 99])
        ax.imshow(np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0, 1), cmap="gray", interpolation="nearest")
        ax.set_title(title, fontsize=7, loc="left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
