"""Dashboard analyses in a detached process that outlives the page.

The files of one detached analysis: ``python -m matseg_nb.dashboard.worker KIND WORKSPACE RUN [JSON_KWARGS]``
runs the analysis ``KIND`` of :data:`matseg_nb.dashboard.actions.ANALYSES` on the loop folder ``RUN`` and
records its state in
``<RUN>/<KIND>.state.json`` (``running`` with the pid, then ``done`` with the output folder or ``failed``
with the error line); its output goes to ``<RUN>/<KIND>.log``. The page reads both on return.
"""

from __future__ import annotations

import os
from pathlib import Path

from matseg_nb.jsonio import read_json


def state_file(run: Path, kind: str) -> Path:
    return Path(run) / f"{kind}.state.json"


def log_file(run: Path, kind: str) -> Path:
    return Path(run) / f"{kind}.log"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def read_state(run: Path, kind: str) -> dict | None:
    """The recorded state; a ``running`` state whose process is gone reads as ``failed``."""
    state = read_json(state_file(run, kind))
    if not isinstance(state, dict):
        return None
    if state.get("state") == "running" and not pid_alive(int(state.get("pid", -1))):
        state = {**state, "state": "failed", "error": "the process stopped without a result (see the log)"}
    return state


def last_log_line(run: Path, kind: str, limit: int = 4000) -> str:
    """The last line of the log, progress-bar carriage returns included (``""`` when there is none)."""
    try:
        with open(log_file(run, kind), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    parts = [p.strip() for p in tail.replace("\r", "\n").split("\n") if p.strip()]
    return parts[-1] if parts else ""
