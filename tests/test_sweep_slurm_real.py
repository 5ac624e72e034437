"""Sweeps submitted to a REAL Slurm (the single node that ``scripts/slurm-setup.sh`` configures on this
machine; ``.ci/run`` runs it first). Every test skips, with the reason, where Slurm is not up.

A training job whose Slurm job is cancelled or runs out of walltime is recorded as FAILED (error.json
names the Slurm state), never re-queued; rerunning the same command runs it again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _sweep_helpers import CONTROL_ENV, make_fake_notebook, tiny_profile_dict, write_control

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "scripts" / "slurm-setup.sh"


def _sh(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


def _node_state() -> str:
    try:
        return _sh("sinfo", "-h", "-o", "%T", timeout=15).stdout.split()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return ""


@pytest.fixture(scope="module")
def slurm():
    """Skip unless a Slurm node is up and idle (starting the installed daemons if we are root)."""
    if shutil.which("sinfo") is None:
        pytest.skip("Slurm is not installed (no sinfo): run `sudo bash scripts/slurm-setup.sh` (CI does)")
    if _node_state() not in ("idle", "mixed") and os.geteuid() == 0:
        # the daemons are installed: start them, never installing anything at test time
        subprocess.run(["bash", str(SETUP)], env={**os.environ, "SLURM_SETUP_INSTALL": "0"}, capture_output=True,
                       timeout=120, check=False)
    state = _node_state()
    if state not in ("idle", "mixed"):
        pytest.skip(f"Slurm is not up: sinfo shows the node as {state or 'nothing (no answer)'}; "
                    "run `sudo bash scripts/slurm-setup.sh` and see /var/log/slurm/")
    accounting = _sh("sacct", "-n", "-X", "-S", "now").returncode == 0
    return {"accounting": accounting}


def _profile(tmp_path: Path, name: str, seeds=(0, 1), **slurm) -> Path:
    data = tiny_profile_dict(seeds=seeds, name=name)
    data["execution"] = {"executor": "slurm",
                         "slurm": {"partition": "debug", "walltime": "00:10:00", "cores": 1, "memory": "700MB",
                                   **slurm}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def _sweep(profile: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "matseg_nb", "sweep", str(profile), "--out", str(out), "--executor", "slurm",
           "--no-progress", *extra]
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def _status(out: Path) -> tuple[dict, str]:
    as_json = _sh(sys.executable, "-m", "matseg_nb", "status", str(out), "--json")
    table = _sh(sys.executable, "-m", "matseg_nb", "status", str(out)).stdout
    return json.loads(as_json.stdout), table


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _slurm_id(out: Path, job_id: str) -> str | None:
    try:
        return json.loads((out / ".slurm" / "jobs" / f"{job_id}.json").read_text())["slurm_job_id"]
    except (OSError, ValueError, KeyError):
        return None


def _our_jobs() -> list[str]:
    return _sh("squeue", "-h", "-n", "matseg-sweep", "-o", "%i %T").stdout.splitlines()


def _wait_queue_empty(timeout: float = 30) -> None:
    _wait_for(lambda: not _our_jobs(), timeout, "the worker jobs to leave the queue")


def test_two_tiny_models_train_in_two_slurm_jobs(slurm, tmp_path):
    profile, out = _profile(tmp_path, "slurm-real"), tmp_path / "sweep"
    proc = _sweep(profile, out, "--workers", "2", "--threads", "1")
    try:
        # while it runs: squeue lists our worker jobs and `matseg status` names the Slurm job of each job
        def running_rows():
            if not (out / "sweep.json").exists():
                return None
            status, table = _status(out)
            rows = [j for j in status["jobs"] if j.get("slurm_state") == "RUNNING"]
            return (status, table) if rows else None

        status, table = _wait_for(running_rows, 300, "a job running in a Slurm job")
        assert status["state"] == "running" and "slurm job" in table.splitlines()[0]
        row = next(j for j in status["jobs"] if j.get("slurm_state") == "RUNNING")
        assert f"{row['slurm_job_id']} RUNNING" in table
        queue = _our_jobs()
        assert any(line.startswith(f"{row['slurm_job_id']} ") for line in queue), queue
    finally:
        log = _finish(proc)
    assert proc.returncode == 0, log
    summary = json.loads((out / "summary.json").read_text())
    assert [j["status"] for j in summary["jobs"]] == ["complete", "complete"]
    ids = {j["job_id"]: _slurm_id(out, j["job_id"]) for j in summary["jobs"]}
    assert all(ids.values()) and len(set(ids.values())) == 2, ids  # two jobs, two Slurm jobs
    for job_id in ids:
        assert (out / job_id / "COMPLETE").exists() and (out / job_id / "metrics.json").exists()
    logs = sorted(p.name for p in (out / ".slurm" / "logs").iterdir())
    assert f"matseg-sweep-{ids[summary['jobs'][0]['job_id']]}.err" in logs, logs
    if slurm["accounting"]:
        acct = _sh("sacct", "-n", "-P", "-X", "-j", ",".join(ids.values()), "-o", "JobID,JobName,Partition,State")
        rows = [line.split("|") for line in acct.stdout.splitlines()]
        assert sorted(r[0] for r in rows) == sorted(ids.values()), acct.stdout
        # the sweep cancels its idle workers when it ends: that is the state Slurm records for them
        assert all(r[1] == "matseg-sweep" and r[2] == "debug" and r[3].split()[0] in ("CANCELLED", "COMPLETED")
                   for r in rows), acct.stdout
    _wait_queue_empty()


def test_a_cancelled_slurm_job_is_recorded_failed_and_a_rerun_completes_it(slurm, tmp_path):
    profile, out = _profile(tmp_path, "slurm-cancel"), tmp_path / "sweep"
    notebook = make_fake_notebook(tmp_path / "fake.ipynb")
    counter = tmp_path / "counter.txt"
    control = write_control(tmp_path / "c.json", counter, jobs={"__s0__": {"sleep": 300}}, default={"sleep": 1})
    env = {CONTROL_ENV: str(control)}
    proc = _sweep(profile, out, "--workers", "2", "--notebook", str(notebook), env=env)
    try:
        job_ids = _wait_for(lambda: (out / "sweep.json").exists() and json.loads((out / "sweep.json").read_text())
                            ["job_ids"], 180, "sweep.json")
        slow = next(j for j in job_ids if "__s0__" in j)
        slurm_id = _wait_for(lambda: (out / slow / ".running").exists() and _slurm_id(out, slow), 300,
                             "the slow job to start")
        assert _sh("scancel", slurm_id).returncode == 0
    finally:
        log = _finish(proc)
    assert proc.returncode == 1, log
    summary = {j["job_id"]: j for j in json.loads((out / "summary.json").read_text())["jobs"]}
    assert summary[slow]["status"] == "failed" and f"Slurm job {slurm_id} CANCELLED" in summary[slow]["error"]
    error = json.loads((out / slow / "error.json").read_text())
    assert error["type"] == "SlurmJobEnded" and "CANCELLED" in error["message"]
    other = next(j for j in job_ids if j != slow)
    assert summary[other]["status"] == "complete"
    if slurm["accounting"]:
        state = _sh("sacct", "-n", "-P", "-X", "-j", slurm_id, "-o", "State").stdout.strip()
        assert state.startswith("CANCELLED"), state
    _wait_queue_empty()

    # rerun the same command (the slow job is quick now): the cancelled job completes, the other is kept
    write_control(control, counter, default={"sleep": 1})
    rerun = _sweep(profile, out, "--workers", "2", "--notebook", str(notebook), env=env)
    log = _finish(rerun)
    assert rerun.returncode == 0, log
    summary = {j["job_id"]: j for j in json.loads((out / "summary.json").read_text())["jobs"]}
    assert summary[slow]["status"] == "complete" and not summary[slow].get("resumed")
    assert summary[other]["status"] == "complete" and summary[other]["resumed"]
    assert list((out / ".partial").iterdir())  # the cancelled job's folder, kept for inspection
    assert counter.read_text().split().count(other) == 1
    _wait_queue_empty()


def test_a_job_past_its_walltime_is_recorded_with_that_reason(slurm, tmp_path):
    profile, out = _profile(tmp_path, "slurm-walltime", seeds=(0,), walltime="00:01:00"), tmp_path / "sweep"
    notebook = make_fake_notebook(tmp_path / "fake.ipynb")
    control = write_control(tmp_path / "c.json", tmp_path / "counter.txt", default={"sleep": 600})
    t0 = time.monotonic()
    proc = _sweep(profile, out, "--workers", "1", "--notebook", str(notebook), env={CONTROL_ENV: str(control)})
    log = _finish(proc, timeout=600)
    took = time.monotonic() - t0
    assert proc.returncode == 1, log
    job = json.loads((out / "summary.json").read_text())["jobs"][0]
    slurm_id = _slurm_id(out, job["job_id"])
    assert job["status"] == "failed" and f"Slurm job {slurm_id} TIMEOUT: walltime 00:01:00 exceeded" in job["error"]
    assert took >= 60, took  # the job ran into its 1-minute limit, not an earlier failure
    if slurm["accounting"]:
        state = _sh("sacct", "-n", "-P", "-X", "-j", slurm_id, "-o", "State,Timelimit").stdout.strip()
        assert state == "TIMEOUT|00:01:00", state
    _wait_queue_empty()


def _earlier_run(profile: Path, out: Path) -> list[str]:
    """A sweep folder as an earlier run leaves it: the first job complete, the second failed; its files."""
    from matseg_nb.atomic import atomic_write_json
    from matseg_nb.run_marker import write_marker
    from matseg_nb.sweep.spec import load_profile_and_jobs

    _, specs = load_profile_and_jobs(profile)
    for spec, kind in zip(specs, ("complete", "failed"), strict=True):
        atomic_write_json(out / spec.job_id / "job.json", {"job_id": spec.job_id, "job": spec.job})
        if kind == "complete":
            atomic_write_json(out / spec.job_id / "metrics.json", {"dataset_level": {"iou": 0.5}})
            write_marker(out / spec.job_id, spec.job_id, "2026-01-01T00:00:00+00:00", 1.0)
        else:
            atomic_write_json(out / spec.job_id / "error.json", {"type": "ValueError", "message": "boom"})
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


@pytest.mark.parametrize("field, value, quoted", [
    ("partition", "no-such-partition", "invalid partition"),
    ("account", "no-such-account", "invalid account"),
])
def test_a_setting_slurm_rejects_is_one_line_quoting_slurm_and_loses_nothing(slurm, tmp_path, field, value,
                                                                            quoted):
    if field == "account" and not slurm["accounting"]:
        pytest.skip("Slurm runs without accounting here, so it accepts any account name")
    out = tmp_path / "sweep"
    before = _earlier_run(_profile(tmp_path, "slurm-bad"), out)
    bad = _profile(tmp_path, "slurm-bad", **{field: value})
    proc = _sweep(bad, out)
    log = _finish(proc, timeout=300)
    assert proc.returncode == 2, log
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) == 1, log
    assert lines[0].startswith(f"error: execution.slurm.{field}: expected ") and value in lines[0]
    assert "sbatch said:" in lines[0] and quoted in lines[0].lower()
    assert not _our_jobs()  # nothing was submitted
    after = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    complete = [f for f in before if f.endswith("COMPLETE")]
    assert complete and set(complete) <= set(after)  # the complete job is kept as it was
    # the failed job's folder is moved aside, as on every rerun, never deleted
    failed = [f for f in before if f.endswith("error.json")]
    assert all(any(a.endswith(f.split("/", 1)[1]) and a.startswith(".partial/") for a in after) or f in after
               for f in failed), (before, after)
