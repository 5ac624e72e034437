"""``compare_sweeps``: every table, statistic and plot of a comparison, from run folders alone."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from matseg_nb.atomic import atomic_write_json, atomic_write_text
from matseg_nb.compare import plots
from matseg_nb.compare.aggregate import arch_labels, best_table, cell_table
from matseg_nb.compare.classes import class_scores, unlearned_classes
from matseg_nb.compare.measurement import measurement_columns
from matseg_nb.compare.runs import is_refit, load_runs, mixed_protocols
from matseg_nb.compare.stats import context_verdict, rank_stability, seed_noise_ceiling
from matseg_nb.compare.tables import fmt, to_markdown, write_table
from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json_object
from matseg_nb.terminal import fit_lines

FAILURE_COLUMNS = ["sweep", "job_id", "dataset", "encoder", "decoder", "encoder_weights", "seed", "status",
                   "error", "run_dir"]


def _ci(mean: float, interval: str) -> str:
    return "—" if math.isnan(mean) else f"{mean:.3f} {interval}"


def _pretty_cells(cells: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": cells["dataset"], "encoder": cells["encoder"], "decoder": cells["decoder"],
        "weights": cells["encoder_weights"], "status": cells["status"], "protocol": cells["protocol"],
        "runs": cells["runs"],
        "val IoU (selects)": cells["val_iou"].map(fmt), "val 95% CI (folds)": cells["val_interval"],
        "test IoU": cells["iou"].map(fmt), "test IoU/img [95% t-CI]": [
            _ci(m, iv) for m, iv in zip(cells["iou_img_mean"], cells["iou_interval"], strict=True)],
        "area frac. |bias| (pp)": cells["af_abs_bias_pp"].map(fmt) if "af_abs_bias_pp" in cells else "—",
        "measurement error (test or out of fold)": cells["measurement_error"] if "measurement_error" in cells else "—",
        "Dice": cells["dice"].map(fmt), "wIoU": cells["wiou"].map(fmt),
        "wIoU (class freq.)": cells["wiou_class_freq"].map(fmt), "PA": cells["pixel_accuracy"].map(fmt),
        "epochs": cells["epochs_run"].map(lambda v: fmt(v, 1)),
        "train s": cells["train_time_s"].map(lambda v: fmt(v, 1)),
        "ms/img": cells["latency_ms_per_image"].map(lambda v: fmt(v, 1)),
        "params (M)": cells["n_params"].map(lambda v: fmt(v / 1e6, 2)),
    })


def _pretty_best(best: pd.DataFrame) -> pd.DataFrame:
    if best.empty or "decoder" not in best:
        return best
    p_text = best["p_value"].map(lambda p: "—" if p is None or math.isnan(p) else (f"{p:.2g}" if p >= 1e-4 else "<1e-4"))
    return pd.DataFrame({
        "dataset": best["dataset"].astype(str) + best["flag"].fillna(""),
        "encoder": best["encoder"], "decoder": best["decoder"], "weights": best["encoder_weights"],
        "runs": best["runs"], "selected on": best["selected_on"], "scored on": best["scored_on"],
        "val IoU": best["val_iou"].map(fmt), "val 95% CI (folds)": best["val_interval"],
        "test IoU": best["iou"].map(fmt), "95% t-CI (IoU/img)": best["iou_interval"],
        "area frac. |bias| (pp)": best["af_abs_bias_pp"].map(fmt) if "af_abs_bias_pp" in best else "—",
        "measurement error (test or out of fold)": best["measurement_error"].fillna("—") if "measurement_error" in best else "—",
        "Dice": best["dice"].map(fmt), "runner-up": best["runner_up"],
        "runner-up val IoU": best["runner_up_val_iou"].map(fmt),
        "runner-up test IoU": best["runner_up_iou"].map(fmt), "ΔIoU": best["delta_iou"].map(fmt),
        "ΔIoU 95% CI (CV)": best["delta_interval"] if "delta_interval" in best else "—",
        "n img": best["n_images"], "p": p_text, "P(best > runner-up)": best["p_beats_runner_up"].map(fmt),
        "verdict": best["verdict"], "conclusion": best["winner"],
        "what would decide": best["power"].fillna("") if "power" in best else "",
        "not learned": best["unlearned"].fillna("") if "unlearned" in best else "",
    })


@dataclass
class ComparisonResult:
    """Typed outcome of :func:`compare_sweeps` (``comparison.json``).

    ``rows``: one dict per dataset: dataset, arch, val_iou, iou (test), iou_interval, runner_up,
    runner_up_val_iou, runner_up_iou, p_value, verdict, p_beats_runner_up, winner (an architecture only when
    the paired test supports it, else "no significant difference between the top 2" or "insufficient
    evidence (n = k)"). ``selected_on``/``scored_on``: the splits that chose and scored. ``conclusion``:
    the text conclusion. ``context``: the rank-stability verdict against the seed noise ceiling, with its
    numbers (``mean_dataset_tau``, ``mean_seed_tau``). ``files``: name -> file name in the output folder.
    """

    selected_on: str
    scored_on: str
    conclusion: str
    context: str
    mean_dataset_tau: float | None
    mean_seed_tau: float | None
    rows: list[dict] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unlearned: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ComparisonResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @classmethod
    def load(cls, out_dir: Path) -> ComparisonResult:
        path = Path(out_dir) / "comparison.json"
        data = read_json_object(path)
        if data is None:
            raise UserError(f"{path}: expected a comparison written by matseg compare, found no such file")
        try:
            return cls.from_json(data)
        except (ValueError, TypeError, KeyError) as err:
            raise UserError(f"{path}: expected a comparison written by matseg compare, found {err}") from None

    def summary(self) -> str:
        """Which split chose and scored, the conclusion, what would decide each undecided comparison (power),
        the classes no model learned, the context verdict (and protocol notes)."""
        notes = "".join(f"\nNote: {n}." for n in self.notes)
        power = "".join(f"\nWhat would decide ({r['dataset']}): {r['power']}." for r in self.rows if r.get("power"))
        unlearned = "".join(f"\n{u['dataset']}: {u['text']}" for u in self.unlearned)
        return (f"Selected on {self.selected_on}, scored on {self.scored_on}. {self.conclusion}{power}{unlearned}\n"
                f"Rank stability: {self.context}.{notes}")

    def terminal(self, width: int = 100) -> str:
        """:meth:`summary` per dataset, wrapped to ``width`` columns (the full tables are in files)."""
        lines = []
        for r in self.rows:
            if not r.get("arch"):
                continue
            lines.append(f"{r['dataset']}: best {r['arch']} (IoU {_num(r.get('iou'))}), runner-up "
                         f"{r.get('runner_up')} ({_num(r.get('runner_up_iou'))}); {r.get('winner')}")
            ci = r.get("delta_interval")
            ci = f" (95% CI of the paired difference {ci}, Nadeau-Bengio)" if ci and ci != "—" else ""
            lines.append(f"  scored on {r.get('scored_on')}, n = {r.get('n_images')}, p = {_num(r.get('p_value'), 2)}{ci}")
            if r.get("power"):
                lines.append(f"  what would decide: {r['power']}")
        lines += [f"{u['dataset']}: {u['text']}" for u in self.unlearned]
        lines.append(f"rank stability: {self.context}")
        lines += [f"note: {n}" for n in self.notes]
        return fit_lines(lines, width)


def refit_notes(sweep_dirs: list[Path]) -> list[str]:
    """One note per CV refit job (the deployed model; not compared) that is not complete."""
    from matseg_nb.runs import Sweep

    out = []
    for sweep in sweep_dirs:
        for job in Sweep(sweep).jobs():
            if is_refit(job.job_id) and job.status != "complete":
                out.append(f"refit {job.job_id} is {job.status}{f' ({job.error})' if job.error else ''}: "
                           "deployment falls back to the fold ensemble")
    return out


def _num(value, digits: int = 3) -> str:
    """3 decimals (``digits`` significant figures below 3); n/a for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}" if digits < 3 else f"{value:.{digits}f}"


