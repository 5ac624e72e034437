"""``matseg compare SWEEP_DIR [SWEEP_DIR...] --out DIR``: tables, statistics and plots of sweeps.

Prints a summary of at most 100 columns (the answer per dataset, what would decide it, classes no model
learned) and the paths of the full tables."""

from __future__ import annotations

import argparse

#: the terminal summary's width (the full tables are in files)
WIDTH = 100


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="compare sweeps: complete and best-per-dataset tables, CIs, paired tests, rank stability, plots")
    p.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired test (default 0.05)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import textwrap
    from pathlib import Path

    from matseg_nb.compare import compare_sweeps
    from matseg_nb.compare.pipeline import ComparisonResult
    from matseg_nb.errors import UserError
    from matseg_nb.jsonio import read_json_object

    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha: expected a number between 0 and 1, found {args.alpha}")
    out = Path(args.out)
    paths = compare_sweeps([Path(s) for s in args.sweeps], out, alpha=args.alpha)
    summary = read_json_object(paths["summary_json"]) or {}
    result = ComparisonResult.load(out)
    print(f"{summary['n_jobs']} jobs: {summary['n_complete']} complete, "
          f"{summary['n_failed_or_incomplete']} failed or incomplete")
    print(textwrap.fill(f"selected on {result.selected_on}, scored on {result.scored_on}", WIDTH))
    print(result.terminal(WIDTH))
    print(f"full tables ({len(paths)} files; the main ones, one path a line):")
    for key in ("best_table_md", "complete_table_csv", "class_iou_csv", "failures_csv", "summary_md"):
        if key in paths:
            print(f"  {paths[key]}")
    return 0
