"""Training sweeps: papermill per job, local / Dask / Slurm executors, resume, status.

>>> summary = run_sweep("profiles/demo-cpu.json", "runs/demo", executor="dask", workers=2)
>>> summary.exit_code, sweep_status("runs/demo")["counts"]
"""

from matseg_nb.run_marker import is_complete
from matseg_nb.sweep.api import run_jobs, run_sweep
from matseg_nb.sweep.executors import EXECUTORS
from matseg_nb.sweep.runner import run_job_notebook
from matseg_nb.sweep.slurm import slurm_job_script
from matseg_nb.sweep.status import format_status, sweep_status
from matseg_nb.sweep.summary import JobRecord, SweepSummary
from matseg_nb.sweep.threads import threads_per_worker

__all__ = [
    "EXECUTORS",
    "JobRecord",
    "SweepSummary",
    "format_status",
    "is_complete",
    "run_job_notebook",
    "run_jobs",
    "run_sweep",
    "slurm_job_script",
    "sweep_status",
    "threads_per_worker",
]
