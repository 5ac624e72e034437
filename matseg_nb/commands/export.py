"""``matseg export RUN --format bioimageio|onnx|torchscript --out DIR``: a run's model outside matseg-nb."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a run's model as a bioimage.io package, ONNX or TorchScript "
                                             "(each checked before it is written)")
    p.add_argument("run", metavar="RUN", help="a complete run folder")
    p.add_argument("--format", required=True, metavar="FORMAT", help="bioimageio, onnx or torchscript")
    p.add_argument("--out", required=True, metavar="DIR", help="export folder (created; never overwrites another export)")
    p.add_argument("--author", action="append", metavar="NAME",
                   help="bioimageio: an author of the package (repeatable; default: the user name)")
    p.add_argument("--license", default="CC-BY-4.0", metavar="SPDX", help="bioimageio: licence of the package")
    p.add_argument("--no-qc", action="store_true", help="bioimageio: leave the QC calibration data out")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from matseg_nb.export import export_run

    info = export_run(args.run, args.format, args.out, authors=args.author, licence=args.license, qc=not args.no_qc)
    if info["format"] == "bioimageio":
        check = info["check"]
        print(f"{args.out}/rdf.yaml: bioimage.io package of {info['job_id']}; bioimageio.core test "
              f"{check['status']} ({', '.join(f'{k} {v}' for k, v in check['formats'].items())}); preprocessing in "
              f"rdf.yaml (spec terms); QC calibration "
              f"{'attached (' + ', '.join(info['qc_calibration']) + ')' if info['qc_calibration'] else 'not included: ' + str(info['qc_note'])}")
        return 0
    print(f"{args.out}/{info['model_file']}: {info['format']} of {info['job_id']}, max abs diff vs torch "
          f"{info['check']['max_abs_diff']:.2g} (tolerance {info['check']['tolerance']}); preprocessing "
          f"'{info['preprocessing']['mode']}' not in the graph (export.json, preprocessing.json)")
    return 0
