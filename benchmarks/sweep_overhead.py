"""Case 4, sweep overhead: what papermill and Dask cost on top of training.

1. One job through papermill (``run_job_notebook``: kernel start, imports, parameter injection, notebook
   I/O, marker) vs the same job as a plain Python script (``python -c "...run_job(...)"`` in a fresh
   process, the obvious alternative for a batch job: it pays the same imports), same seed, same
   threads (the demo profile's 1 thread per worker), after a warm-up that pays a sweep process's one-off
   costs (papermill's imports, the OS file cache of the images), each twice, interleaved, the faster run
   of each kept. Overhead = papermill time - script
   time, as a fraction of the script time; the job itself varies by a few seconds between runs, so
   ``fixed_overhead_s`` also reports papermill's time outside the run_job cell (which imports
   matseg_nb.training and calls run_job) minus the script's time outside the same two steps (its
   interpreter start). Outputs compared: dataset-level test metrics (identical).
2. Two jobs with the Dask executor (LocalCluster, 2 workers x 1 thread) vs the local executor (one job
   after another, 1 thread): both compute with 1 thread per job, so the metrics must be identical; the
   ratio is the parallel speedup net of the cluster's start and scheduling.

Default jobs: for row 1 the demo sweep's median-length job (nasa-super1 se_resnext101_32x4d x Unet, 1.4
min in the 744 s demo sweep; job times there range 0.9-5.2 min); for row 2 the demo profile's nasa-super1
resnet50 x Unet and x DeepLabV3Plus; ``--quick``: two tiny tu-test_resnet jobs.
Run: ``python -m benchmarks.sweep_overhead [--quick]`` -> ``benchmarks/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
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


# papermill row: the demo sweep's median-length job; Dask row: two short demo jobs
PAPERMILL_JOB = ("nasa-super1", "se_resnext101_32x4d", "Unet")
DEMO_JOBS = (("nasa-super1", "resnet50", "Unet"), ("nasa-super1", "resnet50", "DeepLabV3Plus"))


def _jobs(quick: bool) -> tuple[object, object, list]:
    """(profile, the papermill row's job, the Dask row's jobs)."""
    from matseg_nb.profiles import compile_jobs, load_profile, profile_from_dict

    profile = profile_from_dict(TINY) if quick else load_profile(DEMO_PROFILE)
    jobs = compile_jobs(profile)
    if quick:
        return profile, jobs[0], jobs[:2]
    pick = {(j.dataset, j.encoder, j.decoder): j for j in jobs}
    return profile, pick[PAPERMILL_JOB], [pick[key] for key in DEMO_JOBS]


def _warm_up(job) -> None:
    """One-off costs of a sweep process, paid before timing: papermill's imports, the OS file cache of the
    job's images."""
    import papermill  # noqa: F401

    from matseg_nb.data import open_dataset
    from matseg_nb.training.data import load_split

    ds = open_dataset(job.dataset)
    for split in ("train", "val", "test"):
        load_split(ds, split)


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


def script_job(job, run_dir: Path, threads: int) -> float:
    """The job as a plain Python script in a fresh process (imports included), ``threads`` CPU threads;
    returns the seconds spent importing matseg_nb.training and inside ``run_job`` (what the notebook's
    run_job cell does)."""
    from matseg_nb.sweep.threads import thread_env

    code = ("import time; t0 = time.perf_counter(); import json, sys; from matseg_nb.training import run_job; "
            "run_job(json.loads(sys.argv[1]), sys.argv[2], threads=int(sys.argv[3]), echo=None); "
            "print('RUN_JOB_S', time.perf_counter() - t0)")
    env = {**os.environ, **thread_env(threads)}
    done = subprocess.run([sys.executable, "-c", code, json.dumps(job.to_dict()), str(run_dir), str(threads)],
                          env=env, cwd=REPO, check=True, capture_output=True, text=True)
    return float(next(ln for ln in done.stdout.splitlines() if ln.startswith("RUN_JOB_S")).split()[1])


