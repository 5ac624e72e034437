"""training.input_scale (a ScaledInputModel everywhere a model predicts) and training.class_weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _model_helpers import tiny_smp
from _training_helpers import make_folder, tiny_job

from matseg_nb.errors import UserError
from matseg_nb.models import load_run_model, pad_multiple, predict_tiled
from matseg_nb.models.tiling import ScaledInputModel, with_input_scale
from matseg_nb.training import job_dict, run_job
from matseg_nb.training.data import Split, rescale_split
from matseg_nb.training.module import _losses


def _unet() -> torch.nn.Module:
    return tiny_smp(encoder="resnet18", classes=3, seed=None, encoder_depth=3, decoder_channels=(16, 8, 4))


def test_scaled_model_sees_the_resampled_image_and_answers_at_full_size():
    torch.manual_seed(0)
    inner = _unet()
    net = with_input_scale(inner, 0.5)
    assert with_input_scale(inner, 1.0) is inner and isinstance(net, ScaledInputModel)
    assert pad_multiple(net) == 2 * pad_multiple(inner)  # in input pixels
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        out = net(x)
        expected = F.interpolate(inner(F.avg_pool2d(x, 2)), size=(64, 96), mode="bilinear", align_corners=False)
    assert out.shape == (2, 3, 64, 96)
    torch.testing.assert_close(out, expected)
    assert net.state_dict().keys() == {f"inner.{k}" for k in inner.state_dict()}  # no duplicated parameters
    # any size through the tiled path, and QC's encoder features see the half-size image
    assert predict_tiled(net, torch.rand(1, 70, 45), 3, tile=32, overlap=8).shape == (3, 70, 45)
    assert net.encoder(torch.rand(1, 1, 64, 64))[-1].shape[-1] == 64 // 2 // 8
    with pytest.raises(ValueError, match="input_scale"):
        ScaledInputModel(inner, 1.5)


def test_rescale_split_areas_images_and_keeps_mask_ids():
    img = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    mask = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0], [2, 2, 0, 0]], np.int64)
    half = rescale_split(Split([img], [mask], ["a"]), 0.5)
    np.testing.assert_allclose(half.images[0][0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(half.masks[0], [[0, 1], [2, 0]])
    assert half.masks[0].dtype == np.int64 and half.names == ["a"]


def test_input_scale_run_predicts_at_full_resolution(tmp_path):
    folder = make_folder(tmp_path / "synth", hw=(96, 128))
    run = tmp_path / "run"
    metrics = run_job(tiny_job(folder, input_scale=0.5), run, threads=1, echo=None)
    model, meta = load_run_model(run)
    assert isinstance(model, ScaledInputModel) and meta["training"]["input_scale"] == 0.5
    import imageio.v3 as iio

    pred = iio.imread(next((run / "predictions").glob("*.png")))
    assert pred.shape == (96, 128)  # the original size, not the half-size the model saw
    assert metrics["epochs_run"] == 2
    config = json.loads((run / "model" / "config.json").read_text())  # the plain smp model is saved
    assert "inner" not in json.dumps(config)
    assert job_dict(tiny_job(folder, input_scale=0.5))["job_id"] != job_dict(tiny_job(folder))["job_id"]


def test_class_weights_weight_the_cross_entropy():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 0] = 2.0  # confident background everywhere
    y = torch.tensor([[[0, 0], [0, 2]]])
    plain = _losses(3)["ce"](logits, y)
    heavy = _losses(3, [1.0, 1.0, 10.0])["ce"](logits, y)
    torch.testing.assert_close(plain, F.cross_entropy(logits, y))
    torch.testing.assert_close(heavy, F.cross_entropy(logits, y, weight=torch.tensor([1.0, 1.0, 10.0])))
    assert heavy > plain  # the missed rare pixel counts more
    with pytest.raises(UserError, match="expected 3 weights"):
        _losses(3, [1.0, 2.0])


def test_class_weights_are_validated_in_the_profile(tmp_path):
    folder = make_folder(tmp_path / "synth")
    with pytest.raises(UserError, match="class_weights"):
        job_dict(tiny_job(folder, class_weights=[1.0, 0.0, 2.0]))
    with pytest.raises(UserError, match="input_scale"):
        job_dict(tiny_job(folder, input_scale=2.0))


def test_explanation_forward_uses_the_scaled_model():
    """The heatmap's probability function predicts through the wrapper: its exact decoder shortcut now runs
    through the input_scale map (explain's INPUT_MAPS), and the full pass equals the wrapped model's."""
    from matseg_nb.explain.forward import ProbFn

    torch.manual_seed(0)
    net = with_input_scale(_unet(), 0.5)
    fn = ProbFn(net, device="cpu")
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        expected = net(x).softmax(1)
    assert fn.box_decoder
    torch.testing.assert_close(fn(x), expected, atol=1e-5, rtol=1e-4)
