"""Run ONE job: papermill-execute the training notebook into ``<run_dir>/train.ipynb``.

Used by every executor (in the sweep process, in a thread, or inside a Dask worker). The
job's kernel gets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` and the notebook parameter
``threads``; on success ``COMPLETE`` is written last and atomically; on any failure
``error.json`` is written and no marker. This function never raises for a job failure.
"""

from __future__ import annotations

import os
import socket
import time
from importlib import resources
from pathlib import Path
from typing import Any

from matseg_nb.atomic import atomic_write_json
from matseg_nb.clock import now_iso
from matseg_nb.run_marker import ERROR_FILE, clear_running, mark_running, prepare_run_dir, write_marker
from matseg_nb.sweep.failure import error_record, one_line
from matseg_nb.sweep.kernel import kernel_manager_class
from matseg_nb.sweep.threads import thread_env

#: default training notebook (repository layout)
#: the training notebook papermill runs per job (package data; ``notebooks/02_train.ipynb`` links to it)
DEFAULT_NOTEBOOK = Path(str(resources.files("matseg_nb") / "resources" / "train_notebook" / "02_train.ipynb"))
#: files a successful training notebook must have written before the job counts as complete
REQUIRED_OUTPUTS = ("metrics.json",)
NOTEBOOK_NAME = "train.ipynb"


class MissingOutputError(RuntimeError):
    """The notebook finished without writing a required output file."""


def _failed_cell(nb_path: Path) -> dict[str, Any] | None:
    """Index and source of the cell that was running when the job stopped.

    papermill marks a cell ``failed``/``running``; after a kernel death it may mark the cell
    ``completed``, so the last cell that started is taken then.
    """
    try:
        import nbformat

        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001 - the notebook may be missing or half written
        return None
    marked = [(i, c) for i, c in enumerate(nb.cells)
              if c.get("metadata", {}).get("papermill", {}).get("status") in ("running", "failed")]
    started = [(i, c) for i, c in enumerate(nb.cells)
               if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    found = (marked or started or [None])[-1 if not marked else 0]
    if found is None:
        return None
    index, cell = found
    return {"index": index, "execution_count": cell.get("execution_count"), "source": cell.source}


def _execute(notebook: Path, output: Path, parameters: dict, env: dict[str, str], timeout_s: float | None):
    import papermill as pm

    pm.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=timeout_s,
        kernel_manager_class=kernel_manager_class(env),
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # hide the kernel's start-up chatter
        # every output a job must write is written by its cells (atomically) and checked afterwards, so the
        # kernel's exit hooks have nothing to do: a graceful shutdown cost about 3 s per job here
        shutdown_kernel="immediate",
    )


def run_job_notebook(
    job_id: str,
    job: dict[str, Any],
    run_dir: str | os.PathLike,
    notebook: str | os.PathLike | None = None,
    threads: int = 0,
    extra_env: dict[str, str] | None = None,
    timeout_s: float | None = None,
    required: tuple[str, ...] = REQUIRED_OUTPUTS,
) -> dict[str, Any]:
    """Execute the training notebook for one job; never raises for a failing job.

    Parameters: ``job`` is ``Job.to_dict()``; ``threads`` > 0 sets the torch threads and
    the BLAS/OpenMP variables of the kernel (0 leaves the defaults); ``extra_env`` adds
    variables such as ``CUDA_VISIBLE_DEVICES``; ``timeout_s`` limits each cell (seconds).

    Returns ``{job_id, status: "complete"|"failed", error, started_at, finished_at,
    duration_s, run_dir, skipped}``; ``skipped`` is True when the folder was already complete.
    """
    run_dir = Path(run_dir).resolve()
    notebook = Path(notebook) if notebook else DEFAULT_NOTEBOOK
    started_at, t0 = now_iso(), time.perf_counter()
    result: dict[str, Any] = {"job_id": job_id, "run_dir": str(run_dir), "started_at": started_at,
                              "error": None, "skipped": False}
    if prepare_run_dir(run_dir, job_id):
        return {**result, "status": "complete", "skipped": True, "finished_at": now_iso(), "duration_s": 0.0}
    mark_running(run_dir, {"job_id": job_id, "host": socket.gethostname(), "pid": os.getpid(),
                           "started_at": started_at, "threads": threads})
    env = {**thread_env(threads), **(extra_env or {})}
    output = run_dir / NOTEBOOK_NAME
    params = {"job": job, "run_dir": str(run_dir), "threads": int(threads)}
    try:
        _execute(notebook, output, params, env, timeout_s)
        missing = [name for name in required if not (run_dir / name).exists()]
        if missing:
            raise MissingOutputError(f"the notebook finished without writing {', '.join(missing)}")
    except Exception as exc:  # noqa: BLE001 - a job failure must never take the sweep down
        record = {"job_id": job_id, **error_record(exc, _failed_cell(output)), "failed_at": now_iso()}
        atomic_write_json(run_dir / ERROR_FILE, record)
        clear_running(run_dir)
        duration = time.perf_counter() - t0
        return {**result, "status": "failed", "error": one_line(record), "finished_at": now_iso(),
                "duration_s": round(duration, 3)}
    clear_running(run_dir)
    marker = write_marker(run_dir, job_id, started_at, time.perf_counter() - t0)
    return {**result, "status": "complete", "finished_at": marker["finished_at"],
            "duration_s": marker["duration_s"]}
