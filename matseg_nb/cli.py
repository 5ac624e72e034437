"""The ``matseg`` command line. Each sub-command lives in ``matseg_nb/commands/<name>.py``
and exposes ``register(subparsers)``; the parser sets ``func`` which returns an exit code.

User errors (:class:`matseg_nb.errors.UserError`) print one line per problem on stderr and
exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from matseg_nb import __version__
from matseg_nb.errors import UserError

#: sub-command modules under ``matseg_nb.commands``; add one name per new command module.
COMMAND_MODULES = [
    "sweep",
    "status",
    "validate",
    "plan",
    "data",
    "report",
    "dashboard",
    "demo",
    "compare",
    "recommend",
    "explain",
    "qc",
    "suggest",
    "init",
    "weights",
    "segment",
    "export",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matseg",
        description="Context-aware segmentation benchmarking for materials micrographs.",
    )
    parser.add_argument("--version", action="version", version=f"matseg-nb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"matseg_nb.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
