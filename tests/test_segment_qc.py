"""The QC flag per segmented image: a known-shifted image is flagged, an image like the training images is
not; a folder segmented with QC off is screened when rerun with QC on."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from matseg_nb.cli import main
from matseg_nb.segment import SegmentFolder


def _blobs(seed: int, size: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random((size, size)), 6)
    smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-9)
    return (smooth * 200 + 20).astype(np.uint8)


def _dataset(root):
    for split, seeds in (("train", range(4)), ("val", range(10, 13)), ("test", range(20, 22))):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for s in seeds:
            img = _blobs(s)
            Image.fromarray(img).save(root / "images" / split / f"b{s}.png")
            Image.fromarray((img > 120).astype(np.uint8)).save(root / "masks" / split / f"b{s}.png")
    return root


def test_shifted_image_flagged_typical_not_and_qc_off_records_redone(tmp_path, capsys):
    from _sweep_helpers import write_fake_run

    from matseg_nb.models import build_model, save_model

    data = _dataset(tmp_path / "data")
    run = write_fake_run(tmp_path / "sweep", "blobs__tiny", dataset=str(data), extra_job={
        "classes": [{"id": 0, "name": "matrix"}, {"id": 1, "name": "blob"}], "in_channels": 1,
        "normalization": "percentile", "training": {"input_scale": 1.0}})
    model, _ = build_model("tu-test_resnet", "Unet", 1, 2, "none")
    save_model(model, run / "model")
    new = tmp_path / "new"
    new.mkdir()
    Image.fromarray(_blobs(99)).save(new / "typical.png")
    Image.fromarray((np.random.default_rng(5).random((160, 160)) * 255).astype(np.uint8)).save(new / "noise.png")
    args = [str(run), str(new), "--out", str(tmp_path / "out"), "--tile", "64", "--overlap", "16"]
    assert main(["segment", *args, "--no-qc"]) == 0
    assert all(r.qc_p_value is None for r in SegmentFolder(tmp_path / "out").images())
    assert main(["segment", *args]) == 0  # same folder, QC on: the unscreened records are redone
    recs = {r.name: r for r in SegmentFolder(tmp_path / "out").images()}
    assert recs["noise"].qc_flag is True and recs["noise"].qc_p_value <= 0.05
    assert recs["typical"].qc_flag is False and recs["typical"].qc_p_value > 0.05
    f = SegmentFolder(tmp_path / "out")
    assert f.batch_qc()["flagged"] == ["noise"]
    (row,) = [r for r in f.summary() if r.key == "blob/area_fraction"]
    assert row.n == 1 and list(row.flagged) == ["noise"]  # the flagged image is left out of the mean
    assert "flagged (left out of the batch numbers): noise" in capsys.readouterr().out
