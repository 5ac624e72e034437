"""``run_sweep``: run every job of a profile with an executor, resumably, one folder per job."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from matseg_nb import __version__
from matseg_nb.atomic import atomic_write_json
from matseg_nb.clock import now_iso
from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json
from matseg_nb.run_marker import ERROR_FILE, is_complete, prepare_run_dir, read_marker, read_running
from matseg_nb.sweep.context import SweepContext
from matseg_nb.sweep.executors import EXECUTORS
from matseg_nb.sweep.failure import error_record, one_line
from matseg_nb.sweep.progress import Progress
from matseg_nb.sweep.runner import DEFAULT_NOTEBOOK
from matseg_nb.sweep.spec import JobSpec, load_profile_and_jobs, profile_dict, to_specs
from matseg_nb.sweep.status import alive
from matseg_nb.sweep.summary import SUMMARY_FILE, SWEEP_FILE, JobRecord, SweepSummary

#: seconds between polls of running jobs (progress, ``summary.json``)
POLL_S = 1.0


def _check(executor: str, notebook: Path) -> None:
    problems = []
    if executor not in EXECUTORS:
        problems.append(f"--executor: expected one of {sorted(EXECUTORS)}, found {executor!r}")
    if not notebook.is_file():
        problems.append(f"{notebook}: expected the training notebook, found no such file")
    if problems:
        raise UserError(*problems)


def _refuse_concurrent(out_dir: Path) -> None:
    """UserError when another live sweep process on this host owns ``out_dir``."""
    previous = read_json(out_dir / SUMMARY_FILE)
    if not isinstance(previous, dict):
        return
    if previous.get("pid") != os.getpid() and previous.get("host") == socket.gethostname() and alive(previous):
        raise UserError(f"{out_dir}: expected no other sweep running there, found one (pid {previous['pid']}); "
                        "wait for it or stop it, then rerun to resume")


def _write_sweep_json(out_dir: Path, profile: Any, specs: list[JobSpec], executor: str, notebook: Path) -> None:
    atomic_write_json(out_dir / SWEEP_FILE, {
        "profile": None if profile is None else profile_dict(profile),
        "job_ids": [s.job_id for s in specs],
        "executor": executor,
        "notebook": str(notebook),
        "started_at": now_iso(),
        "matseg_nb_version": __version__,
    })


def _resume(summary: SweepSummary, specs: list[JobSpec]) -> list[JobSpec]:
    """Mark jobs already complete; move incomplete folders aside. Returns the jobs to run."""
    todo = []
    for spec in specs:
        run_dir = Path(summary.out_dir) / spec.job_id
        if prepare_run_dir(run_dir, spec.job_id):
            rec, marker = summary.record(spec.job_id), read_marker(run_dir) or {}
            rec.status, rec.resumed = "complete", True
            rec.started_at, rec.finished_at = marker.get("started_at"), marker.get("finished_at")
            rec.duration_s = marker.get("duration_s")
        else:
            todo.append(spec)
    return todo


def _lost_job(spec: JobSpec, run_dir: Path, exc: BaseException) -> dict[str, Any]:
    """Result for a job whose executor task itself failed (worker lost, cancelled)."""
    record = {"job_id": spec.job_id, **error_record(exc), "failed_at": now_iso()}
    if run_dir.is_dir() and not is_complete(run_dir, spec.job_id):
        atomic_write_json(run_dir / ERROR_FILE, record)
    return {"job_id": spec.job_id, "status": "failed", "error": one_line(record), "finished_at": now_iso()}


def _poll_running(summary: SweepSummary, pending: list[JobSpec]) -> bool:
    """Mark jobs whose run folder has a ``.running`` file as running; True if any changed."""
    changed = False
    for spec in pending:
        rec = summary.record(spec.job_id)
        if rec.status == "pending":
            info = read_running(Path(summary.out_dir) / spec.job_id)
            if info and info.get("job_id") == spec.job_id:
                rec.status, rec.started_at, changed = "running", info.get("started_at"), True
    return changed


def _drive(ex: Any, summary: SweepSummary, todo: list[JobSpec], bar: Progress) -> None:
    """Submit every job, then poll until all have finished, rewriting ``summary.json``."""
    out_dir = Path(summary.out_dir)
    handles = {ex.submit(spec, out_dir / spec.job_id): spec for spec in todo}
    last_write = time.monotonic()
    while handles:
        finished = ex.wait(list(handles), POLL_S)
        for handle in finished:
            spec = handles.pop(handle)
            try:
                result = ex.result(handle)
            except Exception as exc:  # noqa: BLE001 - lost worker etc.: the job failed, not the sweep
                result = _lost_job(spec, out_dir / spec.job_id, exc)
            summary.apply(result)
        changed = _poll_running(summary, list(handles.values())) or bool(finished)
        if changed or time.monotonic() - last_write > 10:
            summary.write()
            last_write = time.monotonic()
        bar.refresh()


def run_jobs(
    jobs: list[Any],
    out_dir: str | os.PathLike,
    *,
    profile: Any = None,
    executor: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    notebook: str | os.PathLike | None = None,
    threads: int | None = None,
    timeout_s: float | None = None,
    progress: bool = True,
) -> SweepSummary:
    """Run ``jobs`` (``Job`` objects or dicts with ``job_id``) into ``out_dir/<job_id>/``.

    Writes ``sweep.json`` first, then ``summary.json`` after every change. Complete folders are
    skipped; incomplete ones are moved to ``out_dir/.partial/`` and rerun. Returns the summary
    (``summary.exit_code`` is 0 when every job is complete, else 1).
    """
    out_dir = Path(out_dir).resolve()
    notebook = Path(notebook or DEFAULT_NOTEBOOK).resolve()
    _check(executor, notebook)
    specs = to_specs(list(jobs))
    out_dir.mkdir(parents=True, exist_ok=True)
    _refuse_concurrent(out_dir)
    _write_sweep_json(out_dir, profile, specs, executor, notebook)
    summary = SweepSummary(out_dir, [JobRecord(s.job_id) for s in specs], executor, int(workers or 1))
    todo = _resume(summary, specs)
    summary.write()
    if todo:
        ctx = SweepContext(out_dir, notebook, profile, workers, scheduler, threads, timeout_s)
        ex = EXECUTORS[executor](ctx)
        summary.workers = ex.workers
        bar = Progress(summary, progress)
        try:
            _drive(ex, summary, todo, bar)
        except KeyboardInterrupt:
            summary.write()
            bar.close()
            ex.close(wait=False)
            raise
        ex.close()
        bar.close()
    summary.finished_at = now_iso()
    summary.write()
    return summary


def _execution_defaults(profile: Any) -> tuple[dict[str, Any], set[str]]:
    """The profile's ``execution`` section and the fields the profile set explicitly."""
    section = profile_dict(profile).get("execution") or {}
    explicit = getattr(getattr(profile, "execution", None), "model_fields_set", None)
    return section, set(section) if explicit is None else set(explicit)


