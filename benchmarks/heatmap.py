"""Case 1: counterfactual heatmap for one image: ours vs the literal per-location loop vs Captum Occlusion.

Same model, image, mask A (a 128x128 box at the left edge, see ``make_inputs``), kernel (Gaussian blur,
sigma = window/4) and grid in one process. On CPU a full grid is hours for the alternatives (one
UNet-ResNet50 forward at 512x512 takes about half a second here), so every method's time is split into
a fixed part (the reference forward pass; ours also caches the encoder) and a per-location part, each
measured, and extrapolated to the full grid of each stride as ``fixed + per_location * n_locations``
(``extrapolated`` in every row):

* Captum runs its real ``Occlusion.attribute`` with ``perturbations_per_eval`` (ppe) batching; its
  forward function timestamps the end of the initial unperturbed evaluation (fixed part) and stops it
  after ``n_sub / ppe`` batches. The values it computed are captured and compared with ours on the same
  windows (Captum's first: column 0, rows 0..n_sub-1, which overlap A). Also run at ppe 1 and on a
  channels_last copy of the model (ours uses channels_last; that row shows the ratio without it).
* The literal loop and ours without the shortcuts (ablation) cost the same at every location: timed on
  Captum's ``n_sub`` windows; fixed part = the same call with no locations.
* Ours costs less far from A and at the image edge (less to recompute), so it is timed on whole grid
  rows in its own (row-major, batched) order: ``ours_rows`` rows spaced evenly from a seeded random
  start (a systematic sample of the grid); fixed part = the same call with no locations.

``--full`` runs complete grids (GPU). ``ours_region`` restricts the locations to windows touching A
dilated by ``window`` px (fewer locations, same values there; not the full map).

``--pairs`` (:mod:`benchmarks.heatmap_pairs`) is the side-by-side table of every paper pair (ResNet-50 and
SE-ResNeXt-101 x UNet, DeepLabV3, DeepLabV3+) and the demo's stand-ins (resnet18 and tu-seresnext26d_32x4d
UNets behind ``input_scale`` 0.5), each against Captum's best setting, with A a box and A spanning the image,
and the work per location (counted FLOPs) that exact occlusion cannot avoid; written as Markdown to
``benchmarks/results/heatmap_pairs.md`` (default 512 px, the shared NASA images' size).

    python -m benchmarks.heatmap [--device cuda] [--size 512] [--n-sub 8] [--full] [--models unet deeplabv3plus]
    python -m benchmarks.heatmap --pairs [--size 512] [--only resnet50 demo] [--device cuda --captum-ppe 16 64]
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


def make_inputs(size: int, seed: int = 0, a_kind: str = "box"):
    """Smooth synthetic micrograph-like image (1, S, S) in [0, 1] and A.

    ``a_kind="box"``: a box of side S/4 at the left edge, rows S/16 .. S/16 + S/4, so that the first
    windows in Captum's order (column 0, top rows) -- the compared subset -- overlap it and have a large
    H (far from A, the H of a random-weight network is ~1e-6, the size of float32 noise, which would make
    the equality check meaningless). ``"lines"``: 1 px lines every S/8 px in both directions, from the
    edges (like grain boundaries drawn over the whole image: A's bounding box is the image)."""
    from matseg_nb.explain.kernels import gaussian_blur

    g = torch.Generator().manual_seed(seed)
    img = gaussian_blur(torch.rand((1, size, size), generator=g), 3.0)
    img = (img - img.min()) / (img.max() - img.min())
    a = np.zeros((size, size), dtype=bool)
    if a_kind == "lines":
        a[:: size // 8, :] = a[:, :: size // 8] = True
        a[-1, :] = a[:, -1] = True
    else:
        a[size // 16 : size // 16 + size // 4, : size // 4] = True
    return img.numpy(), a


def captum_subset(model, img, a, window, stride, ppe, n_batches, device, channels_last: bool = False):
    """Run Captum's Occlusion until ``n_batches`` perturbation batches were evaluated.

    Returns (fixed s, per-location s, {(i, j): H}): the time to the end of Occlusion's unperturbed
    evaluation, the rest divided by the windows evaluated, and the H values Captum computed (its
    f(x) - f(x') per window)."""
    from captum.attr import Occlusion

    from matseg_nb.explain.forward import ProbFn
    from matseg_nb.explain.grid import grid_locations
    from matseg_nb.explain.heatmap import captum_forward
    from matseg_nb.explain.kernels import make_perturbation

    fn = ProbFn(copy.deepcopy(model), device=device, amp=False, channels_last=channels_last, shortcuts=False)
    x = torch.as_tensor(img).to(fn.device)
    at = torch.as_tensor(a.astype(np.float32)).to(fn.device)
    pert = make_perturbation("blur", x, window)
    inner = captum_forward(fn, x, at, pert)
    n_rows = len(grid_locations(a.shape, window, stride)[0])
    seen: dict = {}
    calls = {"n": 0, "t_init": 0.0}

    def forward(xp):
        out = inner(xp)
        if calls["n"] == 0:
            if out.is_cuda:
                torch.cuda.synchronize(out.device)
            calls["t_init"] = time.perf_counter()
        else:  # call 0 is Occlusion's initial evaluation of the unperturbed input
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
    t1 = time.perf_counter()
    return calls["t_init"] - t0, (t1 - calls["t_init"]) / max(1, len(seen)), seen


def _best_split(run_fixed, run_sample, n_sample: int, rounds: int) -> tuple[float, float]:
    """(fixed s, per-location s): best of ``rounds`` for a call with no locations and for the sample."""
    fixed = min(_seconds(run_fixed) for _ in range(rounds))
    sample = min(_seconds(run_sample) for _ in range(rounds))
    return fixed, max(0.0, sample - fixed) / n_sample


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_model(name: str, size: int = 512, window: int = 16, strides=(16, 8, 4), n_sub: int = 8,
                ppe: int = 8, device: str = "cpu", full: bool = False, literal: bool = True,
                rounds: int = 2, ours_rows: int = 4, time_incremental: bool | None = None,
                a_kind: str = "box") -> list[dict]:
    """Rows for one model: ours (auto batch, exact shortcuts) vs Captum Occlusion at ``ppe``, at 1
    perturbation per evaluation and on channels_last, vs the literal loop; ours without shortcuts
    (ablation); ours restricted to windows near A; ``time_incremental`` (default: off the CPU, where the
    incremental encoder is not the default) adds ours with it forced on."""
    from scipy import ndimage

    from matseg_nb.explain import ProbFn, heatmap, heatmap_literal
    from matseg_nb.explain.grid import grid_locations, region_grid_mask
    from matseg_nb.models import build_model

    arch, encoder = MODELS[name]
    torch.manual_seed(0)  # the same random weights in every run
    model, _ = build_model(encoder, arch, 1, 3, encoder_weights="none")
    model.eval()
    ours_fn = ProbFn(copy.deepcopy(model), device=device)
    plain_fn = ProbFn(copy.deepcopy(model), device=device, shortcuts=False)
    img, a = make_inputs(size, a_kind=a_kind)
    label = name if a_kind == "box" else f"{name} A={a_kind}"
    region = ndimage.binary_dilation(a, iterations=window)
    s0 = strides[0]
    sub = [(i, 0) for i in range(n_sub)]  # Captum's first windows: outputs compared there
    n_rows, n_cols = (len(v) for v in grid_locations((size, size), window, s0))
    step = max(1, n_rows // ours_rows)
    start = int(np.random.default_rng(0).integers(step))
    rows_sample = [(i, j) for i in range(start, n_rows, step)[:ours_rows] for j in range(n_cols)]

    def hm(fn, locs):
        return lambda: heatmap(fn, img, a, window=window, stride=s0, locations=locs)

    for fn in (ours_fn, plain_fn):  # warm-up
        hm(fn, sub[:1])()
    ours_sub, plain_sub = hm(ours_fn, sub)(), hm(plain_fn, sub)()
    split = {"ours": _best_split(hm(ours_fn, []), hm(ours_fn, rows_sample), len(rows_sample), rounds),
             "plain": _best_split(hm(plain_fn, []), hm(plain_fn, sub), n_sub, rounds)}
    if device != "cpu" if time_incremental is None else time_incremental:
        inc_fn = ProbFn(copy.deepcopy(model), device=device, incremental=True)
        hm(inc_fn, sub[:1])()
        split["incremental"] = _best_split(hm(inc_fn, []), hm(inc_fn, rows_sample), len(rows_sample), rounds)
        inc_sub = hm(inc_fn, sub)()
    if literal:
        def lit(locs):
            return lambda: heatmap_literal(model, img, a, window=window, stride=s0, locations=locs, device=device)
        split["literal"] = _best_split(lit([]), lit(sub), n_sub, rounds)
        lit_sub = lit(sub)()
    cap_vals = {}
    for key, p, cl in (("captum", ppe, False), ("captum1", 1, False), ("captum_cl", ppe, True)):
        runs = [captum_subset(model, img, a, window, s0, p, max(1, n_sub // p), device, cl) for _ in range(rounds)]
        split[key] = (min(r[0] for r in runs), min(r[1] for r in runs))
        cap_vals[key] = runs[-1][2]
    cap = cap_vals["captum"]
    diff_cap = float(max(abs(ours_sub.grid[i, j] - cap[(i, j)]) for i, j in sorted(cap)))
    diff_cl = float(max(abs(ours_sub.grid[i, j] - v) for (i, j), v in sorted(cap_vals["captum_cl"].items())))
    diff_lit = float(np.abs(ours_sub.grid - lit_sub.grid)[lit_sub.valid].max()) if literal else None
    diff_plain = float(np.abs(ours_sub.grid - plain_sub.grid)[plain_sub.valid].max())
    diff_inc = float(max(abs(inc_sub.grid[i, j] - cap[(i, j)]) for i, j in sorted(cap))) if "incremental" in split else None
    meta = ours_sub.meta()
    out = []
    for stride in strides:
        ys, xs = grid_locations((size, size), window, stride)
        n_loc = len(ys) * len(xs)
        n_region = int(region_grid_mask(region, window, stride).sum())
        t = {k: f + per * n_loc for k, (f, per) in split.items()}
        common = dict(model=f"{arch}-{encoder}", a_kind=a_kind, size=size, window=window, stride=stride,
                      n_locations=n_loc,
                      device=device, ours_batch=meta["max_batch"], box_decoder=meta["box_decoder"],
                      incremental=meta["incremental"], a_box=meta["box"], n_subset=n_sub,
                      ours_sample_locations=len(rows_sample), extrapolated=not full, rounds=rounds,
                      h_max=float(ours_sub.grid.max()),
                      fixed_s={k: round(v[0], 4) for k, v in split.items()},
                      per_location_s={k: round(v[1], 5) for k, v in split.items()})
        if full:
            t["ours"] = _seconds(lambda stride=stride: heatmap(ours_fn, img, a, window=window, stride=stride))
            t_region = _seconds(lambda stride=stride: heatmap(ours_fn, img, a, window=window, stride=stride,
                                                              region=region))
        else:
            t_region = split["ours"][0] + split["ours"][1] * n_region
        out.append(record("heatmap", f"{label} s{stride} vs captum", t["ours"], f"captum Occlusion ppe={ppe}",
                          t["captum"], diff_cap, **common))
        out.append(record("heatmap", f"{label} s{stride} vs captum ppe=1", t["ours"], "captum Occlusion ppe=1",
                          t["captum1"], diff_cap, **common))
        out.append(record("heatmap", f"{label} s{stride} vs captum channels_last", t["ours"],
                          f"captum Occlusion ppe={ppe}, channels_last model", t["captum_cl"], diff_cl, **common))
        if literal:
            out.append(record("heatmap", f"{label} s{stride} vs literal", t["ours"], "literal loop (batch 1)",
                              t["literal"], diff_lit, **common))
        if "incremental" in t:
            out.append(record("heatmap", f"{label} s{stride} incremental encoder on vs captum", t["incremental"],
                              f"captum Occlusion ppe={ppe}", t["captum"], diff_inc, **common,
                              note="ours with ProbFn(incremental=True), extrapolated from the row sample"))
        out.append(record("heatmap", f"{label} s{stride} no shortcuts vs captum", t["plain"],
                          f"captum Occlusion ppe={ppe}", t["captum"], diff_plain, **common,
                          note="ablation: ours without the exact shortcuts; max_abs_diff = vs ours"))
        out.append(record("heatmap", f"{label} s{stride} region vs captum", t_region, "captum full grid",
                          t["captum"], diff_cap, **common, n_region_locations=n_region,
                          note=f"ours restricted to windows touching A dilated by {window} px: "
                               f"{n_region}/{n_loc} locations, values equal there, 0 elsewhere"))
    return out


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
                            device=device, full=full, ours_rows=1 if quick else 4)
    if not quick and not full:  # A spanning the image: the decoder shortcuts cannot help (one stride, 1 round)
        for name in models:
            rows += bench_model(name, size=size, strides=(16,), n_sub=n_sub, ppe=ppe, device=device, rounds=1,
                                ours_rows=1, a_kind="lines")
    return rows


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import markdown_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--n-sub", type=int, default=None,
                    help="locations timed per method (default = ppe; --pairs: Captum windows per setting, default 4)")
    ap.add_argument("--ppe", type=int, default=8, help="Captum perturbations_per_eval (also run at 1)")
    ap.add_argument("--full", action="store_true", help="time our full grids (GPU)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-name", default=None, help="results file stem (default heatmap or heatmap_<device>)")
    ap.add_argument("--pairs", action="store_true", help="the side-by-side table of every pair (default 512 px)")
    ap.add_argument("--only", nargs="+", default=None, help="--pairs: pairs whose name contains one of these")
    ap.add_argument("--a-kinds", nargs="+", default=["box", "lines"], choices=["box", "lines"],
                    help="--pairs: kinds of A (box; lines = A spanning the image)")
    ap.add_argument("--ours-runs", type=int, default=6, help="--pairs: runs of 4 adjacent locations timed for ours")
    ap.add_argument("--captum-ppe", type=int, nargs="+", default=None,
                    help="--pairs: Captum perturbations_per_eval settings tried (default 1 4)")
    ap.add_argument("--out-dir", default=None, help="--pairs: folder for the results (default benchmarks/results)")
    ap.add_argument("--estimate-only", action="store_true",
                    help="--pairs: time one whole pass per pair, print the estimated total time and stop")
    args = ap.parse_args(argv)
    if args.pairs:
        from benchmarks import heatmap_pairs

        return heatmap_pairs.main(args, argv)
    rows = run(quick=args.quick, device=args.device, full=args.full, models=args.models, size=args.size,
               n_sub=args.n_sub, ppe=args.ppe, threads=args.threads)
    path = write_results(args.out_name or ("heatmap" if args.device == "cpu" else f"heatmap_{args.device}"), rows)
    print(markdown_table(rows))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
