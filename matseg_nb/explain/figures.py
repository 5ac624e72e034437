"""Figure: image, prediction Z over the image, mask A, heatmap H (with its unit) and the deletion test."""

from __future__ import annotations

import textwrap

import numpy as np

H_UNIT = "change of probability mass inside A"


def _display(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    img = img[0] if img.shape[0] in (1, 2) or img.shape[0] > 3 else np.moveaxis(img, 0, -1)
    lo, hi = np.percentile(img, [0.5, 99.5])
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def explanation_figure(image, mask, hmap, faith=None, title: str = "", prediction: np.ndarray | None = None,
                       mask_label: str = "expert mask A"):
    """Matplotlib figure: image (C, H, W), prediction (H, W class ids) over it, A (H, W), H (H, W) with a
    colour bar in units of :data:`H_UNIT`, and (``faith``: a
    :class:`~matseg_nb.explain.faithfulness.FaithfulnessResult`) the deletion curves vs the baselines."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    disp = _display(image)
    a = np.asarray(mask) > 0
    # 2 x 3 panels of about 6 in each: a whole 512-1024 px image stays readable (at 110 dpi ~ 1 screen px
    # per image px for 512 px images)
    fig, grid = plt.subplots(2, 3, figsize=(19, 12.5))
    axes = grid.ravel()
    cmap = "gray" if disp.ndim == 2 else None
    for ax in axes[:4]:
        ax.imshow(disp, cmap=cmap)
        ax.axis("off")
    axes[0].set_title("image")
    if prediction is not None:
        axes[1].imshow(np.asarray(prediction), cmap="tab10", alpha=0.45, interpolation="nearest",
                       vmin=0, vmax=9)
    axes[1].set_title("prediction Z (argmax class) over the image")
    axes[2].imshow(np.ma.masked_where(~a, np.ones(a.shape)), cmap="autumn", alpha=0.8, interpolation="nearest")
    axes[2].set_title(f"{mask_label} ({int(a.sum())} px)", wrap=True)
    im = axes[3].imshow(hmap, cmap="inferno", alpha=0.7)
    axes[3].contour(a, levels=[0.5], colors="cyan", linewidths=0.5)
    fig.colorbar(im, ax=axes[3], fraction=0.046, pad=0.02, label=f"H ({H_UNIT})")
    axes[3].set_title("influence heatmap H (A outlined)")
    ax = axes[4]
    if faith is not None:
        fr = [100 * f for f in faith.fractions]
        ax.plot(fr, faith.top_curve, "-o", label=f"H's top pixels (score {faith.top_score:.3g})")
        for name, b in faith.baselines.items():
            ax.plot(fr, b.mean_curve, "--", label=f"{name}, mean of {faith.n_draws} (p = {b.p_value:.3f})")
        if (c := faith.conditional) is not None:  # the test conditional on proximity
            ax.plot(fr, c.mean_curve, ":", lw=2, label=f"H shuffled within {c.n_rings} rings of distance to A, "
                    f"mean of {c.n_perm} (p = {c.p_value:.3f})")
            ax.set_title(("H points beyond proximity to A" if faith.beyond_proximity
                          else "nothing shown beyond proximity to A") + f" (ring p = {c.p_value:.3f})")
        else:
            ax.set_title(("faithful" if faith.faithful else "not shown faithful") + f" at level {faith.level:g}")
        ax.set_xlabel(f"pixels replaced by {faith.perturbation} (% of image)")
        ax.set_ylabel("change of probability mass per A pixel")
        ax.legend(fontsize=9)
        axes[5].text(0.0, 1.0, "\n\n".join(textwrap.fill(t, 64, break_on_hyphens=False) for t in faith.sentences()), va="top", ha="left",
                     fontsize=9,
                     transform=axes[5].transAxes)
    else:
        ax.axis("off")
    axes[5].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
