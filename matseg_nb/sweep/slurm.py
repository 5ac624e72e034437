"""Slurm: dask-jobqueue's ``SLURMCluster`` built from a profile's ``execution.slurm`` section.

:class:`matseg_nb.profiles.schema.SlurmConfig` is the only source of the settings (and their
defaults). Each Slurm job runs ONE Dask worker with ONE task slot (``--nthreads 1``), so one training
job owns the allocation: ``cores`` becomes ``--cpus-per-task`` (and the job's torch threads), ``gpus``
becomes ``--gres=gpu:N``.

Files under the sweep folder (``<out>/.slurm/``): ``logs/matseg-sweep-<slurm id>.{out,err}`` (the
worker's stdout/stderr) and ``jobs/<job_id>.json`` (which Slurm job ran which training job).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from matseg_nb.atomic import atomic_write_json
from matseg_nb.clock import now_iso
from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json
from matseg_nb.profiles.schema import SlurmConfig
from matseg_nb.sweep.runner import run_job_notebook
from matseg_nb.sweep.spec import profile_dict

JOB_NAME = "matseg-sweep"
SLURM_DIR = ".slurm"
#: Slurm states in which a job still holds (or waits for) an allocation
LIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING")
#: seconds a Slurm command may take
COMMAND_TIMEOUT_S = 30


class SlurmJobEnded(RuntimeError):
    """The Slurm job running a training job ended before the training job did (cancel, walltime, node)."""


def slurm_config(profile: Any) -> SlurmConfig:
    """The validated ``execution.slurm`` section of ``profile`` (``Profile``, dict or JSON path)."""
    if isinstance(profile, (str, os.PathLike)):
        from matseg_nb.profiles import load_profile

        profile = load_profile(profile)
    execution = getattr(profile, "execution", None)
    if execution is not None:
        return execution.slurm
    section = (profile_dict(profile).get("execution") or {}).get("slurm") or {}
    try:
        return SlurmConfig.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"execution.slurm.{where}: {first['msg']}") from exc


def log_directory(out_dir: str | os.PathLike) -> Path:
    """Where the worker jobs' stdout/stderr go: ``<out>/.slurm/logs``."""
    return Path(out_dir).resolve() / SLURM_DIR / "logs"


def slurm_cluster_kwargs(cfg: SlurmConfig, out_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Keyword arguments for ``dask_jobqueue.SLURMCluster`` from the profile's Slurm settings."""
    directives = [f"--gres=gpu:{cfg.gpus}"] if cfg.gpus > 0 else []
    directives += [f"--constraint={cfg.constraint}"] if cfg.constraint else []
    directives += [f"--qos={cfg.qos}"] if cfg.qos else []
    directives += list(cfg.extra_directives)
    kwargs: dict[str, Any] = {
        "cores": 1,
        "processes": 1,
        "job_cpu": cfg.cores,
        "memory": cfg.memory,
        "walltime": cfg.walltime,
        "job_extra_directives": directives,
        "job_script_prologue": list(cfg.setup),
        "job_name": JOB_NAME,
        "python": cfg.python or sys.executable,
        "scheduler_options": {"dashboard_address": ":0"},  # any free port, no warning
    }
    if cfg.partition:
        kwargs["queue"] = cfg.partition
    if cfg.account:
        kwargs["account"] = cfg.account
    if out_dir is not None:
        kwargs["log_directory"] = str(log_directory(out_dir))
    return kwargs


def slurm_cluster(cfg: SlurmConfig, out_dir: str | os.PathLike | None = None) -> Any:
    """A ``SLURMCluster`` (its scheduler runs in this process; no job is submitted until ``scale``)."""
    import dask
    from dask_jobqueue import SLURMCluster

    # a task whose worker dies (scancel, walltime, node failure) fails at once instead of being
    # retried on another worker, and a worker holds exactly one task (no queue behind a running job)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}):
        return SLURMCluster(**slurm_cluster_kwargs(cfg, out_dir))


def slurm_job_script(profile: Any, out_dir: str | os.PathLike | None = None) -> str:
    """The ``sbatch`` script of each worker job (what ``matseg sweep --executor slurm`` submits); submits nothing.

    Only the scheduler's address (port) differs from run to run.
    """
    cfg = slurm_config(profile)
    # dask-jobqueue creates the log folder: remove the (empty) folders that did not exist before
    created = [] if out_dir is None else [p for p in (log_directory(out_dir), *log_directory(out_dir).parents)
                                          if not p.exists()]
    cluster = slurm_cluster(cfg, out_dir)
    try:
        return cluster.job_script()
    finally:
        cluster.close()
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break


# ------------------------------------------------------------------------------- talking to Slurm


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)


def require_slurm() -> None:
    """UserError unless ``sbatch``, ``squeue`` and ``scancel`` are on PATH."""
    missing = [c for c in ("sbatch", "squeue", "scancel") if shutil.which(c) is None]
    if missing:
        raise UserError(f"--executor slurm: expected the Slurm commands on PATH, found no {', '.join(missing)}")


