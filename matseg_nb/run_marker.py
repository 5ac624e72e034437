"""The ``COMPLETE`` marker of a run folder, and moving incomplete folders aside.

A run folder counts as complete only when ``COMPLETE`` exists, names the same job id
and ``job.json`` (when present) does too. ``COMPLETE`` is written last and atomically,
so a sweep killed at any moment never leaves a folder that counts as complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from matseg_nb.atomic import atomic_write_json
from matseg_nb.clock import now_iso, stamp
from matseg_nb.jsonio import read_json

MARKER = "COMPLETE"
ERROR_FILE = "error.json"
RUNNING_FILE = ".running"
#: sub-folder of the sweep folder that receives incomplete run folders on resume
PARTIAL_DIR = ".partial"


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path`` (``jsonio.read_json``); None when absent, unreadable or not an object."""
    data = read_json(path)
    return data if isinstance(data, dict) else None


def read_marker(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed ``COMPLETE`` marker, or ``None`` when absent or unreadable."""
    return _read_json(Path(run_dir) / MARKER)


def _job_json_id(run_dir: Path) -> str | None:
    meta = _read_json(run_dir / "job.json")
    if meta is None:
        return None
    job = meta.get("job") if isinstance(meta.get("job"), dict) else meta
    return job.get("job_id") or meta.get("job_id")


def is_complete(run_dir: str | os.PathLike, job_id: str) -> bool:
    """True when ``run_dir`` holds a ``COMPLETE`` marker for ``job_id`` (and ``job.json`` agrees)."""
    run_dir = Path(run_dir)
    marker = read_marker(run_dir)
    if marker is None or marker.get("job_id") != job_id:
        return False
    found = _job_json_id(run_dir)
    return found is None or found == job_id


def write_marker(run_dir: str | os.PathLike, job_id: str, started_at: str, duration_s: float) -> dict:
    """Write ``COMPLETE`` (JSON: job_id, started_at, finished_at, duration_s) atomically; returns it."""
    marker = {
        "job_id": job_id,
        "started_at": started_at,
        "finished_at": now_iso(),
        "duration_s": round(float(duration_s), 3),
    }
    atomic_write_json(Path(run_dir) / MARKER, marker)
    return marker


def move_aside(run_dir: str | os.PathLike) -> Path | None:
    """Move an incomplete ``run_dir`` to ``<sweep>/.partial/<name>.partial-<UTC stamp>``.

    Returns the new location, or ``None`` when ``run_dir`` did not exist or was empty (kept). The rename is atomic
    (same file system), so the job's path is either the old partial folder or absent.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None  # absent or empty: nothing to keep
    target = run_dir.parent / PARTIAL_DIR / f"{run_dir.name}.partial-{stamp()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(run_dir, target)
    except OSError:  # pragma: no cover - cross-device or busy: delete instead
        shutil.rmtree(run_dir, ignore_errors=True)
        return None
    return target


def prepare_run_dir(run_dir: str | os.PathLike, job_id: str) -> bool:
    """Make ``run_dir`` ready for ``job_id``: True when it is already complete (skip it).

    Otherwise any leftover folder (killed, failed or foreign job) is moved aside and an
    empty ``run_dir`` is created.
    """
    run_dir = Path(run_dir)
    if is_complete(run_dir, job_id):
        return True
    move_aside(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return False


def mark_running(run_dir: str | os.PathLike, info: dict[str, Any]) -> None:
    """Write the hidden ``.running`` file (host, pid, started_at) that status readers poll."""
    atomic_write_json(Path(run_dir) / RUNNING_FILE, info)


def read_running(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The ``.running`` record of a job in progress, or ``None``."""
    return _read_json(Path(run_dir) / RUNNING_FILE)


def clear_running(run_dir: str | os.PathLike) -> None:
    """Remove ``.running`` (missing is fine)."""
    (Path(run_dir) / RUNNING_FILE).unlink(missing_ok=True)


def read_error(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed ``error.json`` of a failed job, or ``None``."""
    return _read_json(Path(run_dir) / ERROR_FILE)
