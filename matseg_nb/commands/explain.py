"""``matseg explain RUN_DIR IMAGE --mask A.png [--kernel blur --window 16 --stride 4 --max-minutes M] --out DIR``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explain", help="counterfactual influence heatmap restricted to an expert mask A, with faithfulness")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (with model/ and job.json)")
    p.add_argument("image", metavar="IMAGE")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mask", metavar="A.png", help="annotation mask A (PNG the size of the image)")
    src.add_argument("--mask-from-gt", metavar="GT", help="derive A from a ground-truth mask's class boundaries (decoded like the run's dataset)")
    p.add_argument("--boundary-width", type=int, default=3, help="px, with --mask-from-gt (default 3)")
    p.add_argument("--kernel", default="blur", help="blur | local_mean | constant | noise (default blur)")
    p.add_argument("--window", type=int, default=16, help="perturbation window side, px (default 16)")
    p.add_argument("--stride", type=int, default=4, help="grid stride, px; 1 = every pixel (default 4)")
    p.add_argument("--region-dilation", type=int, default=None, metavar="PX",
                   help="only perturb windows touching A dilated by PX px")
    p.add_argument("--kernel-param", action="append", default=[], metavar="KEY=VALUE",
                   help="kernel parameter, e.g. sigma=4, value=0, std=0.1, seed=0 (repeatable)")
    p.add_argument("--max-batch", type=int, default=None, help="perturbed copies per forward pass")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true",
                   help="autocast (fp16 on CUDA, bf16 on CPU) instead of float32; its noise floor is printed")
    p.add_argument("--max-minutes", type=float, default=None, metavar="MIN",
                   help="stop the heatmap after MIN minutes with a partial map, marked partial")
    p.add_argument("--draws", type=int, default=20, help="draws of each faithfulness baseline (default 20)")
    p.add_argument("--level", type=float, default=0.05, help="faithfulness test level (default 0.05)")
    p.add_argument("--ring-permutations", type=int, default=39, metavar="N",
                   help="shuffles of H within rings of distance to A (test conditional on proximity; "
                        "default 39, 0 skips)")
    p.add_argument("--randomisation-locations", type=int, default=48, metavar="N",
                   help="locations on A of the model-randomisation check (default 48, 0 skips)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=handler)


def _kernel_params(items: list[str]) -> dict:
    from matseg_nb.errors import UserError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--kernel-param: expected KEY=VALUE, found {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _gt_ids(path: str, run_dir: str):
    """Class ids (H, W) of a ground-truth mask, decoded like the run's dataset when it can be opened."""
    import numpy as np

    from matseg_nb.data import decode_mask, open_dataset, read_array

    raw = read_array(path)
    from matseg_nb.runs import Run, RunFileError

    try:
        ref = Run(Path(run_dir)).job().get("dataset")
    except RunFileError:
        ref = None
    if ref:
        try:
            ds = open_dataset(ref)
        except Exception:  # noqa: BLE001 - fall back to raw values below
            ds = None
        if ds is not None:
            return decode_mask(raw, ds.manifest.mask, ds.num_classes, path)
    if raw.ndim == 3:  # colour-coded mask without a manifest: one id per distinct colour
        _, ids = np.unique(raw.reshape(-1, raw.shape[-1]), axis=0, return_inverse=True)
        return ids.reshape(raw.shape[:2])
    return raw


def handler(args: argparse.Namespace) -> int:
    from matseg_nb.errors import UserError
    from matseg_nb.explain import explain_image, save_boundary_annotation
    from matseg_nb.terminal import echo

    for path, what in ((args.run_dir, "RUN_DIR"), (args.image, "IMAGE")):
        if not Path(path).exists():
            raise UserError(f"{path}: expected an existing {what}, found no such path")
    mask = args.mask
    if args.mask_from_gt:
        mask = save_boundary_annotation(_gt_ids(args.mask_from_gt, args.run_dir), Path(args.out) / "A_gt_boundary.png",
                                        image_path=args.image, width=args.boundary_width)
    summary = explain_image(args.run_dir, args.image, mask, args.out, kernel=args.kernel, window=args.window,
                            stride=args.stride, kernel_params=_kernel_params(args.kernel_param),
                            region_dilation=args.region_dilation, device=args.device, max_batch=args.max_batch,
                            amp=args.amp, max_minutes=args.max_minutes, n_draws=args.draws, level=args.level,
                            n_perm=args.ring_permutations, randomisation_locations=args.randomisation_locations,
                            log=echo)
    if "amp_noise_floor" in summary.heatmap:
        print(f"AMP noise floor (H of the unperturbed image): {summary.heatmap['amp_noise_floor']:.3g}")
    print("\n".join(summary.summary_lines()))
    print(f"heatmap: {Path(args.out) / 'heatmap.npy'}")
    print(f"figure: {Path(args.out) / 'explanation.png'}")
    return 0
