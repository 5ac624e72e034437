"""``matseg export RUN --format onnx|torchscript --out DIR``: a run's model as a standalone file."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a run's model as ONNX or TorchScript (checked against torch)")
    p.add_argument("run", metavar="RUN", help="a complete run folder")
    p.add_argument("--format", required=True, metavar="FORMAT", help="onnx or torchscript")
    p.add_argument("--out", required=True, metavar="DIR", help="export folder (created; never overwrites another export)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from matseg_nb.export import export_run

    info = export_run(args.run, args.format, args.out)
    print(f"{args.out}/{info['model_file']}: {info['format']} of {info['job_id']}, max abs diff vs torch "
          f"{info['check']['max_abs_diff']:.2g} (tolerance {info['check']['tolerance']}); preprocessing "
          f"'{info['preprocessing']['mode']}' not in the graph (export.json, preprocessing.json)")
    return 0
