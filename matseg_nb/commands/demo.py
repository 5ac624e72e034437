"""``matseg demo PROFILE --out DIR``: the whole loop headless (what ``make demo`` runs)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from matseg_nb.pipeline import STAGES

    p = sub.add_parser("demo", help="run the whole loop on a profile: data, sweep, compare, QC, explain, report")
    p.add_argument("profile", help="configuration profile (JSON)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--stages", nargs="+", choices=list(STAGES), help="run only these stages, in the given order")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from matseg_nb.pipeline import run_demo

    results = run_demo(args.profile, args.out, stages=args.stages)
    failed = results.get("failed_jobs") or []
    return 1 if failed else 0
