"""A failing job (exception in the notebook, kernel death) is isolated: error.json, summary
status failed, the other jobs complete, exit code 1. Real papermill, stand-in notebook."""

from __future__ import annotations

import json

import pytest
from _sweep_helpers import CONTROL_ENV, counted, make_fake_notebook, write_control, write_profile

from matseg_nb.cli import main
from matseg_nb.sweep import is_complete, sweep_status

pytestmark = pytest.mark.slow


def test_failing_jobs_are_recorded_and_the_others_complete(tmp_path, monkeypatch, capsys):
    nb = make_fake_notebook(tmp_path / "fake.ipynb")
    profile = write_profile(tmp_path / "p.json", seeds=(0, 1, 2))
    counter = tmp_path / "counter.txt"
    control = write_control(tmp_path / "control.json", counter,
                            jobs={"__s0__": {"raise": "encoder 'resnet5O' is unknown"}, "__s1__": {"exit": True}})
    monkeypatch.setenv(CONTROL_ENV, str(control))
    out = tmp_path / "sweep"

    code = main(["sweep", str(profile), "--out", str(out), "--notebook", str(nb), "--no-progress"])

    assert code == 1
    summary = json.loads((out / "summary.json").read_text())
    by_status = {j["job_id"].split("__")[3]: j for j in summary["jobs"]}
    assert [by_status[s]["status"] for s in ("s0", "s1", "s2")] == ["failed", "failed", "complete"]
    assert summary["counts"] == {"complete": 1, "failed": 2, "running": 0, "pending": 0}
    assert len(counted(counter)) == 3  # every job ran once, after the failures too

    raised = json.loads((out / by_status["s0"]["job_id"] / "error.json").read_text())
    assert raised["type"] == "ValueError" and "resnet5O" in raised["message"]
    assert "raise ValueError" in raised["traceback"] and "raise ValueError" in raised["cell"]["source"]
    assert by_status["s0"]["error"].startswith("ValueError: encoder 'resnet5O'")

    died = json.loads((out / by_status["s1"]["job_id"] / "error.json").read_text())
    assert died["type"] == "KernelDied" and "os._exit" in died["cell"]["source"]
    for s in ("s0", "s1"):
        run = out / by_status[s]["job_id"]
        assert not (run / "COMPLETE").exists() and not is_complete(run, by_status[s]["job_id"])
        assert (run / "train.ipynb").exists()
    ok = out / by_status["s2"]["job_id"]
    assert is_complete(ok, by_status["s2"]["job_id"])
    assert json.loads((ok / "COMPLETE").read_text())["job_id"] == by_status["s2"]["job_id"]

    capsys.readouterr()
    assert main(["status", str(out)]) == 1
    table = capsys.readouterr().out
    assert "KernelDied" in table and "finished: 1 complete, 2 failed" in table
    assert sweep_status(out)["jobs"][2]["test_iou"] == pytest.approx(0.12)


def test_unknown_executor_and_missing_notebook_are_user_errors(tmp_path, capsys):
    profile = write_profile(tmp_path / "p.json", seeds=(0,))
    code = main(["sweep", str(profile), "--out", str(tmp_path / "o"), "--executor", "mpi",
                 "--notebook", str(tmp_path / "missing.ipynb")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--executor: expected one of ['dask', 'local', 'slurm'], found 'mpi'" in err
    assert "missing.ipynb: expected the training notebook" in err


def test_unreachable_scheduler_is_a_user_error(tmp_path, monkeypatch, capsys):
    from matseg_nb.sweep import dask_executor

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 2)
    profile = write_profile(tmp_path / "p.json", seeds=(0,))
    nb = make_fake_notebook(tmp_path / "fake.ipynb")
    code = main(["sweep", str(profile), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9",
                 "--notebook", str(nb), "--no-progress"])
    assert code == 2
    assert "--scheduler: expected a reachable Dask scheduler, found none at 'tcp://127.0.0.1:9'" in capsys.readouterr().err