def check_submission(cfg: SlurmConfig, script: str) -> None:
    """``sbatch --test-only`` the job script; a rejection is a one-line UserError quoting Slurm."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as fh:
        fh.write(script)
    try:
        proc = _run(["sbatch", "--test-only", fh.name])
    finally:
        os.unlink(fh.name)
    if proc.returncode == 0:
        return
    said = " ".join(line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip())
    low = said.lower()
    if "account" in low and cfg.account:
        raise UserError(f"execution.slurm.account: expected an account Slurm lets you use, found {cfg.account!r}; "
                        f"sbatch said: {said!r}")
    if "partition" in low and cfg.partition:  # after account: "account/partition combination"
        names = sorted(set(_run(["sinfo", "-h", "-o", "%R"]).stdout.split()))
        raise UserError(f"execution.slurm.partition: expected a partition of this cluster ({', '.join(names)}), "
                        f"found {cfg.partition!r}; sbatch said: {said!r}")
    if "qos" in low and cfg.qos:
        raise UserError(f"execution.slurm.qos: expected a QoS Slurm lets you use, found {cfg.qos!r}; "
                        f"sbatch said: {said!r}")
    raise UserError(f"execution.slurm: expected a job script Slurm accepts, found it rejected; sbatch said: {said!r}")


def job_states(slurm_ids: list[str]) -> dict[str, str]:
    """Slurm id -> state (``RUNNING``, ``CANCELLED by 0``, ``TIMEOUT`` ...): squeue, then sacct / scontrol.

    Ids Slurm no longer knows are left out; no Slurm commands at all gives ``{}``.
    """
    ids = [str(i) for i in slurm_ids if i]
    if not ids or shutil.which("squeue") is None:
        return {}
    states: dict[str, str] = {}
    try:
        proc = _run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T"])
        for line in proc.stdout.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0] in ids:
                states[parts[0]] = parts[1].strip()
        rest = [i for i in ids if i not in states]
        if rest and shutil.which("sacct"):
            proc = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(rest), "-o", "JobID,State"])
            for line in proc.stdout.splitlines():
                parts = line.split("|")
                if len(parts) == 2 and parts[0] in rest:
                    states[parts[0]] = parts[1].strip()
        for i in [i for i in ids if i not in states]:
            proc = _run(["scontrol", "-o", "show", "job", i])
            for field in proc.stdout.split():
                if field.startswith("JobState="):
                    states[i] = field.split("=", 1)[1]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return states


def _final_state(slurm_id: str, wait_s: float = 20.0) -> str | None:
    """The state of a Slurm job once it has left the live states (waits up to ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    state = None
    while True:
        state = job_states([slurm_id]).get(slurm_id, state)
        if (state and state.split()[0] not in LIVE_STATES) or time.monotonic() > deadline:
            return state
        time.sleep(1.0)


def describe_end(slurm_id: str | None, walltime: str) -> str:
    """One line saying how the Slurm job ``slurm_id`` ended, e.g. ``Slurm job 7 TIMEOUT: walltime 00:01:00 exceeded``."""
    if not slurm_id:
        return "its Slurm worker job ended before the training job started (no Slurm job id recorded)"
    state = _final_state(slurm_id)
    if state is None:
        return f"Slurm job {slurm_id} ended (state unknown: Slurm no longer lists it)"
    if state.startswith("TIMEOUT"):
        return f"Slurm job {slurm_id} {state}: walltime {walltime} exceeded"
    if state.startswith("CANCELLED"):
        return f"Slurm job {slurm_id} {state}: cancelled (scancel, or the allocation was pre-empted)"
    return f"Slurm job {slurm_id} {state}"


# ------------------------------------------------------------------------------- on the worker


def job_record_path(out_dir: str | os.PathLike, job_id: str) -> Path:
    """``<out>/.slurm/jobs/<job_id>.json``: the Slurm job that ran (or runs) ``job_id``."""
    return Path(out_dir) / SLURM_DIR / "jobs" / f"{job_id}.json"


def read_job_record(out_dir: str | os.PathLike, job_id: str) -> dict[str, Any] | None:
    """The record written by :func:`run_on_slurm_worker`, or None."""
    data = read_json(job_record_path(out_dir, job_id))
    return data if isinstance(data, dict) else None


def run_on_slurm_worker(job_id: str, job: dict[str, Any], run_dir: str, notebook: str, threads: int,
                        timeout_s: float | None) -> dict[str, Any]:
    """Runs in the Dask worker of a Slurm job: record the Slurm job id, then run the training job."""
    out_dir = Path(run_dir).parent
    record = {"job_id": job_id, "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "host": socket.gethostname(),
              "started_at": now_iso()}
    atomic_write_json(job_record_path(out_dir, job_id), record)
    result = run_job_notebook(job_id, job, run_dir, notebook, threads, None, timeout_s)
    return {**result, "slurm_job_id": record["slurm_job_id"]}


def slurm_columns(out_dir: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Add ``slurm_job_id`` and ``slurm_state`` to status rows of a Slurm sweep (in place).

    The state is asked of Slurm for running or pending jobs only (a finished sweep cancels its
    worker jobs, so their final state says nothing about the training job); no records: no change.
    """
    if not (Path(out_dir) / SLURM_DIR / "jobs").is_dir():
        return
    ids = {row["job_id"]: (read_job_record(out_dir, row["job_id"]) or {}).get("slurm_job_id") for row in rows}
    states = job_states([ids[row["job_id"]] for row in rows if row["status"] in ("running", "pending")])
    for row in rows:
        slurm_id = ids[row["job_id"]]
        row["slurm_job_id"] = slurm_id
        row["slurm_state"] = states.get(slurm_id) if row["status"] in ("running", "pending") else None
