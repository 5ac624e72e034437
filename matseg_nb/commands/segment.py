"""``matseg segment MODEL INPUT... --out DIR``: masks, a QC flag per image, measurements with the model's error.

Exit codes: 0 every input segmented; 1 some inputs not segmented (their rows in segments.csv say why);
2 bad arguments (no images, unknown dataset, a folder made by another model); 130 interrupted.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "segment", help="segment new images with a trained model: masks, QC flags, measurements with error bars",
        description="Segment images with a run's model (or a loop/sweep's validation-selected model for "
                    "--dataset): tiled inference with Gaussian blending, per-image masks, overlays, a QC p-value "
                    "and flag, area fractions and object sizes with units, the batch summary and the model's "
                    "error on each number over its test images. Exit 0 when every input was segmented, 1 when "
                    "some were not (see segments.csv), 2 for bad arguments. Resumes: finished images are "
                    "skipped by content hash.")
    p.add_argument("model", metavar="MODEL", help="run folder, loop or sweep folder (+ --dataset), or a model package")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders, globs ('scans/*.tif') or dataset refs name[:split]")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (resumed when it exists)")
    p.add_argument("--dataset", default=None, help="dataset whose validation-selected model a loop/sweep deploys")
    p.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                   help="pixel size in µm for every input (overrides file metadata and manifest)")
    p.add_argument("--length-unit", choices=["µm", "um", "nm"], default=None, help="length unit (default µm; nm below 5 nm pixels)")
    p.add_argument("--tile", type=int, default=512, help="tile size in input px (default 512)")
    p.add_argument("--overlap", type=int, default=128, help="tile overlap in px (default 128)")
    p.add_argument("--blend", choices=["gaussian", "hann", "constant"], default="gaussian")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation (4 flips, mean probability)")
    p.add_argument("--probs", action="store_true", help="also write class probabilities (probs/<name>.tif, float16)")
    p.add_argument("--no-qc", action="store_true", help="skip the per-image QC screening")
    p.add_argument("--channel", default=None, metavar="NAME|INDEX",
                   help="the channel of multi-channel files (AFM channels, multi-page TIFF pageN, EMD signals, "
                        "red/green/blue) to segment with a 1-channel model: its name or 0-based index")
    p.add_argument("--alpha", type=float, default=0.05, help="QC flag level (default 0.05)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (default 4)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--executor", choices=["local", "dask", "slurm"], default="local",
                   help="local (this process), dask (local cluster or --scheduler) or slurm")
    p.add_argument("--workers", type=int, default=None, help="dask/slurm workers")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    p.add_argument("--chunk-size", type=int, default=16, help="images per dask/slurm task (default 16)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from matseg_nb.errors import UserError
    from matseg_nb.segment.pipeline import SegmentSettings, segment_images
    from matseg_nb.segment.text import summary_lines

    if args.tile < 32 or args.overlap < 0 or args.overlap >= args.tile:
        raise UserError(f"--tile/--overlap: expected tile >= 32 and 0 <= overlap < tile, found {args.tile}/{args.overlap}")
    if args.pixel_size is not None and args.pixel_size <= 0:
        raise UserError(f"--pixel-size: expected a positive size in µm, found {args.pixel_size}")
    unit = "µm" if args.length_unit == "um" else args.length_unit
    settings = SegmentSettings(tile=args.tile, overlap=args.overlap, blend=args.blend, tta=args.tta, probs=args.probs,
                               qc=not args.no_qc, alpha=args.alpha, pixel_size_um=args.pixel_size, length_unit=unit,
                               batch_size=args.batch_size, device=args.device, channel=args.channel)
    outcome = segment_images(args.model, args.inputs, args.out, dataset=args.dataset, settings=settings,
                             executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                             chunk_size=args.chunk_size, progress=True,
                             log=lambda line: print(line, flush=True))
    for line in summary_lines(outcome.folder, model_line=False):
        print(line)
    return outcome.exit_code
