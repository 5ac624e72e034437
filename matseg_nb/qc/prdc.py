"""Per-point PRDC summary statistics (Forte, Ganguly et al. ICLR 2025) from k-NN radii.

For reference embeddings ``X`` (n, d) and query embeddings ``Y`` (m, d):

* ``r_k(x_j)``: distance from ``x_j`` to its k-th nearest neighbour in ``X`` (itself excluded);
* ``s_k(y_i)``: distance from ``y_i`` to its k-th nearest neighbour among the queries of the same
  group (itself excluded; the public Forte code uses the whole query batch as one group);
* precision_i = 1[exists j: d(y_i, x_j) < r_k(x_j)]
* recall_i    = |{j: d(y_i, x_j) < s_k(y_i)}| / n
* density_i   = |{j: d(y_i, x_j) < r_k(x_j)}| / k
* coverage_i  = 1[min_j d(y_i, x_j) < s_k(y_i)]

Hence precision = 1[density > 0] and coverage = 1[recall > 0]; only two counts are needed.

:func:`prdc` computes the counts in row blocks with float32 matrix products (centred data) and
re-computes in float64 every comparison that lies within a rigorous float32 rounding bound of
its threshold, so the result equals the float64 brute force (:func:`prdc_bruteforce`) while
memory stays O(block * n). See ``docs/qc.md`` for the choices where paper and code differ.
"""

from __future__ import annotations

import numpy as np
import torch

#: column order of the feature matrix returned by :func:`prdc`.
PRDC_NAMES = ("precision", "recall", "density", "coverage")

_U32 = 2.0**-24  # unit round-off of float32


def _tol(d: int) -> float:
    """Relative bound on |float32 sq-distance - exact| per unit of (|x|^2 + |y|^2) for dim d."""
    return (2 * d + 16) * _U32


