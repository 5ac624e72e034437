"""``matseg compare SWEEP_DIR [SWEEP_DIR...] --out DIR``: tables, statistics and plots of sweeps."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="compare sweeps: complete and best-per-dataset tables, CIs, paired tests, rank stability, plots")
    p.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired test (default 0.05)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from matseg_nb.compare import compare_sweeps
    from matseg_nb.errors import UserError

    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha: expected a number between 0 and 1, found {args.alpha}")
    paths = compare_sweeps([Path(s) for s in args.sweeps], Path(args.out), alpha=args.alpha)
    summary = json.loads(paths["summary_json"].read_text())
    tau = summary["rank_stability"]["mean_kendall_tau"]
    print(f"{summary['n_jobs']} jobs: {summary['n_complete']} complete, "
          f"{summary['n_failed_or_incomplete']} failed or incomplete (see failures.csv)")
    print(f"mean Kendall tau between datasets' rankings: {'n/a' if tau is None else f'{tau:.3f}'}")
    print(f"rank stability: {summary['rank_stability']['verdict']}")
    print(f"selected on {summary['selected_on']}, scored on {summary['scored_on']}: {summary['conclusion']}")
    for note in summary.get("notes", []):  # e.g. one dataset under CV and holdout: compared separately
        print(f"note: {note}")
    print(paths["best_table_md"].read_text().strip())
    print(f"wrote {len(paths)} files to {args.out} (summary.md collects them)")
    return 0
