"""The report's QC and explanation sentences say what the typed results say, and nothing they do not."""

from __future__ import annotations

import pytest

from matseg_nb.qc.folder import parse_validation
from matseg_nb.report.answer import explain_sentence
from matseg_nb.report.answer import qc_words as typed_qc_words


def qc_words(data: dict) -> str:
    """The report's words for a ``qc.json`` content, read as the report reads it (``qc.folder``)."""
    return typed_qc_words(parse_validation(data))


def _validation(verdict: str, reason: str) -> dict:
    return {"verdict": verdict, "reason": reason, "readiness_threshold": 0.95, "heldout": "split:test",
            "reference": "train", "checks": [], "detectors": ["ocsvm"]}


def test_validation_verdicts_are_worded_as_given():
    assert qc_words({"verdict": "ready", "validation": _validation("ready", "lower bound 0.97 >= 0.95")}) \
        == "Ready for new samples of the kinds tested: lower bound 0.97 >= 0.95."
    assert qc_words({"validation": _validation("not ready", "blur AUROC lower bound 0.6 < 0.95")}) \
        .startswith("Not ready: blur AUROC")
    words = qc_words({"verdict": "insufficient evidence",
                      "validation": _validation("insufficient evidence", "no harmful shift was tested")})
    assert "Not ready" not in words and "Ready" not in words
    assert words == "The detector is not validated yet: no harmful shift was tested."  # the verdict once (the badge)


def test_a_perfect_auroc_is_never_called_unreliable():
    qc = {"verdict": "not ready", "readiness_threshold": 0.95,
          "levels": {"input": {"ood": {"shift:noise:strong": {"gmm": {"image": {"auroc": 1.0}}}}}}}
    words = qc_words(qc)
    assert "does not reliably flag" not in words and "not ready" in words
    qc["levels"]["input"]["ood"]["shift:noise:strong"]["gmm"]["image"]["auroc"] = 0.6
    assert "does not reliably flag shift:noise:strong" in qc_words(qc)


def test_faithfulness_result_gives_its_own_summary():
    faith = {"faithful": False, "level": 0.05, "n_draws": 5, "fractions": [0.02, 0.2], "perturbation": "noise",
             "perturbation_params": {}, "heatmap_kernel": "blur", "a_pixels": 100, "image_pixels": 4096,
             "top_curve": [0.1, 0.2], "top_score": 0.15,
             "baselines": {"random_pixels": {"name": "random_pixels", "scores": [0.1] * 5, "p_value": 0.667,
                                             "mean_curve": [0.1, 0.1]}}}
    text = explain_sentence({"faithfulness": faith})
    assert "not shown faithful" in text and "Faithful:" not in text


def test_a_validation_pick_that_loses_on_test_is_not_worded_as_a_win():
    from matseg_nb.report.answer import DatasetAnswer, _comparison

    answer = DatasetAnswer(dataset="nasa-ebc1")
    _comparison(answer, {"arch": "resnet18+DeepLabV3Plus", "iou": "0.172", "runner_up": "resnet18+Unet",
                         "runner_up_iou": "0.182", "verdict": "insufficient evidence (n = 3)", "p_value": "",
                         "n_images": "3", "selected_on": "validation"})
    text = answer.summary()
    assert "chosen on validation" in text and "not separable from the runner-up" in text
    assert "runner-up scores higher on test" in text and "better than" not in text
    _comparison(won := DatasetAnswer(dataset="d"), {"arch": "a", "iou": "0.8", "runner_up": "b",
                                                    "runner_up_iou": "0.5", "verdict": "significant",
                                                    "p_value": "0.01", "n_images": "8", "selected_on": "test"})
    assert won.evidence == "better than the runner-up" and "chosen on test" in won.summary()


@pytest.mark.parametrize("entry, expected", [
    ({"rho": 0.8, "n_images": 20}, "less typical images get worse masks"),
    ({"rho": 0.2, "n_images": 10}, "not distinguishable from no relation"),
    ({"rho": -0.9, "n_images": 12}, "typicality is no warning"),
    ({"rho": None, "n_images": 15}, "undefined over 15 images"),
    ({"rho": 0.99, "n_images": 3}, "fewer than 4 images"),
    ({"rho": 0.97, "n_images": 5}, "too few images (fewer than 10)"),
])
def test_typicality_iou_words_claim_only_what_the_test_supports(entry, expected):
    from matseg_nb.report.answer import typicality_iou_words

    words = typicality_iou_words(parse_validation({"levels": {"input": {"spearman_typicality_iou": entry}}}))
    assert expected in words
    assert typicality_iou_words(parse_validation({})) == "" and typicality_iou_words(None) == ""


def test_models_note_names_stand_ins_and_the_papers_encoders(tmp_path):
    from _sweep_helpers import write_fake_run

    from matseg_nb.report.answer import models_note
    from matseg_nb.runs import Sweep

    write_fake_run(tmp_path / "a", "d__resnet18__Unet__s0__1", encoder="resnet18")
    assert "not the paper's encoders" in models_note(Sweep(tmp_path / "a")) and "random weights" in models_note(Sweep(tmp_path / "a"))
    write_fake_run(tmp_path / "b", "d__resnet50__Unet__s0__1", encoder="resnet50", weights="imagenet")
    assert models_note(Sweep(tmp_path / "b")) == "Encoders: resnet50 with ImageNet weights, as in the paper."
