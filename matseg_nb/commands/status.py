"""``matseg status DIR``: jobs of a running or finished sweep with status, IoUs, counts and ETA."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("status", help="show the state of a sweep folder")
    p.add_argument("dir", help="sweep folder (as given to matseg sweep --out)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    """Exit 0 when every job is complete, 1 otherwise."""
    from matseg_nb.sweep import format_status, sweep_status

    status = sweep_status(args.dir)
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    c = status["counts"]
    return 0 if c["complete"] == sum(c.values()) else 1
