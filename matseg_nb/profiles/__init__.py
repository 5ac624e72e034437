"""Configuration profiles (paper, Table 1) and their compilation into jobs (the query parser phi).

>>> profile = load_profile("profiles/demo-cpu.json")   # UserError with one line per problem
>>> jobs = compile_jobs(profile)                        # dataset x encoder x decoder x seed
>>> jobs[0].job_id, Job.from_dict(jobs[0].to_dict()) == jobs[0]
"""

from matseg_nb.profiles.jobs import Job, canonical_json, compile_jobs
from matseg_nb.profiles.loader import load_profile, parse_json, profile_from_dict
from matseg_nb.profiles.schema import (
    Augmentations,
    DatasetEntry,
    ExecutionConfig,
    Material,
    MetadataTerm,
    ModelConfig,
    Profile,
    Provenance,
    SlurmConfig,
    TaskConfig,
    TrainingConfig,
)
from matseg_nb.profiles.summary import job_table, summarize

__all__ = [
    "Augmentations",
    "DatasetEntry",
    "ExecutionConfig",
    "Job",
    "Material",
    "MetadataTerm",
    "ModelConfig",
    "Profile",
    "Provenance",
    "SlurmConfig",
    "TaskConfig",
    "TrainingConfig",
    "canonical_json",
    "compile_jobs",
    "job_table",
    "load_profile",
    "parse_json",
    "profile_from_dict",
    "summarize",
]
