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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matseg_nb.atomic import atomic_write_json
from matseg_nb.loop import DEMO_SETTINGS, LoopLayout, StageSettings, stage_settings
from matseg_nb.terminal import echo

Log = Callable[[str], None]


@dataclass
class DemoContext:
    """One loop: its profile, its output root (``layout``), its stage settings and what the stages produced."""

    profile_path: Path
    out: Path
    log: Log = echo  # print with lines fitted to 100 columns (matseg_nb.terminal)
    results: dict = field(default_factory=dict)
    settings: StageSettings = field(default_factory=stage_settings)

    @property
    def layout(self) -> LoopLayout:
        return LoopLayout(self.out)

    @property
    def profile(self):
        if "profile" not in self.results:
            from matseg_nb.profiles import load_profile

            self.results["profile"] = load_profile(self.profile_path)
        return self.results["profile"]


def project_dir(cwd: Path | None = None) -> Path:
    """The folder relative loop paths resolve against: the working directory, or the folder above it
    when that is a checkout's ``notebooks/`` (papermill and Jupyter start notebooks there)."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    return cwd.parent if cwd.name == "notebooks" and (cwd / "02_train.ipynb").is_file() else cwd


def loop_context(profile: str | Path, loop_root: str | Path, log: Log = echo,
                 settings: StageSettings | None = None) -> DemoContext:
    """The context every route of the loop shares (``matseg demo``, notebooks 01-06).

    ``profile`` and ``loop_root`` are made absolute: relative ones against :func:`project_dir` (a relative
    profile that exists only under the working directory itself is taken from there). Stage settings
    default to :func:`matseg_nb.loop.stage_settings`. UserError when the profile file does not exist."""
    from matseg_nb.errors import UserError

    base = project_dir()
    profile_path = Path(profile).expanduser()
    if not profile_path.is_absolute():
        profile_path = profile_path if profile_path.is_file() and not (base / profile_path).is_file() \
            else base / profile_path
    if not profile_path.is_file():
        raise UserError(f"profile {profile}: expected a JSON file, found nothing at {profile_path}")
    root = Path(loop_root).expanduser()
    root = root if root.is_absolute() else base / root
    return DemoContext(profile_path.resolve(), root.resolve(), log,
                       settings=settings if settings is not None else stage_settings())


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

    out = ctx.layout.data
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

    summary = run_sweep(ctx.profile_path, ctx.layout.sweep)
    ctx.log(format_status(sweep_status(ctx.layout.sweep)))
    failed = [r.job_id for r in summary.jobs if r.status != "complete"]
    ctx.results["failed_jobs"] = failed
    if failed:
        ctx.log(f"  {len(failed)} job(s) did not complete: {', '.join(failed)} (see their error.json)")


def stage_compare(ctx: DemoContext) -> None:
    """Complete and best-per-dataset tables, statistics, plots and a recommendation per dataset."""
    from matseg_nb.compare import compare_and_recommend

    paths = compare_and_recommend([ctx.layout.sweep], ctx.layout.compare)
    ctx.results["compare"] = {k: str(v) for k, v in paths.items()}
    if "comparison_json" in paths:  # the answer per dataset in <= 100 columns; the full tables are files
        from matseg_nb.compare.pipeline import ComparisonResult

        ctx.log(ComparisonResult.load(Path(paths["comparison_json"]).parent).terminal(100))
    if "best_table_md" in paths:
        ctx.log(f"  best per dataset (full table): {paths['best_table_md']}")
    ctx.log(f"  comparison written to {ctx.layout.compare}")


def best_run(sweep_dir: Path, dataset: str | None = None) -> Path | None:
    """The folder of ``Sweep.best_run``: the complete run with the highest validation IoU (of ``dataset``)."""
    from matseg_nb.runs import Sweep

    best = Sweep(sweep_dir).best_run(dataset)
    return None if best is None else best.path


def _qc_dataset(ctx: DemoContext) -> tuple[str, Path | None]:
    """The validation-selected run of the whole sweep and its dataset's name (``best_run``)."""
    from matseg_nb.runs import Run

    run = best_run(ctx.layout.sweep)
    if run is None:
        return "", None
    from matseg_nb.data import open_dataset

    return open_dataset(Run(run).job()["dataset"], base_dir=ctx.profile.base_dir).name, run


