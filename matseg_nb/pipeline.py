"""The whole loop, headless (what ``make demo`` runs): profile -> data -> sweep -> compare -> QC -> explain
-> report. Each stage is a small function over the package's public APIs; the output folder layout is

    <out>/data/      <dataset>.json (summary), <dataset>-preview.png
    <out>/sweep/     job folders, summary.json (matseg_nb.sweep)
    <out>/compare/   tables, plots, recommendation (matseg_nb.compare)
    <out>/qc/        verdict, scores, ROC, gallery (matseg_nb.qc)
    <out>/explain/   heatmap, faithfulness (matseg_nb.explain)
    <out>/report.html, <out>/report.json

Stages are rerunnable: the sweep resumes, the others overwrite their folder atomically file by file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matseg_nb.atomic import atomic_write_json

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
    from matseg_nb.data.preview import save_preview

    out = ctx.out / "data"
    summaries = {}
    for entry in ctx.profile.dataset:
        ds = open_dataset(entry.ref, base_dir=ctx.profile.base_dir)
        info = ds.describe()
        atomic_write_json(out / f"{ds.name}.json", info)
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
    if "summary_md" in paths:
        text = Path(paths["summary_md"]).read_text()
        ctx.log(text.split("## How much context matters")[0].strip())
    ctx.log(f"  comparison written to {ctx.out / 'compare'}")


STAGES: dict[str, Callable[[DemoContext], None]] = {
    "profile": stage_profile,
    "data": stage_data,
    "sweep": stage_sweep,
    "compare": stage_compare,
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
