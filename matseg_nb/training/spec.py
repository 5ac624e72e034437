"""Normalise a job (``matseg_nb.profiles.Job`` or a plain dict) into one JSON-safe dict with defaults."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from matseg_nb.errors import UserError


def _training_defaults(training: dict) -> dict:
    from matseg_nb.profiles.schema import TrainingConfig

    try:
        return TrainingConfig.model_validate(training).model_dump(mode="json")
    except ValidationError as exc:
        raise UserError(
            *[f"job.training.{'.'.join(map(str, e['loc']))}: {e['msg']}, found {e.get('input')!r}" for e in exc.errors()]
        ) from None


def job_dict(job: Any) -> dict:
    """Effective job as a plain dict.

    A ``Job`` (or a dict with ``job_id`` and ``task``, i.e. ``Job.to_dict()`` output) is validated by
    ``Job.from_dict``. A partial dict (tests, benchmarks) needs ``dataset``, ``encoder``, ``decoder``;
    missing fields get defaults (seed 0, encoder_weights "none", the profile schema's training defaults)
    and a ``job_id`` derived from its content.
    """
    if hasattr(job, "to_dict"):
        return job.to_dict()
    if not isinstance(job, dict):
        raise UserError(f"job: expected a Job or a dict, found {type(job).__name__}")
    if "job_id" in job and "task" in job:
        from matseg_nb.profiles import Job

        try:
            return Job.from_dict(job).to_dict()
        except ValidationError as exc:
            raise UserError(*[f"job.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from None
    missing = [k for k in ("dataset", "encoder", "decoder") if not job.get(k)]
    if missing:
        raise UserError(*[f"job.{k}: expected a value, found none" for k in missing])
    d = dict(job)
    d.setdefault("seed", 0)
    d.setdefault("encoder_weights", "none")
    d.setdefault("min_encoder_key_match", 0.95)
    d["training"] = _training_defaults(d.get("training") or {})
    d.setdefault("execution", {})
    if not d.get("job_id"):
        digest = hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:8]
        slug = str(d["dataset"]).rstrip("/").split("/")[-1]
        d["job_id"] = f"{slug}__{d['encoder']}__{d['decoder']}__s{d['seed']}__{digest}"
    return d
