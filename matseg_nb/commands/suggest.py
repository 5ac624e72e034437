"""``matseg suggest RUN UNLABELLED... --n K --out DIR``: which unlabelled images to annotate next."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "suggest", help="rank unlabelled images for annotation (atypicality, model uncertainty, diversity)",
        description="Rank unlabelled images by a stated mix of QC atypicality (against the run's held-out images), "
                    "model uncertainty (mean softmax entropy, as a percentile of the held-out images') and "
                    "diversity (k-center greedy in the QC feature space). Writes suggestions.csv, suggest.json "
                    "and contact_sheet.png.")
    p.add_argument("run_dir", metavar="RUN", help="run folder (model/ + job.json)")
    p.add_argument("unlabelled", nargs="+", metavar="UNLABELLED",
                   help="image files, folders or dataset refs name[:split]")
    p.add_argument("--n", type=int, default=10, metavar="K", help="how many images to suggest (default 10)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--weights", default="0.4,0.4,0.2", metavar="A,U,D",
                   help="mix of atypicality, uncertainty, diversity (default 0.4,0.4,0.2; normalised to sum 1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=handler)


def parse_weights(text: str):
    """``"a,u,d"`` -> :class:`SuggestWeights` (UserError naming --weights otherwise)."""
    from matseg_nb.errors import UserError
    from matseg_nb.suggest import SuggestWeights

    try:
        a, u, d = (float(x) for x in text.split(","))
        return SuggestWeights(a, u, d).normalised()
    except ValueError:
        raise UserError(f"--weights: expected three non-negative numbers A,U,D with a positive sum, found {text!r}"
                        ) from None


def handler(args: argparse.Namespace) -> int:
    from matseg_nb.suggest import suggest

    result = suggest(args.run_dir, args.unlabelled, args.n, args.out, parse_weights(args.weights), seed=args.seed)
    print(result.summary())
    print(f"wrote {args.out}/suggestions.csv, suggest.json, contact_sheet.png")
    return 0
