"""Executor registry: name -> factory(SweepContext) -> executor.

An executor has ``workers`` (concurrent jobs), ``threads`` (CPU threads per job),
``submit(spec, run_dir) -> handle``, ``wait(handles, timeout_s) -> finished handles``,
``result(handle) -> runner result dict`` and ``close()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from matseg_nb.sweep.context import SweepContext
from matseg_nb.sweep.dask_executor import DaskExecutor, SlurmExecutor
from matseg_nb.sweep.local import LocalExecutor

EXECUTORS: dict[str, Callable[[SweepContext], Any]] = {
    "local": LocalExecutor,
    "dask": DaskExecutor,
    "slurm": SlurmExecutor,
}
