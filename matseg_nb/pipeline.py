"""The whole loop, headless (what ``make demo`` runs): profile -> data -> sweep -> compare -> QC -> explain
-> report. Each stage is a small function over the package's public APIs; the output folder layout is

    <out>/data/      <dataset>.json (summary), <dataset>.classes.json (mask value -> class id), <dataset>-preview.png
    <out>/sweep/     job folders, summary.json (matseg_nb.sweep)
    <out>/compare/   tables, plots, recommendation (matseg_nb.compare)
    <out>/qc/        verdict, scores, ROC, gallery (matseg_nb.qc)
    <out>/explain/   heatmap, faithfulness (matseg_nb.explain)
    <out>/report.html, <out>/report.json

Stages are rerunnable: the sweep resumes, the others overwrite their folder atomically file by file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matseg_nb.atomic import atomic_write_json
from matseg_nb.loop import DEMO_SETTINGS

Log = Callable[[str], None]


@dataclass
class DemoContext:
    profile_path: Path
    out: Path
    log: Log = print
    results: dict = field(default_factory=dict)

    @property
    def profile(self):
        if "profile" not in self.results:
            from matseg_nb.profiles import load_profile

            self.results["profile"] = load_profile(self.profile_path)
        return self.results["profile"]


def stage_profile(ctx: DemoContext) -> None:
    """Validate the profile and print its one-screen summary and job count."""
    from matseg_nb.profiles import compile_jobs, summarize

    jobs = compile_jobs(ctx.profile)
    ctx.log(summarize(ctx.profile, jobs))
    ctx.results["jobs"] = [j.job_id for j in jobs]


def stage_data(ctx: DemoContext) -> None:
    """Resolve every dataset of the profile, print a summary, write a summary JSON and a preview PNG."""
    from matseg_nb.data import open_dataset
    from matseg_nb.data.decode import mask_mapping_record
    from matseg_nb.data.preview import save_preview
    from matseg_nb.errors import UserError

    out = ctx.out / "data"
    summaries = {}
    opened, missing = [], []
    for entry in ctx.profile.dataset:  # open all first: one line per missing dataset, before any training
        try:
            opened.append(open_dataset(entry.ref, base_dir=ctx.profile.base_dir))
        except UserError as err:
            missing.append(f"data: dataset {entry.ref!r} of {ctx.profile_path}: " + " ".join(err.problems))
    if missing:
        raise UserError(*missing)
    for ds in opened:
        info = ds.describe()
        atomic_write_json(out / f"{ds.name}.json", info)
        atomic_write_json(out / f"{ds.name}.classes.json", mask_mapping_record(ds))  # mask value -> class id
        preview = save_preview(ds, out / f"{ds.name}-preview.png")
        summaries[ds.name] = info
        ctx.log(format_dataset_summary(info))
        if info["missing"]:
            ctx.log(f"  note: {len(info['missing'])} file(s) listed upstream are absent: {', '.join(info['missing'])}")
        ctx.log(f"  preview: {preview}")
    ctx.results["data"] = summaries


def format_dataset_summary(info: dict) -> str:
    """A few lines: name, modality, pairs per split, pooled class fractions of the training split."""
    splits = ", ".join(f"{s} {v['pairs']}" for s, v in info["splits"].items())
    train = info["splits"].get("train", {}).get("class_fractions", {})
    fractions = ", ".join(f"{k} {v:.2%}" for k, v in train.items())
    sizes = sorted({k for v in info["splits"].values() for k in v["image_sizes"]})
    return (
        f"dataset {info['name']} ({info['modality']}, {info['material']}): pairs {splits}; "
        f"sizes {', '.join(sizes)}\n  train class fractions: {fractions}"
    )


def stage_sweep(ctx: DemoContext) -> None:
    """Train and evaluate every job of the profile (papermill per job; resumes a killed sweep)."""
    from matseg_nb.sweep import format_status, run_sweep, sweep_status

    summary = run_sweep(ctx.profile_path, ctx.out / "sweep")
    ctx.log(format_status(sweep_status(ctx.out / "sweep")))
    failed = [r.job_id for r in summary.jobs if r.status != "complete"]
    ctx.results["failed_jobs"] = failed
    if failed:
        ctx.log(f"  {len(failed)} job(s) did not complete: {', '.join(failed)} (see their error.json)")


def stage_compare(ctx: DemoContext) -> None:
    """Complete and best-per-dataset tables, statistics, plots and a recommendation per dataset."""
    from matseg_nb.compare import compare_and_recommend

    paths = compare_and_recommend([ctx.out / "sweep"], ctx.out / "compare")
    ctx.results["compare"] = {k: str(v) for k, v in paths.items()}
    if "best_table_md" in paths:  # the best architecture per dataset vs its runner-up
        ctx.log(Path(paths["best_table_md"]).read_text().strip())
    ctx.log(f"  comparison written to {ctx.out / 'compare'}")


def best_run(sweep_dir: Path, dataset: str | None = None) -> Path | None:
    """The complete run folder with the highest best-epoch VALIDATION IoU (optionally of one dataset);
    test IoU only when no run has a validation score. Selection never looks at the test split otherwise."""
    from matseg_nb.runs import RunFileError, Sweep

    sweep = Sweep(sweep_dir)
    best, best_val = None, -math.inf
    for run in sweep.complete_runs():
        try:
            names = (run.dataset, Path(str(run.dataset)).name, run.job().get("dataset_slug"))
            val = run.best_val_iou()
        except RunFileError:  # corrupted run files: not a candidate
            continue
        if (dataset is None or dataset in names) and val is not None and val > best_val:
            best, best_val = run, val
    if best is None:
        best = sweep.best_run(dataset)
    return None if best is None else best.path


def _qc_dataset(ctx: DemoContext) -> tuple[str, Path | None]:
    """The best run of the whole sweep (highest test IoU) and its dataset's name: QC and explanations use it."""
    from matseg_nb.runs import Run

    run = best_run(ctx.out / "sweep")
    if run is None:
        return "", None
    from matseg_nb.data import open_dataset

    return open_dataset(Run(run).job()["dataset"], base_dir=ctx.profile.base_dir).name, run