#: imaging shifts applied to the held-out images as the OOD side of the demo's QC (``matseg_nb.loop``)
DEMO_SHIFTS = list(DEMO_SETTINGS.qc.shifts)


def stage_qc(ctx: DemoContext) -> None:
    """Both QC questions for each dataset's validation-selected model (``best_run(sweep, dataset)``):
    screening its held-out images, their ``screening_shift`` copy and the other datasets' images as new
    images, and validating the detector on the shifts and the other datasets. Settings:
    ``DEMO_SETTINGS.qc``; output ``qc/<dataset>/`` (``matseg_nb.qc.dataset_qc``)."""
    from matseg_nb.data import open_dataset
    from matseg_nb.qc.dataset_qc import qc_each_dataset

    base = Path(ctx.profile.base_dir or ".")
    refs = {open_dataset(e.ref, base_dir=ctx.profile.base_dir).name:
            str((base / e.ref).resolve()) if (base / e.ref).exists() else e.ref  # folder refs: the profile's
            for e in ctx.profile.dataset}
    ctx.results["qc"] = {}
    for name, run, res in qc_each_dataset(ctx.layout.sweep, refs, ctx.layout.qc, ctx.settings.qc):
        if run is None:
            ctx.log(f"  {name}: no complete run, QC skipped")
            continue
        ctx.results["qc"][name] = {"run": str(run), "out": str(ctx.layout.qc / name),
                                   "verdict": res.validation.verdict, "seconds": round(res.seconds["total"], 1)}
        ctx.log(format_qc(res))
        from matseg_nb.qc.folder import QCFolder
        from matseg_nb.report.answer import typicality_iou_words

        words = typicality_iou_words(QCFolder(ctx.layout.qc / name).validation())
        if words:
            ctx.log(f"  {words}")


def format_qc(res) -> str:
    """The QC answers of one dataset in words (a ``matseg_nb.qc.dataset_qc.DatasetQC``): per screened
    batch the verdict, flagged k of n and p; the validation table (AUROC with 95% interval per detector,
    harmful/harmless) and its verdict."""
    return "\n".join("  " + ln for ln in res.summary().splitlines()) + f"\n  (QC took {res.seconds['total']:.0f} s)"


def explain_input(ctx: DemoContext, crop: int | None = None, run: Path | None = None,
                  image: str | Path | None = None) -> dict | None:
    """What the explain stage explains: ``image`` (default: the first test image) of ``run``'s dataset
    (default: the best model, :func:`best_run`), as model input cropped to its centre ``crop`` px (default
    ``ctx.settings.explain.crop``; None: the whole image at full resolution), with its ground truth.
    Returns {run, sample, model, meta, image (C, S, S), gt (S, S), crop_yx_size [y0, x0, S]}; None without a
    complete run. UserError when ``image`` is not a test or validation image of the dataset."""
    from matseg_nb.data import open_dataset
    from matseg_nb.errors import UserError
    from matseg_nb.explain.pipeline import load_model_input
    from matseg_nb.models import load_run_model
    from matseg_nb.runs import Run

    crop = ctx.settings.explain.crop if crop is None else crop
    if run is None:
        _name, run = _qc_dataset(ctx)
    if run is None:
        return None
    ds = open_dataset(Run(run).job()["dataset"], base_dir=ctx.profile.base_dir)  # a folder's name is no ref
    samples = ds.samples("test") or ds.samples("val")
    if image is not None:
        samples = [s for s in samples if Path(s.image).resolve() == Path(image).resolve()]
        if not samples:
            raise UserError(f"{image}: expected a test or validation image of {ds.name}, found another file")
    sample = samples[0]
    model, meta = load_run_model(run)
    img = load_model_input(sample.image, meta)
    gt = ds.load_mask(sample)
    h, w = gt.shape
    size = min(crop or max(h, w), h, w)
    if size == h == w or crop is None:
        return {"run": run, "sample": sample, "model": model, "meta": meta, "image": img, "gt": gt,
                "crop_yx_size": None}
    y0, x0 = (h - size) // 2, (w - size) // 2
    return {"run": run, "sample": sample, "model": model, "meta": meta, "image": img[:, y0:y0 + size, x0:x0 + size],
            "gt": gt[y0:y0 + size, x0:x0 + size], "crop_yx_size": [y0, x0, size]}


