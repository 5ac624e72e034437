"""Case 1: counterfactual heatmap for one image: ours vs the literal per-location loop vs Captum Occlusion.

Same model, image, mask A (a 128x128 box at the left edge, see ``make_inputs``), kernel (Gaussian blur, sigma = window/4) and
grid in one process. On CPU a full grid is hours (one UNet-ResNet50 forward at 512x512 takes seconds
here), so each method is timed on the same subset of ``n_sub`` locations -- the first windows in
Captum's own order (column 0, rows 0..n_sub-1) -- and the time is extrapolated linearly to the full
grid of each stride: ``t_full = t_subset / n_sub * n_locations`` (the subset includes each method's
one reference forward, a small bias shared by all three; said in every row as ``extrapolated``).
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
                batch: int = 8, device: str = "cpu", full: bool = False, literal: bool = True,
                rounds: int = 2) -> list[dict]:
    from scipy import ndimage

    from matseg_nb.explain import heatmap, heatmap_literal
    from matseg_nb.explain.grid import grid_locations
    from matseg_nb.models import build_model

    arch, encoder = MODELS[name]
    model, _ = build_model(encoder, arch, 1, 3, encoder_weights="none")
    model.eval()
    ours_model = copy.deepcopy(model)
    img, a = make_inputs(size)
    region = ndimage.binary_dilation(a, iterations=window)
    rows = []
    sub = [(i, 0) for i in range(n_sub)]  # Captum's first windows
    # --- subset timings at the first stride (the per-location cost does not depend on the stride);
    # methods interleaved for ``rounds`` rounds, best time kept (the machine is shared) ---
    s0 = strides[0]
    heatmap(ours_model, img, a, window=window, stride=s0, max_batch=1, locations=sub[:1], device=device)  # warm-up
    n_lit = n_sub if literal else 0
    t_ours_sub = t_cap_sub = t_lit_sub = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        ours_sub = heatmap(ours_model, img, a, window=window, stride=s0, max_batch=batch, locations=sub,
                           device=device)
        t_ours_sub = min(t_ours_sub, time.perf_counter() - t0)
        t_cap, cap_vals = captum_subset(model, img, a, window, s0, batch, max(1, n_sub // batch), device)
        t_cap_sub = min(t_cap_sub, t_cap)
        if n_lit:
            t0 = time.perf_counter()
            lit = heatmap_literal(model, img, a, window=window, stride=s0, locations=sub[:n_lit], device=device)
            t_lit_sub = min(t_lit_sub, time.perf_counter() - t0)
    cap_idx = sorted(cap_vals)
    diff_cap = float(max(abs(ours_sub.grid[i, j] - cap_vals[(i, j)]) for i, j in cap_idx))
    diff_lit = float(np.abs(ours_sub.grid - lit.grid)[lit.valid].max()) if n_lit else None
    per = {"ours": t_ours_sub / n_sub, "captum": t_cap_sub / len(cap_idx),
           "literal": t_lit_sub / n_lit if n_lit else None}
    for stride in strides:
        ys, xs = grid_locations((size, size), window, stride)
        n_loc = len(ys) * len(xs)
        from matseg_nb.explain.grid import region_grid_mask

        n_region = int(region_grid_mask(region, window, stride).sum())
        common = dict(model=f"{arch}-{encoder}", size=size, window=window, stride=stride, n_locations=n_loc,
                      device=device, batch=batch, n_subset=n_sub, extrapolated=not full,
                      rounds=rounds, h_range=[float(ours_sub.grid[ours_sub.valid].min()), float(ours_sub.grid.max())])
        if full:
            t0 = time.perf_counter()
            heatmap(ours_model, img, a, window=window, stride=stride, max_batch=batch, device=device)
            t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            heatmap(ours_model, img, a, window=window, stride=stride, max_batch=batch, device=device, region=region)
            t_region = time.perf_counter() - t0
        else:
            t_ours, t_region = per["ours"] * n_loc, per["ours"] * n_region
        rows.append(record("heatmap", f"{name} s{stride} vs captum", t_ours, f"captum Occlusion ppe={batch}",
                           per["captum"] * n_loc, diff_cap, **common,
                           note="captum extrapolated from its first batches" if not full else
                           "captum extrapolated from its first batches; ours measured on the full grid"))
        if per["literal"] is not None:
            rows.append(record("heatmap", f"{name} s{stride} vs literal", t_ours, "literal loop (batch 1)",
                               per["literal"] * n_loc, diff_lit, **common))
        rows.append(record("heatmap", f"{name} s{stride} region vs captum", t_region, "captum full grid",
                           per["captum"] * n_loc, diff_cap, **common, n_region_locations=n_region,
                           note=f"ours restricted to windows touching A dilated by {window} px: "
                                f"{n_region}/{n_loc} locations, values equal there, 0 elsewhere"))
    return rows


def run(quick: bool = False, device: str = "cpu", full: bool = False, models=("unet", "deeplabv3plus"),
        size: int | None = None, n_sub: int | None = None, batch: int = 8, threads: int | None = 2) -> list[dict]:
    if threads and device == "cpu":
        torch.set_num_threads(threads)
    size = size or (128 if quick else 512)
    n_sub = n_sub or (2 if quick else batch)
    models = ("unet",) if quick else models
    rows = []
    for name in models:
        rows += bench_model(name, size=size, n_sub=n_sub, batch=min(batch, n_sub) if not full else batch,
                            device=device, full=full)
    return rows


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import markdown_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--n-sub", type=int, default=None, help="locations timed per method (default = batch)")
    ap.add_argument("--batch", type=int, default=8, help="our max_batch = Captum perturbations_per_eval")
    ap.add_argument("--full", action="store_true", help="time our full grids (GPU)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-name", default=None, help="results file stem (default heatmap or heatmap_<device>)")
    args = ap.parse_args(argv)
    rows = run(quick=args.quick, device=args.device, full=args.full, models=args.models, size=args.size,
               n_sub=args.n_sub, batch=args.batch, threads=args.threads)
    path = write_results(args.out_name or ("heatmap" if args.device == "cpu" else f"heatmap_{args.device}"), rows)
    print(markdown_table(rows))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