#: imaging shifts applied to the held-out images as the OOD side of the demo's QC (``matseg_nb.loop``)
DEMO_SHIFTS = list(DEMO_SETTINGS.qc.shifts)


def stage_qc(ctx: DemoContext) -> None:
    """Forte-style QC of the sweep's best model: the profile's other datasets and imaging shifts as OOD."""
    from matseg_nb.qc.run import run_qc

    name, run = _qc_dataset(ctx)
    if run is None:
        ctx.log("  no complete run: QC skipped")
        return
    from matseg_nb.data import open_dataset

    names = [open_dataset(e.ref, base_dir=ctx.profile.base_dir).name for e in ctx.profile.dataset]
    others = [n for n in names if n != name]  # the profile's other datasets are the OOD side, with the shifts
    result = run_qc(run, test=others, out_dir=ctx.out / "qc", **DEMO_SETTINGS.qc.run_qc_kwargs())
    ctx.results["qc"] = {"run": str(run), "out": str(ctx.out / "qc")}
    ctx.log(format_qc(result.summary if hasattr(result, "summary") else {}, getattr(result, "verdict", "?")))
    from matseg_nb.qc.screening import screen_run

    qs = DEMO_SETTINGS.qc
    screened = screen_run(run, [f"split:{qs.heldout_split}", *(f"{o}:{qs.heldout_split}" for o in others)],
                          ctx.out / "qc" / "screening", extractors=tuple(qs.extractors), tile_size=qs.tile_size,
                          tiles_per_image=qs.tiles_per_image, shifts=list(qs.shifts[:1]))
    ctx.results["qc"]["screening"] = str(ctx.out / "qc" / "screening" / "qc.json")
    ctx.log("\n".join(r.summary().splitlines()[0] for r in screened))


