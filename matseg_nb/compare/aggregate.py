"""Aggregate jobs into cells (dataset x encoder x decoder x encoder weights, seeds pooled) and pick the
best pair per dataset ON VALIDATION (mean best-epoch validation IoU over seeds), then score it and the
runner-up on test with a paired test: selection and scoring never use the same split.

Cross-validation cells (``protocol`` ``k-fold CV``) pool folds x seeds: the selection score is the mean
out-of-fold IoU, with a Nadeau-Bengio corrected interval over folds; test scores average every fold model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from matseg_nb.compare.runs import METRIC_KEYS, RunSet
from matseg_nb.compare.stats import (
    cv_interval,
    cv_paired_test,
    cv_per_image_sd,
    insufficient,
    paired_test,
    power_sentence,
    prob_a_beats_b,
    t_interval,
)

CELL_KEYS = ["dataset", "encoder", "decoder", "encoder_weights"]
DAGGERS = ("†", "‡", "§", "¶")

#: paired runs (seeds, or seed x fold) needed before P(best > runner-up) is reported
MIN_PAIRED_RUNS = 2


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
    """(run x image) matrix of ``score`` for the given jobs (one row per job: seed, or seed x fold; NaN where
    an image is missing)."""
    sub = per_image[per_image["job_id"].isin(job_ids)]
    if sub.empty:
        return pd.DataFrame()
    return sub.pivot_table(index="job_id", columns="image", values=score, aggfunc="mean")


def _interval_text(lo: float, n: int) -> str:
    return insufficient(n) if math.isnan(lo) and n else "—" if not n else ""


def runs_text(n_folds: int, n_seeds: int, n_runs: int) -> str:
    """``3 folds x 1 seed`` for CV cells, the number of seeds otherwise."""
    if n_folds:
        return f"{n_folds} fold{'s' * (n_folds != 1)} x {n_seeds} seed{'s' * (n_seeds != 1)}"
    return str(n_runs)


def cell_table(rs: RunSet) -> pd.DataFrame:
    """One row per cell: status, seeds, mean metrics over complete seeds, mean validation IoU (the
    selection score), IoU/Dice Student-t intervals over test images (seed-averaged; declined at n < 3)."""
    runs = rs.runs.assign(arch=arch_labels(rs.runs))
    rows = []
    for key, grp in runs.groupby(CELL_KEYS, sort=True, dropna=False):
        done = grp[grp["status"] == "complete"]
        row = dict(zip(CELL_KEYS, key, strict=True))
        folds = int(grp["folds"].max()) if "folds" in grp and grp["folds"].notna().any() else 0
        n_folds = int(done.loc[done["fold"] >= 0, "fold"].nunique()) if folds else 0
        row.update(arch=grp["arch"].iloc[0], status=_status_text(grp["status"]), n_jobs=len(grp),
                   n_seeds=len(done), seeds=" ".join(str(s) for s in sorted(set(done["seed"]))),
                   base_dataset=grp["base_dataset"].iloc[0] if "base_dataset" in grp else key[0],
                   protocol=grp["protocol"].iloc[0] if "protocol" in grp else "holdout", folds=folds,
                   n_folds=n_folds, runs=runs_text(n_folds, done["seed"].nunique(), len(done)))
        for m in METRIC_KEYS:
            row[m] = float(done[m].mean()) if len(done) else math.nan
        row["val_iou"] = float(done["val_iou"].mean()) if len(done) and done["val_iou"].notna().any() else math.nan
        if folds:  # interval of the out-of-fold mean over folds (seeds averaged within a fold)
            mat = done.pivot_table(index="seed", columns="fold", values="val_iou", aggfunc="mean")
            _, lo, hi, n = cv_interval(mat.to_numpy(), folds) if not mat.empty else (math.nan,) * 3 + (0,)
            row.update(val_ci_lo=lo, val_ci_hi=hi,
                       val_interval=_interval_text(lo, n) or f"[{lo:.3f}, {hi:.3f}]")
        else:
            row.update(val_ci_lo=math.nan, val_ci_hi=math.nan, val_interval="—")
        row["iou_sd_seeds"] = float(done["iou"].std(ddof=1)) if len(done) > 1 else math.nan
        for m in ("iou", "dice"):
            mat = image_matrix(rs.per_image, list(done["job_id"]), m)
            mean, lo, hi, n = t_interval(mat.to_numpy()) if not mat.empty else (math.nan,) * 3 + (0,)
            row.update({f"{m}_img_mean": mean, f"{m}_ci_lo": lo, f"{m}_ci_hi": hi})
            if m == "iou":
                row["iou_interval"] = _interval_text(lo, n) or f"[{lo:.3f}, {hi:.3f}]"
        oof, _ = oof_images(rs, list(done["job_id"]))
        row["oof_iou_img"] = float(oof.mean()) if len(oof) else math.nan
        row["n_oof_images"] = int(oof.notna().sum())
        row["n_test_images"] = int(done["n_test_images"].max()) if len(done) else 0
        row["epochs_run"] = float(done["epochs_run"].mean()) if len(done) else math.nan
        row["train_time_s"] = float(done["train_time_s"].mean()) if len(done) else math.nan
        row["latency_ms_per_image"] = float(done["latency_s_per_image"].mean() * 1000) if len(done) else math.nan
        row["n_params"] = float(done["n_params"].max()) if len(done) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _cell_mask(runs: pd.DataFrame, cell: pd.Series) -> np.ndarray:
    return np.logical_and.reduce([runs[k] == cell[k] for k in CELL_KEYS]) & (runs["status"] == "complete")


def _seed_mean_per_image(rs: RunSet, cell: pd.Series, runs: pd.DataFrame) -> pd.Series:
    mat = image_matrix(rs.per_image, list(runs.loc[_cell_mask(runs, cell), "job_id"]))
    return mat.mean(axis=0) if not mat.empty else pd.Series(dtype=float)


def oof_images(rs: RunSet, job_ids: list[str]) -> tuple[pd.Series, pd.Series]:
    """Per-image out-of-fold IoU of a cell's CV jobs, averaged over seeds (index: image), and the fold that
    scored each image; both empty without out-of-fold scores."""
    if rs.oof is None or rs.oof.empty:
        return pd.Series(dtype=float), pd.Series(dtype=int)
    sub = rs.oof[rs.oof["job_id"].isin(job_ids)]
    if sub.empty:
        return pd.Series(dtype=float), pd.Series(dtype=int)
    return sub.groupby("image")["iou"].mean(), sub.groupby("image")["fold"].min()


def _seed_diffs(frame: pd.DataFrame, runs: pd.DataFrame, best: pd.Series, second: pd.Series,
                images: pd.Index) -> np.ndarray:
    """(n_seeds, n_images) per-image differences best - runner-up, one row per seed both have."""
    ids = {"a": runs.loc[_cell_mask(runs, best), "job_id"], "b": runs.loc[_cell_mask(runs, second), "job_id"]}
    mats = {k: frame[frame["job_id"].isin(v)].pivot_table(index="seed", columns="image", values="iou",
                                                          aggfunc="mean") for k, v in ids.items()}
    seeds = mats["a"].index.intersection(mats["b"].index)
    cols = images.intersection(mats["a"].columns).intersection(mats["b"].columns)
    return (mats["a"].loc[seeds, cols] - mats["b"].loc[seeds, cols]).to_numpy()


def _per_run_iou(runs: pd.DataFrame, cell: pd.Series, score: str = "iou") -> pd.Series:
    """Test IoU (``score``) per (seed, fold) run of a cell (fold -1 without CV): the units of P(A beats B)."""
    keys = ["seed", "fold"] if "fold" in runs else ["seed"]
    return runs.loc[_cell_mask(runs, cell)].groupby(keys)[score].mean()


def _cell_has_no_test(rs: RunSet, *cells: pd.Series) -> bool:
    """True when none of the cells' jobs scored a test image (CV pool ``all``: every image is out of fold)."""
    ids = [j for c in cells for j in rs.runs.loc[_cell_mask(rs.runs, c), "job_id"]]
    return rs.per_image[rs.per_image["job_id"].isin(ids)].empty


