"""Learning curves for the report: validation IoU per epoch, one line per job, one figure per dataset."""

from __future__ import annotations

from pathlib import Path

from matseg_nb.figures import save_figure
from matseg_nb.runs import RunFileError, Sweep


def _label(job: dict) -> str:
    seed = job.get("seed")
    return f"{job.get('encoder', '?')}+{job.get('decoder', '?')}" + ("" if seed in (None, 0) else f" s{seed}")


def learning_curves(sweep_dir: str | Path, out_dir: str | Path) -> list[dict]:
    """Per dataset (in sweep order): ``{"dataset", "png", "rows"}``; ``png`` plots each job's validation IoU
    against its epoch (from ``history.csv`` through :class:`matseg_nb.runs.Run`); ``rows`` give per job
    ``job, status, epochs, final_val_iou, best_val_iou, best_epoch``. Jobs without a readable history are
    left out; a dataset none of whose jobs has one gets no entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[tuple[str, str, list[float], list[float]]]] = {}
    for sj in Sweep(sweep_dir).jobs():
        try:
            history, job, dataset = sj.run.history(), sj.run.job(), sj.run.dataset
        except RunFileError:
            continue
        points = [(r["epoch"], r["val_iou"]) for r in history
                  if r.get("epoch") is not None and r.get("val_iou") is not None]
        if not points or not dataset:
            continue
        name = Path(str(dataset)).name
        curves.setdefault(name, []).append((_label(job), str(sj.status), [p[0] for p in points],
                                            [p[1] for p in points]))
    out = []
    for name, jobs in curves.items():
        fig, ax = plt.subplots(figsize=(5.6, 3.0), dpi=100)
        rows = []
        for label, status, epochs, ious in sorted(jobs):
            ax.plot(epochs, ious, marker="o" if len(epochs) < 12 else None, ms=3, label=label)
            best = max(range(len(ious)), key=ious.__getitem__)
            rows.append({"job": label, "status": status, "epochs": len(epochs), "final_val_iou": ious[-1],
                         "best_val_iou": ious[best], "best_epoch": int(epochs[best])})
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation IoU")
        ax.set_ylim(0.0, 1.0)
        ax.set_title(f"{name}: learning curves", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        png = save_figure(fig, Path(out_dir) / f"learning-curves-{name}.png", tight=True)
        out.append({"dataset": name, "png": str(png), "rows": rows})
    return out
