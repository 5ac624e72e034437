"""Comparison plots (matplotlib, Agg backend, PNG): IoU heatmap, per-image IoU distributions,
accuracy vs latency."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from matseg_nb.atomic import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def heatmap(cells: pd.DataFrame, path: Path, score: str = "iou") -> Path:
    """Dataset (rows) x architecture (columns) ``score``; cells without a result are hatched 'n/a'."""
    grid = cells.pivot_table(index="dataset", columns="arch", values=score, aggfunc="mean", dropna=False)
    grid = grid.reindex(index=sorted(cells["dataset"].unique()), columns=sorted(cells["arch"].unique()))
    data = grid.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.4 + 1.1 * data.shape[1], 1.2 + 0.6 * data.shape[0]))
    ax.set_facecolor("#dddddd")
    im = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), v in np.ndenumerate(data):
        ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.3f}", ha="center", va="center",
                color="black" if np.isnan(v) or v > 0.6 else "white", fontsize=8)
    ax.set_xticks(range(data.shape[1]), grid.columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(data.shape[0]), grid.index, fontsize=8)
    ax.set_title(f"test {score.upper()} (mean over seeds)")
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _save(fig, path)


def per_image_distributions(per_image: pd.DataFrame, arch_of_job: dict[str, str], path: Path) -> Path:
    """Box plot + points of per-image IoU per architecture, one panel per dataset (seeds pooled)."""
    df = per_image.assign(arch=per_image["job_id"].map(arch_of_job))
    datasets = sorted(df["dataset"].unique()) or ["(no complete job)"]
    fig, axes = plt.subplots(len(datasets), 1, figsize=(8, 2.6 * len(datasets)), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, ds in zip(axes[:, 0], datasets, strict=True):
        sub = df[df["dataset"] == ds]
        archs = sorted(sub["arch"].unique())
        values = [sub.loc[sub["arch"] == a, "iou"].dropna().to_numpy() for a in archs]
        if archs:
            ax.boxplot(values, showfliers=False)
            for k, v in enumerate(values, start=1):
                ax.plot(k + rng.uniform(-0.12, 0.12, v.size), v, "o", ms=3, alpha=0.6, color="tab:blue")
            ax.set_xticks(range(1, len(archs) + 1), archs, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("per-image IoU")
        ax.set_title(ds, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


#: latencies spanning at least this ratio (max / min) get a log axis
LOG_AXIS_RATIO = 10.0

#: candidate label offsets (points) from their marker, tried in order until one does not overlap a placed label
_LABEL_OFFSETS = [(dx * r, dy * r) for r in (4, 9, 15, 22, 30)
                  for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))]


def place_labels(ax, xs, ys, texts, fontsize: float = 7) -> list:
    """Annotate points (data coordinates) with ``texts``, each at the first offset in :data:`_LABEL_OFFSETS`
    whose box overlaps no label placed before it (the last candidate when every one collides).
    Returns the annotations in input order."""
    renderer = ax.figure.canvas.get_renderer()
    ax.autoscale_view()
    placed, annotations = [], []
    for x, y, text in zip(xs, ys, texts, strict=True):
        for dx, dy in _LABEL_OFFSETS:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                              ha="left" if dx > 0 else "right" if dx < 0 else "center",
                              va="bottom" if dy > 0 else "top" if dy < 0 else "center")
            box = ann.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            if (dx, dy) != _LABEL_OFFSETS[-1]:
                ann.remove()
        placed.append(box)
        annotations.append(ann)
    return annotations


def accuracy_vs_latency_figure(cells: pd.DataFrame):
    """The figure of :func:`accuracy_vs_latency` (returned open, for tests of its layout)."""
    df = cells[cells["n_seeds"] > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = "osD^vP*X"
    decoders = sorted(df["decoder"].unique())
    colours = {d: plt.cm.tab10(i % 10) for i, d in enumerate(decoders)}
    latency = df["latency_ms_per_image"].astype(float) if len(df) else pd.Series(dtype=float)
    if len(df) and (latency > 0).all() and latency.max() / latency.min() >= LOG_AXIS_RATIO:
        ax.set_xscale("log")  # the latencies span a decade or more
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    xs, ys, labels = [], [], []
    for k, (_ds, grp) in enumerate(df.groupby("dataset", sort=True)):
        for _, r in grp.iterrows():
            err = None
            if np.isfinite(r["iou_ci_lo"]) and np.isfinite(r["iou_ci_hi"]):
                err = [[max(r["iou_img_mean"] - r["iou_ci_lo"], 0)], [max(r["iou_ci_hi"] - r["iou_img_mean"], 0)]]
            ax.errorbar(r["latency_ms_per_image"], r["iou_img_mean"], yerr=err, fmt=markers[k % len(markers)],
                        color=colours[r["decoder"]], ms=6, capsize=2)
            xs.append(r["latency_ms_per_image"])
            ys.append(r["iou_img_mean"])
            labels.append(str(r["encoder"]))
    for d, c in colours.items():
        ax.plot([], [], "s", color=c, label=d)
    for k, ds in enumerate(sorted(df["dataset"].unique())):
        ax.plot([], [], markers[k % len(markers)], color="grey", label=ds)
    ax.set_xlabel("inference latency per image (ms)")
    ax.set_ylabel("per-image mean IoU (95% CI)")
    if len(df):  # legend outside the axes, so it covers no point or label
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        place_labels(ax, xs, ys, labels)
    else:
        ax.text(0.5, 0.5, "no complete job", ha="center", va="center", transform=ax.transAxes)
    return fig


def accuracy_vs_latency(cells: pd.DataFrame, path: Path) -> Path:
    """IoU (with its t interval) against inference latency per image; colour = decoder, marker = dataset,
    text = encoder (placed so labels do not overlap); log latency axis when latencies span >= 10x."""
    return _save(accuracy_vs_latency_figure(cells), path)


def noise_ceiling(between: pd.Series, within: pd.Series, path: Path) -> Path:
    """Kendall tau of dataset pairs (context) next to tau of seed pairs on one dataset (noise ceiling)."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    groups = [("between datasets", pd.Series(between, dtype=float).dropna()),
              ("between seeds\n(same dataset)", pd.Series(within, dtype=float).dropna())]
    for x, (_, vals) in enumerate(groups):
        jitter = np.linspace(-0.08, 0.08, len(vals)) if len(vals) > 1 else np.zeros(len(vals))
        ax.scatter(x + jitter, vals, alpha=0.7)
        if len(vals):
            ax.hlines(vals.mean(), x - 0.2, x + 0.2, color="k")
    ax.set_xticks([0, 1], [g[0] for g in groups])
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("Kendall's tau of architecture ranking")
    ax.set_title("Context vs seed noise (bar = mean)")
    return _save(fig, path)
