"""The QC validation power statement agrees with simulation through the real interval code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from matseg_nb.qc.power import (
    images_needed,
    perfect_separation_images,
    planning_auroc,
    readiness_power_sentence,
    validation_power_sentence,
)
from matseg_nb.qc.validation import auroc_interval

#: stated tolerance: simulated power within 0.07 of the 80% the count is planned for (1000 draws, SE 0.013)
TOLERANCE = 0.07


def _simulated_power(auroc: float, threshold: float, n: int, draws: int = 1000, seed: int = 0) -> float:
    """Fraction of draws whose lower 95% bound exceeds ``threshold``: n vs n images, normal location model."""
    rng = np.random.default_rng(seed)
    d = math.sqrt(2.0) * norm.ppf(auroc)
    return float(np.mean([auroc_interval(rng.normal(size=n), rng.normal(-d, 1.0, n))["low"] > threshold
                          for _ in range(draws)]))


@pytest.mark.parametrize("auroc,threshold", [(0.9, 0.7), (0.97, 0.9), (0.85, 0.6), (0.95, 0.8)])
def test_count_gives_the_planned_power_in_simulation(auroc, threshold):
    n = images_needed(auroc, threshold, min_images=1)
    assert abs(_simulated_power(auroc, threshold, n) - 0.8) <= TOLERANCE, n
    assert _simulated_power(auroc, threshold, max(2, n // 2), seed=1) < 0.8 - TOLERANCE  # half as many: short


def test_no_count_at_or_below_the_threshold_and_the_floor_of_ten():
    assert images_needed(0.7, 0.7) is None
    assert images_needed(0.999, 0.5) == 10
    assert "no number of images" in validation_power_sentence("EBC1", 0.6, 4, 4, 0.9)
    assert perfect_separation_images(0.95) == 10 and perfect_separation_images(0.99) > 10


def test_sentence_for_a_perfect_separation_of_four_images():
    assert planning_auroc(1.0, 4, 4) == pytest.approx(16.5 / 17)
    s = validation_power_sentence("nasa-ebc1", 1.0, 4, 4, 0.9)
    need = images_needed(planning_auroc(1.0, 4, 4), 0.9)
    assert f"about {need} images on a side ({need - 4} more each) if the AUROC is 0.97" in s and "80% power" in s
    assert "10 images on a side (6 more each) if the separation stays perfect" in s  # 0.9: n = 10 suffices
    uneven = validation_power_sentence("ebc1", 1.0, 3, 3, 0.95)  # plans at 0.95 = the threshold
    assert "(7 more each) if the separation stays perfect, no count if the AUROC is 0.95" in uneven
    assert "(6 more held-out, 7 more ebc1)" in validation_power_sentence("ebc1", 1.0, 4, 3, 0.95)
    assert "enough images" in validation_power_sentence("x", 0.99, 60, 60, 0.7)


def test_readiness_sentence_names_the_set_that_needs_the_most_images():
    rows = [{"set": "noise", "detector": d, "auroc": 1.0, "n_id": 4, "n_ood": 4, "harm": "harmful"}
            for d in ("gmm", "ocsvm")]
    rows += [{"set": "blur", "detector": "gmm", "auroc": 0.9, "n_id": 4, "n_ood": 4, "harm": "harmful"},
             {"set": "blur", "detector": "ocsvm", "auroc": 1.0, "n_id": 4, "n_ood": 4, "harm": "harmful"},
             {"set": "brightness", "detector": "gmm", "auroc": 0.5, "n_id": 4, "n_ood": 4, "harm": "harmless"}]
    s = readiness_power_sentence(rows, 0.8)
    assert s.startswith("blur: AUROC 0.90 on 4 vs 4 images")  # gmm's 0.9 decides blur; brightness is harmless
    assert readiness_power_sentence(rows[-1:], 0.8) is None


def test_qc_validation_reason_says_what_would_decide(tmp_path):
    """The readiness reason of a real (tiny) QC run carries the power sentence after "fewer than 10 images"."""
    from _qc_helpers import folder_dataset, tiny_run

    from matseg_nb.loop import QCSettings
    from matseg_nb.qc.dataset_qc import qc_dataset

    ds = folder_dataset(tmp_path / "ds", n_train=4, n_test=3)
    settings = QCSettings(shifts=("noise:strong",), extractors=("texture",), tile_size=48, tiles_per_image=6,
                          other_split="")
    other = folder_dataset(tmp_path / "other", n_train=2, n_test=2, seed=5)  # harm unknown: counts for readiness
    res = qc_dataset(tiny_run(tmp_path / "run", ds), [str(other)], tmp_path / "qc", settings)
    reason = res.validation.reason
    assert reason.startswith(f"fewer than 10 images on a side for: {other}; {other}: AUROC"), reason
    assert "more held-out images" in reason or "no number of images" in reason, reason


def test_screening_count_matches_the_batch_power_table():
    from matseg_nb.qc.conformal import batch_power
    from matseg_nb.qc.power import calibration_images_needed, screening_power_words

    assert calibration_images_needed(4, 4) == 5  # 4 vs 4: 78%, 5 vs 4: 85% (docs/qc.md)
    need = calibration_images_needed(3, 3)
    assert batch_power(need, 3) >= 0.8 > batch_power(need - 1, 3)
    assert screening_power_words(4, 4).startswith("1 more annotated image(s) not trained on (5 calibration images)")
    assert "screen more new images together" in screening_power_words(4, 1)
