"""Jobs as the sweep sees them: ``(job_id, job dict)`` pairs, from Job objects or dicts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matseg_nb.errors import UserError


@dataclass(frozen=True)
class JobSpec:
    """One job: its id (run folder name) and its JSON-safe config (``Job.to_dict()``)."""

    job_id: str
    job: dict[str, Any]


def to_spec(job: Any) -> JobSpec:
    """A :class:`JobSpec` from a ``matseg_nb.profiles.Job`` or a dict holding ``job_id``."""
    if isinstance(job, JobSpec):
        return job
    if isinstance(job, dict):
        if not job.get("job_id"):
            raise UserError(f"jobs: expected a dict with 'job_id', found keys {sorted(job)}")
        return JobSpec(str(job["job_id"]), dict(job))
    data = job.to_dict()
    data.setdefault("job_id", job.job_id)
    return JobSpec(str(job.job_id), data)


def to_specs(jobs: list[Any]) -> list[JobSpec]:
    """Specs for ``jobs``; job ids must be unique (they name folders)."""
    specs = [to_spec(j) for j in jobs]
    seen: set[str] = set()
    dupes = sorted({s.job_id for s in specs if s.job_id in seen or seen.add(s.job_id)})
    if dupes:
        raise UserError(f"jobs: expected unique job ids, found duplicates {dupes}")
    return specs


def profile_dict(profile: Any) -> dict[str, Any]:
    """JSON-safe dump of a Profile (pydantic model) or a plain dict."""
    if isinstance(profile, dict):
        return profile
    if hasattr(profile, "model_dump"):
        return profile.model_dump(mode="json")
    raise UserError(f"profile: expected a Profile or a path, found {type(profile).__name__}")


def load_profile_and_jobs(profile: Any) -> tuple[Any, list[JobSpec]]:
    """``(Profile, specs)`` for a profile path or Profile object (via ``matseg_nb.profiles``)."""
    from matseg_nb.profiles import compile_jobs, load_profile

    if isinstance(profile, (str, os.PathLike)):
        profile = load_profile(Path(profile))
    return profile, to_specs(compile_jobs(profile))
