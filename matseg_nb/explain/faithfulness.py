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
from matseg_nb.explain.forward import ProbFn
from matseg_nb.explain.kernels import make_perturbation

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

    def summary(self) -> str:
        """One sentence with the numbers, e.g. for the CLI, the notebook and the report."""
        parts = ", ".join(f"{BASELINE_TEXT.get(n, n)} p = {b.p_value:.3f}" for n, b in self.baselines.items())
        verdict = "faithful" if self.faithful else "not shown faithful"
        text = (f"H is {verdict} at level {self.level:g}: deleting its top pixels ({self.perturbation} "
                f"validation, {100 * min(self.fractions):g}-{100 * max(self.fractions):g}% of the image) changes "
                f"{self.top_score:.3g} of probability mass per A pixel vs {self.n_draws} draws each of "
                f"{parts}.")
        return text + (" Note: " + "; ".join(self.notes) if self.notes else "")

    def to_json(self) -> dict:
        """JSON-safe dict (``from_json`` restores it); includes ``summary``."""
        return {**asdict(self), "summary": self.summary()}

    @classmethod
    def from_json(cls, data: dict) -> FaithfulnessResult:
        d = {k: v for k, v in data.items() if k != "summary"}
        keys = [k for k in BASELINES if k in d["baselines"]] + [k for k in d["baselines"] if k not in BASELINES]
        d["baselines"] = {k: BaselineTest(**d["baselines"][k]) for k in keys}  # JSON writers may sort keys
        return cls(**d)


def _top_order(hmap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flat = np.asarray(hmap, dtype=np.float64).ravel()
    return np.lexsort((rng.permutation(flat.size), -flat))  # descending value, random among ties


def _block_order(shape: tuple[int, int], block: int, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    oy, ox = rng.integers(0, block, size=2)
    by, bx = (np.arange(h) + oy) // block, (np.arange(w) + ox) // block
    block_id = (by[:, None] * (bx.max() + 1) + bx[None, :]).ravel()
    rank = rng.permutation(block_id.max() + 1)[block_id]
    return np.lexsort((rng.permutation(h * w), rank))


def _distance_order(dist: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.lexsort((rng.permutation(dist.size), dist.ravel()))


def validation_perturbation(image: torch.Tensor, heatmap_kernel: str, window: int, seed: int):
    """The perturbation used for deletion: noise when H was built by ``blur``, else blur."""
    if heatmap_kernel == "blur":
        std = float(image.std()) or 0.1
        return make_perturbation("noise", image, window, std=std, seed=seed)
    return make_perturbation("blur", image, window, sigma=max(1.0, window / 4.0))


def faithfulness(model, image, mask, hmap, window: int = 16, heatmap_kernel: str = "blur",
                 fractions=DEFAULT_FRACTIONS, n_draws: int = 20, level: float = 0.05, seed: int = 0,
                 max_batch: int = 8, device=None, progress: bool = False) -> FaithfulnessResult:
    """Test heatmap ``hmap`` (H, W) of ``model`` on ``image`` (C, H, W) for mask A ``mask`` (H, W)
    against ``n_draws`` draws of each baseline (see module docstring); ``window`` (px) sizes the
    random blocks and the blur; ``heatmap_kernel`` picks the validation perturbation."""
    if n_draws < 1:
        raise UserError(f"n_draws: expected >= 1, found {n_draws}")
    fn = model if isinstance(model, ProbFn) else ProbFn(model, device=device, amp=False)
    x = torch.as_tensor(np.asarray(image, np.float32)).to(fn.device)
    x = x[None] if x.ndim == 2 else x
    a_np = np.asarray(mask) > 0
    if a_np.shape != tuple(x.shape[1:]) or np.shape(hmap) != a_np.shape:
        raise UserError(f"faithfulness: expected mask and heatmap of the image's shape {tuple(x.shape[1:])}, "
                        f"found {a_np.shape} and {np.shape(hmap)}")
    if not a_np.any():
        raise UserError("mask A: expected at least one pixel inside A, found an empty mask")
    notes = []
    if a_np.all():
        notes.append("A is the whole image, so the distance-to-A baseline is a random order")
    a = torch.as_tensor(a_np.astype(np.float32), device=fn.device)
    pert = validation_perturbation(x, heatmap_kernel, window, seed)
    fracs = sorted({float(f) for f in fractions})
    rng = np.random.default_rng(seed)
    dist = ndimage.distance_transform_edt(~a_np)
    orders = {"top": [_top_order(hmap, rng)]}
    orders["random_pixels"] = [rng.permutation(a_np.size) for _ in range(n_draws)]
    orders["random_blocks"] = [_block_order(a_np.shape, int(window), rng) for _ in range(n_draws)]
    orders["distance_to_A"] = [_distance_order(dist, rng) for _ in range(n_draws)]
    jobs = [(s, d, f) for s, lst in orders.items() for d in range(len(lst)) for f in fracs]
    npx, c = a_np.size, x.shape[0]
    z = fn(x[None])[0] * a
    n_a = float(a.sum())
    field_flat = pert.field.reshape(c, -1)
    curves: dict[tuple[str, int], list[float]] = {}
    bar = _progress(len(jobs), "faithfulness", progress)
    for start in range(0, len(jobs), max_batch):
        chunk = jobs[start : start + max_batch]
        xb = x[None].repeat(len(chunk), 1, 1, 1)
        for b, (s, d, f) in enumerate(chunk):
            idx = torch.as_tensor(orders[s][d][: int(round(f * npx))], device=fn.device)
            xb[b].reshape(c, -1)[:, idx] = field_flat[:, idx]
        zb = fn(xb) * a
        l1 = ((z[None] - zb).abs().sum(dim=(1, 2, 3)) / n_a).double().cpu().numpy()
        for b, (s, d, _) in enumerate(chunk):
            curves.setdefault((s, d), []).append(float(l1[b]))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    top_curve = curves[("top", 0)]
    top = float(np.mean(top_curve))
    baselines = {}
    for name in BASELINES:
        per = np.array([curves[(name, d)] for d in range(n_draws)])
        scores = per.mean(axis=1)
        p = float((1 + np.sum(scores >= top)) / (n_draws + 1))
        baselines[name] = BaselineTest(name, [float(v) for v in scores], [float(v) for v in per.mean(axis=0)], p)
    if 1.0 / (n_draws + 1) > level:
        notes.append(f"{n_draws} draws cannot reach p <= {level:g}; use more")
    return FaithfulnessResult(
        faithful=all(b.p_value <= level for b in baselines.values()), level=float(level), n_draws=int(n_draws),
        fractions=fracs, perturbation=pert.name, perturbation_params=pert.params, heatmap_kernel=heatmap_kernel,
        a_pixels=int(a_np.sum()), image_pixels=int(npx), top_curve=top_curve, top_score=top, baselines=baselines,
        seed=int(seed), notes=notes)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from matseg_nb.progress import progress_bar

    return progress_bar(total=total, desc=desc, unit="pass")
