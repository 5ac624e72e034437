"""CPU threads per job so that concurrent jobs do not oversubscribe the cores."""

from __future__ import annotations

import os

#: environment variables that cap the BLAS / OpenMP thread pools of a job's kernel
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_count() -> int:
    """CPU cores usable by this process (affinity mask when available)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """``cpus // workers``, at least 1 (``cpus`` defaults to :func:`cpu_count`)."""
    return max(1, (cpus or cpu_count()) // max(1, int(workers)))


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables limiting a kernel to ``threads`` threads (empty for ``threads <= 0``)."""
    if threads <= 0:
        return {}
    return {name: str(int(threads)) for name in THREAD_ENV_VARS}
