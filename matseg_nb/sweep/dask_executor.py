"""``dask`` executor: a ``dask.distributed`` LocalCluster (processes, 1 thread each) or an
existing scheduler; every task runs :func:`matseg_nb.sweep.runner.run_job_notebook`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from matseg_nb.errors import UserError
from matseg_nb.sweep.context import SweepContext
from matseg_nb.sweep.runner import run_job_notebook
from matseg_nb.sweep.spec import JobSpec
from matseg_nb.sweep.threads import cpu_count, threads_per_worker

#: seconds to wait for an existing scheduler
CONNECT_TIMEOUT_S = 20


def _host_threads(client: Any) -> int:
    """Threads per task on a running cluster: min over hosts of cores // task slots there."""
    info = client.scheduler_info()["workers"]
    cpus = client.run(cpu_count)
    per_host: dict[str, list[int]] = {}
    for addr, w in info.items():
        slots, cores = per_host.setdefault(w["host"], [0, 0])
        per_host[w["host"]] = [slots + int(w["nthreads"]), max(cores, int(cpus.get(addr, 1)))]
    return min((max(1, cores // max(1, slots)) for slots, cores in per_host.values()), default=1)


def _slots(client: Any) -> int:
    return max(1, sum(int(w["nthreads"]) for w in client.scheduler_info()["workers"].values()))


def _connect(client_cls: Any, address: str) -> Any:
    """``Client(address)``; an unreachable scheduler is a UserError naming the address."""
    try:
        return client_cls(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"--scheduler: expected a reachable Dask scheduler, found none at {address!r} "
                        f"({type(exc).__name__}: {exc})") from exc


class DaskExecutor:
    """Submits one task per job to a Dask cluster."""

    def __init__(self, ctx: SweepContext, cluster: Any = None, threads: int | None = None) -> None:
        from distributed import Client, LocalCluster

        self.ctx = ctx
        self._cluster = cluster
        self._own_cluster = False
        if cluster is None and not ctx.scheduler:
            n = int(ctx.workers or 2)
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.WARNING)
            self._own_cluster = True
            threads = threads_per_worker(n) if threads is None else threads
        self.client = Client(self._cluster) if self._cluster is not None else _connect(Client, ctx.scheduler)
        if threads is None:
            threads = _host_threads(self.client)
        self.threads = ctx.threads if ctx.threads is not None else threads
        self.workers = int(ctx.workers or _slots(self.client))

    def submit(self, spec: JobSpec, run_dir: Path) -> Any:
        return self.client.submit(run_job_notebook, spec.job_id, spec.job, str(run_dir), str(self.ctx.notebook),
                                  self.threads, None, self.ctx.timeout_s, key=f"matseg-job-{spec.job_id}",
                                  pure=False)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        from distributed import wait

        try:
            wait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        return [h for h in handles if h.done()]

    def result(self, handle: Any) -> dict[str, Any]:
        return handle.result()

    def close(self, wait: bool = True) -> None:
        self.client.close()
        if self._own_cluster and self._cluster is not None:
            self._cluster.close()


class SlurmExecutor(DaskExecutor):
    """Dask workers submitted as Slurm jobs (one worker, one task slot per job; see ``sweep/slurm.py``).

    The job script is checked with ``sbatch --test-only`` before anything is submitted. A training
    job whose Slurm job ends under it (scancel, pre-emption, walltime) is recorded as failed, with
    the Slurm state, and is not re-queued: rerun the sweep to redo it. When no worker job is left
    in the queue, the jobs still waiting fail the same way instead of waiting forever.
    """

    #: seconds without any live worker job before the waiting training jobs are given up
    NO_WORKERS_GRACE_S = 15.0

    def __init__(self, ctx: SweepContext) -> None:
        from matseg_nb.sweep import slurm

        slurm.require_slurm()
        self.config = slurm.slurm_config(ctx.profile or {})
        cluster = slurm.slurm_cluster(self.config, ctx.out_dir)
        try:
            slurm.check_submission(self.config, cluster.job_script())
        except BaseException:
            cluster.close()
            raise
        slurm.log_directory(ctx.out_dir).mkdir(parents=True, exist_ok=True)
        jobs = int(ctx.workers or 1)
        cluster.scale(jobs=jobs)
        ctx.workers = jobs
        super().__init__(ctx, cluster=cluster, threads=self.config.cores)
        self._own_cluster = True
        self._job_ids: dict[Any, str] = {}
        self._given_up: set[Any] = set()
        self._no_workers_since: float | None = None

    def submit(self, spec: JobSpec, run_dir: Path) -> Any:
        from matseg_nb.sweep.slurm import run_on_slurm_worker

        future = self.client.submit(run_on_slurm_worker, spec.job_id, spec.job, str(run_dir), str(self.ctx.notebook),
                                    self.threads, self.ctx.timeout_s, key=f"matseg-job-{spec.job_id}", pure=False)
        self._job_ids[future] = spec.job_id
        return future

    def _worker_jobs_alive(self) -> bool:
        from matseg_nb.sweep.slurm import LIVE_STATES, job_states

        ids = [str(job.job_id) for job in self._cluster.workers.values() if getattr(job, "job_id", None)]
        if self.client.scheduler_info()["workers"]:
            return True
        states = job_states(ids)
        return any(state.split()[0] in LIVE_STATES for state in states.values())

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        done = super().wait([h for h in handles if h not in self._given_up], timeout)
        waiting = [h for h in handles if not h.done() and h not in self._given_up]
        if waiting and not self._worker_jobs_alive():
            self._no_workers_since = self._no_workers_since or time.monotonic()
            if time.monotonic() - self._no_workers_since > self.NO_WORKERS_GRACE_S:
                self._given_up.update(waiting)
        else:
            self._no_workers_since = None
        return done + [h for h in handles if h in self._given_up]

    def result(self, handle: Any) -> dict[str, Any]:
        from matseg_nb.sweep.slurm import SlurmJobEnded, describe_end, read_job_record

        job_id = self._job_ids.get(handle, "?")
        if handle in self._given_up:
            raise SlurmJobEnded("no Slurm worker job is left in the queue (all ended, e.g. walltime or scancel); "
                                "rerun the sweep to run this job")
        try:
            return handle.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker, CancelledError: say what Slurm did
            record = read_job_record(self.ctx.out_dir, job_id) or {}
            raise SlurmJobEnded(f"{describe_end(record.get('slurm_job_id'), self.config.walltime)} "
                                f"({type(exc).__name__})") from exc

    def close(self, wait: bool = True) -> None:
        for handle in self._job_ids:
            if not handle.done():
                handle.cancel()
        super().close(wait)
