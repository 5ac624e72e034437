"""notebooks/02_train_sweep.ipynb runs under papermill with a tiny profile (stand-in training notebook)."""

from __future__ import annotations

import json

import papermill as pm
import pytest
from _sweep_helpers import CONTROL_ENV, counted, make_fake_notebook, write_control, write_profile

pytestmark = pytest.mark.slow


def test_sweep_notebook_runs_the_profile_and_shows_the_table(tmp_path, monkeypatch, repo_root):
    fake = make_fake_notebook(tmp_path / "fake.ipynb")
    profile = write_profile(tmp_path / "p.json", seeds=(0, 1))
    counter = tmp_path / "counter.txt"
    monkeypatch.setenv(CONTROL_ENV, str(write_control(tmp_path / "c.json", counter)))
    out = tmp_path / "sweep"
    nb = pm.execute_notebook(str(repo_root / "notebooks" / "02_train_sweep.ipynb"), str(tmp_path / "out.ipynb"),
                             parameters={"profile": str(profile), "out_dir": str(out), "train_notebook": str(fake)},
                             kernel_name="python3", progress_bar=False, cwd=str(repo_root))
    assert len(counted(counter)) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["complete"] == 2
    table = nb.cells[-1].outputs[-1]["data"]["text/plain"]
    assert "complete" in table and "0.11" in table  # seed 1 -> stand-in IoU 0.11
