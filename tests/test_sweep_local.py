"""The local executor: one job per GPU when several are visible (CUDA_VISIBLE_DEVICES per job,
threads split), and threads = all cores for a single slot. Real papermill, stand-in notebook; only
the GPU count is faked (this machine has none)."""

from __future__ import annotations

import json

import pytest
from _sweep_helpers import CONTROL_ENV, make_fake_notebook, write_control, write_profile

from matseg_nb.sweep import local, run_sweep
from matseg_nb.sweep.threads import cpu_count

pytestmark = pytest.mark.slow


def _metrics(out, summary):
    return [json.loads((out / r.job_id / "metrics.json").read_text()) for r in summary.jobs]


def test_one_job_per_visible_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "visible_gpus", lambda: ["3", "5"])
    monkeypatch.setenv(CONTROL_ENV, str(write_control(tmp_path / "c.json", tmp_path / "n.txt", default={"sleep": 2})))
    nb = make_fake_notebook(tmp_path / "fake.ipynb")
    out = tmp_path / "sweep"
    summary = run_sweep(write_profile(tmp_path / "p.json", seeds=(0, 1)), out, executor="local", notebook=nb,
                        progress=False, threads=None)
    assert summary.ok and summary.workers == 2
    metrics = _metrics(out, summary)
    assert sorted(m["cuda"] for m in metrics) == ["3", "5"]
    assert {m["threads"] for m in metrics} == {max(1, cpu_count() // 2)}


def test_single_slot_uses_all_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "visible_gpus", lambda: [])
    monkeypatch.setenv(CONTROL_ENV, str(write_control(tmp_path / "c.json", tmp_path / "n.txt")))
    nb = make_fake_notebook(tmp_path / "fake.ipynb")
    out = tmp_path / "sweep"
    summary = run_sweep(write_profile(tmp_path / "p.json", seeds=(0,)), out, executor="local", notebook=nb,
                        progress=False, threads=None)
    (m,) = _metrics(out, summary)
    assert summary.workers == 1 and m["cuda"] is None
    assert m["threads"] == cpu_count() and m["omp"] == str(cpu_count())
