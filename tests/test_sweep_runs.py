"""matseg_nb.runs (typed run/sweep folders) and matseg_nb.loop (layout and stage settings)."""

from __future__ import annotations

import json

import pytest
from _sweep_helpers import write_fake_run

from matseg_nb.errors import UserError
from matseg_nb.loop import DEMO_SETTINGS, LoopLayout
from matseg_nb.runs import Run, RunFileError, RunMetrics, Sweep
from matseg_nb.sweep.status import sweep_status


def _sweep(tmp_path):
    sweep = tmp_path / "loop" / "sweep"
    write_fake_run(sweep, "a__enc__Unet__s0__1", dataset="a", ious=[0.6, 0.8], val_iou=0.4)
    write_fake_run(sweep, "a__enc__FPN__s0__2", dataset="a", decoder="FPN", ious=[0.9, 0.9], val_iou=0.6)
    write_fake_run(sweep, "b__enc__Unet__s0__3", dataset="b", ious=[0.95], val_iou=0.9)
    write_fake_run(sweep, "a__enc__PAN__s0__4", dataset="a", decoder="PAN", status="failed")
    write_fake_run(sweep, "a__enc__PSP__s0__5", dataset="a", decoder="PSPNet", status="incomplete")
    (sweep / "sweep.json").write_text(json.dumps({"job_ids": ["a__enc__Unet__s0__1", "a__enc__FPN__s0__2",
                                                              "b__enc__Unet__s0__3", "a__enc__PAN__s0__4",
                                                              "a__enc__PSP__s0__5", "a__enc__Linknet__s0__6"]}))
    return sweep


def test_run_round_trip(tmp_path):
    sweep = _sweep(tmp_path)
    run = Run(sweep / "a__enc__Unet__s0__1")
    m = run.metrics()
    assert isinstance(m, RunMetrics) and m.iou == pytest.approx(0.7) and m.best_val_iou == 0.4
    assert RunMetrics.from_dict(m.to_dict()) == m
    assert run.job()["decoder"] == "Unet" and run.dataset == "a"
    assert [r["val_iou"] for r in run.history()] == [0.2, 0.4]
    assert run.per_image_foreground()["img001"]["iou"] == pytest.approx(0.8)
    assert run.is_complete and run.status() == "complete"


def test_sweep_statuses_and_best(tmp_path):
    sweep = Sweep.open(_sweep(tmp_path))
    status = {j.job_id: j.status for j in sweep.jobs()}
    picky = tmp_path / "picky"  # validation chooses, even where test disagrees
    write_fake_run(picky, "a__enc__Unet__s0__1", dataset="a", ious=[0.9], val_iou=0.3)
    write_fake_run(picky, "a__enc__FPN__s0__2", dataset="a", decoder="FPN", ious=[0.5], val_iou=0.7)
    assert Sweep(picky).best_run("a").job_id == "a__enc__FPN__s0__2"
    assert Sweep(picky).best_run("a", "tu-test_resnet+Unet").job_id == "a__enc__Unet__s0__1"  # the comparison's pick
    assert Sweep(picky).best_run("a", "tu-test_resnet+PAN") is None
    assert status == {"a__enc__Unet__s0__1": "complete", "a__enc__FPN__s0__2": "complete",
                      "b__enc__Unet__s0__3": "complete", "a__enc__PAN__s0__4": "failed",
                      "a__enc__PSP__s0__5": "incomplete", "a__enc__Linknet__s0__6": "pending"}
    failed = next(j for j in sweep.jobs() if j.status == "failed")
    assert failed.error == "RuntimeError: CUDA out of memory"
    assert sweep.best_run().job_id == "b__enc__Unet__s0__3"  # validation 0.9 over all datasets
    assert sweep.best_run("a").job_id == "a__enc__FPN__s0__2"  # validation 0.6 > 0.4
    assert sweep.best_run("missing") is None
    counts = sweep_status(sweep.path)["counts"]
    assert counts == {"complete": 3, "failed": 1, "running": 0, "pending": 2}


def test_corrupted_metrics_is_named_and_rest_reads(tmp_path):
    sweep = _sweep(tmp_path)
    bad = sweep / "a__enc__FPN__s0__2" / "metrics.json"
    bad.write_text("{not json")
    with pytest.raises(RunFileError, match="metrics.json: expected a JSON object"):
        Run(bad.parent).metrics()
    assert Run(bad.parent).test_iou() is None
    assert Sweep(sweep).best_run("a").job_id == "a__enc__Unet__s0__1"
    bad.write_text(json.dumps({"dataset_level": [1, 2]}))
    with pytest.raises(RunFileError, match="expected an object 'dataset_level', found list"):
        Run(bad.parent).metrics()


def test_not_a_sweep_is_one_line_error(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(UserError) as err:
        Sweep.open(tmp_path / "x")
    assert "expected a sweep folder" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError):
        Sweep.open(tmp_path / "absent")


def test_layout_and_settings(tmp_path):
    layout = LoopLayout(tmp_path / "demo")
    assert layout.sweep == tmp_path / "demo" / "sweep" and layout.qc.name == "qc"
    assert LoopLayout.from_sweep(layout.sweep) == layout
    from matseg_nb.loop import StageSettings

    assert StageSettings.from_dict(DEMO_SETTINGS.to_dict()) == DEMO_SETTINGS  # QCSettings round trip
    assert DEMO_SETTINGS.with_qc(tiles_per_image=4).qc.tiles_per_image == 4
    assert DEMO_SETTINGS.qc.tiles_per_image == 16  # frozen: the shared settings do not change