def selection_split(cells: pd.DataFrame) -> str:
    """``validation`` when every complete cell has a validation score, else ``test`` (flagged optimistic)."""
    done = cells[cells["n_seeds"] > 0]
    return "validation" if len(done) and done["val_iou"].notna().all() else "test"


def best_table(rs: RunSet, cells: pd.DataFrame, alpha: float = 0.05) -> tuple[pd.DataFrame, str]:
    """Best cell per dataset, chosen on validation IoU (mean over seeds), vs the runner-up on test.

    Both the winner's and the runner-up's TEST IoU are reported; the paired test compares their per-image
    test IoU (mean over each cell's seeds) on the images both scored. ``selected_on``/``scored_on`` name
    the splits. When any cell lacks a validation score the whole dataset falls back to test selection,
    labelled so. A non-significant difference gives ``winner = "no significant difference between the top 2"``.
    Returns the table and the conclusion text (written only from significant winners).
    """
    rows = []
    for dataset, grp in cells.groupby("dataset", sort=True):
        done = grp[grp["n_seeds"] > 0]
        split = selection_split(done)
        key = "val_iou" if split == "validation" else "iou"
        ranked = done.sort_values(key, ascending=False, kind="stable")
        n_failed_cells = int((grp["n_seeds"] == 0).sum())
        if ranked.empty:
            rows.append({"dataset": dataset, "status": f"no complete cell ({len(grp)} cells)"})
            continue
        best = ranked.iloc[0]
        row = {"dataset": dataset, **{k: best[k] for k in ("encoder", "decoder", "encoder_weights", "arch",
                                                            "status", "n_seeds", "val_iou", "iou", "iou_ci_lo",
                                                            "iou_ci_hi", "iou_interval", "dice", "wiou",
                                                            "pixel_accuracy")}}
        protocol = str(best.get("protocol", "holdout"))
        selected = ("test (no validation score: optimistic)" if split != "validation"
                    else "validation" if protocol == "holdout" else f"out-of-fold validation ({protocol})")
        row.update(selected_on=selected, scored_on="test", cells_without_result=n_failed_cells,
                   protocol=protocol, runs=best.get("runs", ""), val_interval=best.get("val_interval", "—"))
        if len(ranked) > 1:
            second = ranked.iloc[1]
            oof_only = protocol != "holdout" and _cell_has_no_test(rs, best, second)
            if oof_only:  # CV over all annotated images: rank and test on paired out-of-fold IoU
                ranked = done.sort_values("oof_iou_img", ascending=False, kind="stable")
                best, second = ranked.iloc[0], ranked.iloc[1]
                row.update({k: best[k] for k in ("encoder", "decoder", "encoder_weights", "arch", "status",
                                                  "n_seeds", "val_iou", "runs", "val_interval")})
                a, fold_a = oof_images(rs, list(rs.runs.loc[_cell_mask(rs.runs, best), "job_id"]))
                b, _ = oof_images(rs, list(rs.runs.loc[_cell_mask(rs.runs, second), "job_id"]))
                common = a.index.intersection(b.index)
                diff = a[common].to_numpy() - b[common].to_numpy()
                n_pairs = len(done) * (len(done) - 1) // 2
                res = cv_paired_test(diff, fold_a[common].to_numpy(), alpha=alpha, n_pairs=n_pairs)
                folds = int(best.get("folds") or 0) or None
                sd = cv_per_image_sd(diff, fold_a[common].to_numpy())
                frame, scored_on = rs.oof, f"out-of-fold ({len(common)} images, {protocol})"
                row.update(selected_on=f"out-of-fold per-image IoU ({protocol}, all {len(common)} images)",
                           scored_on=scored_on, iou=best["oof_iou_img"], oof_iou_img=best["oof_iou_img"],
                           iou_interval="—", selection_pairs=n_pairs)
                runner_iou = second["oof_iou_img"]
            else:
                a = _seed_mean_per_image(rs, best, rs.runs)
                b = _seed_mean_per_image(rs, second, rs.runs)
                common = a.index.intersection(b.index)
                diff = a[common].to_numpy() - b[common].to_numpy()
                res = paired_test(a[common].to_numpy(), b[common].to_numpy(), alpha=alpha)
                folds, frame = None, rs.per_image
                sd = float(np.nanstd(diff, ddof=1)) if len(diff) > 1 else math.nan
                runner_iou = second["iou"]
            unit = "val_iou" if oof_only else "iou"  # out-of-fold IoU of each fold run when nothing was tested
            sa, sb = _per_run_iou(rs.runs, best, unit), _per_run_iou(rs.runs, second, unit)
            seeds = sa.index.intersection(sb.index)
            row.update(runner_up=second["arch"], runner_up_val_iou=second["val_iou"], runner_up_iou=runner_iou,
                       delta_iou=row["iou"] - runner_iou, test=res.method, n_images=res.n,
                       p_value=res.p_value, verdict=res.verdict,
                       delta_interval=("—" if math.isnan(res.ci_lo) else f"[{res.ci_lo:.3f}, {res.ci_hi:.3f}]"),
                       # a fraction over one pair is 0 or 1, not a probability: n/a below 2 pairs
                       p_beats_runner_up=(prob_a_beats_b(sa[seeds].to_numpy(), sb[seeds].to_numpy())
                                          if len(seeds) >= MIN_PAIRED_RUNS else math.nan),
                       n_paired_runs=len(seeds))
            supported = res.verdict == "significant" and res.mean_diff > 0
            row["winner"] = best["arch"] if supported else (
                "no significant difference between the top 2" if res.verdict.startswith("not significant")
                else res.verdict if res.verdict.startswith("insufficient")
                else "no significant difference between the top 2 (runner-up higher on test)")
            row["power"] = "" if supported else power_sentence(
                best["arch"], second["arch"], res.mean_diff, sd, res.n, folds=folds,
                alpha=alpha / row.get("selection_pairs", 1),
                seed_diffs=_seed_diffs(frame, rs.runs, best, second, common))
        else:
            row.update(runner_up="—", runner_up_val_iou=math.nan, runner_up_iou=math.nan, delta_iou=math.nan,
                       test="—", n_images=0, p_value=math.nan, verdict="no runner-up",
                       p_beats_runner_up=math.nan, n_paired_runs=0, winner="no runner-up")
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty or "decoder" not in table:
        return table, ""
    winners = table["decoder"].dropna()
    modal = winners.value_counts().index[0] if len(winners) else None
    others = [d for d in dict.fromkeys(winners) if d != modal]
    marks = {d: DAGGERS[i % len(DAGGERS)] for i, d in enumerate(others)}
    table["flag"] = table["decoder"].map(lambda d: marks.get(d, ""))
    return table, conclusion(table)


def conclusion(table: pd.DataFrame) -> str:
    """One sentence per dataset, claiming a winner only where the paired test supports it."""
    parts, supported = [], []
    for _, r in table.iterrows():
        if not isinstance(r.get("arch"), str):
            continue
        w = r.get("winner", "")
        if w == r["arch"]:
            supported.append((r["dataset"], r["decoder"]))
            parts.append(f"{r['arch']} for {r['dataset']}")
        else:
            parts.append(f"{r['dataset']}: {w}")
    text = "; ".join(parts) + "." if parts else ""
    decoders = {d for _, d in supported}
    if len(supported) >= 2 and len(decoders) >= 2:
        text += " No single decoder dominates (significant winners differ)."
    elif len(supported) >= 2 and len(supported) == len(parts):
        text += f" {next(iter(decoders))} wins significantly on every dataset."
    return text