def stage_explain(ctx: DemoContext, crop: int | None = None, window: int | None = None,
                  stride: int | None = None, mask: str | Path | None = None, run: Path | None = None,
                  image: str | Path | None = None) -> None:
    """Counterfactual heatmap + faithfulness for one test image of the best model (:func:`explain_input`),
    with A = the ground truth's class boundaries (stated as such in the annotation's JSON) or the user's
    annotation PNG ``mask`` (drawn on the same crop, e.g. with ``matseg_nb.widgets.painter_widget.explain_painter``), on a ``crop`` px centre
    crop so the demo stays within minutes on a CPU. ``crop``/``window``/``stride`` (px) default to
    ``ctx.settings.explain``; ``run``/``image``: another run and test image (the dashboard's choice)."""
    from matseg_nb.explain.annotation import save_boundary_annotation
    from matseg_nb.explain.pipeline import explain_image

    window = ctx.settings.explain.window if window is None else window
    stride = ctx.settings.explain.stride if stride is None else stride
    inp = explain_input(ctx, crop, run=run, image=image)
    if inp is None:
        ctx.log("  no complete run: explanation skipped")
        return
    run, sample, crop_yx = inp["run"], inp["sample"], inp["crop_yx_size"]
    settings = ctx.settings.explain
    out = ctx.layout.explain
    width = settings.boundary_width
    mask_png = Path(mask) if mask else save_boundary_annotation(inp["gt"], out / "annotation.png", sample.image, width)
    source = None if mask else f"ground-truth class boundaries ({width} px) of the test image, not an expert drawing"
    summary = explain_image(run, sample.image, mask_png, out, kernel=settings.kernel, window=window,
                            stride=stride, n_draws=settings.n_draws, model=inp["model"], image=inp["image"],
                            meta={**inp["meta"], **({"crop": crop_yx} if crop_yx else {})}, mask_source=source,
                            budget_minutes=settings.budget_minutes, fractions=settings.fractions, log=ctx.log)
    h = summary.heatmap
    ctx.results["explain"] = {"run": str(run), "image": str(sample.image), "crop_yx_size": crop_yx,
                              "window": h["window"], "stride": h["stride"], "seconds": h["seconds"],
                              "partial": summary.partial, "faithful": summary.faithfulness.faithful,
                              "beyond_proximity": summary.faithfulness.beyond_proximity,
                              "summary": summary.summary()}
    where = (f"centre crop {crop_yx[2]} px at y={crop_yx[0]}, x={crop_yx[1]}" if crop_yx
             else f"whole image, {inp['image'].shape[-2]}x{inp['image'].shape[-1]} px")
    ctx.log(f"  heatmap for {sample.image.name} ({where}) of {run.name}")
    ctx.log(f"  {summary.summary()}")


def stage_segment(ctx: DemoContext, images: list[str] | None = None, progress: bool = False) -> None:
    """``matseg segment`` with each dataset's deployed model (``runs.Sweep.deployed_runs`` through the sweep
    loader: the validation-selected run, or after k-fold CV the fold ensemble or refit) on
    ``images`` (None: that dataset's test images) into ``LoopLayout.segment/<dataset>/``
    (``matseg_nb.segment.SegmentFolder``); ``ctx.results["segment"]``: {dataset: output folder}. ``progress``:
    a per-image progress bar (stderr; the dashboard's analysis log)."""
    from matseg_nb.data import open_dataset
    from matseg_nb.segment.pipeline import segment_images

    ctx.results["segment"] = {}
    for entry in ctx.profile.dataset:
        ds = open_dataset(entry.ref, base_dir=ctx.profile.base_dir)
        run = best_run(ctx.layout.sweep, ds.name)
        if run is None:
            ctx.log(f"  {ds.name}: no complete run, segment skipped")
            continue
        inputs = images if images is not None else [str(s.image) for s in ds.samples("test")]
        if not inputs:
            ctx.log(f"  {ds.name}: no test images, segment skipped")
            continue
        out = ctx.layout.segment / ds.name
        segment_images(ctx.layout.sweep, inputs, out, dataset=ds.name, progress=progress,
                       log=lambda line, n=ds.name: ctx.log(f"  {n}: {line}"))
        ctx.results["segment"][ds.name] = str(out)
        ctx.log(f"  {ds.name}: {len(inputs)} image(s) segmented into {out}")