def _block_rows(n_cols: int, budget_bytes: int) -> int:
    """Rows per block so that ~6 float32/64 (rows, n_cols) work arrays fit in ``budget_bytes``."""
    return int(max(16, min(8192, budget_bytes // max(1, 6 * 8 * n_cols))))


def _exact_sq(a: torch.Tensor, ia: torch.Tensor, b: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """float64 squared distances sum((a[ia] - b[ib])^2) of index pairs (p,), gathered in small chunks."""
    out = torch.empty(ia.shape[0], dtype=torch.float64)
    step = max(1, (1 << 20) // max(1, a.shape[1]))
    for s in range(0, ia.shape[0], step):
        diff = a[ia[s : s + step]] - b[ib[s : s + step]]
        out[s : s + step] = (diff * diff).sum(1)
    return out


def _sq32(a32: torch.Tensor, an: torch.Tensor, b32: torch.Tensor, bn: torch.Tensor) -> torch.Tensor:
    """float32 squared distances (|a|^2 + |b|^2 - 2 a.b) of a block: (p, d), (q, d) -> (p, q)."""
    return torch.addmm(an[:, None] + bn[None, :], a32, b32.T, beta=1.0, alpha=-2.0)


def knn_radii(
    x: np.ndarray | torch.Tensor, k: int = 5, groups: np.ndarray | None = None, budget_bytes: int = 1 << 30
) -> np.ndarray:
    """k-th nearest-neighbour distance of every row of ``x`` (n, d) among the others, float64 (n,).

    groups: optional (n,) labels; neighbours from the row's own group are excluded (e.g. other
    crops of the same image)."""
    x64 = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    return knn_radii_sq(x64, k, budget_bytes, groups=groups).sqrt().numpy()


def _candidates(
    x32: torch.Tensor, nrm32: torch.Tensor, g: torch.Tensor | None, n_cand: int, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running float32 top-``n_cand`` smallest squared distances per row over symmetric block pairs.

    Each (i, j >= i) block of the distance matrix is computed once and used for both its rows and
    (transposed) its columns, halving the matrix-product work. Returns values and indices (n, n_cand).
    """
    n = x32.shape[0]
    best_v = torch.full((n, n_cand), float("inf"))
    best_i = torch.zeros((n, n_cand), dtype=torch.int64)
    starts = list(range(0, n, block))

    def merge(rows: slice, vals: torch.Tensor, cols0: int) -> None:
        kk = min(n_cand, vals.shape[1])
        v, i = torch.topk(vals, kk, dim=1, largest=False)
        cat_v = torch.cat([best_v[rows], v], 1)
        cat_i = torch.cat([best_i[rows], i + cols0], 1)
        top_v, pos = torch.topk(cat_v, n_cand, dim=1, largest=False)
        best_v[rows], best_i[rows] = top_v, torch.gather(cat_i, 1, pos)

    for a in starts:
        ra = slice(a, min(n, a + block))
        for b in starts[starts.index(a):]:
            rb = slice(b, min(n, b + block))
            d32 = _sq32(x32[ra], nrm32[ra], x32[rb], nrm32[rb])
            if a == b:
                d32.fill_diagonal_(float("inf"))  # exclude self
            if g is not None:
                d32.masked_fill_(g[ra, None] == g[None, rb], float("inf"))
            merge(ra, d32, b)
            if a != b:
                merge(rb, d32.T, a)
    return best_v, best_i


def knn_radii_sq(
    x64: torch.Tensor,
    k: int,
    budget_bytes: int = 1 << 30,
    x32: torch.Tensor | None = None,
    groups: np.ndarray | None = None,
) -> torch.Tensor:
    """Squared k-th nearest-neighbour distance of every row of ``x64`` (n, d) among the others, float64 (n,).

    ``x32``: optional float32 screening copy of ``x64`` shifted by any constant vector (centred).
    float32 candidates are refined in float64 (differences of ``x64`` itself) wherever rounding could
    change the k-th value, so the result equals a float64 computation. With ``groups`` (n,), points of
    the row's own group are excluded. Fewer than k eligible neighbours: k_eff = the smallest eligible
    count (none at all: radius 0).
    """
    n, d = x64.shape
    g = None if groups is None else torch.as_tensor(np.unique(np.asarray(groups), return_inverse=True)[1])
    n_elig = n - 1 if g is None else n - int(torch.bincount(g).max())
    k_eff = min(k, n_elig)
    if k_eff < 1:
        return torch.zeros(n, dtype=torch.float64)
    x32 = (x64 - x64.mean(0)).float() if x32 is None else x32
    nrm64 = (x32.double() ** 2).sum(1)  # norms of the (centred) screening copy
    n_cand = min(n - 1, k_eff + 8)
    block = int(max(256, min(2048, (budget_bytes // 32) ** 0.5)))  # square blocks; symmetry pays from 2 blocks
    vals32, idx = _candidates(x32, nrm64.float(), g, n_cand, block)
    vals = vals32.double()
    tol = (_tol(d) * (nrm64 + float(nrm64.max())))[:, None]  # per-row bound on |float32 - exact|
    vk = vals[:, k_eff - 1 : k_eff]
    # only candidates within 2*tol of the float32 k-th value can be the exact k-th value
    band = (vals >= vk - 2 * tol) & (vals <= vk + 2 * tol) & torch.isfinite(vals)
    ex = torch.where(vals < vk - 2 * tol, float("-inf"), float("inf")).double()
    rows, cols = torch.nonzero(band, as_tuple=True)
    ex[rows, cols] = _exact_sq(x64, rows, x64, idx[rows, cols])
    r_sq = torch.kthvalue(ex, k_eff, dim=1).values
    # certified when every non-candidate is provably farther than the exact k-th value
    ok = (vals[:, -1] - tol[:, 0] >= r_sq) | (n_cand == n - 1) | torch.isinf(vals32[:, -1])
    for i in torch.nonzero(~ok).flatten().tolist():
        full = ((x64 - x64[i]) ** 2).sum(1)
        full[i] = float("inf")
        if g is not None:
            full[g == g[i]] = float("inf")
        r_sq[i] = torch.kthvalue(full, k_eff).values
    return r_sq


def _count_below(
    q64: torch.Tensor,
    q32: torch.Tensor,
    r64: torch.Tensor,
    r32: torch.Tensor,
    ref_thr_sq: torch.Tensor,
    q_thr_sq: torch.Tensor,
    budget_bytes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query: #{j: d(q, x_j)^2 < ref_thr_sq[j]} and #{j: d(q, x_j)^2 < q_thr_sq[i]}, as in float64.

    q32/r32 are centred float32 screening copies; pairs within the float32 rounding bound of a
    threshold are re-computed in float64 from q64/r64 (usually a tiny fraction: thresholds are k-NN
    radii, deep in the lower tail of the distance distribution).
    """
    m, d = q64.shape
    n = r64.shape[0]
    tol_rel = _tol(d)
    qn, rn = (q32.double() ** 2).sum(1), (r32.double() ** 2).sum(1)
    qn32, rn32 = qn.float(), rn.float()
    c_ref = torch.zeros(m, dtype=torch.int64)
    c_q = torch.zeros(m, dtype=torch.int64)
    rows = _block_rows(n, budget_bytes)
    for s in range(0, m, rows):
        e = min(m, s + rows)
        d32 = _sq32(q32[s:e], qn32[s:e], r32, rn32).double()
        tol = (qn[s:e, None] + rn[None, :]).mul_(tol_rel)
        for thr, counts in ((ref_thr_sq[None, :], c_ref), (q_thr_sq[s:e, None], c_q)):
            sure = (d32 + tol < thr).sum(1)
            qi, rj = torch.nonzero((d32 - tol < thr) & (d32 + tol >= thr), as_tuple=True)
            if qi.numel():
                ex = _exact_sq(q64, s + qi, r64, rj)
                thr_v = thr.expand(e - s, n)[qi, rj]
                sure = sure + torch.bincount(qi[ex < thr_v], minlength=e - s)
            counts[s:e] = sure
        del d32, tol
    return c_ref, c_q


def prdc(
    reference: np.ndarray | torch.Tensor,
    query: np.ndarray | torch.Tensor,
    k: int = 5,
    query_batches: np.ndarray | None = None,
    reference_radii_sq: np.ndarray | None = None,
    budget_bytes: int = 1 << 30,
    reference_groups: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
    query_radius_sq: float | None = None,
) -> np.ndarray:
    """Per-point (precision, recall, density, coverage) of queries against a reference set.

    query_radius_sq: a fixed squared radius s_k for every query (e.g. the median reference r_k^2);
    then no radius depends on the other queries and a query scores the same alone or in any batch.

    reference: (n, d) embeddings; query: (m, d); k: neighbours; query_batches: (m,) labels, the
    query radius s_k is computed within each batch (default: one batch = all queries, as in the
    public Forte code); query_groups: (m,) labels, query radii ignore neighbours of the same group; reference_radii_sq: precomputed squared radii of ``reference`` (n,), e.g.
    ``knn_radii_sq`` (reused when many query sets meet one reference); reference_groups: (n,)
    labels, reference radii then ignore neighbours from the point's own group (other crops of the
    same image), so r_k measures between-image spread.
    ``budget_bytes`` bounds the block work arrays. Returns float64 (m, 4) in :data:`PRDC_NAMES` order.
    """
    r64 = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
    q64 = torch.as_tensor(np.asarray(query), dtype=torch.float64)
    if r64.ndim != 2 or q64.ndim != 2 or r64.shape[1] != q64.shape[1]:
        raise ValueError(f"prdc: expected (n, d) and (m, d) arrays, found {tuple(r64.shape)} and {tuple(q64.shape)}")
    n, m = r64.shape[0], q64.shape[0]
    center = r64.mean(0)  # distances are translation invariant; centring shrinks float32 error
    r32, q32 = (r64 - center).float(), (q64 - center).float()
    if reference_radii_sq is None:
        ref_r2 = knn_radii_sq(r64, k, budget_bytes, r32, reference_groups)
    else:
        ref_r2 = torch.as_tensor(np.asarray(reference_radii_sq), dtype=torch.float64)
    batches = np.zeros(m, dtype=np.int64) if query_batches is None else np.asarray(query_batches)
    q_r2 = torch.empty(m, dtype=torch.float64)
    if query_radius_sq is not None:
        q_r2.fill_(float(query_radius_sq))
        batches = np.zeros(0, dtype=np.int64)
    for b in np.unique(batches):
        idx = np.nonzero(batches == b)[0]
        grp = None if query_groups is None else np.asarray(query_groups)[idx]
        sel = torch.as_tensor(idx)
        q_r2[sel] = knn_radii_sq(q64[sel], k, budget_bytes, q32[sel], grp)
    c_ref, c_q = _count_below(q64, q32, r64, r32, ref_r2, q_r2, budget_bytes)
    out = np.empty((m, 4), dtype=np.float64)
    out[:, 0] = (c_ref > 0).numpy()
    out[:, 1] = c_q.numpy() / n
    out[:, 2] = c_ref.numpy() / k
    out[:, 3] = (c_q > 0).numpy()
    return out


def prdc_bruteforce(
    reference: np.ndarray,
    query: np.ndarray,
    k: int = 5,
    query_batches: np.ndarray | None = None,
    reference_groups: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
    symmetric_blas: bool = True,
) -> np.ndarray:
    """Straightforward NumPy/scikit-learn version of :func:`prdc` (full distance matrices, float64).

    symmetric_blas=False computes the reference-reference product as X @ copy(X).T (gemm) instead of
    numpy's X @ X.T (syrk), which segfaults in OpenBLAS 0.3.31 for n ~ 19 000, d = 2048 here.
    """
    from sklearn.metrics import pairwise_distances

    reference = np.asarray(reference, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    n, m = len(reference), len(query)
    d_rr = pairwise_distances(reference, reference if symmetric_blas else reference.copy())
    np.fill_diagonal(d_rr, np.inf)
    if reference_groups is not None:
        rg = np.asarray(reference_groups)
        d_rr[rg[:, None] == rg[None, :]] = np.inf
    k_r = min(k, int(np.isfinite(d_rr).sum(1).min()))
    ref_r = np.partition(d_rr, k_r - 1, axis=1)[:, k_r - 1] if k_r >= 1 else np.zeros(n)
    del d_rr
    batches = np.zeros(m, dtype=np.int64) if query_batches is None else np.asarray(query_batches)
    q_r = np.zeros(m)
    for b in np.unique(batches):
        sel = np.nonzero(batches == b)[0]
        d_qq = pairwise_distances(query[sel], query[sel])
        np.fill_diagonal(d_qq, np.inf)
        if query_groups is not None:
            qg = np.asarray(query_groups)[sel]
            d_qq[qg[:, None] == qg[None, :]] = np.inf
        k_eff = min(k, int(np.isfinite(d_qq).sum(1).min()))
        if k_eff >= 1:
            q_r[sel] = np.partition(d_qq, k_eff - 1, axis=1)[:, k_eff - 1]
    d_qr = pairwise_distances(query, reference)
    inside_ref = d_qr < ref_r[None, :]
    inside_q = d_qr < q_r[:, None]
    return np.stack(
        [
            inside_ref.any(1).astype(float),
            inside_q.sum(1) / n,
            inside_ref.sum(1) / k,
            (d_qr.min(1) < q_r).astype(float),
        ],
        axis=1,
    )


def nn_ratio(
    reference: np.ndarray | torch.Tensor,
    query: np.ndarray | torch.Tensor,
    reference_radii_sq: np.ndarray | torch.Tensor,
    budget_bytes: int = 1 << 30,
) -> np.ndarray:
    """min_j d(y_i, x_j) / r_k(x_j) per query (m,), float64 from float32 products (relative error ~1e-5).

    A continuous companion of precision (precision_i = 1[nn_ratio_i < 1]) that keeps growing with the
    distance to the reference support, where all four PRDC statistics saturate at 0.
    """
    r64 = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
    q64 = torch.as_tensor(np.asarray(query), dtype=torch.float64)
    center = r64.mean(0)
    r32, q32 = (r64 - center).float(), (q64 - center).float()
    rn, qn = (r32 * r32).sum(1), (q32 * q32).sum(1)
    r2 = torch.as_tensor(np.asarray(reference_radii_sq), dtype=torch.float64)
    # zero radii (identical reference crops) are floored at 1e-12 of the typical radius (or 1e-12),
    # so the ratio stays finite; computed in float64 (float32 1/r^2 overflows for tiny radii)
    floor = 1e-12 * max(float(r2.median()) if r2.numel() else 0.0, 1.0)
    inv = 1.0 / r2.clamp(min=floor)
    out = torch.empty(q64.shape[0], dtype=torch.float64)
    rows = _block_rows(r64.shape[0], budget_bytes)
    for s in range(0, q64.shape[0], rows):
        d2 = _sq32(q32[s : s + rows], qn[s : s + rows], r32, rn).clamp_(min=0).double()
        out[s : s + rows] = (d2 * inv[None, :]).min(1).values
    return out.sqrt().numpy()
