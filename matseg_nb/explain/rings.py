"""Rings of distance to A: the partition behind the faithfulness test conditional on proximity.

The image is cut into square *cells* of ``cell`` px (the heatmap's stride: with the ``spread`` rule and a
window that is a multiple of the stride, H is constant on these cells, so a cell is the unit H resolves).
Each cell gets the mean Euclidean distance (px) of its pixels to A (0 inside A); the cells, sorted by that
distance, are cut into consecutive rings of ``cells_per_ring`` cells. Equal-count rings are the narrowest
bands that still leave room to shuffle: near A, where the prediction inside A is most sensitive, they are a
pixel or two wide; far out they widen, where distance matters least. Their spread is reported
(``ring_spans_px``).

Permuting H's cell values *within* rings keeps how much of H lies at each distance from A (its proximity
structure) and scrambles everything else: which structures at a given distance H ranks high. Under the
null "given distance to A, H's ranking carries no information", the observed H and its permutations are
exchangeable, so :func:`monte_carlo_p` is an exact-valid p-value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class RingPartition:
    """Cells and rings of one image and A. ``cell_of_pixel`` (H, W) int: cell index per pixel;
    ``ring_of_cell`` (n_cells,) int: ring index per cell (0 = nearest A); ``ring_edges_px``: the lower
    distance (px) of each ring and ``ring_spans_px`` its spread (max - min, px), how closely the ring holds
    proximity; ``cell_distance_px`` (n_cells,): each cell's mean distance to A."""

    cell_of_pixel: np.ndarray
    ring_of_cell: np.ndarray
    ring_edges_px: tuple[float, ...]
    ring_spans_px: tuple[float, ...]
    cell_distance_px: np.ndarray
    cell: int

    @property
    def n_rings(self) -> int:
        return len(self.ring_edges_px)

    @property
    def n_cells(self) -> int:
        return int(self.ring_of_cell.size)

    def cell_means(self, hmap: np.ndarray) -> np.ndarray:
        """(n_cells,) mean of ``hmap`` (H, W) over each cell."""
        idx = self.cell_of_pixel.ravel()
        sums = np.bincount(idx, weights=np.asarray(hmap, np.float64).ravel(), minlength=self.n_cells)
        return sums / np.bincount(idx, minlength=self.n_cells)

    def to_map(self, values: np.ndarray) -> np.ndarray:
        """(H, W) map with each cell set to its value in ``values`` (n_cells,)."""
        return np.asarray(values)[self.cell_of_pixel]

    def permuted(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``values`` (n_cells,) with each ring's values shuffled among that ring's cells."""
        out = np.array(values, copy=True)
        for r in range(self.n_rings):
            idx = np.flatnonzero(self.ring_of_cell == r)
            out[idx] = out[rng.permutation(idx)]
        return out


def ring_partition(mask: np.ndarray, cell: int, cells_per_ring: int = 8) -> RingPartition:
    """Cells of ``cell`` px, sorted by mean distance to A (``mask`` (H, W), nonzero = A) and cut into
    consecutive rings of ``cells_per_ring`` cells (a smaller last ring joins the one before)."""
    a = np.asarray(mask) > 0
    h, w = a.shape
    cell = max(1, int(cell))
    ncx = -(-w // cell)
    cell_of_pixel = (np.arange(h)[:, None] // cell) * ncx + (np.arange(w)[None, :] // cell)
    n_cells = int(cell_of_pixel.max()) + 1
    dist = ndimage.distance_transform_edt(~a) if a.any() else np.zeros(a.shape)
    idx = cell_of_pixel.ravel()
    cell_dist = np.bincount(idx, weights=dist.ravel(), minlength=n_cells) / np.bincount(idx, minlength=n_cells)
    m = max(1, int(cells_per_ring))
    n_rings = max(1, n_cells // m)
    rank = np.empty(n_cells, dtype=int)
    rank[np.lexsort((np.arange(n_cells), cell_dist))] = np.arange(n_cells)
    ring_of_cell = np.minimum(rank // m, n_rings - 1)
    edges = tuple(float(cell_dist[ring_of_cell == r].min()) for r in range(n_rings))
    spans = tuple(float(np.ptp(cell_dist[ring_of_cell == r])) for r in range(n_rings))
    return RingPartition(cell_of_pixel, ring_of_cell, edges, spans, cell_dist, cell)


def monte_carlo_p(observed: float, null_scores) -> float:
    """Exact-valid Monte Carlo p-value ``(1 + #{null >= observed}) / (n + 1)`` (ties count against H)."""
    null = np.asarray(null_scores, dtype=np.float64)
    return float((1 + np.sum(null >= observed)) / (null.size + 1))
