"""What an executor needs to know about a sweep."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class SweepContext:
    """Settings shared by the executors.

    ``workers``: concurrent jobs (None = executor default); ``threads``: CPU threads per job
    (None = cores // concurrent jobs, min 1); ``timeout_s``: per-cell limit in seconds.
    """

    out_dir: Path
    notebook: Path
    profile: Any = None
    workers: int | None = None
    scheduler: str | None = None
    threads: int | None = None
    timeout_s: float | None = None
