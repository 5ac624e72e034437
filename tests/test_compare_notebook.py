"""notebooks/03_compare.ipynb runs headless (papermill) on a synthetic sweep and writes its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _compare_helpers import demo_sweep, disc_folder

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_compare.ipynb"


@pytest.mark.slow
def test_compare_notebook_runs(tmp_path):
    papermill = pytest.importorskip("papermill")
    sweep = demo_sweep(tmp_path, n_images=6, seeds=(0,))
    data = disc_folder(tmp_path / "discs")
    out = tmp_path / "compare"
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                               parameters={"sweep_dirs": [str(sweep)], "out_dir": str(out), "dataset": str(data)},
                               progress_bar=False)
    assert (out / "best_table.md").exists() and (out / "heatmap_iou.png").exists()
    rec = json.loads((out / "recommendation.json").read_text())
    assert rec["ranked"][0]["decoder"] == "Unet"
