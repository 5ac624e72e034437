"""A progress bar appears in a notebook run: papermill executes a small heatmap with ``progress=True`` and
the saved notebook holds a tqdm widget bar (tqdm.auto picks the Jupyter widget in a kernel) whose saved
widget state reached its total, next to the heatmap's size line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

TESTS = Path(__file__).resolve().parent

CELL = """
from _explain_helpers import box_mask, rand_image, tiny_model
from matseg_nb.explain import heatmap
res = heatmap(tiny_model("Unet"), rand_image(1, 48, 40), box_mask(), window=8, stride=8, max_batch=4,
              progress=True, log=print)
print("done", int(res.valid.sum()))
"""


@pytest.mark.slow
def test_heatmap_shows_a_widget_progress_bar_under_papermill(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    # qtpy (imported by the napari pytest plugin) sets QT_API, which makes tqdm.auto assume a Qt console;
    # a Jupyter or Voila kernel started by a user has no such variable
    monkeypatch.delenv("QT_API", raising=False)
    # the kernel imports the tests' helpers through its environment, as the umask test does
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    src, out = tmp_path / "progress.ipynb", tmp_path / "executed.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    executed = nbformat.read(out, as_version=4)
    outputs = executed.cells[0].outputs
    bars = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert bars, json.dumps(outputs)[:2000]
    assert "heatmap" in bars[0]["data"].get("text/plain", "") and "/30" in bars[0]["data"]["text/plain"]
    # the widget state saved with the notebook: a progress bar of 30 locations that reached its total
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    progress = [m["state"] for m in state.values() if m["model_name"] == "FloatProgressModel"]
    assert any(p["max"] == 30 and p["value"] == 30 for p in progress), progress
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "heatmap: 30 locations" in printed and "done 30" in printed
