"""Faithfulness of a heatmap (the paper's perturbation analysis, made quantitative).

For a fraction k of the image's pixels, three sets of k*H*W pixels are blurred (replaced by the
Gaussian-blurred image, sigma in px): the top-k highest-influence pixels of the heatmap, the same
number of random pixels (seeded) and the lowest-influence ("background") pixels; optionally
(``block``) random squares of the same total area, as contiguous as the top set. For each, the
change of the prediction inside A is measured as

* ``l1``: ||Z*A - Z'*A||_1 (sum over classes and A's pixels, same unit as the heatmap),
* ``l1_per_pixel``: ``l1`` / |A|,
* ``flip``: fraction of A's pixels whose argmax class changes.

The deletion curve repeats this for k in ``fractions`` (default 0..0.5); its area (trapezoid over
k, in ``l1_per_pixel`` x fraction) is ``auc``. ``ratio_top_random`` compares top vs random at
``k_main`` and ``auc_ratio_top_random`` the areas. Ties in the heatmap are broken by a seeded
random order so constant heatmaps behave like random selection.
"""

from __future__ import annotations

import numpy as np
import torch

from matseg_nb.explain.forward import ProbFn
from matseg_nb.explain.kernels import gaussian_blur

DEFAULT_FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
SETS = ("top", "random", "bottom")
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


def _orders(hmap: np.ndarray, seed: int, block: int | None = None) -> dict[str, np.ndarray]:
    """Pixel orders (flat indices) for each set: top first, random, bottom first (+ random blocks)."""
    rng = np.random.default_rng(seed)
    flat = hmap.ravel().astype(np.float64)
    tiebreak = rng.permutation(flat.size)
    by_value = np.lexsort((tiebreak, flat))  # ascending value, random among ties
    orders = {"top": by_value[::-1].copy(), "random": rng.permutation(flat.size), "bottom": by_value}
    if block:
        h, w = hmap.shape
        by, bx = np.arange(h) // block, np.arange(w) // block
        block_id = (by[:, None] * (bx.max() + 1) + bx[None, :]).ravel()
        rank = rng.permutation(block_id.max() + 1)[block_id]  # random order of blocks
        orders["random_blocks"] = np.lexsort((np.arange(flat.size), rank))
    return orders


def _measure(z: torch.Tensor, zp: torch.Tensor, a: torch.Tensor) -> dict[str, float]:
    n = float(a.sum())
    l1 = float(((z - zp).abs() * a).sum())
    flip = float(((z.argmax(0) != zp.argmax(0)).float() * a).sum()) / max(n, 1.0)
    return {"l1": l1, "l1_per_pixel": l1 / max(n, 1.0), "flip": flip}


def faithfulness(model, image, mask, hmap, fractions=DEFAULT_FRACTIONS, k_main: float = 0.1,
                 sigma: float = 4.0, seed: int = 0, max_batch: int = 8, device=None,
                 block: int | None = None) -> dict:
    """Deletion analysis of heatmap ``hmap`` (H, W) for ``model`` on ``image`` (C, H, W), mask A (H, W).

    Returns a JSON-safe dict: ``curves[set]`` -> list of {fraction, l1, l1_per_pixel, flip},
    ``auc[set]``, ``at_k_main[set]``, ``ratio_top_random``, ``ratio_top_bottom``,
    ``auc_ratio_top_random``, and the settings. ``block`` (px, e.g. the heatmap window) adds the set
    ``random_blocks``: random ``block`` x ``block`` squares of the same total area, a baseline as
    contiguous as the top set (``ratio_top_random_blocks``).
    """
    fn = model if isinstance(model, ProbFn) else ProbFn(model, device=device)
    x = torch.as_tensor(np.asarray(image, np.float32)).to(fn.device)
    x = x[None] if x.ndim == 2 else x
    a = torch.as_tensor((np.asarray(mask) > 0).astype(np.float32)).to(fn.device)
    blurred = gaussian_blur(x, sigma)
    fracs = sorted({float(f) for f in fractions} | {float(k_main)})
    orders = _orders(np.asarray(hmap), seed, block)
    sets = tuple(orders)
    npx = x.shape[1] * x.shape[2]
    jobs = [(s, f) for s in sets for f in fracs]
    z = fn(x[None])[0]
    results: dict[tuple[str, float], dict] = {}
    for start in range(0, len(jobs), max_batch):
        chunk = jobs[start : start + max_batch]
        xb = x[None].repeat(len(chunk), 1, 1, 1)
        for b, (s, f) in enumerate(chunk):
            idx = torch.as_tensor(orders[s][: int(round(f * npx))], device=fn.device)
            flat = xb[b].reshape(x.shape[0], -1)
            flat[:, idx] = blurred.reshape(x.shape[0], -1)[:, idx]
        zb = fn(xb)
        for b, key in enumerate(chunk):
            results[key] = _measure(z, zb[b], a)
    curves = {s: [{"fraction": f, **results[(s, f)]} for f in fracs] for s in sets}
    auc = {s: float(_trapezoid([r["l1_per_pixel"] for r in curves[s]], fracs)) for s in sets}
    at_k = {s: results[(s, float(k_main))] for s in sets}

    def ratio(u: float, v: float) -> float | None:
        return None if v <= 0 else u / v

    return {
        "fractions": fracs, "k_main": float(k_main), "sigma": float(sigma), "seed": int(seed),
        "a_pixels": int(a.sum()), "curves": curves, "auc": auc, "at_k_main": at_k,
        "ratio_top_random": ratio(at_k["top"]["l1"], at_k["random"]["l1"]),
        "ratio_top_bottom": ratio(at_k["top"]["l1"], at_k["bottom"]["l1"]),
        "auc_ratio_top_random": ratio(auc["top"], auc["random"]),
        "top_beats_random": bool(at_k["top"]["l1"] > at_k["random"]["l1"]),
        "block": block,
        "ratio_top_random_blocks": ratio(at_k["top"]["l1"], at_k["random_blocks"]["l1"]) if block else None,
    }
