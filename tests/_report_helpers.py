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


TEST_IMAGES = ("spot2_0d_0", "spot2_0d_4", "spot2_180d_3", "spot2_180d_5")  # nasa-super1's test split


def _png_mask(size: int = 512) -> bytes:
    import io

    yy, xx = np.mgrid[:size, :size]
    mask = (((yy - size // 2) ** 2 + (xx - size // 2) ** 2) < (size // 4) ** 2).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    return buf.getvalue()


def make_fake_loop(root: Path, with_qc: bool = True, with_explain: bool = True,
                   with_compare: bool = True) -> Path:
    """Create ``root/{sweep,compare,qc,explain,data}`` in the formats the loop writes; returns the sweep.

    Known answers: on nasa-super1 tu-test_resnet+Unet (IoU 0.812, CI [0.79, 0.83]) beats FPN (0.7,
    p = 0.01, significant); QC is "not ready" because blur:mild has image AUROC 0.62 < 0.95; the heatmap
    is faithful (ratio 3.2 over random). Job 2 (FPN) failed with an HTML-looking error message.
    """
    sweep = root / "sweep"
    sweep.mkdir(parents=True)
    profile = {"name": "demo-tiny", "datasets": ["nasa-super1"], "encoders": ["tu-test_resnet"],
               "decoders": ["Unet", "FPN"], "task": {"text": "segment gamma-prime precipitates"}}
    (sweep / "sweep.json").write_text(json.dumps({"profile": profile, "job_ids": list(JOB_IDS)}))
    summary = {"jobs": [{"job_id": JOB_IDS[0], "status": "complete"},
                        {"job_id": JOB_IDS[1], "status": "failed", "error": "ValueError: boom <script>"}]}
    (sweep / "summary.json").write_text(json.dumps(summary))
    from matseg_nb.runs import Run

    for i, job_id in enumerate(JOB_IDS):
        ds, enc, dec, *_ = job_id.split("__")
        write_fake_run(sweep, job_id, dataset=ds, encoder=enc, decoder=dec,
                       status="complete" if i == 0 else "failed", ious=[0.8123456], dice=0.87,
                       error=("ValueError", "boom <script>"))
    for stem in TEST_IMAGES:
        Run(sweep / JOB_IDS[0]).write_prediction(stem, _png_mask())
    if with_compare:
        comp = root / "compare"
        comp.mkdir()
        (comp / "best_table.csv").write_text(
            "dataset,encoder,decoder,arch,iou,iou_ci_lo,iou_ci_hi,runner_up,runner_up_iou,delta_iou,test,"
            "n_images,p_value,verdict\n"
            "nasa-super1,tu-test_resnet,Unet,tu-test_resnet+Unet,0.8123456,0.7912,0.8311,tu-test_resnet+FPN,0.7,"
            "0.1123,sign-flip,4,0.01,significant\n")
        write_png(comp / "heatmap_iou.png", 1)
        (comp / "recommendation.json").write_text(json.dumps({"encoder": "tu-test_resnet", "decoder": "Unet",
                                                             "reason": "best mean IoU"}))
    if with_qc:
        qc = root / "qc"
        qc.mkdir()
        ood = {"noise:strong": {"gmm": {"image": {"auroc": 0.97, "f1": 0.9, "precision": 0.85, "threshold": -3.2}}},
               "blur:mild": {"gmm": {"image": {"auroc": 0.62, "f1": 0.5, "precision": 0.55, "threshold": -3.2}}}}
        (qc / "qc.json").write_text(json.dumps({
            "dataset": "nasa-super1", "run_dir": str(sweep / JOB_IDS[0]), "verdict": "not ready",
            "primary_detector": "gmm", "readiness_threshold": 0.95, "ood_sets": list(ood),
            "levels": {"input": {"ood": ood, "verdicts": {"noise:strong": "ready", "blur:mild": "not ready"},
                                 "verdict": "not ready"}}}))
        rows = ["level,set,ood,image,detector,typicality,threshold,flag,iou"]
        rng = np.random.default_rng(0)
        for stem in TEST_IMAGES:
            rows.append(f"input,test,0,{stem},gmm,{rng.normal(0, 1):.3f},,,0.8")
        for j in range(8):
            rows.append(f"input,noise:strong,1,img_{j:03d}.tif,gmm,{rng.normal(-8, 1):.3f},-3.2,True,")
        (qc / "scores.csv").write_text("\n".join(rows) + "\n")
        write_png(qc / "roc.png", 2)
    if with_explain:
        ex = root / "explain"
        ex.mkdir()
        write_png(ex / "explanation.png", 3, size=64)
        write_png(ex / "heatmap.png", 5)
        np.save(ex / "heatmap.npy", np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32))
        Image.fromarray((np.eye(32) * 255).astype(np.uint8)).save(ex / "annotation.png")
        faith = {"k_main": 0.1, "ratio_top_random": 3.2, "top_beats_random": True}
        (ex / "faithfulness.json").write_text(json.dumps(faith))
        (ex / "explain.json").write_text(json.dumps({
            "run_dir": str(sweep / JOB_IDS[0]), "image": f"/data/{TEST_IMAGES[0]}.tif",
            "mask": str(ex / "annotation.png"), "faithfulness": faith}))
    data = root / "data"
    data.mkdir()
    (data / "dataset_summary.json").write_text(json.dumps({"name": "nasa-super1", "n_train": 10}))
    write_png(data / "preview.png", 4)
    return sweep
