"""Counterfactual influence heatmaps restricted to an expert mask A (paper Section 2, Exp-3).

    H_ij = || Z * A - Z^(ij) * A ||_1

Z (K, H, W): class probabilities of the model on the image; Z^(ij): the same on the image whose
window at grid location (i, j) was perturbed by a kernel (see :mod:`.kernels`); A (H, W) in
{0, 1}. H has one value per grid location (i, j) (``HeatmapResult.grid``, shape (nH, nW)); the
image-sized map (``HeatmapResult.map``) uses the rule in :mod:`.grid` (default ``"spread"``,
Captum Occlusion's rule). Three constructions give the same numbers:

* :func:`heatmap` (fast): batches of perturbed copies per forward pass, inference mode, L1 over
  A's bounding box only, chunk size bounded by ``max_batch`` / a memory budget, channels_last
  (all devices), float32 by default (``amp=True``: fp16/bf16 autocast, its noise floor measured) and the exact shortcuts
  of :mod:`.shortcuts` and :mod:`.incremental` (UNet decoder on A's box; incremental ResNet encoder);
* :func:`heatmap_literal`: one location at a time, full-size outputs (reference for tests);
* :func:`heatmap_captum`: ``captum.attr.Occlusion`` with forward ``f(x') = -||Z*A - Z(x')*A||_1``
  per batch element, so that Occlusion's ``f(x) - f(x')`` equals H (f(x) = 0) and its
  window-averaged attribution equals the ``"spread"`` map.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from matseg_nb.errors import UserError
from matseg_nb.explain.boxes import mask_box
from matseg_nb.explain.forward import ProbFn
from matseg_nb.explain.grid import grid_locations, region_grid_mask, upsample
from matseg_nb.explain.kernels import Perturbation, make_perturbation


@dataclass
class HeatmapResult:
    """A heatmap: ``grid`` (nH, nW) H per location (0 where not computed), ``valid`` (nH, nW) bool,
    ``map`` (H, W) float32 brought back to image size, plus the settings used."""

    grid: np.ndarray
    valid: np.ndarray
    map: np.ndarray
    ys: list[int]
    xs: list[int]
    window: int
    stride: int
    kernel: str
    kernel_params: dict
    upsample: str
    seconds: float
    n_forward: int
    extra: dict = field(default_factory=dict)
    partial: bool = False  # True when ``max_minutes`` stopped it: ``valid`` marks the locations done

    def meta(self) -> dict:
        """JSON-safe settings and timings (no arrays)."""
        return {"window": self.window, "stride": self.stride, "kernel": self.kernel,
                "kernel_params": self.kernel_params, "upsample": self.upsample,
                "grid_shape": list(self.grid.shape), "n_locations": int(self.valid.sum()),
                "seconds": self.seconds, "n_forward": self.n_forward, "partial": self.partial, **self.extra}


def _as_image(image) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise UserError(f"image: expected an array (C, H, W) or (H, W), found shape {tuple(x.shape)}")
    return x


def _as_mask(mask, shape) -> torch.Tensor:
    a = np.asarray(mask)
    if a.shape != tuple(shape):
        raise UserError(f"mask A: expected shape {tuple(shape)} (the image's H, W), found {a.shape}")
    if not (a > 0).any():
        raise UserError("mask A: expected at least one pixel inside A, found an empty mask")
    return torch.as_tensor((a > 0).astype(np.float32))


def check_grid(shape, window: int, stride: int) -> None:
    """One-line errors for a window that does not fit the image (H, W) or a stride below 1 px."""
    if int(stride) < 1:
        raise UserError(f"--stride: expected >= 1 px, found {stride}")
    if not 1 <= int(window) <= min(shape):
        raise UserError(f"--window: expected 1..{min(shape)} px (the image is {shape[0]}x{shape[1]}), "
                        f"found {window}")


def _prob_fn(model, device, amp, channels_last, shortcuts: bool = True) -> ProbFn:
    if isinstance(model, ProbFn):
        return model
    return ProbFn(model, device=device, amp=amp, channels_last=channels_last, shortcuts=shortcuts)


def _locations(shape, window, stride, region, locations):
    ys, xs = grid_locations(shape, window, stride)
    valid = np.ones((len(ys), len(xs)), dtype=bool)
    if region is not None:
        region = np.asarray(region)
        if region.shape != tuple(shape):
            raise UserError(f"region: expected shape {tuple(shape)}, found {region.shape}")
        valid &= region_grid_mask(region > 0, window, stride)
    if locations is not None:  # explicit subset of (i, j) grid indices (benchmarks)
        sub = np.zeros_like(valid)
        for i, j in locations:
            sub[i, j] = True
        valid &= sub
    return ys, xs, valid


def _finish(grid, valid, ys, xs, shape, window, stride, pert: Perturbation, rule, t0, n_fwd, **extra):
    hmap = upsample(grid, valid, shape, window, stride, rule)
    return HeatmapResult(grid=grid.astype(np.float32), valid=valid, map=hmap, ys=ys, xs=xs, window=window,
                         stride=stride, kernel=pert.name, kernel_params=pert.params, upsample=rule,
                         seconds=time.perf_counter() - t0, n_forward=n_fwd, extra=extra)


def _setup(fn: ProbFn, image, mask, kernel, window, stride, region, kernel_params, locations):
    """Shared by the fast and the literal heatmap: image (C, H, W) and mask on the device, the perturbation,
    and the location grid (ys, xs, valid)."""
    x = _as_image(image).to(fn.device)
    shape = tuple(x.shape[1:])
    check_grid(shape, window, stride)
    a = _as_mask(mask, shape).to(fn.device)
    pert = make_perturbation(kernel, x, window, **(kernel_params or {}))
    ys, xs, valid = _locations(shape, window, stride, region, locations)
    return x, shape, a, pert, ys, xs, valid


def _auto_batch(fn: ProbFn, x: torch.Tensor, memory_mb: float) -> int:
    """Largest batch whose estimated forward memory fits ``memory_mb`` (CUDA: measured). CPU: 8 for
    images up to 90x90 px, fewer for larger ones, 1 from 256x256 (larger batches of whole images were
    slower per image on a 2-core CPU), but at least 4 with the incremental encoder, whose small crops
    ran 10 % faster in batches of 4 than alone at 512x512 (docs/benchmarks.md)."""
    if fn.device.type != "cuda":
        n = int(max(1, min(8, 2**16 // (x.shape[-2] * x.shape[-1]))))
        return max(n, 4) if fn.cached else n
    torch.cuda.synchronize(fn.device)
    torch.cuda.reset_peak_memory_stats(fn.device)
    base = torch.cuda.memory_allocated(fn.device)
    fn(x[None].expand(2, -1, -1, -1).contiguous())
    per = max(1.0, (torch.cuda.max_memory_allocated(fn.device) - base) / 2.0)
    return int(max(1, min(512, memory_mb * 2**20 // per)))


def heatmap(model, image, mask, kernel: str = "blur", window: int = 16, stride: int = 4, region=None,
            kernel_params: dict | None = None, max_batch: int | None = None, memory_mb: float = 4096,
            device=None, amp: bool | None = None, channels_last: bool | None = None,
            upsample_rule: str = "spread", locations=None, progress: bool = False,
            max_minutes: float | None = None, log=None) -> HeatmapResult:
    """Fast heatmap of ``model`` on ``image`` (C, H, W) for expert mask ``mask`` (H, W).

    ``window``/``stride`` in px (stride 1 = every pixel); ``region`` (H, W) bool restricts the
    locations to windows touching it (e.g. a dilation of A); ``max_batch`` perturbed copies per
    forward pass (default: from ``memory_mb`` on CUDA, by image size on CPU, see ``_auto_batch``).
    ``amp`` (default off, float32): autocast, with its noise floor ``amp_noise_floor`` (H of the
    unperturbed image, i.e. ||Z_amp*A - Z_fp32*A||_1) in ``extra``. ``progress``: a tqdm bar;
    ``log`` (e.g. ``print``): the heatmap's size before it starts and the time estimated from the
    first batch; ``max_minutes``: stop after the first batch that ends past it (at least one batch runs), with ``partial=True`` and
    ``valid`` marking the locations done. Returns :class:`HeatmapResult`.
    """
    t0 = time.perf_counter()
    fn = _prob_fn(model, device, amp, channels_last)
    x, shape, a, pert, ys, xs, valid = _setup(fn, image, mask, kernel, window, stride, region, kernel_params,
                                              locations)
    grid = np.zeros(valid.shape, dtype=np.float64)
    box = mask_box(a)
    a_box = a[box[0] : box[1], box[2] : box[3]]
    z = fn(x[None], crop=box)[0] * a_box
    extra: dict = {}
    if fn.amp:
        ref = ProbFn(fn.model, device=fn.device, amp=False, channels_last=fn.channels_last, shortcuts=False)
        extra["amp_noise_floor"] = float((z - ref(x[None], crop=box)[0] * a_box).abs().sum())
    todo = [tuple(ij) for ij in np.argwhere(valid)]
    key = (tuple(x.shape), int(window))
    if fn.approximate and todo and fn.se_work.get(key, 0.0) > SE_MAX_WORK_FRACTION:
        extra["se_check"] = _se_declined(fn.se_work[key])  # decided on an earlier call for this size and window
        (log or (lambda _m: None))(f"heatmap: {extra['se_check']['sentence']}")
        fn = fn.exact()
    fn.prepare(x[None])
    if fn.approximate and fn.cached and todo:  # worth it? measured first; past the tolerance: exact only
        frac = fn.se_work.setdefault(key, _se_work_fraction(fn, x, window))
        if frac > SE_MAX_WORK_FRACTION:
            extra["se_check"] = _se_declined(frac)
        else:
            extra["se_check"] = {**check_approximation(fn, x, a_box, box, z, pert, ys, xs, todo),
                                 "work_fraction": frac}
        (log or (lambda _m: None))(f"heatmap: {extra['se_check']['sentence']}")
        if not extra["se_check"]["passed"]:
            fn.prepare(None)
            fn = fn.exact()
            fn.prepare(x[None])
    batch = int(max_batch) if max_batch else _auto_batch(fn, x, memory_mb)
    done = np.zeros_like(valid)
    notes = list(fn.shortcut_notes) + ([fn.cache_note] if fn.cache_note else [])
    say = log or (lambda _msg: None)
    n_batches = -(-len(todo) // batch) if todo else 0
    say(f"heatmap: {len(todo)} locations ({valid.shape[0]}x{valid.shape[1]} grid, window {window} px, stride "
        f"{stride} px), {n_batches} forward passes of up to {batch} images, "
        f"{'AMP' if fn.amp else 'float32'}; exact shortcuts: "
        + ("; ".join(_ran(fn)) or "none") + (f" ({'; '.join(notes)})" if notes else ""))
    bar = None
    if progress:
        from matseg_nb.progress import progress_bar

        bar = progress_bar(total=len(todo), desc="heatmap", unit="loc")
    n_fwd, partial = 1, False
    setup_seconds = time.perf_counter() - t0  # Z, the AMP floor and the encoder cache, before any location
    for start in range(0, len(todo), batch):
        if start and max_minutes is not None and time.perf_counter() - t0 > 60.0 * float(max_minutes):
            partial = True
            break
        t_batch = time.perf_counter()
        chunk = todo[start : start + batch]
        xb = x[None].repeat(len(chunk), 1, 1, 1)
        wins = []
        for b, (i, j) in enumerate(chunk):
            y0, x0 = ys[i], xs[j]
            p = pert.patch(y0, x0)
            xb[b, :, y0 : y0 + p.shape[1], x0 : x0 + p.shape[2]] = p
            wins.append((y0, y0 + p.shape[1], x0, x0 + p.shape[2]))
        zb = fn(xb, crop=box, windows=wins)
        h = (z[None] - zb * a_box).abs().sum(dim=(1, 2, 3)).double().cpu().numpy()
        for b, (i, j) in enumerate(chunk):
            grid[i, j] = h[b]
            done[i, j] = True
        if start == 0 and n_batches > 1:
            say(f"heatmap: first batch {time.perf_counter() - t_batch:.2f} s -> about "
                f"{(time.perf_counter() - t_batch) * n_batches:.1f} s in all")
        if bar is not None:
            bar.update(len(chunk))
        n_fwd += 1
    if bar is not None:
        bar.close()
    incremental = fn.cached
    shortcuts_ran = _ran(fn, after_run=n_fwd > 1)
    if shortcuts_ran != _ran(fn):
        say("heatmap: shortcuts that ran: " + ("; ".join(shortcuts_ran) or "none")
            + " (A's box covers most of the image: the whole decoder ran)")
    fn.prepare(None)
    if partial:
        say(f"heatmap: stopped after {max_minutes} min with {int(done.sum())} of {len(todo)} locations (partial)")
    res = _finish(grid, done, ys, xs, shape, window, stride, pert, upsample_rule, t0, n_fwd,
                  max_batch=batch, box=list(box), device=str(fn.device), amp=fn.amp,
                  channels_last=fn.channels_last, box_decoder=fn.used_box_decoder, incremental=incremental,
                  shortcuts=shortcuts_ran, input_map=fn.input_map.name if fn.input_map is not None else None,
                  locations_planned=len(todo), setup_seconds=setup_seconds, **extra, **({"note": "; ".join(notes)} if notes else {}))
    res.partial = partial
    return res


#: the approximate (squeeze-excitation) mode's tolerance: max |H - H_exact| / max H on the checked locations
#: (the issue's "equal within 1e-4 relative"; the demo's trained tu-seresnext26d UNet measured 2.2e-7)
SE_TOLERANCE = 1e-4
SE_CHECK_LOCATIONS = 6  # random locations checked against whole passes, plus the largest H


SE_MAX_WORK_FRACTION = 0.5  # above it the approximate mode is not faster than whole passes (benchmarks)


def _se_declined(frac: float) -> dict:
    return {"passed": False, "work_fraction": frac, "sentence": (
        f"squeeze-excitation approximate mode not used: a central window would still recompute {frac:.0%} of "
        f"the encoder (> {SE_MAX_WORK_FRACTION:.0%}); exact whole encoder passes")}


def _se_work_fraction(fn: ProbFn, x: torch.Tensor, window: int) -> float:
    """:meth:`IncrementalEncoder.work_fraction` of a window at the centre of the (model-scale) image."""
    xp = fn._padded(x[None])[0]
    h, w = int(xp.shape[-2]), int(xp.shape[-1])
    win = ((h - window) // 2, (h + window) // 2, (w - window) // 2, (w + window) // 2)
    if fn.input_map is not None:
        inner = fn._cache.sizes[0]
        win = fn.input_map.window(win, (h, w), inner)
    return fn._cache.work_fraction(win)


def check_approximation(fn: ProbFn, x: torch.Tensor, a_box: torch.Tensor, box, z: torch.Tensor,
                        pert: Perturbation, ys, xs, todo: list, n: int = SE_CHECK_LOCATIONS,
                        tolerance: float | None = None, seed: int = 0) -> dict:
    """H of ``fn`` (approximate, prepared on x) against the exact rules (whole encoder passes) at ``n``
    random locations of ``todo`` (seeded) and at the one whose window centre is nearest A's box centre
    (a large H): {n, max_abs, max_rel (of the largest H checked), tolerance, passed, sentence}."""
    tolerance = SE_TOLERANCE if tolerance is None else float(tolerance)
    ex = fn.exact()
    rng = np.random.default_rng(seed)
    pick = {todo[k] for k in rng.choice(len(todo), size=min(n, len(todo)), replace=False)}
    cy, cx, w = (box[0] + box[1]) / 2, (box[2] + box[3]) / 2, pert.window / 2
    pick.add(min(todo, key=lambda ij: (ys[ij[0]] + w - cy) ** 2 + (xs[ij[1]] + w - cx) ** 2))
    errs, hs = [], []
    for i, j in sorted(pick):
        xp = pert.apply(x, ys[i], xs[j])[None]
        p = pert.patch(ys[i], xs[j])
        win = (ys[i], ys[i] + p.shape[1], xs[j], xs[j] + p.shape[2])
        h_ex = float((z - ex(xp, crop=box)[0] * a_box).abs().sum())
        h_ap = float((z - fn(xp, crop=box, windows=[win])[0] * a_box).abs().sum())
        errs.append(abs(h_ap - h_ex))
        hs.append(h_ex)
    h_max = max(hs)
    max_abs = float(max(errs))
    max_rel = max_abs / h_max if h_max > 0 else (0.0 if max_abs == 0 else float("inf"))
    passed = max_rel <= tolerance
    sentence = (f"squeeze-excitation approximation checked against whole passes at {len(errs)} locations: "
                f"max |H - H_exact| = {max_abs:.3g} ({max_rel:.1e} of the largest H checked); tolerance "
                f"{tolerance:.0e}: "
                + ("kept" if passed else "exceeded, recomputed with exact whole encoder passes"))
    return {"n": len(errs), "max_abs": max_abs, "max_rel": max_rel, "tolerance": tolerance, "passed": passed,
            "sentence": sentence}


def _ran(fn: ProbFn, after_run: bool = False) -> list[str]:
    """Names of the exact shortcuts in use (the incremental encoder only while its cache is prepared);
    ``after_run``: only those the last pass used (the box decoder is skipped when A's box covers most of
    the image, where the native decoder is faster)."""
    return [n for n in fn.shortcut_names if (not n.startswith("incremental") or fn.cached)
            and (not after_run or not n.startswith("box decoder") or fn.used_box_decoder)]


def heatmap_literal(model, image, mask, kernel: str = "blur", window: int = 16, stride: int = 4, region=None,
                    kernel_params: dict | None = None, device=None, upsample_rule: str = "spread",
                    locations=None) -> HeatmapResult:
    """Reference: one perturbed image per forward pass, full-size ``||Z*A - Z'*A||_1``, fp32, whole
    forward passes (no shortcuts)."""
    t0 = time.perf_counter()
    fn = _prob_fn(model, device, False, False, shortcuts=False)
    x, shape, a, pert, ys, xs, valid = _setup(fn, image, mask, kernel, window, stride, region, kernel_params,
                                              locations)
    grid = np.zeros(valid.shape, dtype=np.float64)
    z = fn(x[None])[0]
    for i, j in np.argwhere(valid):
        zp = fn(pert.apply(x, ys[i], xs[j])[None])[0]
        grid[i, j] = float((z * a - zp * a).abs().sum())
    return _finish(grid, valid, ys, xs, shape, window, stride, pert, upsample_rule, t0, 1 + int(valid.sum()))


SENTINEL = 3.0e38  # marks occluded pixels for window-dependent kernels (local_mean) in the Captum route


def captum_forward(fn: ProbFn, x: torch.Tensor, a: torch.Tensor, pert: Perturbation):
    """Forward for Occlusion: x' (B, C, H, W) -> -||Z*A - Z(x')*A||_1 (B,), Z = fn(x) fixed."""
    z = fn(x[None])[0] * a

    def forward(xp: torch.Tensor) -> torch.Tensor:
        if pert.field is None:  # replace sentinel windows by the kernel's patch
            xp = xp.clone()
            for b in range(xp.shape[0]):
                hit = (xp[b, 0] >= SENTINEL).nonzero()
                if hit.numel():
                    y0, x0 = int(hit[:, 0].min()), int(hit[:, 1].min())
                    p = pert.patch(y0, x0)
                    xp[b, :, y0 : y0 + p.shape[1], x0 : x0 + p.shape[2]] = p
        return -(z[None] - fn(xp) * a).abs().sum(dim=(1, 2, 3))

    return forward


def heatmap_captum(model, image, mask, kernel: str = "blur", window: int = 16, stride: int = 4,
                   kernel_params: dict | None = None, perturbations_per_eval: int = 8, device=None,
                   show_progress: bool = False) -> HeatmapResult:
    """Captum Occlusion construction of the same heatmap (``"spread"`` map; fp32, no region).

    Occlusion replaces each window by ``baselines`` (the kernel's field; for ``local_mean`` a
    sentinel that the forward swaps for the window mean) and returns the window-averaged
    ``f(x) - f(x')``; with ``f = captum_forward`` that is exactly H spread over the windows.
    """
    from captum.attr import Occlusion

    t0 = time.perf_counter()
    fn = _prob_fn(model, device, False, False, shortcuts=False)
    x = _as_image(image).to(fn.device)
    c, hh, ww = x.shape
    a = _as_mask(mask, (hh, ww)).to(fn.device)
    pert = make_perturbation(kernel, x, window, **(kernel_params or {}))
    if stride > window:
        raise UserError(f"stride: Captum Occlusion needs stride <= window ({window}), found {stride}")
    base = pert.field if pert.field is not None else torch.full_like(x, SENTINEL)
    occ = Occlusion(captum_forward(fn, x, a, pert))
    attr = occ.attribute(x[None], sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
                         baselines=base[None], perturbations_per_eval=perturbations_per_eval,
                         show_progress=show_progress)
    hmap = attr[0, 0].detach().cpu().numpy().astype(np.float32)
    ys, xs = grid_locations((hh, ww), window, stride)
    valid = np.ones((len(ys), len(xs)), dtype=bool)
    grid = np.full(valid.shape, np.nan)  # Occlusion returns the map only
    return HeatmapResult(grid=grid, valid=valid, map=hmap, ys=ys, xs=xs, window=window, stride=stride,
                         kernel=pert.name, kernel_params=pert.params, upsample="spread",
                         seconds=time.perf_counter() - t0, n_forward=-1)
