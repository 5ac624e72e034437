"""The input normalization follows the encoder weights: MicroNet weights get MicroNet's mean/std after the
profile's percentile scaling, in training, in every later reader of job.json, and in a bioimage.io package."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matseg_nb.data import normalize_image
from matseg_nb.data.readers import model_normalization
from matseg_nb.micronet import MICRONET_MEAN, MICRONET_STD, input_standardization


@pytest.mark.parametrize(("weights", "expected"), [
    ("micronet", "percentile+micronet"), ("imagenet-micronet", "percentile+imagenet-micronet"),
    ("MicroNet", "percentile+micronet"), ("imagenet", "percentile"), ("none", "percentile"), (None, "percentile"),
    ("/weights/encoder.pth", "percentile")])
def test_model_normalization_follows_the_weights(weights, expected):
    assert model_normalization("percentile", weights) == expected


def test_micronet_standardization_values():
    # a ramp: percentile scaling maps its 0.5th..99.5th percentiles to 0..1; then (x - mean) / std per channel
    ramp = np.linspace(0, 1000, 200 * 200, dtype=np.float32).reshape(1, 200, 200)
    rgb = np.concatenate([ramp, ramp * 2, ramp + 5])
    base = normalize_image(rgb, "percentile")
    got = normalize_image(rgb, "percentile+micronet")
    for c in range(3):
        np.testing.assert_allclose(got[c], (base[c] - MICRONET_MEAN[c]) / MICRONET_STD[c], rtol=1e-6, atol=1e-6)
    grey = normalize_image(ramp, "percentile+micronet")
    mean, std = input_standardization("micronet", 1)
    assert mean == (pytest.approx(sum(MICRONET_MEAN) / 3),) and std == (pytest.approx(sum(MICRONET_STD) / 3),)
    np.testing.assert_allclose(grey[0], (normalize_image(ramp, "percentile")[0] - mean[0]) / std[0], rtol=1e-6)
    assert grey.min() < -2 and grey.max() > 3  # standardized, no longer in [0, 1]


def test_unknown_standardization_is_one_line():
    from matseg_nb.errors import UserError

    with pytest.raises(UserError, match="expected input statistics of one of micronet, imagenet-micronet"):
        normalize_image(np.zeros((1, 4, 4), np.float32), "percentile+cifar")


def test_training_with_micronet_weights_records_and_uses_micronet_normalization(tmp_path, monkeypatch):
    """A tiny job on cached MicroNet weights: job.json says percentile+micronet, and the deployed model
    (segment, QC, export) normalizes with it; the package describes it in spec terms."""
    import torch
    from _model_helpers import tiny_smp
    from _training_helpers import make_folder, tiny_job

    from matseg_nb.export.package import spec_preprocessing
    from matseg_nb.micronet import micronet_cache_dir
    from matseg_nb.segment.model import resolve_model
    from matseg_nb.training.runner import run_job

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    micronet_cache_dir().mkdir(parents=True)
    donor = tiny_smp(seed=3).encoder.state_dict()
    torch.save(donor, micronet_cache_dir() / "tu-test_resnet_pretrained_microscopynet_v1.0.pth")
    folder = make_folder(tmp_path / "data")
    job = {**tiny_job(folder, max_epochs=1), "encoder_weights": "micronet"}
    run_job(job, tmp_path / "run", threads=1, echo=None)
    meta = json.loads((tmp_path / "run" / "job.json").read_text())
    assert meta["normalization"] == "percentile+micronet"
    assert "microscopynet" in json.dumps(meta["encoder_weights_report"])  # the cached MicroNet file was loaded
    assert resolve_model(tmp_path / "run").normalization == "percentile+micronet"
    steps, words = spec_preprocessing(meta["normalization"], 1)
    assert [s.id for s in steps] == ["scale_range", "clip", "fixed_zero_mean_unit_variance"]
    assert steps[-1].kwargs.mean == [pytest.approx(sum(MICRONET_MEAN) / 3)]
    assert "micronet" in words
