"""The QC flag per segmented image: a known-shifted image is flagged, an image like the training images is
not; a folder segmented with QC off is screened when rerun with QC on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _segment_helpers import blob_dataset, blobs, tiny_model_run
from PIL import Image

from matseg_nb.cli import main
from matseg_nb.segment import SegmentFolder


def test_shifted_image_flagged_typical_not_and_qc_off_records_redone(tmp_path, capsys):
    run = _tiny_run(tmp_path, val_seeds=range(10, 13), train_seeds=range(4))
    new = tmp_path / "new"
    new.mkdir()
    Image.fromarray(blobs(99)).save(new / "typical.png")
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


def _tiny_run(tmp_path, val_seeds=range(10, 16), train_seeds=range(5)):
    """A run folder with a tiny random model over a blob dataset (train, val, test b20-b21)."""
    data = blob_dataset(tmp_path / "data", {"train": train_seeds, "val": val_seeds, "test": range(20, 22)})
    return tiny_model_run(tmp_path / "sweep", "blobs__tiny", str(data))


def test_batch_verdict_and_p_values_are_qc_new_s_on_the_same_images_and_survive_a_resume(tmp_path):
    """Planted: noisy copies of typical images (a batch shift) and fresh typical images. ``matseg segment``
    and ``matseg qc RUN --new`` give the same verdict, batch p-value and per-image p-values; a resumed
    folder (nothing redone) gives the same batch answer."""
    import json

    run = _tiny_run(tmp_path)
    noise = np.random.default_rng(7)
    batches = {"shifted": [np.clip(blobs(s) + noise.normal(0, 40, (160, 160)), 0, 255) for s in range(40, 46)],
               "typical": [blobs(s) for s in range(40, 46)]}
    answers = {}
    for name, images in batches.items():
        folder = tmp_path / name
        folder.mkdir()
        for i, img in enumerate(images):
            Image.fromarray(img.astype(np.uint8)).save(folder / f"{name}{i}.png")
        out = tmp_path / f"seg-{name}"
        assert main(["segment", str(run), str(folder), "--out", str(out), "--tile", "64", "--overlap", "16"]) == 0
        assert main(["qc", str(run), "--new", str(folder), "--out", str(tmp_path / f"qc-{name}")]) == 0
        (qc,) = json.loads((tmp_path / f"qc-{name}" / "qc.json").read_text())["screening"]
        seg = SegmentFolder(out)
        batch = seg.batch_qc()
        assert batch["batch_verdict"] == qc["batch_verdict"] and batch["batch_test"] == qc["batch_test"]
        assert batch["batch_p_value"] == qc["batch_p_value"]
        assert {r.name: r.qc_p_value for r in seg.images()} == {i["name"]: i["p_value"] for i in qc["images"]}
        answers[name] = batch
        # resume: every image is skipped and the batch answer is redone from the stored keys
        assert main(["segment", str(run), str(folder), "--out", str(out), "--tile", "64", "--overlap", "16"]) == 0
        assert SegmentFolder(out).meta()["counts"]["skipped"] == len(images)
        assert SegmentFolder(out).batch_qc() == batch
    assert answers["shifted"]["batch_verdict"] == "shifted"
    assert answers["typical"]["batch_verdict"] != "shifted"


REAL_EBC1_RUN = "/work/runs-demo/sweep/nasa-ebc1__resnet18__Unet__s0__7b9a5d11"


@pytest.mark.slow
@pytest.mark.skipif(not Path(REAL_EBC1_RUN, "COMPLETE").is_file(), reason="needs the demo's EBC1 run folder")
def test_real_ebc1_model_on_super1_test_images_shifted_in_segment_and_qc_new(tmp_path, capsys):
    """Real data: the demo's EBC1 model screens nasa-super1's test images; segment's batch answer is qc --new's."""
    import json

    from matseg_nb.data import open_dataset

    try:
        open_dataset("nasa-super1")
    except Exception:  # noqa: BLE001
        pytest.skip("nasa-super1 not available")
    assert main(["segment", REAL_EBC1_RUN, "nasa-super1:test", "--out", str(tmp_path / "seg")]) == 0
    assert main(["qc", REAL_EBC1_RUN, "--new", "nasa-super1:test", "--out", str(tmp_path / "qc")]) == 0
    (qc,) = json.loads((tmp_path / "qc" / "qc.json").read_text())["screening"]
    batch = SegmentFolder(tmp_path / "seg").batch_qc()
    assert batch["batch_verdict"] == qc["batch_verdict"] == "shifted"
    assert batch["batch_p_value"] == qc["batch_p_value"]
    seg_p = {r.name: r.qc_p_value for r in SegmentFolder(tmp_path / "seg").images()}
    assert seg_p == {i["name"].removeprefix("test/"): i["p_value"] for i in qc["images"]}
    assert "the batch as a whole is less typical" in capsys.readouterr().out
