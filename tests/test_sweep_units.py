"""Unit tests of the sweep's pieces: threads, COMPLETE marker rules, error records, summary, status."""

from __future__ import annotations

import json

import pytest

from matseg_nb.errors import UserError
from matseg_nb.run_marker import is_complete, move_aside, prepare_run_dir, write_marker
from matseg_nb.sweep.failure import error_record, one_line
from matseg_nb.sweep.spec import to_specs
from matseg_nb.sweep.status import format_status, sweep_status
from matseg_nb.sweep.summary import JobRecord, SweepSummary
from matseg_nb.sweep.threads import thread_env, threads_per_worker


def test_threads_per_worker_divides_cores_and_never_drops_below_one():
    assert threads_per_worker(2, cpus=16) == 8
    assert threads_per_worker(3, cpus=16) == 5
    assert threads_per_worker(4, cpus=2) == 1
    assert threads_per_worker(0, cpus=6) == 6
    assert thread_env(3)["OMP_NUM_THREADS"] == "3" and thread_env(3)["MKL_NUM_THREADS"] == "3"
    assert thread_env(0) == {}


def test_complete_needs_marker_with_matching_ids(tmp_path):
    run = tmp_path / "job-a"
    run.mkdir()
    assert not is_complete(run, "job-a")
    write_marker(run, "job-a", "2026-01-01T00:00:00Z", 1.5)
    assert is_complete(run, "job-a")
    assert not is_complete(run, "job-b")  # marker names another job
    (run / "job.json").write_text(json.dumps({"job_id": "job-b"}))
    assert not is_complete(run, "job-a")  # job.json disagrees
    (run / "job.json").write_text(json.dumps({"job_id": "job-a", "job": {"job_id": "job-a"}}))
    assert is_complete(run, "job-a")


def test_prepare_moves_incomplete_folders_aside_and_keeps_complete_ones(tmp_path):
    done, partial = tmp_path / "done", tmp_path / "partial"
    done.mkdir()
    write_marker(done, "done", "2026-01-01T00:00:00Z", 1.0)
    partial.mkdir()
    (partial / "metrics.json").write_text("{}")
    assert prepare_run_dir(done, "done") is True
    assert prepare_run_dir(partial, "partial") is False
    assert partial.is_dir() and not any(partial.iterdir())  # fresh and empty
    moved = list((tmp_path / ".partial").iterdir())
    assert len(moved) == 1 and moved[0].name.startswith("partial.partial-")
    assert (moved[0] / "metrics.json").exists() and not is_complete(moved[0], "partial")
    assert move_aside(partial) is None  # empty folder: nothing to keep


def test_error_record_of_plain_exception_has_type_message_traceback():
    try:
        raise RuntimeError("loss is NaN at step 3")
    except RuntimeError as exc:
        rec = error_record(exc, failed_cell={"index": 4, "source": "run_job(job, run_dir)"})
    assert rec["type"] == "RuntimeError" and rec["message"] == "loss is NaN at step 3"
    assert "Traceback" in rec["traceback"] and rec["cell"]["index"] == 4
    assert one_line(rec) == "RuntimeError: loss is NaN at step 3"


def test_duplicate_job_ids_are_a_user_error():
    with pytest.raises(UserError, match="duplicates"):
        to_specs([{"job_id": "a"}, {"job_id": "a"}])


def test_summary_counts_exit_code_and_eta():
    s = SweepSummary("/tmp/x", [JobRecord("a", "complete", duration_s=10.0), JobRecord("b", "failed", duration_s=30.0),
                                JobRecord("c"), JobRecord("d")], workers=2)
    assert s.counts == {"complete": 1, "failed": 1, "running": 0, "pending": 2}
    assert s.exit_code == 1 and not s.ok
    assert s.eta_s() == pytest.approx(20.0)  # mean 20 s x 2 pending / 2 workers


def test_status_reads_folders_over_a_stale_summary(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"job_ids": ["a", "b", "c"]}))
    (tmp_path / "summary.json").write_text(json.dumps({
        "jobs": [{"job_id": "a", "status": "running"}, {"job_id": "b", "status": "running"}],
        "finished_at": None, "host": "elsewhere", "updated_at": "2000-01-01T00:00:00Z", "workers": 1}))
    (tmp_path / "a").mkdir()
    write_marker(tmp_path / "a", "a", "2026-01-01T00:00:00Z", 2.0)
    (tmp_path / "a" / "metrics.json").write_text(json.dumps({"dataset_level": {"iou": 0.42}}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "error.json").write_text(json.dumps({"type": "OutOfMemoryError", "message": "CUDA out of memory"}))
    status = sweep_status(tmp_path)
    assert [j["status"] for j in status["jobs"]] == ["complete", "failed", "pending"]
    assert status["jobs"][0]["test_iou"] == pytest.approx(0.42)
    assert status["state"] == "interrupted"  # the writer is gone and a job is left
    text = format_status(status)
    assert "OutOfMemoryError: CUDA out of memory" in text and "1 complete, 1 failed" in text


def test_status_of_a_folder_without_a_sweep_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="sweep.json"):
        sweep_status(tmp_path)


def test_a_second_sweep_on_a_folder_owned_by_a_live_sweep_is_refused(tmp_path):
    import os
    import socket

    from matseg_nb.sweep import run_jobs

    (tmp_path / "summary.json").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                                      "finished_at": None, "jobs": []}))
    nb = tmp_path / "nb.ipynb"
    nb.write_text("{}")
    with pytest.raises(UserError, match="no other sweep running"):
        run_jobs([{"job_id": "a"}], tmp_path, notebook=nb, progress=False)
    assert not (tmp_path / "a").exists()


def test_progress_shows_the_latest_validation_epoch_while_training(tmp_path):
    from matseg_nb.sweep.progress import format_seconds, latest_epoch

    assert latest_epoch(tmp_path) is None
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "metrics.csv").write_text(
        "epoch,step,train_loss,val_iou\n0,5,,0.25\n0,5,1.2,\n1,11,,0.375\n1,11,0.9,\n")
    assert latest_epoch(tmp_path) == "ep 1 val_iou 0.375"
    (tmp_path / "history.csv").write_text("epoch,val_iou\n0,0.25\n1,0.375\n2,0.5\n")
    assert latest_epoch(tmp_path) == "ep 2 val_iou 0.500"
    assert [format_seconds(s) for s in (None, 12, 250, 3720)] == ["?", "12s", "4m10s", "1h02m"]