def run_sweep(
    profile: str | os.PathLike | Any,
    out_dir: str | os.PathLike,
    executor: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    notebook: str | os.PathLike | None = None,
    progress: bool = True,
    threads: int | None = None,
    timeout_s: float | None = None,
) -> SweepSummary:
    """Run every job of ``profile`` (path or ``Profile``) into ``out_dir``; see :func:`run_jobs`.

    Arguments left as None come from the profile's ``execution`` section (``executor``,
    ``scheduler_address``, and ``workers`` / ``threads_per_worker`` when the profile sets them);
    ``executor`` is ``"dask"`` when a ``scheduler`` is passed here, else the profile's, else ``"local"``.
    """
    loaded, specs = load_profile_and_jobs(profile)
    section, explicit = _execution_defaults(loaded)
    if executor is None and scheduler:
        executor = "dask"  # a scheduler address given here means the Dask executor
    scheduler = scheduler or section.get("scheduler_address")
    executor = executor or section.get("executor")
    if workers is None and "workers" in explicit:
        workers = section.get("workers")
    if threads is None and "threads_per_worker" in explicit:
        threads = section.get("threads_per_worker")
    return run_jobs(specs, out_dir, profile=loaded, executor=executor or "local", scheduler=scheduler,
                    workers=workers, notebook=notebook, threads=threads, timeout_s=timeout_s,
                    progress=progress)
