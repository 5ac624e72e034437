"""Faithfulness of a heatmap as a statistical test (the paper's Exp-3 claim, made testable).

Deletion curve: for each pixel fraction k in ``fractions``, the k*H*W pixels chosen by an order are
replaced by a *validation perturbation* of the image, and the change of the prediction inside A is
measured as ``l1_per_pixel`` = ||Z*A - Z'*A||_1 / |A| (probability mass per A pixel). The score of an
order is the mean of that curve over ``fractions`` (its area, up to the constant span).

The heatmap's order (highest influence first, ties broken at random) is compared with ``n_draws``
draws of each baseline order:

* ``random_pixels``: a uniformly random permutation of the pixels;
* ``random_blocks``: random ``block`` x ``block`` squares (the heatmap's window, random grid phase),
  as contiguous as the heatmap's top set;
* ``distance_to_A``: pixels nearest to A first (Euclidean distance transform, ties broken at random),
  the *trivial explanation* that any map highlighting A's surroundings would imitate.

Per baseline the empirical p-value is ``(1 + #{draws scoring >= the heatmap}) / (n_draws + 1)``
(smallest possible value 1 / (n_draws + 1): with 20 draws 0.048). ``faithful`` is true only when
the p-value against *every* baseline is <= ``level``.

Deleting the pixels nearest A is nearly unbeatable (they drive the prediction inside A), so these
unconditional baselines answer "is H better than proximity?". The *conditional* test
(``conditional``, :mod:`matseg_nb.explain.rings`) answers the expert's question "at a given distance from
A, does H point at what changes the prediction?": H's cell values are shuffled ``n_perm`` times within
rings of distance to A, which keeps H's proximity structure, and the same deletion score is compared;
``beyond_proximity`` is true when that p-value is <= ``level``.

The validation perturbation differs from the kernel that built H, so that agreement is not
circular: Gaussian noise (std = the image's std per channel, seeded) when H used ``blur``, else a
Gaussian blur (sigma = window / 4 px).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import ndimage

from matseg_nb.errors import UserError
from matseg_nb.explain.annotation import check_mask_extent
from matseg_nb.explain.boxes import mask_box
from matseg_nb.explain.forward import ProbFn
from matseg_nb.explain.kernels import make_perturbation
from matseg_nb.explain.randomisation import RandomisationResult
from matseg_nb.explain.rings import RingPartition, monte_carlo_p, ring_partition

#: shuffles of the ring-permutation test: (n + 1) x 0.05 is an integer, so the Monte Carlo test has exact size
#: 0.05 (Davison & Hinkley 1997, sec. 4.2.5), and its smallest p, 1/40 = 0.025, leaves a margin below 0.05
DEFAULT_RING_PERMUTATIONS = 39
#: cells per ring (:mod:`matseg_nb.explain.rings`): the narrowest rings that still shuffle (a value stays put
#: in 1 of 8 shuffles); wider rings let a pure proximity map pass (tests/test_explain_faithfulness.py)
CELLS_PER_RING = 8
DEFAULT_FRACTIONS = (0.02, 0.05, 0.1, 0.2)
BASELINES = ("random_pixels", "random_blocks", "distance_to_A")
BASELINE_TEXT = {"random_pixels": "random pixels", "random_blocks": "random blocks",
                 "distance_to_A": "distance to A"}


@dataclass
class BaselineTest:
    """One baseline: its ``scores`` (one per draw, mean l1 per A pixel), their mean curve over the
    fractions, and the empirical ``p_value`` of the heatmap's score against them."""

    name: str
    scores: list[float]
    mean_curve: list[float]
    p_value: float


@dataclass
class ConditionalTest:
    """The ring-permutation test: H's cell means (``cell_px`` squares) shuffled ``n_perm`` times within
    ``n_rings`` rings of distance to A (nearest distance ``ring_edges_px`` and spread ``ring_spans_px`` of
    each, ``cells_per_ring``); ``observed_score`` is the deletion score of H at cell
    resolution, ``scores`` those of the shuffles (same unit as :class:`BaselineTest`)."""

    n_perm: int
    n_rings: int
    cell_px: int
    ring_edges_px: list[float]
    ring_spans_px: list[float]
    cells_per_ring: list[int]
    observed_score: float
    scores: list[float]
    mean_curve: list[float]
    p_value: float
    name: str = "ring_permutation"


