"""The QC model, statistics only (no I/O): the Forte-style fit, the scoring and the typicality key.

Fit (:func:`fit_qc`) on reference embeddings, score query embeddings (:meth:`QCModel.score`), order crops
by the typicality key (:func:`typicality_key`) and turn keys into per-crop and per-image typicality
(:meth:`QCModel.typicality`, conformal p-values against the calibration crops' keys). Every score a person
sees -- screening, validation AUROCs, ``scores.csv``, the deployment thresholds -- uses this key.

Reference points (tiles) carry a group label (their source image). The groups are split in two
halves with a seed: half A is the PRDC reference set, half B the detector-fitting queries (PRDC of
B against A). Reference k-NN radii never use neighbours from the same image (``exclude_same_image``), so
they measure the between-image spread. Every radius comes from the reference set: the query radius
s_k (recall, coverage) is the median reference radius, not a k-NN radius within the query batch as in
the public Forte code, so a tile scores exactly the same alone or in any batch (docs/qc.md). A is then scored against B as reference with the same
detectors ("calibration": out-of-sample typicality of reference images) and the deployment
threshold is a percentile of those calibration images' typicality. Queries are always scored against A.

A crop's typicality key is (inside the reference support, detector score, minus the log nn-ratio) compared
lexicographically: Forte's PRDC features are all 0 outside the support, so there the detectors cannot
order crops and the distance to the support does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from matseg_nb.qc.conformal import conformal_pvalues
from matseg_nb.qc.detectors import make_detector
from matseg_nb.qc.evaluate import deployment_threshold
from matseg_nb.qc.prdc import PRDC_NAMES, knn_radii_sq, nn_ratio, prdc


def typicality_key(detector_score: np.ndarray, log_nn_ratio: np.ndarray) -> np.ndarray:
    """(T, 3) lexicographic typicality key of T crops (higher = more typical).

    ``detector_score`` (T,); ``log_nn_ratio`` (T, E): per extractor, log of the distance to the nearest
    reference crop over that crop's k-NN radius. Column 0: 1 inside the reference support (mean log
    nn-ratio <= 0, i.e. within the neighbour's k-NN ball in the geometric mean over extractors), 0 outside;
    column 1: the detector score inside, minus the mean log nn-ratio outside (PRDC features, and so the
    detectors, saturate there: crops farther from the support are less typical); column 2: minus the mean
    log nn-ratio (breaks exact ties, e.g. a GMM floor)."""
    sc = np.asarray(detector_score, dtype=float)
    nn = np.asarray(log_nn_ratio, dtype=float).reshape(len(sc), -1)
    dist = nn.mean(1) if nn.shape[1] else np.zeros(len(sc))
    inside = dist <= 0
    return np.c_[inside.astype(float), np.where(inside, sc, -dist), -dist]


def tile_keys(scores: dict[str, np.ndarray], features: np.ndarray, feature_names: list[str]
              ) -> dict[str, np.ndarray]:
    """{detector: (T, 3) :func:`typicality_key` of T crops} from :meth:`QCModel.score` output.

    ``features`` (T, F) with column names ``feature_names``; the ``*.log_nn_ratio`` columns give the
    distance to the support (none: every crop counts as inside, the key orders by the score alone)."""
    nn_cols = [i for i, n in enumerate(feature_names) if n.endswith("log_nn_ratio")]
    return {d: typicality_key(s, np.asarray(features)[:, nn_cols]) for d, s in scores.items()}


def per_image(values: np.ndarray, groups: np.ndarray, n_images: int) -> list[np.ndarray]:
    """``values`` (T, ...) of crops split by their image index ``groups`` (T,) into ``n_images`` arrays."""
    g = np.asarray(groups)
    return [np.asarray(values)[g == i] for i in range(n_images)]


def image_typicality(calibration_keys: np.ndarray, keys: list[np.ndarray]) -> np.ndarray:
    """Per image (len(keys),) its typicality in [0, 1]: the median conformal p-value of its crops' keys
    (T_i, K) against ``calibration_keys`` (N, K) -- the screening's per-image typicality (NaN: no crops)."""
    return np.array([float(np.median(conformal_pvalues(calibration_keys, k))) if len(k) else float("nan")
                     for k in keys])


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
    #: detector -> (N, 3) typicality keys of the calibration crops (half A scored against half B)
    calibration_keys: dict[str, np.ndarray] = field(default_factory=dict)

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

    def keys(self, blocks: dict[str, np.ndarray], groups: np.ndarray, detectors: tuple[str, ...] | None = None
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """({detector: (M, 3) typicality keys}, {detector: (M,) raw detector scores}) of M query crops."""
        scores, feats = self.score(blocks, groups)
        if detectors is not None:
            scores = {d: scores[d] for d in detectors}
        return tile_keys(scores, feats, self.feature_names()), scores

    def typicality(self, detector: str, keys: list[np.ndarray]) -> np.ndarray:
        """Per image its typicality in [0, 1] (:func:`image_typicality` against the calibration crops)."""
        return image_typicality(self.calibration_keys[detector], keys)

    def crop_typicality(self, detector: str, keys: np.ndarray) -> np.ndarray:
        """Per crop (M,) its conformal p-value in (0, 1] against the calibration crops' keys."""
        return conformal_pvalues(self.calibration_keys[detector], keys)

    def calibration_image_typicality(self, detector: str) -> np.ndarray:
        """Per calibration image its typicality against the other calibration images' crops (leave one
        image out, so an image is not compared with itself)."""
        keys, groups = self.calibration_keys[detector], self.calibration_groups
        return np.array([float(np.median(conformal_pvalues(keys[_others(groups, g)], keys[groups == g])))
                         for g in np.unique(groups)])

    def calibrate(self, keys: dict[str, np.ndarray], groups: np.ndarray) -> None:
        """Use other calibration crops: ``keys`` {detector: (N, 3) typicality keys} of N crops with image
        labels ``groups`` (N,), e.g. the validation split's, which neither the QC model nor the segmentation
        model was fitted on; the deployment thresholds follow."""
        self.calibration_keys = {d: np.asarray(k, dtype=float) for d, k in keys.items()}
        self.calibration_groups = np.asarray(groups)
        self.thresholds = {d: deployment_threshold(self.calibration_crop_typicality(d), self.percentile)
                           for d in self.calibration_keys}

    def calibration_crop_typicality(self, detector: str) -> np.ndarray:
        """Per calibration crop its conformal p-value against the other calibration images' crops."""
        keys, groups = self.calibration_keys[detector], self.calibration_groups
        out = np.empty(len(keys))
        for g in np.unique(groups):
            out[groups == g] = conformal_pvalues(keys[_others(groups, g)], keys[groups == g])
        return out


def _others(groups: np.ndarray, g) -> np.ndarray:
    """Mask of the crops of images other than ``g`` (all crops when there is only one image)."""
    return groups != g if len(np.unique(groups)) > 1 else np.ones(len(groups), dtype=bool)


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
    names = [f"{e}.{p}" for e in stats for p in (*PRDC_NAMES, *(("log_nn_ratio",) if with_nn_ratio else ()))]
    cal_keys = tile_keys({d: np.nan_to_num(s, nan=-1e300, posinf=1e300, neginf=-1e300) for d, s in cal.items()},
                         cal_feats, names)
    info = {
        "n_reference_points": int(len(groups)),
        "n_reference_groups": int(len(np.unique(groups))),
        "n_prdc_reference": int(a.sum()),
        "n_detector_fit": int(b.sum()),
        "prdc_reference_groups": sorted(map(str, np.unique(groups[a]))),
        "detector_params": {d: getattr(det, "params", {}) for d, det in fitted.items()},
        "fit_feature_mean": fit_feats.mean(0).tolist(),
    }
    model = QCModel(k, stats, ref_a, radii_a, exclude_same_image, with_nn_ratio, fitted, {}, percentile, cal,
                    groups[a], info)
    model.calibrate(cal_keys, groups[a])
    return model


@dataclass
class ScoredImages:
    """One image set scored by a :class:`QCModel`, per detector: ``keys`` per image (T_i, 3) typicality
    keys, ``crops`` per image (T_i,) raw detector scores, ``image`` (n,) typicality in [0, 1] and ``tile``
    (T,) each crop's conformal p-value (both against the calibration crops' keys)."""

    keys: dict[str, list[np.ndarray]]
    crops: dict[str, list[np.ndarray]]
    image: dict[str, np.ndarray]
    tile: dict[str, np.ndarray]

    def inside_support_fraction(self, detector: str) -> float | None:
        """Fraction of the set's crops inside the reference k-NN support (key column 0)."""
        inside = [k[:, 0] for k in self.keys.get(detector, [])]
        return float(np.concatenate(inside).mean()) if inside else None


def score_images(model: QCModel, blocks: dict[str, np.ndarray], groups: np.ndarray, n_images: int) -> ScoredImages:
    """:class:`ScoredImages` of ``n_images`` images whose crops' features are ``blocks`` with image ``groups``."""
    keys, raw = model.keys(blocks, groups)
    return ScoredImages({d: per_image(k, groups, n_images) for d, k in keys.items()},
                        {d: per_image(s, groups, n_images) for d, s in raw.items()},
                        {d: model.typicality(d, per_image(k, groups, n_images)) for d, k in keys.items()},
                        {d: model.crop_typicality(d, k) for d, k in keys.items()})
