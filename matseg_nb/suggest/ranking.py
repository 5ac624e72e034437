"""Which unlabelled images to annotate next: a stated mix of atypicality, uncertainty and diversity (no I/O).

Per candidate image (all three in [0, 1], higher = more worth annotating):

* **atypicality** = 1 - the image's QC typicality (its median crop's conformal p-value against the
  held-out crops: the fraction of held-out crops at most as typical, :mod:`matseg_nb.qc.screening`);
* **uncertainty** = the fraction of held-out images whose mean pixel entropy of the model's softmax is
  below the candidate's (ties count half): a percentile against images the model was not trained on, so a
  typical image sits anywhere in [0, 1] and one the model is unsure of near 1;
* **diversity** = k-center greedy (Sener & Savarese, ICLR 2018) in the QC feature space (per-image mean of
  the crop features, standardised on the training crops): at each pick, a candidate's distance to the
  nearest labelled or already picked image, over the largest distance of any candidate to the labelled
  images (so it shrinks as picks cover the space).

Picks are greedy: each step takes the candidate with the highest
``weights.atypicality * a + weights.uncertainty * u + weights.diversity * d`` (ties: name order), so
once an odd image is picked, its near-duplicates lose their diversity share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class SuggestWeights:
    """The mix; normalised to sum 1. Default: atypicality 0.4, uncertainty 0.4, diversity 0.2."""

    atypicality: float = 0.4
    uncertainty: float = 0.4
    diversity: float = 0.2

    def normalised(self) -> SuggestWeights:
        w = np.array([self.atypicality, self.uncertainty, self.diversity], dtype=float)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"expected non-negative weights with a positive sum, found {tuple(w)}")
        return SuggestWeights(*(w / w.sum()))

    def words(self) -> str:
        w = self.normalised()
        return (f"{w.atypicality:.2f} x atypicality + {w.uncertainty:.2f} x uncertainty + "
                f"{w.diversity:.2f} x diversity (k-center greedy)")


@dataclass
class Suggestion:
    """One ranked candidate: ``rank`` 1 = annotate first; the three signals and the mix at its pick."""

    rank: int
    image: str
    score: float
    atypicality: float
    uncertainty: float
    diversity: float
    mean_entropy: float
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def percentile_against(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(m,) fraction of ``reference`` below each value, ties counted half (0.5 everywhere for no reference)."""
    ref = np.asarray(reference, dtype=float)
    v = np.asarray(values, dtype=float)
    if ref.size == 0:
        return np.full(v.shape, 0.5)
    return ((ref[None, :] < v[:, None]).sum(1) + 0.5 * (ref[None, :] == v[:, None]).sum(1)) / ref.size


def _reason(a: float, u: float, d: float) -> str:
    parts = []
    if a >= 0.9:
        parts.append("unlike the held-out images")
    if u >= 0.9:
        parts.append("the model is less sure than on almost every held-out image")
    if d >= 0.9:
        parts.append("as far from the labelled and picked images as any candidate")
    return "; ".join(parts) or "highest remaining mix"


def rank_candidates(names: list[str], atypicality: np.ndarray, uncertainty: np.ndarray, features: np.ndarray,
                    labelled_features: np.ndarray, mean_entropy: np.ndarray, n: int,
                    weights: SuggestWeights = SuggestWeights()) -> list[Suggestion]:
    """The ``n`` best candidates in pick order (k-center greedy on the mix).

    ``atypicality``, ``uncertainty``, ``mean_entropy`` (m,); ``features`` (m, F) per-image QC features in
    comparable units (:func:`matseg_nb.suggest.signals.image_features`); ``labelled_features`` (n_l, F) of the
    images the model was trained on (the initial centres)."""
    w = weights.normalised()
    m = len(names)
    a, u = np.asarray(atypicality, float), np.asarray(uncertainty, float)
    cand = np.asarray(features, float)
    lab = np.asarray(labelled_features, float).reshape(-1, cand.shape[1])
    nearest = (np.sqrt(((cand[:, None, :] - lab[None, :, :]) ** 2).sum(-1)).min(1) if len(lab)
               else np.full(m, np.inf))
    finite = nearest[np.isfinite(nearest)]
    pairwise = np.sqrt(((cand[:, None, :] - cand[None, :, :]) ** 2).sum(-1)) if m else np.zeros((0, 0))
    scale = finite.max() if finite.size else (pairwise.max() if pairwise.size else 0.0)
    scale = scale if scale > 0 else 1.0
    left = [int(i) for i in np.argsort(names, kind="stable")]
    picks: list[Suggestion] = []
    while left and len(picks) < n:
        d = np.minimum(1.0, nearest[left] / scale)
        score = w.atypicality * a[left] + w.uncertainty * u[left] + w.diversity * d
        k = int(np.argmax(score))  # first maximum: name order breaks ties
        j = left.pop(k)
        picks.append(Suggestion(len(picks) + 1, names[j], float(score[k]), float(a[j]), float(u[j]), float(d[k]),
                                float(mean_entropy[j]), _reason(float(a[j]), float(u[j]), float(d[k]))))
        nearest = np.minimum(nearest, np.sqrt(((cand - cand[j]) ** 2).sum(1)))
    return picks
