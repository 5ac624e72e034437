"""Sweep book-keeping: per-job records, counts, ETA, and the atomically rewritten ``summary.json``."""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from matseg_nb.atomic import atomic_write_json
from matseg_nb.clock import now_iso, seconds_since

STATUSES = ("complete", "failed", "running", "pending")
SUMMARY_FILE = "summary.json"
SWEEP_FILE = "sweep.json"


@dataclass
class JobRecord:
    """Status of one job in a sweep (times are ISO-8601 UTC, durations in seconds)."""

    job_id: str
    status: str = "pending"
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    resumed: bool = False  # complete from an earlier run of the sweep, not rerun


@dataclass
class SweepSummary:
    """Result of :func:`matseg_nb.sweep.run_sweep` (also what ``summary.json`` holds)."""

    out_dir: Path
    jobs: list[JobRecord]
    executor: str = "local"
    workers: int = 1
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Number of jobs per status (all four keys present)."""
        out = dict.fromkeys(STATUSES, 0)
        for rec in self.jobs:
            out[rec.status] += 1
        return out

    @property
    def ok(self) -> bool:
        """True when every job is complete."""
        return all(rec.status == "complete" for rec in self.jobs)

    @property
    def exit_code(self) -> int:
        """CLI exit code: 0 when every job is complete, 1 otherwise."""
        return 0 if self.ok else 1

    def record(self, job_id: str) -> JobRecord:
        """The record of ``job_id`` (KeyError when unknown)."""
        for rec in self.jobs:
            if rec.job_id == job_id:
                return rec
        raise KeyError(job_id)

    def eta_s(self) -> float | None:
        """Seconds until the sweep ends: mean duration of jobs finished in this run times the
        jobs left, minus elapsed time of running jobs, divided by the workers; None before any."""
        done = [r.duration_s for r in self.jobs if r.status in ("complete", "failed")
                and not r.resumed and r.duration_s]
        if not done:
            done = [r.duration_s for r in self.jobs if r.status == "complete" and r.duration_s]
        if not done:
            return None
        mean = sum(done) / len(done)
        left = sum(mean for r in self.jobs if r.status == "pending")
        left += sum(max(mean - (seconds_since(r.started_at) or 0.0), 0.0)
                    for r in self.jobs if r.status == "running")
        return left / max(1, self.workers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe content of ``summary.json``."""
        return {
            "out_dir": str(self.out_dir),
            "executor": self.executor,
            "workers": self.workers,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": now_iso(),
            "finished_at": self.finished_at,
            "counts": self.counts,
            "eta_s": None if self.finished_at else self.eta_s(),
            "jobs": [asdict(rec) for rec in self.jobs],
        }

    def write(self) -> Path:
        """Rewrite ``<out_dir>/summary.json`` atomically."""
        return atomic_write_json(Path(self.out_dir) / SUMMARY_FILE, self.to_dict())

    def apply(self, result: dict[str, Any]) -> JobRecord:
        """Update a record from a runner result dict (``run_job_notebook``'s return)."""
        rec = self.record(result["job_id"])
        rec.status = result["status"]
        rec.error = result.get("error")
        rec.started_at = result.get("started_at") or rec.started_at
        rec.finished_at = result.get("finished_at")
        rec.duration_s = result.get("duration_s")
        return rec
