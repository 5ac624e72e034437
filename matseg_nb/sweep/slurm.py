"""dask-jobqueue's ``SLURMCluster`` built from a profile's ``execution.slurm`` section.

Each Slurm job runs ONE Dask worker with ONE task slot (``--nthreads 1``) so one training
job owns the allocation: ``cores`` becomes ``--cpus-per-task`` (and the job's torch threads),
``gpus`` becomes ``--gres=gpu:N``.
"""

from __future__ import annotations

from typing import Any

from matseg_nb.errors import UserError
from matseg_nb.sweep.spec import profile_dict

#: our field -> accepted spellings in the profile's execution.slurm section (first found wins)
_ALIASES = {
    "partition": ("partition", "queue"),
    "account": ("account", "project"),
    "walltime": ("walltime", "time"),
    "cores": ("cores", "cpus", "cpus_per_task"),
    "memory": ("memory", "mem"),
    "gpus": ("gpus", "gpus_per_job", "gres_gpus"),
    "extra": ("extra_directives", "job_extra_directives", "extra"),
    "python": ("python",),
    "local_directory": ("local_directory",),
    "job_script_prologue": ("job_script_prologue", "prologue", "setup"),
    "jobs": ("jobs", "max_jobs", "workers"),
}
DEFAULTS = {"cores": 1, "memory": "8GB", "walltime": "01:00:00", "gpus": 0, "extra": [], "jobs": 1}


def slurm_settings(profile: Any) -> dict[str, Any]:
    """Normalised Slurm settings (keys of ``_ALIASES``) from ``profile["execution"]["slurm"]``."""
    execution = profile_dict(profile).get("execution") or {}
    section = execution.get("slurm") or {}
    if not isinstance(section, dict):
        raise UserError(f"execution.slurm: expected an object, found {type(section).__name__}")
    out: dict[str, Any] = dict(DEFAULTS)
    for key, names in _ALIASES.items():
        for name in names:
            if section.get(name) not in (None, ""):
                out[key] = section[name]
                break
    if isinstance(out["extra"], str):
        out["extra"] = [out["extra"]]
    if isinstance(out.get("job_script_prologue"), str):
        out["job_script_prologue"] = [out["job_script_prologue"]]
    return out


def slurm_cluster_kwargs(profile: Any) -> dict[str, Any]:
    """Keyword arguments for ``dask_jobqueue.SLURMCluster`` from the profile."""
    s = slurm_settings(profile)
    directives = [f"--gres=gpu:{int(s['gpus'])}"] if int(s["gpus"]) > 0 else []
    directives += [str(d) for d in s["extra"]]
    kwargs: dict[str, Any] = {
        "cores": 1,
        "processes": 1,
        "job_cpu": int(s["cores"]),
        "memory": str(s["memory"]),
        "walltime": str(s["walltime"]),
        "job_extra_directives": directives,
        "job_name": "matseg-sweep",
    }
    for key, target in (("partition", "queue"), ("account", "account"), ("python", "python"),
                        ("local_directory", "local_directory"),
                        ("job_script_prologue", "job_script_prologue")):
        if s.get(key):
            kwargs[target] = s[key]
    return kwargs


def slurm_cluster(profile: Any):
    """A ``SLURMCluster`` for the profile (no job submitted until ``scale``)."""
    from dask_jobqueue import SLURMCluster

    return SLURMCluster(**slurm_cluster_kwargs(profile))


def slurm_job_script(profile: Any) -> str:
    """The ``sbatch`` script each Dask worker job would use; submits nothing."""
    if not isinstance(profile, dict) and not hasattr(profile, "model_dump"):
        from matseg_nb.profiles import load_profile

        profile = load_profile(profile)
    cluster = slurm_cluster(profile)
    try:
        return cluster.job_script()
    finally:
        cluster.close()
