"""run_job end to end on a tiny synthetic folder (tu-test_resnet, 64 px crops, 2 epochs x 2 steps)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import torch
from _training_helpers import make_folder, tiny_job

from matseg_nb.data import open_dataset
from matseg_nb.errors import UserError
from matseg_nb.models import load_run_model, predict_tiled
from matseg_nb.training import (
    NonFiniteLossError,
    SegDataModule,
    effective_precision,
    job_dict,
    load_split,
    run_job,
)
from matseg_nb.training.data import centre_crop


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def run_a(folder, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "a"
    lines: list[str] = []
    metrics = run_job(tiny_job(folder), run, threads=1, echo=lines.append)
    return run, metrics, lines


def test_run_folder_contents(run_a):
    run, metrics, lines = run_a
    assert {"job.json", "history.csv", "metrics.json", "per_image.csv", "model", "predictions"} <= {
        p.name for p in run.iterdir()
    }
    assert not (run / "COMPLETE").exists()
    assert not list(run.glob(".ckpt-*")) and not list(run.rglob("*.tmp"))
    job = json.loads((run / "job.json").read_text())
    for key in ("versions", "git_commit", "seed", "device", "classes", "in_channels", "normalization",
                "encoder_weights_report", "job_id", "training"):
        assert key in job, key
    assert job["encoder_weights_report"]["mode"] == "none" and job["in_channels"] == 1
    assert set(job["versions"]) >= {"torch", "smp", "lightning", "matseg_nb"}
    hist = pd.read_csv(run / "history.csv")
    assert list(hist.columns) == ["epoch", "train_loss", "val_loss", "val_iou", "val_dice", "lr", "epoch_time_s"]
    assert len(hist) == 2 and hist["lr"].iloc[0] == pytest.approx(1e-4) and hist["lr"].iloc[1] < 1e-4
    assert len(lines) == 2 and "val_iou" in lines[0]
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("dataset_level", "per_image_mean", "per_class", "epochs_run", "best_epoch", "train_time_s",
                "latency_s_per_image", "n_params", "encoder_weights"):
        assert key in saved, key
    assert saved["epochs_run"] == 2 and saved["encoder_weights"] == "none"
    assert 0.0 <= saved["dataset_level"]["iou"] <= 1.0
    rows = pd.read_csv(run / "per_image.csv")
    assert len(rows) == 2 * 3 and sorted(set(rows["class_id"])) == [0, 1, 2]
    pred = iio.imread(run / "predictions" / "test0.png")
    assert pred.dtype == np.uint8 and pred.shape == (72, 90) and pred.max() <= 2


def test_saved_model_reproduces_predictions(run_a, folder):
    run, _, _ = run_a
    model, meta = load_run_model(run)
    assert meta["job_id"]
    from matseg_nb.data import normalize_image, read_image

    img = normalize_image(read_image(folder / "images" / "test" / "test0.png"), meta["normalization"])
    probs = predict_tiled(model, torch.from_numpy(img), 3, tile=64, overlap=16)
    assert np.array_equal(probs.argmax(0).numpy().astype(np.uint8), iio.imread(run / "predictions" / "test0.png"))


def test_same_seed_same_metrics(run_a, folder, tmp_path):
    _, metrics, _ = run_a
    again = run_job(tiny_job(folder), tmp_path / "b", threads=1, echo=None)
    assert again["dataset_level"] == metrics["dataset_level"]
    assert again["per_image_mean"] == metrics["per_image_mean"]
    a = pd.read_csv(run_a[0] / "history.csv").drop(columns="epoch_time_s")
    b = pd.read_csv(tmp_path / "b" / "history.csv").drop(columns="epoch_time_s")
    pd.testing.assert_frame_equal(a, b)


def test_nan_loss_raises(folder, tmp_path, monkeypatch):
    import matseg_nb.training.module as module

    real = module._losses

    def nan_losses(k, class_weights=None):
        return {name: (lambda logits, y, f=f: f(logits, y) * float("nan")) for name, f in real(k, class_weights).items()}

    monkeypatch.setattr(module, "_losses", nan_losses)
    with pytest.raises(NonFiniteLossError, match="nan"):
        run_job(tiny_job(folder, max_epochs=1), tmp_path / "nan", echo=None)


def test_job_dict_validation(folder):
    with pytest.raises(UserError, match="job.encoder"):
        job_dict({"dataset": str(folder), "decoder": "Unet"})
    with pytest.raises(UserError, match="crop_size"):
        job_dict(tiny_job(folder, crop_size=50))
    d = job_dict(tiny_job(folder))
    assert d["training"]["lr"] == 1e-4 and d["job_id"].startswith(folder.name)


def test_precision_policy():
    assert effective_precision("16-mixed", "cpu") == "32"
    assert effective_precision("32", "cuda") == "16-mixed"
    assert effective_precision("bf16-mixed", "cuda") == "bf16-mixed"


def test_centre_crop_keeps_short_sides_whole():
    img, mask = np.arange(2 * 72 * 90).reshape(2, 72, 90), np.arange(72 * 90).reshape(72, 90)
    ci, cm = centre_crop(img, mask, 64)
    assert ci.shape == (2, 64, 64) and cm.shape == (64, 64)
    assert cm[0, 0] == mask[4, 13] and np.array_equal(ci[1], img[1, 4:68, 13:77])
    ci, cm = centre_crop(img, mask, 96)
    assert ci.shape == (2, 72, 90) and np.array_equal(cm, mask)
    assert centre_crop(img, mask, None)[1] is mask


def test_val_crop_changes_validation_only(folder, tmp_path):
    whole = run_job(tiny_job(folder, max_epochs=1), tmp_path / "whole", threads=1, echo=None)
    spec = job_dict(tiny_job(folder, max_epochs=1, val_crop_size=32))
    batch = next(iter(SegDataModule(load_split(open_dataset(str(folder)), "val"), load_split(
        open_dataset(str(folder)), "val"), spec["training"]).val_dataloader()))
    assert batch[0].shape[-2:] == (32, 32) and batch[1].shape[-2:] == (32, 32)
    cropped = run_job(spec, tmp_path / "crop", threads=1, echo=None)
    assert cropped["dataset_level"] == whole["dataset_level"]  # one epoch: same weights are tested
    a, b = (pd.read_csv(tmp_path / d / "history.csv") for d in ("whole", "crop"))
    assert a["val_loss"].iloc[0] != b["val_loss"].iloc[0]
    assert json.loads((tmp_path / "crop" / "job.json").read_text())["training"]["val_crop_size"] == 32


def test_foreground_crops_centre_on_rare_classes():
    """foreground_crop_fraction 1: every crop holds a pixel of a rare class; 0: most crops hold none."""
    from matseg_nb.training.data import CropDataset, Split

    mask = np.zeros((256, 256), np.int64)
    mask[200:203, 40:43] = 2  # 9 pixels of class 2, 0.01 % of the image
    mask[10:14, 230:234] = 1
    split = Split([np.zeros((1, 256, 256), np.float32)], [mask], ["a"])
    torch.manual_seed(0)
    centred = CropDataset(split, 32, 64, {"rot90": False}, foreground_fraction=1.0)
    crops = [centred[i][1] for i in range(64)]
    assert all(bool((c > 0).any()) for c in crops)
    assert {int(c.max()) for c in crops} == {1, 2}  # classes drawn uniformly, not by pixel count
    uniform = CropDataset(split, 32, 64, {"rot90": False}, foreground_fraction=0.0)
    assert sum(bool((uniform[i][1] > 0).any()) for i in range(64)) < 16


def test_decoder_options_reach_the_saved_model(folder, tmp_path):
    spec = {**tiny_job(folder, decoder="DeepLabV3", max_epochs=1), "decoder_options": {"encoder_output_stride": 16}}
    run_job(spec, tmp_path / "os16", threads=1, echo=None)
    config = json.loads((tmp_path / "os16" / "model" / "config.json").read_text())
    assert config["_model_class"] == "DeepLabV3" and config["encoder_output_stride"] == 16
    assert json.loads((tmp_path / "os16" / "job.json").read_text())["decoder_options"] == {"encoder_output_stride": 16}
    model, _ = load_run_model(tmp_path / "os16")
    assert model.encoder.output_stride == 16