@dataclass
class FaithfulnessResult:
    """Outcome of :func:`faithfulness`. Scores and curves are in "change of probability mass inside A
    per A pixel" (sum over classes of |Z - Z'|, averaged over A's pixels)."""

    faithful: bool
    level: float
    n_draws: int
    fractions: list[float]
    perturbation: str
    perturbation_params: dict
    heatmap_kernel: str
    a_pixels: int
    image_pixels: int
    top_curve: list[float]
    top_score: float
    baselines: dict[str, BaselineTest]
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    conditional: ConditionalTest | None = None  # the ring-permutation test (None: not run)
    randomisation: RandomisationResult | None = None  # the model-randomisation check (None: not run)

    @property
    def beyond_proximity(self) -> bool | None:
        """Ring-permutation p <= level (None when the conditional test was not run)."""
        return None if self.conditional is None else self.conditional.p_value <= self.level

    def _span(self) -> str:
        return f"{100 * min(self.fractions):g}-{100 * max(self.fractions):g}% of the image"

    def conditional_sentence(self) -> str:
        """What the ring-permutation test means for the expert."""
        c = self.conditional
        rings = f"{c.n_rings} ring{'s' if c.n_rings > 1 else ''} of distance to A"
        if self.beyond_proximity:
            return (f"Beyond proximity to A, H points at pixels that change the prediction inside A: deleting "
                    f"its top pixels ({self._span()}, {self.perturbation} validation) changes {c.observed_score:.3g} "
                    f"of probability mass per A pixel, more than H shuffled within {rings} "
                    f"(ring-permutation p = {c.p_value:.3f}, {c.n_perm} shuffles).")
        return (f"H adds nothing shown beyond proximity to A: shuffled within {rings}, H changes the "
                f"prediction inside A by {float(np.mean(c.scores)):.3g} per A pixel on average, H itself by "
                f"{c.observed_score:.3g} (ring-permutation p = {c.p_value:.3f}, {c.n_perm} shuffles), so what H "
                f"ranks high may simply be what lies near A.")

    def baseline_sentence(self) -> str:
        """The unconditional baselines, reported apart: which H beats and which not."""
        def part(names):
            items = [f"{BASELINE_TEXT.get(n, n)} (p = {self.baselines[n].p_value:.3f})" for n in names]
            return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

        beats = [n for n, b in self.baselines.items() if b.p_value <= self.level]
        loses = [n for n in self.baselines if n not in beats]
        head = f"Unconditionally ({self.n_draws} draws each), deleting H's top pixels"
        if not loses:
            return (f"{head} changes the prediction more than {part(beats)}: faithful at level "
                    f"{self.level:g} against all three.")
        text = (f"{head} changes the prediction more than {part(beats)}, but not" if beats
                else f"{head} does not change the prediction")
        text += f" more than {part(loses)}"
        if "distance_to_A" in loses:
            text += " (pixels nearest A drive the prediction inside A, so that order is hard to beat)"
        return text + "."

    def sentences(self) -> list[str]:
        """The result as sentences: conditional test, unconditional baselines, randomisation, notes."""
        if self.conditional is None:  # results written before the conditional test existed
            parts = ", ".join(f"{BASELINE_TEXT.get(n, n)} p = {b.p_value:.3f}" for n, b in self.baselines.items())
            verdict = "faithful" if self.faithful else "not shown faithful"
            out = [f"H is {verdict} at level {self.level:g}: deleting its top pixels ({self.perturbation} "
                   f"validation, {self._span()}) changes {self.top_score:.3g} of probability mass per A pixel "
                   f"vs {self.n_draws} draws each of {parts}."]
        else:
            out = [self.conditional_sentence(), self.baseline_sentence()]
        if self.randomisation is not None:
            out.append(self.randomisation.sentence())
        if self.notes:
            out.append("Note: " + "; ".join(self.notes) + ".")
        return out

    def summary(self) -> str:
        """The sentences of :meth:`sentences` as one paragraph (CLI, notebook, report, JSON)."""
        return " ".join(self.sentences())

    def to_json(self) -> dict:
        """JSON-safe dict (``from_json`` restores it); includes ``summary``."""
        d = asdict(self)
        d["randomisation"] = None if self.randomisation is None else self.randomisation.to_json()
        return {**d, "beyond_proximity": self.beyond_proximity, "summary": self.summary()}

    @classmethod
    def from_json(cls, data: dict) -> FaithfulnessResult:
        d = {k: v for k, v in data.items() if k not in ("summary", "beyond_proximity")}
        keys = [k for k in BASELINES if k in d["baselines"]] + [k for k in d["baselines"] if k not in BASELINES]
        d["baselines"] = {k: BaselineTest(**d["baselines"][k]) for k in keys}  # JSON writers may sort keys
        if d.get("conditional") is not None:
            d["conditional"] = ConditionalTest(**d["conditional"])
        if d.get("randomisation") is not None:
            d["randomisation"] = RandomisationResult.from_json(d["randomisation"])
        return cls(**d)


