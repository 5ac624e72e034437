"""compare shows each cell's measurement error (prediction - truth on the test images) beside its IoU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def _png(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_compare_measurement_error_column(tmp_path):
    from _sweep_helpers import write_fake_run

    from matseg_nb.compare.pipeline import compare_sweeps
    from matseg_nb.runs import Run

    data = tmp_path / "data"
    truth = np.zeros((50, 40), np.uint8)
    truth[10:20, 10:20] = 1  # 100 px = 5 %
    for split in ("train", "val", "test"):
        for i in range(2):
            (data / "images" / split).mkdir(parents=True, exist_ok=True)
            (data / "masks" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray((np.random.default_rng(i).random((50, 40)) * 255).astype(np.uint8)).save(
                data / "images" / split / f"{split}{i}.png")
            (data / "masks" / split / f"{split}{i}.png").write_bytes(_png(truth))
    sweep = tmp_path / "sweep"
    for job, extra in (("a", 20), ("b", 0)):  # a: 20 px more on each image = +1 pp; b: exact
        path = write_fake_run(sweep, f"{job}__tu-test_resnet", dataset=str(data), decoder="Unet" if job == "a" else "FPN",
                              extra_job={"classes": [{"id": 0, "name": "matrix"}, {"id": 1, "name": "particle"}]})
        for i in range(2):
            pred = truth.copy()
            pred[20 : 20 + extra // 10, 10:20] = 1
            Run(path).write_prediction(f"test{i}", _png(pred))
    compare_sweeps([sweep], tmp_path / "cmp")
    cells = pd.read_csv(tmp_path / "cmp" / "complete_table.csv").set_index("decoder")
    assert abs(cells.loc["Unet", "af_abs_bias_pp"] - 1.0) < 1e-9 and cells.loc["FPN", "af_abs_bias_pp"] == 0
    assert "particle: area +1.00 pp, d50 +" in cells.loc["Unet", "measurement_error"]
    assert "particle: area +0.00 pp, d50 +0 px" in cells.loc["FPN", "measurement_error"]
    pretty = (tmp_path / "cmp" / "complete_table.md").read_text()
    assert "area frac. \\|bias\\| (pp)" in pretty or "area frac. |bias| (pp)" in pretty
    best = pd.read_csv(Path(tmp_path / "cmp" / "best_table.csv"))
    assert best["measurement_error"].str.startswith("particle: area").all() and best["af_abs_bias_pp"].notna().all()
