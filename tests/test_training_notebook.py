"""notebooks/02_train.ipynb: valid, generated from its script, parameters cell first, runs under papermill."""

from __future__ import annotations

import importlib.util
import json

import nbformat
import pytest
from _training_helpers import make_folder, tiny_job


def test_notebook_structure(repo_root):
    path = repo_root / "notebooks" / "02_train.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert code[0].source.splitlines() == ["job = {}", 'run_dir = "runs/example"', "threads = 0"]
    spec = importlib.util.spec_from_file_location("_build_train_notebook",
                                                  repo_root / "notebooks" / "_build_train_notebook.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert [c.source for c in gen.build().cells] == [c.source for c in nb.cells], "rerun the generator"


@pytest.mark.slow
def test_notebook_runs_with_papermill(repo_root, tmp_path):
    import papermill as pm

    folder = make_folder(tmp_path / "data", sizes={"train": 2, "val": 1, "test": 1})
    run = tmp_path / "run"
    run.mkdir()
    pm.execute_notebook(
        str(repo_root / "notebooks" / "02_train.ipynb"), str(run / "train.ipynb"),
        parameters={"job": tiny_job(folder, max_epochs=1), "run_dir": str(run), "threads": 1},
        kernel_name="python3", progress_bar=False,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and (run / "model" / "model.safetensors").is_file()
    out = nbformat.read(run / "train.ipynb", as_version=4)
    text = json.dumps([c.get("outputs", []) for c in out.cells])
    assert "val_iou" in text and "dataset_level" in text
