"""``matseg report SWEEP_DIR --out report.html``: one self-contained HTML report + ``report.json``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report (+ report.json) of a sweep and its analyses",
        description="Reads SWEEP_DIR and its sibling folders compare/, qc/, explain/, data/ "
        "(override with the options); a missing analysis is reported as 'not run'.",
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="sweep folder (with summary.json and job folders)")
    p.add_argument("--out", default="report.html", help="HTML file to write; report.json goes beside it")
    p.add_argument("--compare", default=None, help="compare folder (default: SWEEP_DIR/../compare)")
    p.add_argument("--qc", default=None, help="QC folder (default: SWEEP_DIR/../qc)")
    p.add_argument("--explain", default=None, help="explain folder (default: SWEEP_DIR/../explain)")
    p.add_argument("--data", default=None, help="data summary folder (default: SWEEP_DIR/../data)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from matseg_nb.report import build_report

    html, js = build_report(
        args.sweep_dir, args.out, compare_dir=args.compare, qc_dir=args.qc, explain_dir=args.explain,
        data_dir=args.data,
    )
    print(html)
    print(js)
    return 0
