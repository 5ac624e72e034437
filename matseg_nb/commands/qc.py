"""``matseg qc RUN_DIR --new PATH... --out DIR`` (screen new images) or ``--validate`` (validate the detector).

``--test`` is kept: it names the OOD sets of ``--validate`` (the old behaviour)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "qc", help="Forte-style deployment QC: typicality of new images / predictions, AUROC, verdict",
        description="Fit typicality detectors on the reference split of a run's dataset and score the held-out "
                    "split and candidate OOD sets. Writes qc.json, scores.csv, roc.png, gallery.png.")
    p.add_argument("run_dir", nargs="?", default=None, metavar="RUN_DIR",
                   help="run folder (model/ + job.json); omit with --dataset for model-free extractors")
    p.add_argument("--dataset", default=None, help="dataset ref when no run folder is given")
    p.add_argument("--reference", default="train", metavar="SPLIT", help="reference split (default train)")
    p.add_argument("--heldout", default="test", metavar="SPLIT", help="in-distribution held-out split (default test)")
    p.add_argument("--new", nargs="*", default=[], metavar="PATH",
                   help="screen new images: files, folders, dataset refs name[:split] or split:<name>")
    p.add_argument("--alpha", type=float, default=0.05, help="flag level for screening (default 0.05)")
    p.add_argument("--cross-conformal", action="store_true",
                   help="RUN is a k-fold CV run: screen against all its fold runs, each calibrated on its own "
                        "held-out images (every annotated image calibrates; docs/qc.md)")
    p.add_argument("--calibration", default="val", metavar="SPLIT",
                   help="in-distribution images not trained on, for conformal p-values (default val)")
    p.add_argument("--validate", action="store_true",
                   help="validate the detector: AUROC with 95%% intervals on shifts and --test OOD sets")
    p.add_argument("--test", nargs="*", default=[], metavar="PATH",
                   help="known OOD sets for --validate: image files/folders, dataset refs name[:split], split:<name>")
    p.add_argument("--shift", nargs="*", default=[], metavar="NAME:STRENGTH",
                   help="imaging shifts of the held-out split as further OOD sets, e.g. noise:strong; 'all' = every shift")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--extractors", nargs="+", default=["encoder", "texture"],
                   help="input-level extractors: encoder, texture, timm:<name>[@weights]")
    p.add_argument("--level", choices=["input", "prediction", "both"], default="input")
    p.add_argument("--detectors", nargs="+", default=["gmm", "ocsvm", "kde"])
    p.add_argument("-k", type=int, default=5, help="nearest neighbours (default 5)")
    p.add_argument("--tile", type=int, default=128, help="crop size in px (default 128)")
    p.add_argument("--tiles", type=int, default=32, help="crops per image (default 32)")
    p.add_argument("--percentile", type=float, default=5.0, help="deployment threshold percentile (default 5)")
    p.add_argument("--readiness", type=float, default=None, help="AUROC readiness threshold (default: profile / 0.95)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from matseg_nb.errors import UserError
    from matseg_nb.qc.run import run_qc
    from matseg_nb.qc.settings import QCSettings
    from matseg_nb.qc.shifts import all_shift_specs, parse_shift
    from matseg_nb.terminal import fit_lines

    shifts = all_shift_specs() if args.shift == ["all"] else args.shift
    for spec in shifts:
        parse_shift(spec)
    if args.new:
        from matseg_nb.qc.screening import screen_run

        if args.run_dir is None:
            raise UserError("--new: expected a run folder (the model whose inputs are screened), found none")
        detector = "ocsvm" if "ocsvm" in args.detectors else args.detectors[0]  # see docs/qc.md: screening detector
        if args.cross_conformal:
            from matseg_nb.qc.cross_screening import screen_run_folds

            results = screen_run_folds(args.run_dir, args.new, args.out, args.alpha, QCSettings(
                extractors=tuple(args.extractors), tile_size=args.tile, tiles_per_image=args.tiles), detector, args.k,
                args.seed)
            print_screening(results, args.out)
            return 0
        results = screen_run(args.run_dir, args.new, args.out, alpha=args.alpha, reference_split=args.reference,
                             calibration_split=args.calibration, extractors=tuple(args.extractors),
                             detector=detector, k=args.k, tile_size=args.tile, tiles_per_image=args.tiles,
                             shifts=shifts, seed=args.seed)
        print_screening(results, args.out)
        return 0
    res = run_qc(args.run_dir, settings(args, shifts), out_dir=args.out, test=args.test, dataset=args.dataset)
    validation = res.run.validation
    lines = [f"detector validation: {validation.verdict} ({validation.reason})", f"  {validation.what_decided()}"]
    for lv, v in res.run.levels.items():
        rho = (v.spearman_typicality_iou or {}).get("rho")
        if rho is not None:
            lines.append(f"  {lv} level: Spearman(typicality, IoU) = {rho:.3f}")
    table = _write_table(validation.to_frame(), Path(res.out_dir) / "validation.csv")
    full = _write_text(validation.summary(), Path(res.out_dir) / "validation.txt")
    lines += [f"  {len(validation.checks)} AUROC rows (set x detector, 95% intervals): {table}",
              f"verdict: {res.verdict}; full summary {full}; wrote {res.out_dir}/qc.json, scores.csv, roc.png"]
    print(fit_lines(lines))
    return 0


def settings(args: argparse.Namespace, shifts: list[str]):
    """The :class:`matseg_nb.qc.settings.QCSettings` of the command line (its own defaults: 32 crops per
    image, GMM/OCSVM/KDE, whole-image predictions up to 1024 px)."""
    from matseg_nb.qc.settings import QCSettings

    return QCSettings(reference_split=args.reference, heldout_split=args.heldout,
                      calibration_split=args.calibration, shifts=tuple(shifts),
                      level=args.level, extractors=tuple(args.extractors), detectors=tuple(args.detectors), k=args.k,
                      tile_size=args.tile, tiles_per_image=args.tiles, percentile=args.percentile,
                      readiness_threshold=args.readiness, seed=args.seed, predict_tile=1024, iou_crop=None)


def _write_text(text: str, path: Path) -> Path:
    from matseg_nb.atomic import atomic_write_text

    return atomic_write_text(path, text + "\n")


def _write_table(frame, path: Path) -> Path:
    from matseg_nb.atomic import atomic_write_text

    return atomic_write_text(path, frame.to_csv(index=False))


def print_screening(results: list, out: str | Path) -> None:
    """Per screened batch its headline (verdict, k of n flagged, p) and notes, at most 100 columns;
    the per-image table (p-value, flag, reason) goes to ``<out>/screening.csv`` and the full text to
    ``<out>/screening.txt``, whose paths are printed."""
    import pandas as pd

    from matseg_nb.terminal import fit_lines

    out = Path(out)
    lines = []
    for r in results:
        lines.append(r.headline())
        lines += [f"  note: {n}" for n in r.notes]
    frames = [r.to_frame() for r in results]
    table = _write_table(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), out / "screening.csv")
    full = _write_text("\n".join(r.summary() for r in results), out / "screening.txt")
    lines += [f"per-image p-values, flags and reasons: {table}", f"full summary: {full}", f"wrote {out}/qc.json"]
    print(fit_lines(lines))
