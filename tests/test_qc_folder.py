"""The QC folder (``matseg_nb.qc.folder``): typed round trips, the older layouts it alone reads, and the one
typicality key behind every score a person sees."""

from __future__ import annotations

import json

import numpy as np
from _qc_helpers import clustered

from matseg_nb.qc.folder import QCFolder, parse_validation
from matseg_nb.qc.results import (
    ImageScreen,
    LevelResult,
    ScoreRow,
    ScreeningResult,
    ShiftCheck,
    ValidationResult,
    ValidationRun,
)


def _run() -> ValidationRun:
    check = ShiftCheck("shift:noise:strong", "gmm", 0.9, 0.7, 1.0, 12, 12, "harmful", -0.2)
    val = ValidationResult("not ready", "lower 95% bound at or below 0.95", 0.95, "split:test", "train", [check],
                           ["gmm"])
    level = LevelResult(["texture"], {"n_reference_points": 40}, {"gmm": 0.05},
                        {"shift:noise:strong": {"gmm": {"image": {"auroc": 0.9}}}}, {"split:test": 1.0},
                        {"shift:noise:strong": "not ready"}, "not ready", {"rho": 0.5, "n_images": 24})
    return ValidationRun(dataset="ds", run_dir="r", primary_detector="gmm", ood_sets=["shift:noise:strong"],
                         levels={"input": level}, validation=val, verdict="not ready")


def test_validation_and_scores_round_trip(tmp_path):
    folder = QCFolder(tmp_path / "qc")
    folder.write_validation(_run())
    rows = [ScoreRow("input", "split:test", 0, "a", "gmm", 0.4), ScoreRow("input", "n", 1, "b", "gmm", 0.01, 0.05,
                                                                         True, 0.7)]
    folder.write_scores(rows)
    assert folder.validation() == _run()
    assert folder.scores() == rows
    assert json.loads((tmp_path / "qc" / "qc.json").read_text())["validation"]["verdict"] == "not ready"


def test_older_layouts_are_read_in_one_place(tmp_path):
    # AUROC-only QC with its verdict under another name, and a verdict object
    old = parse_validation({"decision": "ready", "levels": {"input": {"ood": {"s": {"kde": {"image": {"auroc": 1}}}},
                                                                      "unknown_key": 1}}})
    assert old.verdict == "ready" and old.validation is None and old.levels["input"].image_metrics("s", "gmm")[0] == "kde"
    assert parse_validation({"status": {"label": "not ready"}}).verdict == "not ready"
    assert parse_validation({"mode": "screening", "screening": []}) is None
    # a folder whose one JSON file has another name
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "result.json").write_text(json.dumps({"verdict": "not ready", "readiness_threshold": 0.9}))
    assert QCFolder(tmp_path / "old").validation().readiness_threshold == 0.9
    # scores.csv without the iou column
    (tmp_path / "old" / "scores.csv").write_text("level,set,ood,image,detector,typicality,threshold,flag\n"
                                                 "input,s,1,a,gmm,-9.0,-3.2,True\n")
    assert QCFolder(tmp_path / "old").scores() == [ScoreRow("input", "s", 1, "a", "gmm", -9.0, -3.2, True, None)]
    # the loop's layout: qc/<dataset>/ with screening/ beside validation
    loop = QCFolder(tmp_path / "loop")
    QCFolder(loop.path / "ds").write_validation(_run())
    screened = ScreeningResult("split:test", [ImageScreen("a", 0.5, 0.3, False, "typical")], 0.05, 0, 1,
                               "too few images to tell", "rank-sum", None, None, "train", "val", "ocsvm", 3)
    QCFolder(loop.path / "ds").screening_folder.write_screening([screened], alpha=0.05)
    assert list(loop.per_dataset()) == ["ds"] and loop.of_dataset("ds").validation() == _run()
    assert loop.of_dataset("other").path == loop.path
    assert QCFolder(loop.path / "ds").screening() == [screened]
    assert QCFolder(tmp_path / "absent").validation() is None and QCFolder(tmp_path / "absent").scores() == []


def test_validation_typicality_is_the_screening_typicality():
    """The per-image typicality of scores.csv (``QCModel.typicality``) is the screening's per-image typicality
    (median crop conformal p-value of the typicality key) against the same calibration crops."""
    from matseg_nb.qc.model import fit_qc, per_image
    from matseg_nb.qc.screening import Calibration, screen_scores

    x, g = clustered(8, 20, 4, seed=1)
    model = fit_qc({"f": x}, g, 5, ("gmm", "ocsvm"), seed=0)
    q, qg = clustered(5, 10, 4, shift=1.5, seed=2)
    keys, _ = model.keys({"f": q}, qg)
    for d in ("gmm", "ocsvm"):
        mine = model.typicality(d, per_image(keys[d], qg, 5))
        screened = screen_scores(Calibration(model.calibration_keys[d], model.calibration_groups),
                                 per_image(keys[d], qg, 5), [f"i{i}" for i in range(5)])
        assert np.allclose(mine, [im.typicality for im in screened.images])
        assert 0 < model.thresholds[d] < 1  # the deployment threshold is on the same [0, 1] typicality
    shifted_far, _ = clustered(5, 10, 4, shift=8.0, seed=3)
    far = model.keys({"f": shifted_far}, qg)[0]["gmm"]
    assert model.typicality("gmm", per_image(far, qg, 5)).max() < model.typicality("gmm", per_image(
        keys["gmm"], qg, 5)).min() + 1e-12  # far outside the support: less typical than a mild shift