def papermill_vs_script(job, work: Path, threads: int, repeats: int = 2) -> dict:
    """Row 1: one job through papermill vs the same job as a Python script, interleaved ``repeats``
    times, the fastest run of each kept."""
    from matseg_nb.sweep import run_job_notebook

    pm_runs, script_runs = [], []  # (total s, s in the run_job cell / the same work in the script)
    for k in range(repeats):
        pm_dir, script_dir = work / f"papermill{k}" / job.job_id, work / f"script{k}" / job.job_id
        t0 = time.perf_counter()
        result = run_job_notebook(job.job_id, job.to_dict(), pm_dir, threads=threads)
        t = time.perf_counter() - t0
        if result["status"] != "complete":
            raise RuntimeError(f"papermill job failed: {result['error']}")
        cells_s, run_job_cell_s = _cell_times(pm_dir / "train.ipynb")
        pm_runs.append((t, run_job_cell_s, cells_s, pm_dir))
        t0 = time.perf_counter()
        inner = script_job(job, script_dir, threads)
        script_runs.append((time.perf_counter() - t0, inner, script_dir))
    t_pm, run_job_cell_s, cells_s, pm_dir = min(pm_runs)
    t_script, script_run_job_s, script_dir = min(script_runs)
    ours, theirs = _dataset_metrics(pm_dir), _dataset_metrics(script_dir)
    train_s = json.loads((script_dir / "metrics.json").read_text()).get("train_time_s")
    # the job itself varies by a few seconds between runs; what papermill adds is the time outside the
    # run_job cell (kernel start, parameters, notebook I/O, the other cells), beyond what the script
    # spends outside the same work (its interpreter start)
    fixed = (t_pm - run_job_cell_s) - (t_script - script_run_job_s)
    return record("sweep", f"papermill job vs script ({job.dataset} {job.encoder}-{job.decoder})", t_pm,
                  "same job as a python script", t_script, _max_diff(ours, theirs),
                  overhead_s=round(t_pm - t_script, 3), overhead_fraction=round((t_pm - t_script) / t_script, 4),
                  papermill_outside_run_job_cell_s=round(t_pm - run_job_cell_s, 3),
                  script_outside_run_job_s=round(t_script - script_run_job_s, 3),
                  fixed_overhead_s=round(fixed, 3), fixed_overhead_fraction=round(fixed / t_script, 4),
                  notebook_cells_s=round(cells_s, 3), run_job_cell_s=round(run_job_cell_s, 3),
                  train_time_s=train_s, threads=threads, repeats=repeats,
                  papermill_runs_s=[round(r[0], 2) for r in pm_runs],
                  script_runs_s=[round(r[0], 2) for r in script_runs])


def dask_vs_local(profile, jobs: list, work: Path) -> dict:
    """Row 2: the Dask executor (2 workers x 1 thread) vs the local executor (1 thread) for the same jobs."""
    from matseg_nb.sweep import run_jobs

    times, outs = {}, {}
    for name, kwargs in (("local", {}), ("dask", {"workers": 2})):
        t0 = time.perf_counter()
        summary = run_jobs(jobs, work / name, profile=profile, executor=name, progress=False, threads=1, **kwargs)
        times[name] = time.perf_counter() - t0
        if not summary.ok:
            raise RuntimeError(f"{name} sweep failed: {[r.error for r in summary.jobs if r.error]}")
        outs[name] = [_dataset_metrics(work / name / j.job_id) for j in jobs]
    diff = max(_max_diff(a, b) for a, b in zip(outs["dask"], outs["local"], strict=True))
    return record("sweep", f"dask executor, {len(jobs)} jobs, 2 workers x 1 thread", times["dask"],
                  "local executor (sequential, 1 thread)", times["local"], diff,
                  dask_over_local=round(times["dask"] / times["local"], 3))


def run(quick: bool = False, keep: Path | None = None, threads: int = 1) -> list[dict]:
    """Both rows (see module docstring); run folders go to a temporary folder unless ``keep``."""
    profile, pm_job, jobs = _jobs(quick)
    _warm_up(pm_job)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="matseg-sweep-bench-"))
    rows: list[dict] = []
    size = "quick (tu-test_resnet, 64 px, 2 steps)" if quick else "demo-cpu.json job(s)"
    try:
        for case in (lambda: papermill_vs_script(pm_job, work, threads), lambda: dask_vs_local(profile, jobs, work)):
            rows.append({**case(), "size": size})
            write_results("sweep", rows)  # partial results survive an interrupted run
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny jobs instead of demo-cpu.json jobs")
    ap.add_argument("--threads", type=int, default=1, help="threads of the papermill and script job")
    ap.add_argument("--keep", type=Path, default=None, help="keep run folders here")
    args = ap.parse_args(argv)
    rows = run(args.quick, args.keep, args.threads)
    path = write_results("sweep", rows)
    print(markdown_table(rows))
    print(json.dumps(rows, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
