"""Fake loop outputs (sweep + compare + QC + explain + data) for report and dashboard tests.

The folders follow docs/ARCHITECTURE.md's run-folder format and the loop layout written by the
demo; file names inside the analysis folders are typical, the report globs for them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _sweep_helpers import write_fake_run
from PIL import Image

JOB_IDS = (
    "nasa-super1__tu-test_resnet__Unet__s0__0123abcd",
    "nasa-super1__tu-test_resnet__FPN__s0__4567ef01",
)


def write_png(path: Path, seed: int = 0, size: int = 32) -> Path:
    """A small random RGB PNG."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def make_fake_loop(root: Path, with_qc: bool = True, with_explain: bool = True) -> Path:
    """Create ``root/{sweep,compare,qc,explain,data}``; returns the sweep folder."""
    sweep = root / "sweep"
    sweep.mkdir(parents=True)
    profile = {"name": "demo-tiny", "datasets": ["nasa-super1"], "encoders": ["tu-test_resnet"],
               "decoders": ["Unet", "FPN"], "task": {"text": "segment gamma-prime precipitates"}}
    (sweep / "sweep.json").write_text(json.dumps({"profile": profile, "job_ids": list(JOB_IDS)}))
    summary = {"jobs": [{"job_id": JOB_IDS[0], "status": "complete"},
                        {"job_id": JOB_IDS[1], "status": "failed", "error": "ValueError: boom <script>"}]}
    (sweep / "summary.json").write_text(json.dumps(summary))
    for i, job_id in enumerate(JOB_IDS):
        ds, enc, dec, *_ = job_id.split("__")
        write_fake_run(sweep, job_id, dataset=ds, encoder=enc, decoder=dec,
                       status="complete" if i == 0 else "failed", ious=[0.8123456], dice=0.87,
                       error=("ValueError", "boom <script>"))
    comp = root / "compare"
    comp.mkdir()
    (comp / "table_iou.csv").write_text("dataset,encoder,decoder,iou\nnasa-super1,tu-test_resnet,Unet,0.8123456\n")
    write_png(comp / "iou_bars.png", 1)
    (comp / "recommendation.json").write_text(json.dumps({"encoder": "tu-test_resnet", "decoder": "Unet",
                                                         "reason": "best mean IoU"}))
    if with_qc:
        qc = root / "qc"
        qc.mkdir()
        (qc / "qc.json").write_text(json.dumps({"verdict": "review", "auroc": 0.91, "f1": 0.8,
                                                "flagged": [{"image": "img_007.tif", "score": 0.99}]}))
        (qc / "scores.csv").write_text("image,score,flagged\nimg_007.tif,0.99,True\nimg_001.tif,0.1,False\n")
        write_png(qc / "roc.png", 2)
    if with_explain:
        ex = root / "explain"
        ex.mkdir()
        write_png(ex / "heatmap.png", 3)
        np.save(ex / "heatmap.npy", np.zeros((4, 4), np.float32))
        (ex / "faithfulness.json").write_text(json.dumps({"deletion_auc": 0.3, "insertion_auc": 0.7}))
    data = root / "data"
    data.mkdir()
    (data / "dataset_summary.json").write_text(json.dumps({"name": "nasa-super1", "n_train": 10}))
    write_png(data / "preview.png", 4)
    return sweep
