"""Case 4, sweep overhead: what papermill and Dask cost on top of training.

1. One job through papermill (``run_job_notebook``: kernel start, imports, notebook I/O, marker) vs
   ``matseg_nb.training.run_job`` called directly in this process (imports already done), same job,
   same seed, same threads; overhead = papermill time - direct time, as a fraction of the direct time
   (two runs: sensitive to load on a shared machine), and, from the same papermill run, the wall time
   outside the notebook cell that calls ``run_job`` as a fraction of that cell's time (cell durations
   from papermill's metadata; the cell includes the kernel's imports of torch/lightning/smp).
   Outputs compared: dataset-level test metrics (equal seeds and threads -> expected identical).
2. The same few jobs with the Dask executor (LocalCluster, 2 workers x cores//2 threads) vs the local
   executor (one job after another, all cores); outputs compared: dataset-level metrics (the thread
   counts differ, so tiny float differences are possible).

Default job: the first job(s) of ``profiles/demo-cpu.json``; ``--quick``: a tiny tu-test_resnet job.
Run: ``python -m benchmarks.sweep_overhead [--quick] [--jobs 2]`` -> ``benchmarks/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import markdown_table, record, write_results

REPO = Path(__file__).resolve().parents[1]
DEMO_PROFILE = REPO / "profiles" / "demo-cpu.json"
TINY = {
    "version": 1, "name": "bench-tiny",
    "dataset": [{"ref": "nasa-super1", "modality": "SEM", "material": {"class": "metals", "text": "superalloy"}}],
    "task": {"objective": "sweep overhead benchmark"},
    "model": {"encoders": ["tu-test_resnet"], "decoders": ["Unet", "DeepLabV3Plus"], "encoder_weights": "none"},
    "training": {"batch_size": 2, "max_epochs": 1, "steps_per_epoch": 2, "crop_size": 64, "tile_size": 128,
                 "tile_overlap": 16},
    "seeds": [0],
}


def _jobs(quick: bool, n: int) -> tuple[object, list]:
    from matseg_nb.profiles import compile_jobs, load_profile, profile_from_dict

    profile = profile_from_dict(TINY) if quick else load_profile(DEMO_PROFILE)
    return profile, compile_jobs(profile)[:n]


def _dataset_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())["dataset_level"]


def _max_diff(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(float(a[k]) - float(b[k])) for k in a)


def _cell_times(nb_path: Path) -> tuple[float, float]:
    """(sum of all cell durations, duration of the cell calling run_job) from papermill's metadata, s."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    cells = [(c.source, float(c.metadata.get("papermill", {}).get("duration") or 0.0)) for c in nb.cells
             if c.cell_type == "code"]
    return sum(d for _, d in cells), sum(d for src, d in cells if "run_job(" in src)


def papermill_vs_direct(job, work: Path, threads: int) -> dict:
    """Row 1: one job through papermill vs ``run_job`` in this process."""
    from matseg_nb.sweep import run_job_notebook
    from matseg_nb.training import run_job

    t0 = time.perf_counter()
    result = run_job_notebook(job.job_id, job.to_dict(), work / "papermill" / job.job_id, threads=threads)
    t_pm = time.perf_counter() - t0
    if result["status"] != "complete":
        raise RuntimeError(f"papermill job failed: {result['error']}")
    t0 = time.perf_counter()
    run_job(job.to_dict(), work / "direct" / job.job_id, threads=threads, echo=lambda *a, **k: None)
    t_direct = time.perf_counter() - t0
    ours, theirs = _dataset_metrics(work / "papermill" / job.job_id), _dataset_metrics(work / "direct" / job.job_id)
    train_s = json.loads((work / "direct" / job.job_id / "metrics.json").read_text()).get("train_time_s")
    cells_s, run_job_cell_s = _cell_times(work / "papermill" / job.job_id / "train.ipynb")
    # same-run view: everything papermill adds around the run_job cell (kernel start, parameter
    # injection, the other cells, notebook writes, marker); the cell itself includes the imports
    in_run = t_pm - run_job_cell_s
    return record("sweep", f"papermill job vs direct run_job ({job.encoder}-{job.decoder})", t_pm,
                  "run_job in-process", t_direct, _max_diff(ours, theirs),
                  overhead_s=round(t_pm - t_direct, 3), overhead_fraction=round((t_pm - t_direct) / t_direct, 4),
                  papermill_outside_run_job_cell_s=round(in_run, 3),
                  overhead_fraction_same_run=round(in_run / run_job_cell_s, 4),
                  notebook_cells_s=round(cells_s, 3), run_job_cell_s=round(run_job_cell_s, 3),
                  train_time_s=train_s, threads=threads)


def dask_vs_local(profile, jobs: list, work: Path) -> dict:
    """Row 2: the Dask executor (2 workers) vs the local executor for the same jobs."""
    from matseg_nb.sweep import run_jobs

    times, outs = {}, {}
    for name, kwargs in (("local", {}), ("dask", {"workers": 2})):
        t0 = time.perf_counter()
        summary = run_jobs(jobs, work / name, profile=profile, executor=name, progress=False, **kwargs)
        times[name] = time.perf_counter() - t0
        if not summary.ok:
            raise RuntimeError(f"{name} sweep failed: {[r.error for r in summary.jobs if r.error]}")
        outs[name] = [_dataset_metrics(work / name / j.job_id) for j in jobs]
    diff = max(_max_diff(a, b) for a, b in zip(outs["dask"], outs["local"], strict=True))
    return record("sweep", f"dask executor, {len(jobs)} jobs, 2 workers", times["dask"],
                  "local executor (sequential)", times["local"], diff,
                  dask_over_local=round(times["dask"] / times["local"], 3))


def run(quick: bool = False, n_jobs: int = 2, keep: Path | None = None) -> list[dict]:
    """Both rows (see module docstring); run folders go to a temporary folder unless ``keep``."""
    from matseg_nb.sweep.threads import cpu_count

    profile, jobs = _jobs(quick, n_jobs)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="matseg-sweep-bench-"))
    rows: list[dict] = []
    size = "quick (tu-test_resnet, 64 px, 2 steps)" if quick else "demo-cpu.json job(s)"
    try:
        for case in (lambda: papermill_vs_direct(jobs[0], work, cpu_count()), lambda: dask_vs_local(profile, jobs, work)):
            rows.append({**case(), "size": size})
            write_results("sweep", rows)  # partial results survive an interrupted run
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny jobs instead of demo-cpu.json jobs")
    ap.add_argument("--jobs", type=int, default=2, help="jobs for the Dask vs local comparison")
    ap.add_argument("--keep", type=Path, default=None, help="keep run folders here")
    args = ap.parse_args(argv)
    rows = run(args.quick, args.jobs, args.keep)
    path = write_results("sweep", rows)
    print(markdown_table(rows))
    print(json.dumps(rows, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
