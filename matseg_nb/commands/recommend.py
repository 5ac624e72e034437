"""``matseg recommend DATASET|DIR [--sweep DIR...] [--out DIR] [--json]``: rank encoder x decoder pairs.

Prints a summary of at most 100 columns (the ranked pairs, the confidence and its reason) and writes the full
recommendation (``recommendation.json``: every reason and note) and its evidence rows (``evidence.csv``) to
``--out``, whose paths it prints."""

from __future__ import annotations

import argparse

#: the terminal summary's width (the full recommendation is in files)
WIDTH = 100


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "recommend", help="recommend encoder x decoder pairs from the dataset's context and the evidence")
    p.add_argument("dataset", metavar="NAME|MANIFEST|DIR", help="manifest name/path, images/+masks/ folder or image folder")
    p.add_argument("--sweep", action="append", default=[], metavar="DIR", help="local sweep folder (repeatable)")
    p.add_argument("--top", type=int, default=6, help="number of pairs to list (default 6)")
    p.add_argument("--no-paper", action="store_true", help="ignore the paper's Table 3 prior")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for recommendation.json and evidence.csv (default ./recommendation-<dataset>)")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    p.set_defaults(func=handler)


def summary_lines(rec, width: int = WIDTH) -> list[str]:
    """The recommendation in at most ``width`` columns: difficulty, confidence, one line per ranked pair."""
    import textwrap

    lines = [f"Recommendation for {rec.dataset}: difficulty {rec.difficulty} ({rec.difficulty_source})",
             f"confidence: {rec.confidence} -- {rec.confidence_reason}"]
    lines += [f"{i}. {c.arch}  score {c.score:.3f} (evidence weight {c.support:.2f}, {c.n_datasets} datasets)"
              for i, c in enumerate(rec.ranked, start=1)]
    lines += [f"note: {n}" for n in rec.notes[:1]]
    return [textwrap.fill(line, width, subsequent_indent="    ", break_on_hyphens=False) for line in lines]


def handler(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import pandas as pd

    from matseg_nb.atomic import atomic_write_text
    from matseg_nb.compare import recommend
    from matseg_nb.compare.recommend import slug
    from matseg_nb.errors import UserError

    if args.top < 1:
        raise UserError(f"--top: expected a positive integer, found {args.top}")
    missing = [s for s in args.sweep if not Path(s).is_dir()]
    if missing:
        raise UserError(*(f"--sweep {s}: expected a sweep folder, found nothing there" for s in missing))
    rec = recommend(args.dataset, sweep_dirs=[Path(s) for s in args.sweep], top=args.top,
                    use_paper=not args.no_paper)
    if args.json:
        print(json.dumps(rec.to_dict(), indent=2, default=str))
        return 0
    out = Path(args.out) if args.out else Path(f"recommendation-{slug(rec.dataset) or 'dataset'}")
    written = [rec.save(out / "recommendation.json"),
               atomic_write_text(out / "evidence.csv", pd.DataFrame(rec.evidence).to_csv(index=False)),
               atomic_write_text(out / "recommendation.txt", rec.to_text() + "\n")]
    print("\n".join(summary_lines(rec)))
    print("full recommendation (every reason and note) and its evidence:")
    for path in written:
        print(f"  {path}")
    return 0
