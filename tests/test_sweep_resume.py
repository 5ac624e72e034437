"""Resume after SIGKILL: kill the sweep's process group while job 2 runs (job 1 complete),
rerun: job 1 is not rerun, job 2 is redone, the summary lists every job once, and no partial
folder counts as complete. Real papermill in a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from _sweep_helpers import (
    CONTROL_ENV,
    counted,
    make_fake_notebook,
    run_sweep_cli,
    sweep_cmd,
    write_control,
    write_profile,
)

from matseg_nb.profiles import compile_jobs, load_profile
from matseg_nb.sweep import is_complete, sweep_status

pytestmark = pytest.mark.slow


def _summary_statuses(out) -> list[str]:
    try:
        return [j["status"] for j in json.loads((out / "summary.json").read_text())["jobs"]]
    except (OSError, ValueError, KeyError):
        return []


def _wait_for(predicate, timeout, proc):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            raise AssertionError(f"sweep ended early: rc={proc.returncode}\n{proc.stderr.read()}")
        time.sleep(0.2)
    return False


def test_sigkill_mid_sweep_then_resume(tmp_path):
    nb = make_fake_notebook(tmp_path / "fake.ipynb")
    profile = write_profile(tmp_path / "p.json", seeds=(0, 1, 2))
    ids = [j.job_id for j in compile_jobs(load_profile(profile))]
    out, counter = tmp_path / "sweep", tmp_path / "counter.txt"
    control = write_control(tmp_path / "control.json", counter, jobs={"__s1__": {"sleep": 60}})
    env = {**os.environ, CONTROL_ENV: str(control)}

    proc = subprocess.Popen(sweep_cmd(profile, out, "--notebook", str(nb)), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first_done = _wait_for(lambda: (out / ids[0] / "COMPLETE").exists(), 180, proc)
        second_running = _wait_for(lambda: ids[1] in counted(counter), 120, proc)
        assert first_done and second_running
        live = sweep_status(out)  # what `matseg status` shows for a running sweep
        assert live["state"] == "running" and live["counts"]["complete"] == 1
        assert live["eta_s"] is not None and live["eta_s"] > 0
        assert live["jobs"][1]["status"] == "running"
        # the sweep records "running" in summary.json at its next poll; wait for it so the kill lands while
        # the summary says so
        assert _wait_for(lambda: _summary_statuses(out)[:2] == ["complete", "running"], 60, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = json.loads((out / "summary.json").read_text())
    assert [j["status"] for j in killed["jobs"]][:2] == ["complete", "running"]
    assert not is_complete(out / ids[1], ids[1]) and not (out / ids[2] / "COMPLETE").exists()
    first_marker = (out / ids[0] / "COMPLETE").stat().st_mtime_ns

    write_control(control, counter)  # the rerun is quick
    rerun = run_sweep_cli(profile, out, "--notebook", str(nb), control=control)
    assert rerun.returncode == 0, rerun.stderr

    assert counted(counter) == [ids[0], ids[1], ids[1], ids[2]]  # job 1 ran once, job 2 was redone
    assert (out / ids[0] / "COMPLETE").stat().st_mtime_ns == first_marker
    summary = json.loads((out / "summary.json").read_text())
    assert [j["job_id"] for j in summary["jobs"]] == ids  # every job exactly once
    assert all(j["status"] == "complete" for j in summary["jobs"])
    assert [j["resumed"] for j in summary["jobs"]] == [True, False, False]
    assert all(is_complete(out / i, i) for i in ids)
    partials = list((out / ".partial").iterdir())
    assert [p.name.split(".partial-")[0] for p in partials] == [ids[1]]
    assert not (partials[0] / "COMPLETE").exists() and (partials[0] / "job.json").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")) == sorted(ids)
