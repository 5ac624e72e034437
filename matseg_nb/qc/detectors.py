"""Density models fitted on reference PRDC features; ``score`` = typicality (higher = more typical).

Registry :data:`DETECTORS`: ``gmm`` (Gaussian mixture on standardised features, full covariance,
components chosen by BIC in 1..max_components), ``ocsvm`` (RBF one-class SVM on standardised features), ``kde`` (Gaussian
kernel density on standardised features, bandwidth by Scott's rule or 5-fold CV).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM


class _Standardizer:
    """Column z-scoring with a floor on the scale (PRDC columns can be constant on the reference)."""

    def fit(self, x: np.ndarray, floor: float = 1e-3) -> _Standardizer:
        self.mean = x.mean(0)
        self.scale = np.maximum(x.std(0), floor)
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale


class GMMDetector:
    """Gaussian mixture on standardised features; n_components in 1..max_components minimising BIC;
    score = log-likelihood. ``reg_covar`` (in standardised units) keeps components on discrete PRDC
    values (e.g. a spike at precision = recall = 0) from becoming near-singular."""

    name = "gmm"

    def __init__(self, max_components: int = 8, reg_covar: float = 1e-2, seed: int = 0) -> None:
        self.max_components, self.reg_covar, self.seed = max_components, reg_covar, seed

    def fit(self, x: np.ndarray) -> GMMDetector:
        self.std = _Standardizer().fit(x)
        x = self.std(x)
        best, self.bic = None, {}
        for c in range(1, max(1, min(self.max_components, len(x) // 2)) + 1):
            gmm = GaussianMixture(
                c, covariance_type="full", reg_covar=self.reg_covar, random_state=self.seed, max_iter=200
            ).fit(x)
            self.bic[c] = float(gmm.bic(x))
            if best is None or self.bic[c] < self.bic[best.n_components]:
                best = gmm
        self.model = best
        self.params = {"n_components": best.n_components, "bic": self.bic, "reg_covar": self.reg_covar}
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return self.model.score_samples(self.std(x))


class OCSVMDetector:
    """RBF one-class SVM (gamma='scale', fixed nu) on standardised features; score = decision function."""

    name = "ocsvm"

    def __init__(self, nu: float = 0.05) -> None:
        self.nu = nu

    def fit(self, x: np.ndarray) -> OCSVMDetector:
        self.std = _Standardizer().fit(x)
        self.model = OneClassSVM(kernel="rbf", gamma="scale", nu=self.nu).fit(self.std(x))
        self.params = {"nu": self.nu, "gamma": "scale"}
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return self.model.decision_function(self.std(x))


class KDEDetector:
    """Gaussian KDE on standardised features; bandwidth 'scott' (n^(-1/(d+4))) or 'cv' (5-fold)."""

    name = "kde"

    def __init__(self, bandwidth: str = "scott") -> None:
        if bandwidth not in ("scott", "cv"):
            raise ValueError(f"kde bandwidth: expected 'scott' or 'cv', found {bandwidth!r}")
        self.bandwidth = bandwidth

    def fit(self, x: np.ndarray) -> KDEDetector:
        self.std = _Standardizer().fit(x)
        z = self.std(x)
        scott = float(len(z) ** (-1.0 / (z.shape[1] + 4)))
        bw = scott
        if self.bandwidth == "cv" and len(z) >= 10:
            grid = GridSearchCV(KernelDensity(), {"bandwidth": scott * np.logspace(-1, 1, 9)}, cv=5)
            bw = float(grid.fit(z).best_params_["bandwidth"])
        self.model = KernelDensity(bandwidth=bw).fit(z)
        self.params = {"bandwidth": bw, "rule": self.bandwidth, "units": "standardised features"}
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return self.model.score_samples(self.std(x))


#: detector name -> factory(**options) returning an unfitted detector with fit(x)/score(x).
DETECTORS: dict[str, Callable[..., object]] = {
    "gmm": GMMDetector,
    "ocsvm": OCSVMDetector,
    "kde": KDEDetector,
}


def make_detector(name: str, **options) -> object:
    """Build a registered detector; unknown names raise ValueError listing the choices."""
    if name not in DETECTORS:
        raise ValueError(f"detector: expected one of {sorted(DETECTORS)}, found {name!r}")
    return DETECTORS[name](**options)