def _scored_on(scored: pd.Series) -> str:
    kinds = sorted(set(scored.dropna().astype(str)))
    return "test" if not kinds else kinds[0] if len(kinds) == 1 else "per dataset: " + "; ".join(kinds)


def _selected_on(selected: pd.Series) -> str:
    """One phrase for the whole comparison: the selection split(s) of its datasets."""
    kinds = sorted(set(selected.dropna().astype(str)))
    if not kinds:
        return "validation"
    if any(k.startswith("test") for k in kinds):
        return "test (some datasets lack validation scores)"
    return kinds[0] if len(kinds) == 1 else "per dataset: " + "; ".join(kinds)


def _json_value(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v.item() if hasattr(v, "item") else v


def compare_sweeps(sweep_dirs: list[Path], out_dir: Path, alpha: float = 0.05) -> dict[str, Path]:
    """Read sweep folders and write tables (CSV/MD/TeX), failures.csv, rank stability and PNG plots.

    Returns ``{name: path}`` of every file written (``summary_md`` collects the tables in one page).
    """
    out_dir = Path(out_dir)
    rs = load_runs([Path(p) for p in sweep_dirs])
    if rs.runs.empty:
        raise UserError(*(f"{p}: expected job folders or a summary.json listing jobs, found none" for p in sweep_dirs))
    cells = measurement_columns(cell_table(rs), rs.runs)
    best, note = best_table(rs, cells, alpha=alpha)
    if not best.empty and "arch" in best:  # the measurement error of the chosen cell, beside its IoU
        best = best.merge(cells[["dataset", "arch", "af_abs_bias_pp", "measurement_error"]],
                          on=["dataset", "arch"], how="left")
    arch_of_job = dict(zip(rs.runs["job_id"], arch_labels(rs.runs), strict=True))
    per_class = class_scores(rs.per_class, arch_of_job, dict(zip(rs.runs["job_id"], rs.runs["dataset"], strict=True)))
    unlearned = unlearned_classes(per_class)
    if not best.empty and "dataset" in best:
        best["unlearned"] = best["dataset"].map(lambda d: " ".join(u["text"] for u in unlearned if u["dataset"] == d))
    tau_table, tau_mean = rank_stability(cells[cells["n_seeds"] > 0])
    done_runs = rs.complete.assign(arch=arch_labels(rs.runs).loc[rs.complete.index])
    ceiling = seed_noise_ceiling(done_runs)
    context_text = context_verdict(tau_table["tau"], ceiling["tau"])
    paths: dict[str, Path] = {}
    paths["runs_csv"] = atomic_write_text(out_dir / "runs.csv", rs.runs.to_csv(index=False))
    paths["failures_csv"] = atomic_write_text(out_dir / "failures.csv",
                                              rs.failures[FAILURE_COLUMNS].to_csv(index=False))
    ci_note = ("val IoU = best-epoch validation IoU, mean over seeds (the selection score); for k-fold CV "
               "cells the out-of-fold IoU (full images of each fold, scored by the model trained on the other "
               "folds), mean over folds x seeds, with a 95% t interval over folds (Nadeau-Bengio corrected; "
               "fewer than 3 folds: 'insufficient evidence'). test IoU = "
               "dataset-level (pooled pixels) test IoU, mean over seeds. IoU/img = mean per-image foreground "
               "test IoU (seed-averaged per image) with a 95% Student-t interval over images; fewer than 3 "
               "images: 'insufficient evidence'. weights = encoder weights ('none' = trained from scratch). "
               "measurement error = prediction - ground truth on the test images, mean over seeds (for k-fold "
               "CV over all annotated images: on the out-of-fold images, each predicted by the fold model "
               "that did not train on it, mean over images x seeds, marked '(out of fold)'): area "
               "fraction (pp) and equivalent-diameter median (d50) per foreground class (matseg segment's "
               "measurements); area frac. |bias| = the largest over foreground classes.")
    paths.update(write_table(cells, _pretty_cells(cells), out_dir, "complete_table",
                             caption="All encoder x decoder results per dataset.", note=ci_note))
    test_note = (f"Selected on: validation (highest mean validation IoU over seeds, or mean out-of-fold IoU "
                 f"over folds x seeds for k-fold CV); scored on: test. k-fold CV over ALL annotated images (no "
                 f"test split): ranked and scored on the per-image out-of-fold IoU over all N images "
                 f"(seed-averaged), p = Nadeau-Bengio corrected t test over the k fold means of the paired "
                 f"differences (k - 1 df), Bonferroni-multiplied by the number of pairs the top two were "
                 f"chosen from. power = how many annotated images (or seeds) would give 80% power at the "
                 f"observed difference and spread. "
                 f"p = two-sided exact paired sign-flip permutation test of per-image test IoU (best vs "
                 f"runner-up, seed-averaged), alpha = {alpha}; P(best > runner-up) over paired runs (seed, or seed x "
                 f"fold). {note}")
    paths.update(write_table(best, _pretty_best(best), out_dir, "best_table",
                             caption="Best encoder x decoder per dataset.", note=test_note))
    paths["class_iou_csv"] = atomic_write_text(out_dir / "class_iou.csv", per_class.to_csv(index=False))
    if rs.oof is not None and len(rs.oof):
        paths["oof_per_image_csv"] = atomic_write_text(out_dir / "oof_per_image.csv", rs.oof.to_csv(index=False))
    paths["rank_stability_csv"] = atomic_write_text(out_dir / "rank_stability.csv", tau_table.to_csv(index=False))
    paths["noise_ceiling_csv"] = atomic_write_text(out_dir / "noise_ceiling.csv", ceiling.to_csv(index=False))
    paths["noise_ceiling_png"] = plots.noise_ceiling(tau_table["tau"], ceiling["tau"],
                                                     out_dir / "noise_ceiling.png")
    stability = {"mean_kendall_tau": None if math.isnan(tau_mean) else tau_mean,
                 "n_dataset_pairs": int(tau_table["tau"].notna().sum()),
                 "mean_seed_tau": None if ceiling["tau"].dropna().empty else float(ceiling["tau"].mean()),
                 "n_seed_pairs": int(ceiling["tau"].notna().sum()), "verdict": context_text,
                 "meaning": "1 = same architecture ranking on every dataset (context does not matter); "
                            "0 = unrelated rankings; -1 = reversed"}
    paths["heatmap_png"] = plots.heatmap(cells, out_dir / "heatmap_iou.png")
    paths["per_image_png"] = plots.per_image_distributions(rs.per_image, arch_of_job, out_dir / "per_image_iou.png")
    paths["latency_png"] = plots.accuracy_vs_latency(cells, out_dir / "accuracy_vs_latency.png")
    summary = {
        "sweeps": [str(p) for p in sweep_dirs], "n_jobs": len(rs.runs), "n_complete": len(rs.complete),
        "n_failed_or_incomplete": len(rs.failures), "rank_stability": stability,
        "selected_on": _selected_on(best.get("selected_on", pd.Series(dtype=str))),
        "scored_on": _scored_on(best.get("scored_on", pd.Series(dtype=str))), "conclusion": note,
        "notes": mixed_protocols(rs.runs) + refit_notes([Path(p) for p in sweep_dirs]),
        "files": {k: v.name for k, v in paths.items()},
    }
    paths["summary_json"] = atomic_write_json(out_dir / "summary.json", summary)
    keep = ["dataset", "arch", "protocol", "runs", "selected_on", "scored_on", "val_iou", "val_interval", "iou",
            "iou_interval", "runner_up", "runner_up_val_iou", "runner_up_iou", "n_images", "test", "p_value",
            "verdict", "p_beats_runner_up", "winner", "power", "delta_interval", "af_abs_bias_pp", "measurement_error"]
    result = ComparisonResult(
        selected_on=summary["selected_on"], scored_on=summary["scored_on"], conclusion=note, context=context_text,
        mean_dataset_tau=stability["mean_kendall_tau"], mean_seed_tau=stability["mean_seed_tau"],
        rows=[{k: _json_value(r.get(k)) for k in keep} for r in best.to_dict("records")],
        files={k: v.name for k, v in paths.items()}, notes=summary["notes"], unlearned=unlearned)
    paths["comparison_json"] = atomic_write_json(out_dir / "comparison.json", result.to_json())
    tau_text = "undefined (fewer than 2 datasets sharing 2+ architectures)" if math.isnan(tau_mean) else f"{tau_mean:.3f}"
    md = [
        "# Sweep comparison", "",
        f"Jobs: {len(rs.runs)} ({len(rs.complete)} complete, {len(rs.failures)} failed or incomplete).", "",
        *[f"Note: {n}." for n in summary["notes"]], "",
        "## Best per dataset", "", _pretty_best(best).pipe(to_markdown) if not best.empty else "(none)", note, "",
        "## All results", "", to_markdown(_pretty_cells(cells)), ci_note, "",
        "## How much context matters", "",
        f"Mean Kendall's tau between datasets' architecture rankings: **{tau_text}** "
        "(1 = same ranking everywhere).", "", f"Noise ceiling (seed pairs on one dataset): {context_text}.", "",
        "![noise ceiling](noise_ceiling.png)", "",
        to_markdown(tau_table) if len(tau_table) else "(one dataset only)", "",
        "## Failed or incomplete jobs", "",
        to_markdown(rs.failures[["job_id", "status", "error"]]) if len(rs.failures) else "none", "",
        "![heatmap](heatmap_iou.png)", "", "![per-image](per_image_iou.png)", "",
        "![latency](accuracy_vs_latency.png)", "",
    ]
    paths["summary_md"] = atomic_write_text(out_dir / "summary.md", "\n".join(md))
    return paths


def compare_and_recommend(sweep_dirs: list[Path], out_dir: Path, datasets: list[str] | None = None) -> dict[str, Path]:
    """The demo's compare stage: :func:`compare_sweeps`, then a recommendation per dataset.

    ``datasets`` defaults to the datasets of the sweeps. The first one is written to
    ``<out_dir>/recommendation.json`` (read by the report), the others to
    ``<out_dir>/recommendations/<name>.json``.
    """
    from matseg_nb.compare.recommend import recommend

    out_dir = Path(out_dir)
    paths = compare_sweeps(sweep_dirs, out_dir)
    if datasets is None:
        datasets = sorted(load_runs([Path(p) for p in sweep_dirs]).runs["dataset"].astype(str).unique())
    for i, ds in enumerate(datasets):
        rec = recommend(ds, sweep_dirs=[Path(p) for p in sweep_dirs])
        slug = Path(str(ds)).name
        target = out_dir / "recommendation.json" if i == 0 else out_dir / "recommendations" / f"{slug}.json"
        paths["recommendation_json" if i == 0 else f"recommendation_{slug}_json"] = rec.save(target)
    return paths
