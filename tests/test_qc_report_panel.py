"""The report's Figure-2 Q panel and QC sentence read the screening results (p-values, flags), not raw scores."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from matseg_nb.qc.results import ImageScreen, ScreeningResult  # noqa: E402
from matseg_nb.report.answer import _screening_panel, screening_words  # noqa: E402


def _write_screening(folder):
    held = ScreeningResult("split:test", [ImageScreen("test/a", 0.031, 0.015, True, "flagged"),
                                          ImageScreen("test/b", 0.62, 0.3, False, "typical")],
                           0.05, 1, 2, "too few images to tell", "rank-sum", 0.4, 0.1, "train", "val", "ocsvm", 4)
    shifted = ScreeningResult("split:test@noise:strong", [ImageScreen("a@n", 0.016, 0.008, True, "flagged")] * 3,
                              0.05, 3, 3, "shifted", "rank-sum", 0.03, 0.0001, "train", "val", "ocsvm", 4)
    (folder / "screening").mkdir(parents=True)
    (folder / "screening" / "qc.json").write_text(json.dumps({"screening": [held.to_json(), shifted.to_json()]}))


def test_q_panel_plots_image_pvalues_against_alpha_with_the_flag_count(tmp_path):
    _write_screening(tmp_path)
    fig, ax = plt.subplots()
    assert _screening_panel(ax, tmp_path, "a")
    assert ax.get_title() == "Q: 1 of 2 held-out images flagged"
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "image p-value vs validation images"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["split:test\ntoo few images to tell, 1/2", "split:test@noise:strong\nshifted, 3/3"]
    assert any(abs(line.get_xdata()[0] - 0.05) < 1e-12 for line in ax.get_lines())  # the alpha line
    points = sorted(float(x) for c in ax.collections for x in c.get_offsets()[:, 0])
    assert points == sorted([0.031, 0.62, 0.016, 0.016, 0.016, 0.031])  # p-values (+ the ringed image), no raw scores
    plt.close(fig)
    fig, ax = plt.subplots()
    assert not _screening_panel(ax, tmp_path / "none", "a")  # no screening results: the caller falls back
    plt.close(fig)


def test_screening_sentence_states_the_verdict_once(tmp_path):
    _write_screening(tmp_path)
    words = screening_words(tmp_path)
    assert words == (" Screening the held-out images as new ones: too few images to tell (1 of 2 images flagged at "
                     "alpha = 0.05, batch p = 0.4; 4 val images as calibration).")
