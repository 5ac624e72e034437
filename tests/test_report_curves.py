"""Learning curves in the report: one figure per dataset from each run's history.csv, final values in a table."""

from __future__ import annotations

import json

from _sweep_helpers import write_fake_run

from matseg_nb.report import build_report
from matseg_nb.report.curves import learning_curves
from matseg_nb.runs import Run


def _sweep(tmp_path):
    sweep = tmp_path / "loop" / "sweep"
    write_fake_run(sweep, "a", dataset="ds1", decoder="Unet")
    b = write_fake_run(sweep, "b", dataset="ds1", decoder="FPN")
    Run(b).write_history([{"epoch": e, "val_iou": v} for e, v in enumerate([0.1, 0.6, 0.4])], ["epoch", "val_iou"])
    write_fake_run(sweep, "c", dataset="ds2")
    write_fake_run(sweep, "d", dataset="ds2", status="failed")  # no history: left out
    return sweep


def test_one_figure_per_dataset_with_final_and_best_values(tmp_path):
    curves = learning_curves(_sweep(tmp_path), tmp_path / "out")
    assert [c["dataset"] for c in curves] == ["ds1", "ds2"]
    rows = {r["job"]: r for r in curves[0]["rows"]}
    assert rows["tu-test_resnet+FPN"] == {"job": "tu-test_resnet+FPN", "status": "complete", "epochs": 3,
                                          "final_val_iou": 0.4, "best_val_iou": 0.6, "best_epoch": 1}
    assert rows["tu-test_resnet+Unet"]["final_val_iou"] == 0.5
    assert len(curves[1]["rows"]) == 1
    for c in curves:
        assert (tmp_path / "out" / f"learning-curves-{c['dataset']}.png").stat().st_size > 3_000


def test_report_shows_the_curves_and_records_them_in_report_json(tmp_path):
    sweep = _sweep(tmp_path)
    from matseg_nb.compare import compare_sweeps

    compare_sweeps([sweep], sweep.parent / "compare")
    html, js = build_report(sweep, sweep.parent / "report.html")
    text = html.read_text()
    assert "Learning curves: ds1" in text and "Learning curves: ds2" in text
    facts = json.loads(js.read_text())
    lcs = facts["sections"]["compare"]["learning_curves"]
    assert [lc["png"] for lc in lcs] == ["report_files/learning-curves-ds1.png", "report_files/learning-curves-ds2.png"]
    assert all("abs" not in lc for lc in lcs)
