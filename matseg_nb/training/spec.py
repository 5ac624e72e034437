"""One typed job for ``run_job``: a ``matseg_nb.profiles.Job`` (or a dict that becomes one).

There is one job-id scheme, ``Job.expected_id()`` (``<dataset>__<encoder>__<decoder>__s<seed>__<hash8>``):
a partial dict (tests, benchmarks) is completed into a ``Job`` with the profile schema's defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from matseg_nb.errors import UserError


def _problems(exc: ValidationError, prefix: str) -> list[str]:
    return [f"{prefix}.{'.'.join(map(str, e['loc']))}: {e['msg']}, found {e.get('input')!r}" for e in exc.errors()]


def as_job(job: Any):
    """The typed ``matseg_nb.profiles.Job`` for ``job``.

    A ``Job`` passes through. A dict with ``job_id`` and ``task`` (``Job.to_dict()`` output, e.g. the
    papermill parameter) is validated by ``Job.from_dict``. A partial dict needs ``dataset``, ``encoder``,
    ``decoder``; missing fields get defaults (seed 0, encoder_weights "none", the profile schema's
    training defaults, modality/material "other") and the id comes from ``Job.expected_id``.
    """
    from matseg_nb.profiles import Job

    if isinstance(job, Job):
        return job
    if not isinstance(job, dict):
        raise UserError(f"job: expected a Job or a dict, found {type(job).__name__}")
    if "job_id" in job and "task" in job:
        try:
            return Job.from_dict(job)
        except ValidationError as exc:
            raise UserError(*_problems(exc, "job")) from None
    missing = [k for k in ("dataset", "encoder", "decoder") if not job.get(k)]
    if missing:
        raise UserError(*[f"job.{k}: expected a value, found none" for k in missing])
    from matseg_nb.profiles.identity import dataset_identity, weights_fingerprint
    from matseg_nb.profiles.schema import ExecutionConfig, TaskConfig, TrainingConfig

    try:
        training = TrainingConfig.model_validate(job.get("training") or {})
    except ValidationError as exc:
        raise UserError(*_problems(exc, "job.training")) from None
    ident = dataset_identity(str(job["dataset"]))
    weights = str(job.get("encoder_weights", "none"))
    try:
        draft = Job(job_id="", profile_name=str(job.get("profile_name", "ad-hoc")), dataset=ident.ref,
                    dataset_slug=ident.slug, dataset_kind=ident.kind, dataset_sha256=ident.sha256,
                    modality=job.get("modality", "other"), material_class=str(job.get("material_class", "other")),
                    encoder=str(job["encoder"]), decoder=str(job["decoder"]), seed=int(job.get("seed", 0)),
                    encoder_weights=weights, encoder_weights_sha256=weights_fingerprint(weights),
                    min_encoder_key_match=float(job.get("min_encoder_key_match", 0.95)),
                    decoder_options=dict(job.get("decoder_options") or {}), training=training,
                    fold=job.get("fold"), folds=job.get("folds"), pool=job.get("pool"),
                    refit=bool(job.get("refit", False)),
                    task=TaskConfig.model_validate(job.get("task") or {"objective": "ad-hoc training run"}),
                    execution=ExecutionConfig.model_validate(job.get("execution") or {}))
    except ValidationError as exc:
        raise UserError(*_problems(exc, "job")) from None
    return draft.model_copy(update={"job_id": draft.expected_id()})


def job_dict(job: Any) -> dict:
    """``as_job(job).to_dict()``: the typed job as JSON-safe data (what job.json records)."""
    return as_job(job).to_dict()
