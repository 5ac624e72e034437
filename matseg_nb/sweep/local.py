"""``local`` executor: one job after another in the sweep process; with several visible CUDA
GPUs, one job per GPU at a time (``CUDA_VISIBLE_DEVICES`` set per job)."""

from __future__ import annotations

import concurrent.futures as cf
import os
import queue
from pathlib import Path
from typing import Any

from matseg_nb.sweep.context import SweepContext
from matseg_nb.sweep.runner import run_job_notebook
from matseg_nb.sweep.spec import JobSpec
from matseg_nb.sweep.threads import threads_per_worker


def visible_gpus() -> list[str]:
    """Ids of the visible CUDA devices (as ``CUDA_VISIBLE_DEVICES`` would list them)."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch / no driver means no GPU
        return []
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (listed or [str(i) for i in range(count)])[:count]


class LocalExecutor:
    """Runs jobs in threads of the sweep process, one per GPU slot (one slot on CPU)."""

    def __init__(self, ctx: SweepContext) -> None:
        gpus = visible_gpus()
        slots: list[str | None] = gpus if len(gpus) > 1 else [None]
        if ctx.workers:
            slots = slots[: max(1, ctx.workers)]
        self.ctx = ctx
        self.workers = len(slots)
        self.threads = ctx.threads if ctx.threads is not None else threads_per_worker(self.workers)
        self._slots: queue.Queue = queue.Queue()
        for slot in slots:
            self._slots.put(slot)
        self._pool = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="matseg-job")

    def _run(self, spec: JobSpec, run_dir: Path) -> dict[str, Any]:
        slot = self._slots.get()
        try:
            env = {"CUDA_VISIBLE_DEVICES": slot} if slot is not None else None
            return run_job_notebook(spec.job_id, spec.job, run_dir, self.ctx.notebook, self.threads, env,
                                    self.ctx.timeout_s)
        finally:
            self._slots.put(slot)

    def submit(self, spec: JobSpec, run_dir: Path) -> cf.Future:
        return self._pool.submit(self._run, spec, run_dir)

    def wait(self, handles: list[cf.Future], timeout: float) -> list[cf.Future]:
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: cf.Future) -> dict[str, Any]:
        return handle.result()

    def close(self, wait: bool = True) -> None:
        """Stop; ``wait=False`` (interrupt) does not wait for running jobs."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
