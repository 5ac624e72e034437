"""Aggregate jobs into cells (dataset x encoder x decoder x encoder weights, seeds pooled) and pick the
best pair per dataset with a paired test against the runner-up."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from matseg_nb.compare.runs import METRIC_KEYS, RunSet
from matseg_nb.compare.stats import bootstrap_ci, paired_test

CELL_KEYS = ["dataset", "encoder", "decoder", "encoder_weights"]
DAGGERS = ("†", "‡", "§", "¶")


def arch_labels(runs: pd.DataFrame) -> pd.Series:
    """``encoder+decoder``; `` (weights)`` is appended when the runs mix encoder weights."""
    label = runs["encoder"].astype(str) + "+" + runs["decoder"].astype(str)
    if runs["encoder_weights"].nunique() > 1:
        label = label + " (" + runs["encoder_weights"].astype(str) + ")"
    return label


def _status_text(statuses: pd.Series) -> str:
    counts = statuses.value_counts()
    n, ok = len(statuses), int(counts.get("complete", 0))
    if ok == n:
        return "complete"
    others = ", ".join(f"{int(c)} {s}" for s, c in counts.items() if s != "complete")
    return f"{'partial' if ok else 'no result'} ({ok}/{n} complete; {others})"


def image_matrix(per_image: pd.DataFrame, job_ids: list[str], score: str = "iou") -> pd.DataFrame:
    """(seed x image) matrix of ``score`` for the given jobs (NaN where an image is missing)."""
    sub = per_image[per_image["job_id"].isin(job_ids)]
    if sub.empty:
        return pd.DataFrame()
    return sub.pivot_table(index="seed", columns="image", values=score, aggfunc="mean")


def cell_table(rs: RunSet) -> pd.DataFrame:
    """One row per cell: status, seeds, mean metrics over complete seeds, IoU/Dice bootstrap CIs."""
    runs = rs.runs.assign(arch=arch_labels(rs.runs))
    rows = []
    for key, grp in runs.groupby(CELL_KEYS, sort=True, dropna=False):
        done = grp[grp["status"] == "complete"]
        row = dict(zip(CELL_KEYS, key, strict=True))
        row.update(arch=grp["arch"].iloc[0], status=_status_text(grp["status"]), n_jobs=len(grp),
                   n_seeds=len(done), seeds=" ".join(str(s) for s in sorted(done["seed"])))
        for m in METRIC_KEYS:
            row[m] = float(done[m].mean()) if len(done) else math.nan
        row["iou_sd_seeds"] = float(done["iou"].std(ddof=1)) if len(done) > 1 else math.nan
        for m in ("iou", "dice"):
            mat = image_matrix(rs.per_image, list(done["job_id"]), m)
            mean, lo, hi = bootstrap_ci(mat.to_numpy()) if not mat.empty else (math.nan,) * 3
            row.update({f"{m}_img_mean": mean, f"{m}_ci_lo": lo, f"{m}_ci_hi": hi})
        row["n_test_images"] = int(done["n_test_images"].max()) if len(done) else 0
        row["epochs_run"] = float(done["epochs_run"].mean()) if len(done) else math.nan
        row["train_time_s"] = float(done["train_time_s"].mean()) if len(done) else math.nan
        row["latency_ms_per_image"] = float(done["latency_s_per_image"].mean() * 1000) if len(done) else math.nan
        row["n_params"] = float(done["n_params"].max()) if len(done) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _seed_mean_per_image(rs: RunSet, cell: pd.Series, runs: pd.DataFrame) -> pd.Series:
    mask = np.logical_and.reduce([runs[k] == cell[k] for k in CELL_KEYS]) & (runs["status"] == "complete")
    mat = image_matrix(rs.per_image, list(runs.loc[mask, "job_id"]))
    return mat.mean(axis=0) if not mat.empty else pd.Series(dtype=float)


def best_table(rs: RunSet, cells: pd.DataFrame, alpha: float = 0.05) -> tuple[pd.DataFrame, str]:
    """Best cell per dataset (by mean dataset-level IoU over seeds) vs the runner-up.

    The test pairs per-image IoU (mean over each cell's seeds) on the images both cells scored.
    Returns the table and the dagger footnote (decoders other than the most frequent winner are flagged).
    """
    rows = []
    for dataset, grp in cells.groupby("dataset", sort=True):
        ranked = grp[grp["n_seeds"] > 0].sort_values("iou", ascending=False, kind="stable")
        n_failed_cells = int((grp["n_seeds"] == 0).sum())
        if ranked.empty:
            rows.append({"dataset": dataset, "status": f"no complete cell ({len(grp)} cells)"})
            continue
        best = ranked.iloc[0]
        row = {"dataset": dataset, **{k: best[k] for k in ("encoder", "decoder", "encoder_weights", "arch",
                                                            "status", "n_seeds", "iou", "iou_ci_lo",
                                                            "iou_ci_hi", "dice", "wiou", "pixel_accuracy")}}
        row["cells_without_result"] = n_failed_cells
        if len(ranked) > 1:
            second = ranked.iloc[1]
            a = _seed_mean_per_image(rs, best, rs.runs)
            b = _seed_mean_per_image(rs, second, rs.runs)
            common = a.index.intersection(b.index)
            res = paired_test(a[common].to_numpy(), b[common].to_numpy(), alpha=alpha)
            row.update(runner_up=second["arch"], runner_up_iou=second["iou"],
                       delta_iou=best["iou"] - second["iou"], test=res.method, n_images=res.n,
                       p_value=res.p_value, verdict=res.verdict)
        else:
            row.update(runner_up="—", runner_up_iou=math.nan, delta_iou=math.nan, test="—", n_images=0,
                       p_value=math.nan, verdict="no runner-up")
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty or "decoder" not in table:
        return table, ""
    winners = table["decoder"].dropna()
    modal = winners.value_counts().index[0] if len(winners) else None
    others = [d for d in dict.fromkeys(winners) if d != modal]
    marks = {d: DAGGERS[i % len(DAGGERS)] for i, d in enumerate(others)}
    table["flag"] = table["decoder"].map(lambda d: marks.get(d, ""))
    note = "; ".join(f"{m} {d} decoder" for d, m in marks.items())
    note = f"{note}; all others use {modal}." if note else (f"All datasets use {modal}." if modal else "")
    return table, note
