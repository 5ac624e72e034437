"""``sweep_status``: the state of a running or finished sweep, read from its folder.

The run folders are the truth (``COMPLETE`` / ``error.json`` / ``.running``); ``summary.json``
supplies times and whether the sweep process is still alive.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from matseg_nb.clock import seconds_since
from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json as _read_json
from matseg_nb.run_marker import read_error, read_marker, read_running
from matseg_nb.runs import Run
from matseg_nb.sweep.failure import one_line
from matseg_nb.sweep.progress import format_seconds
from matseg_nb.sweep.slurm import slurm_columns
from matseg_nb.sweep.summary import STATUSES, SUMMARY_FILE, SWEEP_FILE, JobRecord, SweepSummary

#: seconds without a summary update after which a sweep on another host counts as gone
STALE_S = 120




def test_iou(run_dir: Path) -> float | None:
    """Dataset-level test IoU (foreground mean) from ``metrics.json``, or None (``runs.Run.test_iou``)."""
    return Run(run_dir).test_iou()


def val_iou(run_dir: Path) -> float | None:
    """Best validation IoU (``metrics.json`` best_val first, else ``history.csv``), or None."""
    return Run(run_dir).best_val_iou()


def alive(summary: dict[str, Any]) -> bool:
    """Whether the process that wrote ``summary.json`` is still running the sweep."""
    if not summary or summary.get("finished_at"):
        return False
    if summary.get("host") == socket.gethostname() and summary.get("pid"):
        try:
            os.kill(int(summary["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    age = seconds_since(summary.get("updated_at"))
    return age is not None and age < STALE_S


def _job_row(out_dir: Path, job_id: str, rec: dict[str, Any], live: bool) -> dict[str, Any]:
    """One status row; the job's status is ``runs.Run.status`` (the one derivation), in the sweep's words:
    a run folder that is neither complete, failed nor running in a live sweep is ``pending``."""
    run_dir = out_dir / job_id
    row = {"job_id": job_id, "status": "pending", "error": None, "started_at": rec.get("started_at"),
           "finished_at": rec.get("finished_at"), "duration_s": rec.get("duration_s"),
           "val_iou": None, "test_iou": None}
    run = Run(run_dir)
    status = run.status("running" if live and rec.get("status") == "running" else None)
    if status == "complete":
        marker = read_marker(run_dir) or {}
        row.update(status="complete", started_at=marker.get("started_at", row["started_at"]),
                   finished_at=marker.get("finished_at"), duration_s=marker.get("duration_s"),
                   val_iou=val_iou(run_dir), test_iou=test_iou(run_dir))
    elif status == "failed":
        row.update(status="failed", error=one_line(read_error(run_dir)) or rec.get("error"))
    elif status == "running" and live:
        running = read_running(run_dir) or {}
        row.update(status="running", started_at=running.get("started_at", row["started_at"]),
                   val_iou=val_iou(run_dir))
    return row


def sweep_status(out_dir: str | os.PathLike) -> dict[str, Any]:
    """State of the sweep in ``out_dir``.

    Returns ``{out_dir, state: running|finished|interrupted, executor, workers, counts
    (complete/failed/running/pending), eta_s (running sweeps), jobs: [{job_id, status, error,
    started_at, finished_at, duration_s, val_iou, test_iou}]}``.
    """
    out_dir = Path(out_dir)
    sweep = _read_json(out_dir / SWEEP_FILE)
    summary = _read_json(out_dir / SUMMARY_FILE) or {}
    if sweep is None and not summary:
        raise UserError(f"{out_dir}: expected a sweep folder with {SWEEP_FILE}, found none")
    records = {r["job_id"]: r for r in summary.get("jobs", [])}
    job_ids = (sweep or {}).get("job_ids") or list(records)
    alive_now = alive(summary)
    jobs = [_job_row(out_dir, job_id, records.get(job_id, {}), alive_now) for job_id in job_ids]
    slurm_columns(out_dir, jobs)  # Slurm sweeps: slurm_job_id, slurm_state per job
    counts = dict.fromkeys(STATUSES, 0)
    for row in jobs:
        counts[row["status"]] += 1
    state = "running" if alive_now else ("finished" if counts["pending"] == 0 else "interrupted")
    eta = None
    if alive_now:
        est = SweepSummary(out_dir, [JobRecord(r["job_id"], r["status"], started_at=r["started_at"],
                                               duration_s=r["duration_s"]) for r in jobs],
                           workers=int(summary.get("workers") or 1))
        eta = est.eta_s()
    return {"out_dir": str(out_dir), "state": state, "executor": summary.get("executor"),
            "workers": summary.get("workers"), "counts": counts, "eta_s": eta, "jobs": jobs}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_status(status: dict[str, Any]) -> str:
    """Plain-text table of :func:`sweep_status` plus a counts / ETA line, at most 100 columns (without
    SLURM): a job id wider than its column is shortened in the middle; an error too wide for its cell goes on
    its own wrapped line below the row, shortened in the middle past two lines; both said in a last line that names where the full ones are (``summary.json``, each ``error.json``)."""
    from matseg_nb.terminal import WIDTH, fit_lines, shorten_middle

    slurm = any("slurm_job_id" in j for j in status["jobs"])
    head = f"{'slurm job':<18}  " if slurm else ""
    fixed = 40 + len(head)  # the columns after the job id, up to the error
    width = min(max([len("job")] + [len(j["job_id"]) for j in status["jobs"]]), WIDTH - fixed - len("error"))
    room = WIDTH - fixed - width
    cut = [j["job_id"] for j in status["jobs"] if len(j["job_id"]) > width or len(j["error"] or "") > 2 * WIDTH - 20]
    lines = [f"{'job':<{width}}  {'status':<8}  {'time':>7}  {'val IoU':>7}  {'test IoU':>8}  {head}error"]
    for j in status["jobs"]:
        took = format_seconds(j["duration_s"]) if j["duration_s"] is not None else "-"
        cell = " ".join(str(v) for v in (j.get("slurm_job_id"), j.get("slurm_state")) if v) or "-"
        cell = f"{cell:<18}  " if slurm else ""
        error = j["error"] or ""
        inline = error if len(error) <= room else ""
        lines.append(f"{shorten_middle(j['job_id'], width):<{width}}  {j['status']:<8}  {took:>7}  "
                     f"{_fmt(j['val_iou']):>7}  {_fmt(j['test_iou']):>8}  {cell}{inline}".rstrip())
        if error and not inline:  # on its own line below the row, wrapped, at most two lines' worth
            lines.append(f"    error: {shorten_middle(error, 2 * WIDTH - 20)}")
    c = status["counts"]
    tail = (f"{status['state']}: {c['complete']} complete, {c['failed']} failed, {c['running']} running, "
            f"{c['pending']} pending")
    if status["state"] == "running":
        tail += f", ETA {format_seconds(status['eta_s'])}"
    if cut:
        lines.append(f"({len(cut)} job id(s) or error(s) shortened with '…' to fit {WIDTH} columns; full ids in "
                     f"{Path(status['out_dir']) / SUMMARY_FILE}, errors in each run's error.json)")
    return fit_lines(lines + [tail])
