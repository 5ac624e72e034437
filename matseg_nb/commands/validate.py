"""``matseg validate PROFILE``: check a profile and print a one-screen summary (exit 0), or one line
per problem (exit 2)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check a configuration profile and summarise it",
        description="Validate a profile (schema, encoder/decoder names, datasets, weights) and print a summary.",
    )
    p.add_argument("profile", help="profile JSON file, e.g. profiles/demo-cpu.json")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from matseg_nb.profiles import compile_jobs, load_profile, summarize

    profile = load_profile(args.profile)
    jobs = compile_jobs(profile)
    print(summarize(profile, jobs))
    print(f"ok: {args.profile} is valid ({len(jobs)} jobs)")
    return 0
