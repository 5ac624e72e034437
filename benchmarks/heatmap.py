"""Case 1: counterfactual heatmap for one image: ours vs the literal per-location loop vs Captum Occlusion.

Same model, image, mask A (a 128x128 box at the left edge, see ``make_inputs``), kernel (Gaussian blur, sigma = window/4) and
grid in one process. On CPU a full grid is hours (one UNet-ResNet50 forward at 512x512 takes seconds
here), so each method is timed on the same subset of ``n_sub`` locations -- the first windows in
Captum's own order (column 0, rows 0..n_sub-1) -- and the time is extrapolated linearly to the full
grid of each stride: ``t_full = t_subset / n_sub * n_locations`` (the subset includes each method's
one reference forward, a small bias shared by all; said in every row as ``extrapolated``). Ours is
cheaper for windows at the image edge (its incremental encoder crops are clipped), so ours is timed
on ``n_sub`` locations drawn uniformly from the grid and its values are compared on Captum's subset.
Captum runs its real ``Occlusion.attribute`` with ``perturbations_per_eval`` batching and is stopped
after ``n_sub / ppe`` batches by the forward function; the values it computed are captured and
compared with ours. ``--full`` runs complete grids (GPU). ``ours_region`` restricts the locations to
windows touching A dilated by ``window`` px (fewer locations, same values there; not the full map).

    python -m benchmarks.heatmap [--device cuda] [--size 512] [--n-sub 8] [--full] [--models unet deeplabv3plus]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from benchmarks.common import record, write_results

MODELS = {"unet": ("Unet", "resnet50"), "deeplabv3plus": ("DeepLabV3Plus", "resnet50")}


class _Stop(Exception):
    pass


def make_inputs(size: int, seed: int = 0):
    """Smooth synthetic micrograph-like image (1, S, S) in [0, 1] and A = a box of side S/4.

    A sits at the left edge, rows S/16 .. S/16 + S/4, so that the first windows in Captum's order
    (column 0, top rows) -- the timed subset -- overlap it and have a large H (far from A, the H of a
    random-weight network is ~1e-6, the size of float32 noise, which would make the equality check
    meaningless)."""
    from matseg_nb.explain.kernels import gaussian_blur

    g = torch.Generator().manual_seed(seed)
    img = gaussian_blur(torch.rand((1, size, size), generator=g), 3.0)
    img = (img - img.min()) / (img.max() - img.min())
    a = np.zeros((size, size), dtype=bool)
    a[size // 16 : size // 16 + size // 4, : size // 4] = True
    return img.numpy(), a


def captum_subset(model, img, a, window, stride, ppe, n_batches, device):
    """Run Captum's Occlusion until ``n_batches`` perturbation batches were evaluated.

    Returns (seconds, {(i, j): H}) with the H values Captum computed (its f(x) - f(x') per window)."""
    from captum.attr import Occlusion

    from matseg_nb.explain.forward import ProbFn
    from matseg_nb.explain.grid import grid_locations
    from matseg_nb.explain.heatmap import captum_forward
    from matseg_nb.explain.kernels import make_perturbation

    fn = ProbFn(model, device=device, amp=False, channels_last=False, shortcuts=False)
    x = torch.as_tensor(img).to(fn.device)
    at = torch.as_tensor(a.astype(np.float32)).to(fn.device)
    pert = make_perturbation("blur", x, window)
    inner = captum_forward(fn, x, at, pert)
    n_rows = len(grid_locations(a.shape, window, stride)[0])
    seen: dict = {}
    calls = {"n": 0}

    def forward(xp):
        out = inner(xp)
        if calls["n"] > 0:  # call 0 is Occlusion's initial evaluation of the unperturbed input
            for b, v in enumerate((-out).tolist()):
                idx = (calls["n"] - 1) * ppe + b  # Captum's feature order: row index fastest
                seen[(idx % n_rows, idx // n_rows)] = v
        calls["n"] += 1
        if calls["n"] > n_batches:
            raise _Stop
        return out

    occ = Occlusion(forward)
    t0 = time.perf_counter()
    try:
        occ.attribute(x[None], sliding_window_shapes=(1, window, window), strides=(1, stride, stride),
                      baselines=pert.field[None], perturbations_per_eval=ppe)
    except _Stop:
        pass
    if fn.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, seen


def bench_model(name: str, size: int = 512, window: int = 16, strides=(16, 8, 4), n_sub: int = 8,
                ppe: int = 8, device: str = "cpu", full: bool = False, literal: bool = True,
                rounds: int = 2) -> list[dict]:
    """Rows for one model: ours (auto batch, exact shortcuts) vs Captum Occlusion at ``ppe`` and at 1
    perturbation per evaluation, vs the literal loop; ours without shortcuts (ablation); ours restricted to
    windows near A."""
    from scipy import ndimage

    from matseg_nb.explain import ProbFn, heatmap, heatmap_literal
    from matseg_nb.explain.grid import grid_locations, region_grid_mask
    from matseg_nb.models import build_model

    arch, encoder = MODELS[name]
    model, _ = build_model(encoder, arch, 1, 3, encoder_weights="none")
    model.eval()
    ours_fn = ProbFn(copy.deepcopy(model), device=device)
    plain_fn = ProbFn(copy.deepcopy(model), device=device, shortcuts=False)
    img, a = make_inputs(size)
    region = ndimage.binary_dilation(a, iterations=window)
    s0 = strides[0]
    sub = [(i, 0) for i in range(n_sub)]  # Captum's first windows: outputs compared there
    # ours costs less for windows at the image edge (clipped crops), so ours is timed on locations spread
    # uniformly over the grid; the other methods' cost does not depend on the location
    n_rows, n_cols = (len(v) for v in grid_locations((size, size), window, s0))
    pick = np.random.default_rng(0).choice(n_rows * n_cols, size=min(n_sub, n_rows * n_cols), replace=False)
    spread = [(int(k) // n_cols, int(k) % n_cols) for k in pick]
    # subset timings at the first stride (the per-location cost does not depend on the stride);
    # methods interleaved for ``rounds`` rounds, best time kept
    for fn in (ours_fn, plain_fn):  # warm-up
        heatmap(fn, img, a, window=window, stride=s0, locations=sub[:1])
    ours_sub = heatmap(ours_fn, img, a, window=window, stride=s0, locations=sub)
    plain_sub = heatmap(plain_fn, img, a, window=window, stride=s0, locations=sub)
    best = {k: float("inf") for k in ("ours", "plain", "captum", "captum1", "literal")}
    for _ in range(rounds):
        for key, fn in (("ours", ours_fn), ("plain", plain_fn)):
            t0 = time.perf_counter()
            heatmap(fn, img, a, window=window, stride=s0, locations=spread)
            best[key] = min(best[key], (time.perf_counter() - t0) * n_sub / len(spread))
        for key, p in (("captum", ppe), ("captum1", 1)):
            t_cap, vals = captum_subset(model, img, a, window, s0, p, max(1, n_sub // p), device)
            best[key] = min(best[key], t_cap)
            cap_vals = vals
        if literal:
            t0 = time.perf_counter()
            lit = heatmap_literal(model, img, a, window=window, stride=s0, locations=sub, device=device)
            best["literal"] = min(best["literal"], time.perf_counter() - t0)
    diff_cap = float(max(abs(ours_sub.grid[i, j] - cap_vals[(i, j)]) for i, j in sorted(cap_vals)))
    diff_lit = float(np.abs(ours_sub.grid - lit.grid)[lit.valid].max()) if literal else None
    diff_plain = float(np.abs(ours_sub.grid - plain_sub.grid)[plain_sub.valid].max())
    per = {k: v / n_sub for k, v in best.items() if np.isfinite(v)}
    meta = ours_sub.meta()
    rows = []
    for stride in strides:
        ys, xs = grid_locations((size, size), window, stride)
        n_loc = len(ys) * len(xs)
        n_region = int(region_grid_mask(region, window, stride).sum())
        common = dict(model=f"{arch}-{encoder}", size=size, window=window, stride=stride, n_locations=n_loc,
                      device=device, ours_batch=meta["max_batch"], box_decoder=meta["box_decoder"],
                      incremental=meta["incremental"], a_box=meta["box"], n_subset=n_sub, extrapolated=not full,
                      rounds=rounds, h_max=float(ours_sub.grid.max()))
        if full:
            t0 = time.perf_counter()
            heatmap(ours_fn, img, a, window=window, stride=stride)
            t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            heatmap(ours_fn, img, a, window=window, stride=stride, region=region)
            t_region = time.perf_counter() - t0
        else:
            t_ours, t_region = per["ours"] * n_loc, per["ours"] * n_region
        rows.append(record("heatmap", f"{name} s{stride} vs captum", t_ours, f"captum Occlusion ppe={ppe}",
                           per["captum"] * n_loc, diff_cap, **common))
        rows.append(record("heatmap", f"{name} s{stride} vs captum ppe=1", t_ours, "captum Occlusion ppe=1",
                           per["captum1"] * n_loc, diff_cap, **common))
        if "literal" in per:
            rows.append(record("heatmap", f"{name} s{stride} vs literal", t_ours, "literal loop (batch 1)",
                               per["literal"] * n_loc, diff_lit, **common))
        rows.append(record("heatmap", f"{name} s{stride} no shortcuts vs captum", per["plain"] * n_loc,
                           f"captum Occlusion ppe={ppe}", per["captum"] * n_loc, diff_plain, **common,
                           note="ablation: ours without the exact shortcuts; max_abs_diff = vs ours"))
        rows.append(record("heatmap", f"{name} s{stride} region vs captum", t_region, "captum full grid",
                           per["captum"] * n_loc, diff_cap, **common, n_region_locations=n_region,
                           note=f"ours restricted to windows touching A dilated by {window} px: "
                                f"{n_region}/{n_loc} locations, values equal there, 0 elsewhere"))
    return rows


def run(quick: bool = False, device: str = "cpu", full: bool = False, models=("unet", "deeplabv3plus"),
        size: int | None = None, n_sub: int | None = None, ppe: int = 8, threads: int | None = 2) -> list[dict]:
    if threads and device == "cpu":
        torch.set_num_threads(threads)
    size = size or (128 if quick else 512)
    n_sub = n_sub or (2 if quick else ppe)
    models = ("unet",) if quick else models
    rows = []
    for name in models:
        rows += bench_model(name, size=size, n_sub=n_sub, ppe=min(ppe, n_sub) if not full else ppe,
                            device=device, full=full)
    return rows


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import markdown_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--n-sub", type=int, default=None, help="locations timed per method (default = ppe)")
    ap.add_argument("--ppe", type=int, default=8, help="Captum perturbations_per_eval (also run at 1)")
    ap.add_argument("--full", action="store_true", help="time our full grids (GPU)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-name", default=None, help="results file stem (default heatmap or heatmap_<device>)")
    args = ap.parse_args(argv)
    rows = run(quick=args.quick, device=args.device, full=args.full, models=args.models, size=args.size,
               n_sub=args.n_sub, ppe=args.ppe, threads=args.threads)
    path = write_results(args.out_name or ("heatmap" if args.device == "cpu" else f"heatmap_{args.device}"), rows)
    print(markdown_table(rows))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
