"""The headless loop (``matseg demo``): stage plumbing on the real data, best-run selection, QC summary text."""

from __future__ import annotations

import json
from pathlib import Path

from _sweep_helpers import write_fake_run

from matseg_nb.cli import main
from matseg_nb.pipeline import STAGES, best_run, format_qc, run_demo

REPO = Path(__file__).resolve().parents[1]


def test_stages_in_loop_order():
    assert list(STAGES) == ["profile", "data", "sweep", "compare", "qc", "explain", "report"]


def test_profile_and_data_stages_on_demo_profile(tmp_path):
    lines: list[str] = []
    results = run_demo(REPO / "profiles" / "demo-cpu.json", tmp_path, stages=["profile", "data"], log=lines.append)
    assert len(results["jobs"]) == 12
    assert set(results["data"]) == {"nasa-super1", "nasa-ebc1"}
    for name in ("nasa-super1", "nasa-ebc1"):
        assert (tmp_path / "data" / f"{name}-preview.png").stat().st_size > 10_000
        saved = json.loads((tmp_path / "data" / f"{name}.json").read_text())
        assert saved["splits"]["test"]["pairs"] >= 3
    text = "\n".join(lines)
    assert "nasa-ebc1" in text and "absent" in text  # the two EBC1 images missing from the mirror are reported


def _fake_run(root: Path, job_id: str, dataset: str, iou: float | None, complete: bool = True) -> Path:
    """A run folder (``write_fake_run``, through ``runs.Run``) whose validation IoU equals its test IoU."""
    from matseg_nb.runs import Run

    run = write_fake_run(root, job_id, dataset=dataset, ious=[0.0 if iou is None else iou],
                         val_iou=0.0 if iou is None else iou, status="complete" if complete else "incomplete")
    if iou is None:  # a complete run without a test IoU or a validation score
        Run(run).write_metrics({"dataset_level": {"iou": None}})
        Run(run).write_history([], ["epoch", "val_iou"])
    return run


def test_best_run_ignores_incomplete_and_other_datasets(tmp_path):
    _fake_run(tmp_path, "a", "ds1", 0.5)
    best = _fake_run(tmp_path, "b", "ds1", 0.7)
    _fake_run(tmp_path, "c", "ds1", 0.9, complete=False)
    _fake_run(tmp_path, "d", "ds2", 0.95)
    _fake_run(tmp_path, "e", "ds1", None)
    assert best_run(tmp_path, "ds1") == best
    assert best_run(tmp_path).name == "d"
    assert best_run(tmp_path, "nope") is None


def test_format_qc_gives_batch_verdicts_and_validation_in_words():
    from matseg_nb.qc.dataset_qc import DatasetQC
    from matseg_nb.qc.results import ImageScreen, ScreeningResult, ShiftCheck, ValidationResult

    scr = ScreeningResult("split:test@noise:strong", [ImageScreen("a", 0.02, 0.01, True, "flagged: ...")], 0.05, 1,
                          1, "too few images to tell", "rank-sum", None, 0.05, "train", "val", "ocsvm", 4)
    checks = [ShiftCheck("shift:noise:strong", d, 1.0, 0.83, 1.0, 4, 4, "harmful", -0.2) for d in ("gmm", "ocsvm")]
    val = ValidationResult("insufficient evidence", "fewer than 10 images", 0.95, "split:test", "train", checks,
                           ["gmm", "ocsvm"])
    text = format_qc(DatasetQC("nasa-super1", "/x/run", [scr], val, {"total": 12.0}))
    assert "too few images to tell (1 of 1 images flagged" in text and "insufficient evidence" in text
    # identical GMM and OCSVM rows are shown once, with a note
    assert "gmm=ocsvm AUROC 1.000 [0.830, 1.000]  harmful" in text and "shown once" in text and "12 s" in text


def test_demo_cli_rejects_a_bad_profile(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["demo", str(bad), "--out", str(tmp_path / "out"), "--stages", "profile"]) == 2
    assert "bad.json" in capsys.readouterr().err
