"""``matseg recommend DATASET|DIR [--sweep DIR...] [--json]``: rank encoder x decoder pairs for a dataset."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "recommend", help="recommend encoder x decoder pairs from the dataset's context and the evidence")
    p.add_argument("dataset", metavar="NAME|MANIFEST|DIR", help="manifest name/path, images/+masks/ folder or image folder")
    p.add_argument("--sweep", action="append", default=[], metavar="DIR", help="local sweep folder (repeatable)")
    p.add_argument("--top", type=int, default=6, help="number of pairs to list (default 6)")
    p.add_argument("--no-paper", action="store_true", help="ignore the paper's Table 3 prior")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from matseg_nb.compare import recommend
    from matseg_nb.errors import UserError

    if args.top < 1:
        raise UserError(f"--top: expected a positive integer, found {args.top}")
    missing = [s for s in args.sweep if not Path(s).is_dir()]
    if missing:
        raise UserError(*(f"--sweep {s}: expected a sweep folder, found nothing there" for s in missing))
    rec = recommend(args.dataset, sweep_dirs=[Path(s) for s in args.sweep], top=args.top,
                    use_paper=not args.no_paper)
    print(json.dumps(rec.to_dict(), indent=2, default=str) if args.json else rec.to_text())
    return 0
