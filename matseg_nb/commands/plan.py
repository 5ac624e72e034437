"""``matseg plan PROFILE [--json]``: print the deterministic job list (dataset x encoder x decoder x seed)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plan",
        help="list the jobs a profile compiles into",
        description="Compile a profile into its job list; ids are stable hashes of each job's effective config.",
    )
    p.add_argument("profile", help="profile JSON file, e.g. profiles/demo-cpu.json")
    p.add_argument("--json", action="store_true", help="print a JSON list of job dicts instead of a table")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from matseg_nb.profiles import compile_jobs, job_table, load_profile

    jobs = compile_jobs(load_profile(args.profile))
    if args.json:
        print(json.dumps([job.to_dict() for job in jobs], indent=2, sort_keys=True))
    else:
        print(job_table(jobs))
        print(f"{len(jobs)} jobs")
    return 0