def stage_report(ctx: DemoContext) -> None:
    """One self-contained HTML report plus report.json of everything above, and the loop's RO-Crate."""
    from matseg_nb.provenance import write_loop_crate
    from matseg_nb.report import build_report

    html, js = build_report(ctx.layout.sweep, ctx.layout.report_html)
    crate = write_loop_crate(ctx)
    ctx.results["report"] = {"html": str(html), "json": str(js), "provenance": str(crate)}
    ctx.log(f"report: {html}\nfacts:  {js}\nprovenance (RO-Crate): {crate}")


STAGES: dict[str, Callable[[DemoContext], None]] = {
    "profile": stage_profile,
    "data": stage_data,
    "sweep": stage_sweep,
    "compare": stage_compare,
    "qc": stage_qc,
    "explain": stage_explain,
    "report": stage_report,
}


def run_demo(profile_path: str | Path, out: str | Path, stages: list[str] | None = None, log: Log = echo) -> dict:
    """Run the given stages (default: all, in order) over :func:`loop_context` and return what they produced."""
    ctx = loop_context(profile_path, out, log)
    ctx.out.mkdir(parents=True, exist_ok=True)
    for name in stages or list(STAGES):
        t0 = time.perf_counter()
        ctx.log(f"== {name}")
        STAGES[name](ctx)
        ctx.log(f"== {name} done in {time.perf_counter() - t0:.1f} s")
    return ctx.results


def load_qc(ctx: DemoContext) -> dict:
    """The QC results :func:`stage_qc` wrote, per dataset (``matseg_nb.qc.dataset_qc.DatasetQC``); a dataset
    whose QC did not run is absent."""
    from matseg_nb.data import open_dataset
    from matseg_nb.qc.dataset_qc import DatasetQC

    names = [open_dataset(e.ref, base_dir=ctx.profile.base_dir).name for e in ctx.profile.dataset]
    from matseg_nb.qc.folder import QCFolder

    return {n: DatasetQC.load(ctx.layout.qc / n) for n in names if QCFolder(ctx.layout.qc / n).has_results()}


def screen_new_images(ctx: DemoContext, images: list[str], dataset: str | None = None) -> list:
    """Screen a user's ``images`` (files, folders or dataset refs) as new images against the selected model of
    ``dataset`` (default: the profile's first dataset), with the loop's QC settings; writes
    ``qc/<dataset>/new/qc.json`` and returns the ``ScreeningResult`` list (empty when ``images`` is)."""
    from matseg_nb.data import open_dataset
    from matseg_nb.errors import UserError
    from matseg_nb.qc.screening import screen_run

    if not images:
        return []
    name = open_dataset(dataset or ctx.profile.dataset[0].ref, base_dir=ctx.profile.base_dir).name
    run = best_run(ctx.layout.sweep, name)
    if run is None:
        raise UserError(f"{ctx.layout.sweep}: expected a complete run for {name} to screen against, found none")
    qs = ctx.settings.qc
    from matseg_nb.qc.cross_screening import cv_fold_runs, screen_run_folds

    if cv_fold_runs(run):  # a k-fold CV run: every fold's held-out images calibrate (docs/qc.md)
        return screen_run_folds(run, [str(i) for i in images], ctx.layout.qc / name / "new", qc_settings=qs)
    return screen_run(run, [str(i) for i in images], ctx.layout.qc / name / "new", reference_split=qs.reference_split,
                      extractors=tuple(qs.extractors), tile_size=qs.tile_size, tiles_per_image=qs.tiles_per_image)
