"""Axis-aligned boxes on feature maps: (y0, y1, x0, x1), half-open, in the units of the map they refer to."""

from __future__ import annotations

import torch

Box = tuple[int, int, int, int]
HW = tuple[int, int]


def take(t: torch.Tensor, box: Box) -> torch.Tensor:
    """The view of t's last two dimensions on ``box`` (t holds the map from (0, 0))."""
    return t[..., box[0] : box[1], box[2] : box[3]]


def shift(box: Box, origin: tuple[int, int]) -> Box:
    """``box`` in the coordinates of a crop whose top-left corner is ``origin`` = (y, x)."""
    return box[0] - origin[0], box[1] - origin[0], box[2] - origin[1], box[3] - origin[1]


def relative(inner: Box, outer: Box) -> Box:
    """``inner`` in the coordinates of ``outer``'s top-left corner."""
    return shift(inner, (outer[0], outer[2]))


def grow(box: Box, m: int, h: int, w: int) -> Box:
    """``box`` grown by m on every side, clipped to an h x w map."""
    return max(0, box[0] - m), min(h, box[1] + m), max(0, box[2] - m), min(w, box[3] + m)


def halve(box: Box) -> Box:
    """The smallest box of the half-resolution map that covers ``box``."""
    return box[0] // 2, -(-box[1] // 2), box[2] // 2, -(-box[3] // 2)


def clip(box: Box, hw: HW) -> Box:
    return max(0, box[0]), min(hw[0], box[1]), max(0, box[2]), min(hw[1], box[3])


def is_empty(box: Box | None) -> bool:
    return box is None or box[0] >= box[1] or box[2] >= box[3]


def area(box: Box) -> int:
    return max(0, box[1] - box[0]) * max(0, box[3] - box[2])


def meet(p: Box, q: Box) -> Box | None:
    """Intersection, None when empty."""
    r = (max(p[0], q[0]), min(p[1], q[1]), max(p[2], q[2]), min(p[3], q[3]))
    return None if is_empty(r) else r


def join(p: Box | None, q: Box | None) -> Box | None:
    """Bounding box of both (either may be None or empty)."""
    if is_empty(p):
        return q
    if is_empty(q):
        return p
    return min(p[0], q[0]), max(p[1], q[1]), min(p[2], q[2]), max(p[3], q[3])


def mask_box(a: torch.Tensor) -> Box:
    """(y0, y1, x0, x1) px: the bounding box of the nonzero pixels of ``a`` (H, W) (at least one)."""
    rows = torch.nonzero(a.any(dim=1)).flatten()
    cols = torch.nonzero(a.any(dim=0)).flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