def format_qc(summary: dict, verdict: str) -> str:
    """A short table: AUROC per OOD set and detector at image level, then the verdict."""
    lines = [f"  QC verdict: {verdict} (detector validation: {(summary.get('validation') or {}).get('reason', 'n/a')})"]
    for level, info in (summary.get("levels") or {}).items():
        for ood_set, per_detector in (info.get("ood") or {}).items():
            cells = []
            for det, res in per_detector.items():
                auroc = (res.get("image") or {}).get("auroc")
                cells.append(f"{det} {auroc:.3f}" if isinstance(auroc, float) else f"{det} n/a")
            lines.append(f"  {level:<10} {ood_set:<28} AUROC(image) " + ", ".join(cells))
    return "\n".join(lines)


def stage_explain(ctx: DemoContext, crop: int = DEMO_SETTINGS.explain.crop, window: int = DEMO_SETTINGS.explain.window,
                  stride: int = DEMO_SETTINGS.explain.stride) -> None:
    """Counterfactual heatmap + faithfulness for one test image of the best model, with A = the ground
    truth's class boundaries (stated as such in the annotation's JSON), on a ``crop`` px centre crop so the
    demo stays within minutes on a CPU."""
    from matseg_nb.data import open_dataset
    from matseg_nb.explain.annotation import save_boundary_annotation
    from matseg_nb.explain.pipeline import explain_image, load_model_input
    from matseg_nb.models import load_run_model

    name, run = _qc_dataset(ctx)
    if run is None:
        ctx.log("  no complete run: explanation skipped")
        return
    ds = open_dataset(name, base_dir=ctx.profile.base_dir)
    sample = ds.samples("test")[0]
    model, meta = load_run_model(run)
    img = load_model_input(sample.image, meta)
    gt = ds.load_mask(sample)
    h, w = gt.shape
    size = min(crop, h, w)
    y0, x0 = (h - size) // 2, (w - size) // 2
    img, gt = img[:, y0:y0 + size, x0:x0 + size], gt[y0:y0 + size, x0:x0 + size]
    out = ctx.out / "explain"
    mask_png = save_boundary_annotation(gt, out / "annotation.png", sample.image)
    summary = explain_image(run, sample.image, mask_png, out, kernel=DEMO_SETTINGS.explain.kernel, window=window,
                            stride=stride,
                            model=model, image=img, meta={**meta, "crop": [y0, x0, size]})
    ctx.results["explain"] = {"run": str(run), "image": str(sample.image), "crop_yx_size": [y0, x0, size],
                              "faithful": summary.faithfulness.faithful, "summary": summary.summary()}
    ctx.log(f"  heatmap for {sample.image.name} (centre crop {size} px at y={y0}, x={x0}) of {run.name}")
    ctx.log(f"  {summary.summary()}")


def stage_report(ctx: DemoContext) -> None:
    """One self-contained HTML report plus report.json of everything above."""
    from matseg_nb.report import build_report

    html, js = build_report(ctx.out / "sweep", ctx.out / "report.html")
    ctx.results["report"] = {"html": str(html), "json": str(js)}
    ctx.log(f"report: {html}\nfacts:  {js}")


STAGES: dict[str, Callable[[DemoContext], None]] = {
    "profile": stage_profile,
    "data": stage_data,
    "sweep": stage_sweep,
    "compare": stage_compare,
    "qc": stage_qc,
    "explain": stage_explain,
    "report": stage_report,
}


def run_demo(profile_path: str | Path, out: str | Path, stages: list[str] | None = None, log: Log = print) -> dict:
    """Run the given stages (default: all, in order) and return what they produced."""
    ctx = DemoContext(Path(profile_path), Path(out), log)
    ctx.out.mkdir(parents=True, exist_ok=True)
    for name in stages or list(STAGES):
        t0 = time.perf_counter()
        ctx.log(f"== {name}")
        STAGES[name](ctx)
        ctx.log(f"== {name} done in {time.perf_counter() - t0:.1f} s")
    return ctx.results
