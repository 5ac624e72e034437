"""Window grid, region restriction and the rule that brings a strided map back to image size.

Grid (same as Captum's Occlusion): along each axis the window top-left corners are
``k * stride`` for ``k = 0 .. ceil((L - window) / stride)``; the last window is clipped at the
border, so every pixel is covered when ``stride <= window``.

Upsampling rule ``"spread"`` (Captum's): each location's value is spread uniformly over its
window and averaged where windows overlap; pixels covered by no computed window get 0.
``"nearest"``: each pixel takes the value of the window whose top-left corner is the nearest
grid point at or before it (plain block upsampling of the grid).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from matseg_nb.errors import UserError


def grid_starts(length: int, window: int, stride: int) -> list[int]:
    """Top-left coordinates (px) of the windows along one axis of ``length`` px."""
    if window < 1 or stride < 1:
        raise UserError(f"window/stride: expected positive integers, found {window}/{stride}")
    if window > length:
        raise UserError(f"window: expected <= image side {length} px, found {window}")
    n = int(math.ceil((length - window) / stride)) + 1
    return [k * stride for k in range(n)]


def grid_locations(shape: tuple[int, int], window: int, stride: int) -> tuple[list[int], list[int]]:
    """Row and column starts of the window grid for an image of ``shape`` (H, W)."""
    return grid_starts(shape[0], window, stride), grid_starts(shape[1], window, stride)


def region_grid_mask(region: np.ndarray, window: int, stride: int) -> np.ndarray:
    """(nH, nW) bool: a location is kept when its window touches at least one pixel of ``region`` (H, W)."""
    ys, xs = grid_locations(region.shape, window, stride)
    r = torch.as_tensor(np.asarray(region, dtype=bool), dtype=torch.float32)[None, None]
    hit = F.max_pool2d(F.pad(r, (0, window, 0, window)), window, stride=1)[0, 0]
    return hit[np.ix_(ys, xs)].numpy() > 0


def _spread(grid: np.ndarray, valid: np.ndarray, shape, window: int, stride: int) -> np.ndarray:
    ys, xs = grid_locations(shape, window, stride)
    total = np.zeros(shape, dtype=np.float64)
    count = np.zeros(shape, dtype=np.float64)
    for a, y in enumerate(ys):
        for b, x in enumerate(xs):
            if valid[a, b]:
                total[y : y + window, x : x + window] += grid[a, b]
                count[y : y + window, x : x + window] += 1.0
    out = np.zeros(shape, dtype=np.float64)
    np.divide(total, count, out=out, where=count > 0)
    return out.astype(np.float32)


def _nearest(grid: np.ndarray, valid: np.ndarray, shape, window: int, stride: int) -> np.ndarray:
    g = np.where(valid, grid, 0.0)
    iy = np.minimum(np.arange(shape[0]) // stride, g.shape[0] - 1)
    ix = np.minimum(np.arange(shape[1]) // stride, g.shape[1] - 1)
    return g[np.ix_(iy, ix)].astype(np.float32)


#: upsampling rule name -> fn(grid (nH,nW), valid (nH,nW) bool, shape (H,W), window, stride) -> (H, W)
UPSAMPLERS: dict[str, Callable[..., np.ndarray]] = {"spread": _spread, "nearest": _nearest}


def upsample(grid: np.ndarray, valid: np.ndarray, shape, window: int, stride: int, rule: str = "spread"):
    """Bring a (nH, nW) location map back to image ``shape`` (H, W) with rule ``rule``."""
    if rule not in UPSAMPLERS:
        raise UserError(f"upsample: expected one of {sorted(UPSAMPLERS)}, found {rule!r}")
    return UPSAMPLERS[rule](np.asarray(grid, dtype=np.float64), np.asarray(valid, bool), tuple(shape), window, stride)
