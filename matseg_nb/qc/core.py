"""Fit a Forte-style QC model on reference embeddings and score query embeddings.

Reference points (tiles) carry a group label (their source image). The groups are split in two
halves with a seed: half A is the PRDC reference set, half B the detector-fitting queries (PRDC of
B against A). Reference k-NN radii never use neighbours from the same image (``exclude_same_image``), so
they measure the between-image spread. Every radius comes from the reference set: the query radius
s_k (recall, coverage) is the median reference radius, not a k-NN radius within the query batch as in
the public Forte code, so a tile scores exactly the same alone or in any batch (docs/qc.md). A is then scored against B as reference with the same
detectors ("calibration": out-of-sample typicality of reference images) and the deployment
threshold is a percentile of those calibration scores. Queries are always scored against A.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from matseg_nb.qc.detectors import make_detector
from matseg_nb.qc.evaluate import deployment_threshold
from matseg_nb.qc.prdc import PRDC_NAMES, knn_radii_sq, nn_ratio, prdc


def split_groups(groups: np.ndarray, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (A, B) over points: whole groups to A (``fraction`` of groups) or B.

    With a single group the points themselves are split at random.
    """
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    uniq = np.unique(groups)
    if len(uniq) >= 2:
        perm = rng.permutation(uniq)
        n_a = int(np.clip(round(len(uniq) * fraction), 1, len(uniq) - 1))
        a = np.isin(groups, perm[:n_a])
    else:
        a = np.zeros(len(groups), dtype=bool)
        a[rng.permutation(len(groups))[: max(1, int(round(len(groups) * fraction)))]] = True
    return a, ~a


def _standardize(blocks: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name, b in blocks.items():
        sd = b.std(0)
        sd[sd < 1e-12] = 1.0
        out[name] = (b.mean(0), sd)
    return out


@dataclass
class QCModel:
    """A fitted QC model: per-extractor standardisation, PRDC reference set, detectors, thresholds."""

    k: int
    stats: dict[str, tuple[np.ndarray, np.ndarray]]
    ref_a: dict[str, np.ndarray]
    ref_a_radii_sq: dict[str, torch.Tensor]
    exclude_same_image: bool
    with_nn_ratio: bool
    detectors: dict[str, object]
    thresholds: dict[str, float]
    percentile: float
    calibration_scores: dict[str, np.ndarray]
    calibration_groups: np.ndarray
    fit_info: dict = field(default_factory=dict)

    def features(self, blocks: dict[str, np.ndarray], groups: np.ndarray) -> np.ndarray:
        """Features (M, F) of one query batch (tiles with image ``groups``) vs half A: per extractor the
        4 PRDC statistics (+ log nn-ratio when ``with_nn_ratio``)."""
        qg = np.asarray(groups) if self.exclude_same_image else None
        z = {n: (np.asarray(blocks[n], dtype=np.float64) - mu) / sd for n, (mu, sd) in self.stats.items()}
        del qg  # query radii come from the reference set (batch independence)
        return _features(self.ref_a, self.ref_a_radii_sq, z, self.k, None, self.with_nn_ratio)

    def score(self, blocks: dict[str, np.ndarray], groups: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """({detector: typicality (M,)}, PRDC features (M, 4E)) for query tiles grouped by image."""
        feats = self.features(blocks, groups)
        scores = {n: np.asarray(d.score(feats), dtype=np.float64) for n, d in self.detectors.items()}
        return {n: np.nan_to_num(v, nan=-1e300, posinf=1e300, neginf=-1e300) for n, v in scores.items()}, feats

    def feature_names(self) -> list[str]:
        extra = ("log_nn_ratio",) if self.with_nn_ratio else ()
        return [f"{e}.{p}" for e in self.stats for p in (*PRDC_NAMES, *extra)]


def _features(ref: dict, radii_sq: dict, query: dict, k: int, query_groups, with_nn_ratio: bool,
              reference_groups=None) -> np.ndarray:
    """PRDC (+ log nn-ratio) of ``query`` vs ``ref`` per extractor; every radius from the reference set.

    Non-finite values (none expected) are replaced by finite bounds so detectors never see inf/NaN."""
    del query_groups
    cols = []
    for n in query:
        r2 = radii_sq[n] if radii_sq is not None else knn_radii_sq(torch.as_tensor(ref[n]), k, groups=reference_groups)
        s2 = float(torch.as_tensor(r2).median()) if len(r2) else 0.0
        cols.append(prdc(ref[n], query[n], k, None, r2, query_radius_sq=s2))
        if with_nn_ratio:
            cols.append(np.log(nn_ratio(ref[n], query[n], r2) + 1e-12)[:, None])
    return np.nan_to_num(np.concatenate(cols, axis=1), nan=0.0, posinf=1e6, neginf=-1e6)


def fit_qc(
    blocks: dict[str, np.ndarray],
    groups: np.ndarray,
    k: int = 5,
    detectors: tuple[str, ...] = ("gmm", "ocsvm", "kde"),
    fraction: float = 0.5,
    percentile: float = 5.0,
    seed: int = 0,
    detector_options: dict[str, dict] | None = None,
    exclude_same_image: bool = True,
    with_nn_ratio: bool = True,
) -> QCModel:
    """Fit on reference embeddings ``blocks`` {extractor: (N, F)} with image ``groups`` (N,)."""
    groups = np.asarray(groups)
    stats = _standardize(blocks)
    z = {n: (np.asarray(b, dtype=np.float64) - stats[n][0]) / stats[n][1] for n, b in blocks.items()}
    a, b = split_groups(groups, fraction, seed)
    ref_a = {n: v[a] for n, v in z.items()}
    ref_b = {n: v[b] for n, v in z.items()}
    ga, gb = (groups[a], groups[b]) if exclude_same_image else (None, None)
    radii_a = {n: knn_radii_sq(torch.as_tensor(v), k, groups=ga) for n, v in ref_a.items()}
    fit_feats = _features(ref_a, radii_a, ref_b, k, gb, with_nn_ratio)
    cal_feats = _features(ref_b, None, ref_a, k, ga, with_nn_ratio, reference_groups=gb)
    options = detector_options or {}
    fitted = {d: make_detector(d, **options.get(d, {})).fit(fit_feats) for d in detectors}
    cal = {d: np.asarray(det.score(cal_feats), dtype=np.float64) for d, det in fitted.items()}
    thresholds = {d: deployment_threshold(s, percentile) for d, s in cal.items()}
    info = {
        "n_reference_points": int(len(groups)),
        "n_reference_groups": int(len(np.unique(groups))),
        "n_prdc_reference": int(a.sum()),
        "n_detector_fit": int(b.sum()),
        "prdc_reference_groups": sorted(map(str, np.unique(groups[a]))),
        "detector_params": {d: getattr(det, "params", {}) for d, det in fitted.items()},
        "fit_feature_mean": fit_feats.mean(0).tolist(),
    }
    return QCModel(k, stats, ref_a, radii_a, exclude_same_image, with_nn_ratio, fitted, thresholds, percentile, cal, groups[a], info)