def ranked(codes: np.ndarray, tie_break: np.ndarray) -> np.ndarray:
    """``np.lexsort((tie_break, codes))`` for a permutation ``tie_break`` of 0..n-1: the indices by ascending
    ``codes`` (n,), ties by ascending ``tie_break``, as one stable sort of the codes taken in tie-break order
    (a radix sort for 16-bit codes: 262 144 px in about 3 ms instead of 40 ms)."""
    by_tie = np.empty_like(tie_break)
    by_tie[tie_break] = np.arange(tie_break.size)
    return by_tie[np.argsort(codes[by_tie], kind="stable")]


def value_codes(values: np.ndarray) -> np.ndarray | None:
    """Dense integer ranks of ``values`` (0 = smallest, equal values equal; int16 when they fit), which sort
    as the values do; None when a value is not finite (then the caller sorts the values themselves)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        return None
    uniq, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int16 if uniq.size <= np.iinfo(np.int16).max else np.int32)


def _top_order(hmap: np.ndarray, rng: np.random.Generator, cells: np.ndarray | None = None) -> np.ndarray:
    """Pixels by descending ``hmap``, ties at random; with ``cells`` (H, W) cell index per pixel, ``hmap`` is
    one value per cell (the map ``hmap[cells]``, sorted through the cells' ranks)."""
    n = int(np.size(hmap) if cells is None else np.size(cells))
    tie = rng.permutation(n)
    codes = value_codes(-np.asarray(hmap, dtype=np.float64))
    if codes is not None:
        return ranked(codes if cells is None else codes[np.asarray(cells).ravel()], tie)
    flat = np.asarray(hmap, dtype=np.float64).ravel() if cells is None else np.asarray(hmap)[np.ravel(cells)]
    return np.lexsort((tie, -flat))  # descending value, random among ties


def _block_order(shape: tuple[int, int], block: int, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    oy, ox = rng.integers(0, block, size=2)
    by, bx = (np.arange(h) + oy) // block, (np.arange(w) + ox) // block
    block_id = (by[:, None] * (bx.max() + 1) + bx[None, :]).ravel()
    n_blocks = int(block_id.max()) + 1
    rank = rng.permutation(n_blocks).astype(np.int16 if n_blocks <= np.iinfo(np.int16).max else np.int64)
    return ranked(rank[block_id], rng.permutation(h * w))


def _distance_order(dist: np.ndarray, rng: np.random.Generator, codes: np.ndarray | None = None) -> np.ndarray:
    """Pixels nearest A first, ties at random; ``codes``: :func:`value_codes` of ``dist`` (computed once)."""
    codes = value_codes(dist) if codes is None else codes
    tie = rng.permutation(np.size(dist))
    return np.lexsort((tie, np.ravel(dist))) if codes is None else ranked(codes, tie)


def ring_permutation_orders(hmap: np.ndarray, rings: RingPartition, n_perm: int,
                            rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """([deletion order of H at the resolution of ``rings``' cells], [``n_perm`` orders of H's cell values
    shuffled within rings]); highest first, ties at random. Under the null, the first is exchangeable with
    the others, so any score of the orders gives an exact-valid :func:`monte_carlo_p`."""
    values = rings.cell_means(hmap)
    cells = rings.cell_of_pixel
    observed = [_top_order(values, rng, cells)]
    return observed, [_top_order(rings.permuted(values, rng), rng, cells) for _ in range(n_perm)]


def validation_perturbation(image: torch.Tensor, heatmap_kernel: str, window: int, seed: int):
    """The perturbation used for deletion: noise when H was built by ``blur``, else blur."""
    if heatmap_kernel == "blur":
        std = float(image.std()) or 0.1
        return make_perturbation("noise", image, window, std=std, seed=seed)
    return make_perturbation("blur", image, window, sigma=max(1.0, window / 4.0))


def faithfulness(model, image, mask, hmap, window: int = 16, heatmap_kernel: str = "blur",
                 fractions=DEFAULT_FRACTIONS, n_draws: int = 20, level: float = 0.05, seed: int = 0,
                 max_batch: int | None = None, device=None, progress: bool = False, cell: int | None = None,
                 n_perm: int = DEFAULT_RING_PERMUTATIONS, cells_per_ring: int = CELLS_PER_RING) -> FaithfulnessResult:
    """Test heatmap ``hmap`` (H, W) of ``model`` on ``image`` (C, H, W) for mask A ``mask`` (H, W)
    against ``n_draws`` draws of each baseline and, conditional on proximity, against ``n_perm`` shuffles
    of H within rings of distance to A (see module docstring); ``window`` (px) sizes the random blocks,
    and the blur; ``cell`` (px, default window / 4; pass the heatmap's stride) is the unit shuffled,
    ``cells_per_ring`` cells per ring; ``heatmap_kernel`` picks the validation perturbation.
    ``n_perm`` 0 skips the conditional test; ``max_batch``: perturbed images per forward pass (default
    :func:`deletion_batch`; the batch size changes no number beyond float32 rounding)."""
    if n_draws < 1:
        raise UserError(f"n_draws: expected >= 1, found {n_draws}")
    if n_perm < 0:
        raise UserError(f"n_perm: expected >= 0 ring permutations, found {n_perm}")
    fn = model if isinstance(model, ProbFn) else ProbFn(model, device=device, amp=False)
    x = torch.as_tensor(np.asarray(image, np.float32)).to(fn.device)
    x = x[None] if x.ndim == 2 else x
    a_np = np.asarray(mask) > 0
    if a_np.shape != tuple(x.shape[1:]) or np.shape(hmap) != a_np.shape:
        raise UserError(f"faithfulness: expected mask and heatmap of the image's shape {tuple(x.shape[1:])}, "
                        f"found {a_np.shape} and {np.shape(hmap)}")
    check_mask_extent(a_np, "mask A")
    notes = []
    a = torch.as_tensor(a_np.astype(np.float32), device=fn.device)
    pert = validation_perturbation(x, heatmap_kernel, window, seed)
    fracs = sorted({float(f) for f in fractions})
    rng = np.random.default_rng(seed)
    dist = ndimage.distance_transform_edt(~a_np)
    orders = {"top": [_top_order(hmap, rng)]}
    orders["random_pixels"] = [rng.permutation(a_np.size) for _ in range(n_draws)]
    orders["random_blocks"] = [_block_order(a_np.shape, int(window), rng) for _ in range(n_draws)]
    dist_codes = value_codes(dist)
    orders["distance_to_A"] = [_distance_order(dist, rng, dist_codes) for _ in range(n_draws)]
    rings = None
    if n_perm:
        rings = ring_partition(a_np, cell or max(1, int(window) // 4), cells_per_ring)
        orders["cells"], orders["rings"] = ring_permutation_orders(hmap, rings, n_perm,
                                                                   np.random.default_rng([seed, 1]))
    curves = deletion_curves(fn, x, a, pert.field, orders, fracs, max_batch, progress)
    top_curve = curves[("top", 0)]
    top = float(np.mean(top_curve))
    baselines = {}
    for name in BASELINES:
        per = np.array([curves[(name, d)] for d in range(n_draws)])
        scores = per.mean(axis=1)
        baselines[name] = BaselineTest(name, [float(v) for v in scores], [float(v) for v in per.mean(axis=0)],
                                       monte_carlo_p(top, scores))
    if 1.0 / (n_draws + 1) > level:
        notes.append(f"{n_draws} draws cannot reach p <= {level:g}; use more")
    conditional = None
    if rings is not None:
        per = np.array([curves[("rings", d)] for d in range(n_perm)])
        scores = per.mean(axis=1)
        obs = float(np.mean(curves[("cells", 0)]))
        conditional = ConditionalTest(
            n_perm=int(n_perm), n_rings=rings.n_rings, cell_px=rings.cell,
            ring_edges_px=[round(e, 2) for e in rings.ring_edges_px],
            ring_spans_px=[round(e, 2) for e in rings.ring_spans_px],
            cells_per_ring=np.bincount(rings.ring_of_cell, minlength=rings.n_rings).tolist(),
            observed_score=obs, scores=[float(v) for v in scores], mean_curve=[float(v) for v in per.mean(axis=0)],
            p_value=monte_carlo_p(obs, scores))
        if 1.0 / (n_perm + 1) > level:
            notes.append(f"{n_perm} ring permutations cannot reach p <= {level:g}; use more")
        if rings.n_rings == 1:
            notes.append("every cell lies within one ring of A, so the ring test only shuffles H's cells")
    return FaithfulnessResult(
        faithful=all(b.p_value <= level for b in baselines.values()), level=float(level), n_draws=int(n_draws),
        fractions=fracs, perturbation=pert.name, perturbation_params=pert.params, heatmap_kernel=heatmap_kernel,
        a_pixels=int(a_np.sum()), image_pixels=int(a_np.size), top_curve=top_curve, top_score=top,
        baselines=baselines, seed=int(seed), notes=notes, conditional=conditional)


#: perturbed whole images per forward pass on a CPU: 4 from 256 x 256 px (at 512 x 512 px, UNet-ResNet18 at
#: input_scale 0.5 on this 2-core CPU: 54, 44, 44, 56 ms per image in batches of 1, 2, 4, 8), 8 below
CPU_DELETION_BATCH = {256 * 256: 4, 0: 8}
CUDA_DELETION_BATCH = 8


def deletion_batch(fn: ProbFn, shape: tuple[int, int]) -> int:
    """Perturbed images of ``shape`` (H, W) px per forward pass of :func:`deletion_curves` on ``fn``'s device."""
    if fn.device.type == "cuda":
        return CUDA_DELETION_BATCH
    area = int(shape[0]) * int(shape[1])
    return next(b for least, b in sorted(CPU_DELETION_BATCH.items(), reverse=True) if area >= least)


def deletion_curves(fn: ProbFn, x: torch.Tensor, a: torch.Tensor, field: torch.Tensor, orders: dict[str, list],
                    fracs: list[float], max_batch: int | None = None,
                    progress: bool = False) -> dict[tuple[str, int], list]:
    """Deletion curves {(order name, draw): [l1 per A pixel at each fraction]}: for each order (pixel
    indices, first deleted first) and fraction f, the first f x H x W pixels of ``x`` (C, H, W) take the
    values of ``field`` (C, H, W) and ||Z*A - Z'*A||_1 / |A| is measured.

    Only A's bounding box of each prediction is computed (``fn``'s ``crop``: pixels outside A add nothing to
    the sum; a UNet/DeepLab decoder then runs on the box only, exactly), ``max_batch`` (default
    :func:`deletion_batch`) perturbed images per pass."""
    jobs = [(s, d, f) for s, lst in orders.items() for d in range(len(lst)) for f in fracs]
    npx, c = int(a.numel()), x.shape[0]
    batch = int(max_batch) if max_batch else deletion_batch(fn, tuple(a.shape))
    box = mask_box(a)
    a_box = a[box[0] : box[1], box[2] : box[3]]
    z = fn(x[None], crop=box)[0] * a_box
    n_a = float(a.sum())
    field_flat = field.reshape(c, -1)
    curves: dict[tuple[str, int], list[float]] = {}
    bar = _progress(len(jobs), "faithfulness", progress)
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        xb = x[None].repeat(len(chunk), 1, 1, 1)
        for b, (s, d, f) in enumerate(chunk):
            idx = torch.as_tensor(orders[s][d][: int(round(f * npx))], device=x.device)
            xb[b].reshape(c, -1)[:, idx] = field_flat[:, idx]
        zb = fn(xb, crop=box) * a_box
        l1 = ((z[None] - zb).abs().sum(dim=(1, 2, 3)) / n_a).double().cpu().numpy()
        for b, (s, d, _) in enumerate(chunk):
            curves.setdefault((s, d), []).append(float(l1[b]))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return curves


def forward_passes(n_fractions: int, n_draws: int, n_perm: int = DEFAULT_RING_PERMUTATIONS) -> int:
    """Whole-image forward passes of :func:`faithfulness` (H, the baselines, H at cell resolution, shuffles)."""
    return (1 + 3 * int(n_draws) + (int(n_perm) + 1 if n_perm else 0)) * int(n_fractions)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from matseg_nb.progress import progress_bar

    return progress_bar(total=total, desc=desc, unit="pass")
