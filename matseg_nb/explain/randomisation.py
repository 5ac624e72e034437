"""Model-randomisation sanity check (Adebayo et al., NeurIPS 2018, "Sanity checks for saliency maps";
Quantus' MPRT): a heatmap that explains what the model learnt must change when the learnt weights go.

Cascade, from the output inward (:func:`cascade_steps`): the decoder head, then head + decoder, then head +
decoder + the encoder's last stage are re-initialised (each layer's own ``reset_parameters``, seeded;
BatchNorm statistics reset too). At each step H is recomputed with the same kernel, window and stride on up
to ``max_locations`` grid locations whose window touches A (evenly spread over them; there proximity to A
is the same for every location, so the comparison is not dominated by A's geometry) and compared with the
original H at those locations by Spearman's rank correlation rho *given each window's overlap with A*
(partial: both rankings' linear dependence on the rank of |window ∩ A| is removed first). Any model's H
grows with how much of A a window covers (on the demo's boundary A, H's rank correlation with that overlap
is 0.84), so without this the check would compare A's shape with itself; the raw rho is reported too.

Verdict from the last (most randomised) step, with a 95 % interval for rho (Fisher z, standard error
sqrt(1.06 / (n - 3)), Fieller, Hartley & Pearson 1957):

* ``differs``: the interval lies below :data:`SIMILARITY_THRESHOLD` (0.5): the randomised model's map
  shares less than a quarter (rho^2 < 0.25) of H's rank variance, so H depends on the trained weights;
* ``similar``: the interval lies at or above 0.5: H survives the loss of what the model learnt, so it
  reflects the image and A's shape more than the model (the failure Adebayo et al. report for edge-like maps);
* ``undecided``: the interval straddles 0.5 (or fewer than 6 locations); the sentence says how many
  locations would decide at the rho found (:func:`locations_to_decide`).

0.5 sits between the two planted cases of ``tests/test_explain_randomisation.py``: a feature-fixed model
whose H keeps its ranking under randomisation (rho about 1) and a learnt model whose H does not (rho near 0).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import stats
from torch import nn

SIMILARITY_THRESHOLD = 0.5
DEFAULT_LOCATIONS = 48


@dataclass
class RandomisationStep:
    """One cascade step: ``label``, the module names re-initialised and the rank correlation ``spearman``
    of H with the randomised model's H over ``n_locations`` locations given their overlap with A, with its
    95 % interval; ``spearman_raw``: the same without the overlap removed."""

    label: str
    modules: list[str]
    spearman: float
    ci_low: float
    ci_high: float
    n_locations: int
    spearman_raw: float = float("nan")


@dataclass
class RandomisationResult:
    """Outcome of :func:`model_randomisation`: the cascade's ``steps`` and the ``verdict`` of the last
    (``differs`` / ``similar`` / ``undecided``) against ``threshold``."""

    steps: list[RandomisationStep]
    verdict: str
    threshold: float = SIMILARITY_THRESHOLD
    seed: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    available_locations: int = 0  # grid locations whose window touches A (the sample is drawn from these)

    def sentence(self) -> str:
        """What the check means for the expert, with the numbers."""
        last = self.steps[-1]
        if not np.isfinite(last.spearman):
            return (f"Model-randomisation check undecided: H or the randomised model's H is constant on the "
                    f"{last.n_locations} locations on A, so there is no ranking to compare.")
        rho = (f"rank correlation {last.spearman:.2f} with H over {last.n_locations} locations on A, given "
               f"their overlap with A (95% CI {last.ci_low:.2f} to {last.ci_high:.2f}; "
               f"{last.spearman_raw:.2f} without)")
        earlier = "; ".join(f"{s.label}: {s.spearman:.2f}" for s in self.steps[:-1])
        tail = f" (earlier steps, {earlier})" if earlier else ""
        with_ = f"with the model's {last.label} re-initialised"
        if self.verdict == "differs":
            return (f"H depends on what the model learnt: {with_}, the map has {rho}, below "
                    f"{self.threshold:g}{tail}.")
        if self.verdict == "similar":
            return (f"Model-randomisation check failed: {with_}, the map keeps {rho}, at least "
                    f"{self.threshold:g}{tail}, so H reflects the image and A's shape more than what the "
                    f"model learnt.")
        need = locations_to_decide(last.spearman, self.threshold)
        decide = (f"about {need} locations on A would decide (--randomisation-locations {need})"
                  if need <= self.available_locations else
                  f"about {need} locations on A would decide, more than the {self.available_locations} at "
                  f"this stride (a finer stride has more)")
        return (f"Model-randomisation check undecided: {with_}, the map has {rho}, which straddles "
                f"{self.threshold:g}{tail}; {decide}.")

    def to_json(self) -> dict:
        return {**asdict(self), "sentence": self.sentence()}

    @classmethod
    def from_json(cls, data: dict) -> RandomisationResult:
        d = {k: v for k, v in data.items() if k != "sentence"}
        d["steps"] = [RandomisationStep(**s) for s in d["steps"]]
        return cls(**d)


def _outermost(names: list[str], suffix: str) -> list[str]:
    hits = [n for n in names if n == suffix or n.endswith("." + suffix)]
    return [n for n in hits if not any(n != o and n.startswith(o + ".") for o in hits)]


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def _last_stage(name: str, module: nn.Module) -> str:
    """The encoder's last child with parameters (descending through single wrappers, e.g. timm's ``model``)."""
    while True:
        kids = [(n, c) for n, c in module.named_children() if _has_params(c)]
        if not kids:
            return name
        if len(kids) > 1:
            n, _ = kids[-1]
            return f"{name}.{n}" if name else n
        n, module = kids[0]
        name = f"{name}.{n}" if name else n


def cascade_steps(model: nn.Module) -> list[tuple[str, list[str]]]:
    """[(label, module names)] re-initialised cumulatively from the output inward: smp-style models
    (``segmentation_head``, ``decoder``, ``encoder``, also inside wrappers and ensembles) give head; head +
    decoder; head + decoder + last encoder stage. Other models: the last 1, 2, 3 top-level children that
    have parameters."""
    mods = dict(model.named_modules())
    names = list(mods)
    heads, decoders, encoders = (_outermost(names, s) for s in ("segmentation_head", "decoder", "encoder"))
    encoders = [e for e in encoders if _has_params(mods[e])]
    if heads and decoders:
        steps = [("decoder head", heads), ("head and decoder", heads + decoders)]
        if encoders:
            steps.append(("head, decoder and last encoder stage",
                          heads + decoders + [_last_stage(e, mods[e]) for e in encoders]))
        return steps
    kids = [n for n, c in model.named_children() if _has_params(c)][::-1]
    if not kids:
        return []
    return [(f"last {k} layer{'s' if k > 1 else ''} ({', '.join(kids[:k])})", kids[:k])
            for k in range(1, min(3, len(kids)) + 1)]


def randomised_copy(model: nn.Module, module_names: list[str], seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with every layer inside ``module_names`` re-initialised (seeded)."""
    twin = copy.deepcopy(model)
    mods = dict(twin.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in module_names:
            for m in mods[name].modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
    return twin.eval()


def build_twin(model: nn.Module, module_names: list[str], make_fn: Callable | None = None,
               seed: int = 0) -> tuple[Callable | nn.Module, float]:
    """One cascade step's copy (:func:`randomised_copy` of ``module_names``) as ``make_fn(copy)`` (the copy
    itself without ``make_fn``), and the seconds it took: the per-step set-up :func:`model_randomisation`
    pays before its heatmap (:func:`matseg_nb.explain.pipeline.choose_grid` prices it; pass the result on
    as ``prebuilt`` so it is not built twice)."""
    import time

    t = time.perf_counter()
    twin = randomised_copy(model, module_names, seed)
    fn = make_fn(twin) if make_fn is not None else twin
    return fn, time.perf_counter() - t


def partial_spearman(x: np.ndarray, y: np.ndarray, covariate: np.ndarray) -> float:
    """Spearman's rho of ``x`` and ``y`` given ``covariate`` (all (n,)): Pearson's r of the residuals of
    their ranks after a least-squares line on the covariate's ranks (NaN when a residual is constant)."""
    rx, ry, rc = (stats.rankdata(v) for v in (x, y, covariate))
    design = np.column_stack([np.ones_like(rc), rc])
    res = [r - design @ np.linalg.lstsq(design, r, rcond=None)[0] for r in (rx, ry)]
    if min(float(np.std(r)) for r in res) < 1e-9 * len(rx):
        return float("nan")
    return float(np.corrcoef(res[0], res[1])[0, 1])


def spearman_interval(rho: float, n: int, z95: float = 1.959964, controls: int = 0) -> tuple[float, float]:
    """95 % interval of Spearman's rho from n pairs (Fisher z, se = sqrt(1.06 / (n - 3 - controls)),
    ``controls``: covariates partialled out)."""
    if n - controls < 5 or not np.isfinite(rho):
        return -1.0, 1.0
    z = math.atanh(min(max(rho, -0.999999), 0.999999))
    half = z95 * math.sqrt(1.06 / (n - 3 - controls))
    return math.tanh(z - half), math.tanh(z + half)


def locations_to_decide(rho: float, threshold: float = SIMILARITY_THRESHOLD, controls: int = 1,
                        z95: float = 1.959964) -> int:
    """Locations n at which the 95 % interval of :func:`spearman_interval` around ``rho`` would exclude
    ``threshold``: n = 3 + controls + 1.06 (z95 / |atanh(rho) - atanh(threshold)|)^2 (rounded up)."""
    gap = abs(math.atanh(min(max(rho, -0.999999), 0.999999)) - math.atanh(threshold))
    return 3 + controls + math.ceil(1.06 * (z95 / max(gap, 1e-3)) ** 2)


def verdict(low: float, high: float, threshold: float = SIMILARITY_THRESHOLD) -> str:
    return "differs" if high < threshold else "similar" if low >= threshold else "undecided"


def model_randomisation(model: nn.Module, image: np.ndarray, mask: np.ndarray, grid: np.ndarray,
                        valid: np.ndarray, window: int, stride: int, kernel: str = "blur",
                        kernel_params: dict | None = None, make_fn: Callable | None = None,
                        max_locations: int = DEFAULT_LOCATIONS, seed: int = 0,
                        threshold: float = SIMILARITY_THRESHOLD, max_batch: int | None = None,
                        prebuilt: dict[tuple[str, ...], Callable] | None = None) -> RandomisationResult:
    """Run the cascade (module docstring) for H's location grid ``grid`` (nH, nW) (``valid``: computed) of
    ``model`` on ``image`` (C, H, W) with A ``mask`` (H, W); ``make_fn(model)`` builds the probability
    function H used (default: the whole-image ``ProbFn``); ``prebuilt``: {module names: the probability
    function of that step's copy} already built by :func:`build_twin` with this ``seed`` (used, then dropped)."""
    import time

    from matseg_nb.explain.grid import grid_locations, region_grid_mask
    from matseg_nb.explain.heatmap import heatmap

    t0 = time.perf_counter()
    a = np.asarray(mask) > 0
    on_a = np.argwhere(region_grid_mask(a, window, stride) & np.asarray(valid, bool))
    pick = np.unique(np.linspace(0, len(on_a) - 1, num=min(max_locations, len(on_a))).round().astype(int))
    locs = [tuple(int(v) for v in on_a[k]) for k in pick] if len(on_a) else []
    original = np.array([grid[i, j] for i, j in locs], dtype=np.float64)
    ys, xs = grid_locations(a.shape, window, stride)
    overlap = np.array([a[ys[i]:ys[i] + window, xs[j]:xs[j] + window].sum() for i, j in locs], dtype=np.float64)
    steps = []
    prebuilt = dict(prebuilt or {})
    for label, names in cascade_steps(model):
        fn = prebuilt.pop(tuple(names), None)
        if fn is None:
            fn = build_twin(model, names, make_fn, seed)[0]
        res = heatmap(fn, image, a, kernel=kernel, window=window, stride=stride, kernel_params=kernel_params,
                      locations=locs, max_batch=max_batch)
        other = np.array([res.grid[i, j] for i, j in locs], dtype=np.float64)
        raw = float(stats.spearmanr(original, other).statistic) if len(locs) >= 3 else float("nan")
        rho = partial_spearman(original, other, overlap) if np.isfinite(raw) else float("nan")
        low, high = spearman_interval(rho, len(locs), controls=1)
        steps.append(RandomisationStep(label, list(names), rho, low, high, len(locs), raw))
    notes = []
    if not steps:
        notes.append("no layers with parameters to re-initialise")
        return RandomisationResult([RandomisationStep("none", [], float("nan"), -1.0, 1.0, len(locs))],
                                   "undecided", threshold, seed, time.perf_counter() - t0, notes, int(len(on_a)))
    last = steps[-1]
    return RandomisationResult(steps, verdict(last.ci_low, last.ci_high, threshold), threshold, seed,
                               round(time.perf_counter() - t0, 2), notes, int(len(on_a)))
