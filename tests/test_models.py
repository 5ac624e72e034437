"""build_model weights handling, save/load round trip, tiled inference (tiny tu-test_resnet encoder)."""

from __future__ import annotations

import time

import pytest
import torch

from matseg_nb.errors import UserError
from matseg_nb.models import build_model, load_run_model, pad_multiple, predict_tiled, save_model

ENC = "tu-test_resnet"


def test_build_none_reports_scratch():
    model, report = build_model(ENC, "Unet", in_channels=1, classes=3, encoder_weights="none")
    assert report["mode"] == "none" and report["pretrained"] is False
    assert "scratch" in report["note"]
    out = model.eval()(torch.zeros(1, 1, 64, 64))
    assert out.shape == (1, 3, 64, 64)


@pytest.mark.parametrize("decoder", ["DeepLabV3", "deeplabv3plus", "DeepLabV3+", "FPN"])
def test_decoder_names(decoder):
    model, _ = build_model(ENC, decoder, in_channels=2, classes=2)
    assert model.eval()(torch.zeros(1, 2, 64, 64)).shape == (1, 2, 64, 64)


def test_bad_names_are_user_errors():
    with pytest.raises(UserError, match="decoder"):
        build_model(ENC, "NoSuchNet", 1, 2)
    with pytest.raises(UserError, match="encoder"):
        build_model("resnet_does_not_exist", "Unet", 1, 2)
    with pytest.raises(UserError, match="encoder_weights"):
        build_model(ENC, "Unet", 1, 2, encoder_weights="imagenet21k-maybe")


@pytest.mark.parametrize("encoder", ["resnet50", ENC])
def test_imagenet_missing_fails_fast_with_instructions(tmp_path, monkeypatch, encoder):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    t0 = time.perf_counter()
    with pytest.raises(UserError) as info:
        build_model(encoder, "Unet", 1, 3, encoder_weights="imagenet")
    assert time.perf_counter() - t0 < 2.0
    msg = str(info.value)
    assert "huggingface-cli download" in msg and "HF_HOME" in msg and "none" in msg
    if encoder == "resnet50":
        assert "smp-hub/resnet50.imagenet" in msg


def test_imagenet_from_local_cache(tmp_path, monkeypatch):
    """A fake smp-hub cache entry (weights from a random encoder) is found and loaded offline."""
    import segmentation_models_pytorch as smp
    from huggingface_hub.constants import REPO_ID_SEPARATOR  # noqa: F401  (hub layout: models--org--name)
    from safetensors.torch import save_file

    enc = "resnet18"
    settings = smp.encoders.encoders[enc]["pretrained_settings"]["imagenet"]
    repo, rev = settings["repo_id"], settings["revision"]
    snap = tmp_path / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / rev
    snap.mkdir(parents=True)
    ref_encoder = smp.encoders.get_encoder(enc, in_channels=3, weights=None)
    sd = {k: v.contiguous() for k, v in ref_encoder.state_dict().items()}
    save_file(sd, str(snap / "model.safetensors"))
    (snap / "config.json").write_text("{}")
    refs = snap.parents[1] / "refs"
    refs.mkdir()
    (refs / "main").write_text(rev)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model, report = build_model(enc, "Unet", 3, 2, encoder_weights="imagenet")
    assert report["mode"] == "imagenet" and report["repo_id"] == repo
    torch.testing.assert_close(model.encoder.state_dict()["layer1.0.conv1.weight"], sd["layer1.0.conv1.weight"])
    assert model.config["encoder_weights"] is None


def test_local_state_dict_file(tmp_path):
    donor, _ = build_model(ENC, "Unet", 1, 3)
    path = tmp_path / "enc.pth"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in donor.encoder.state_dict().items()}}, path)
    model, report = build_model(ENC, "DeepLabV3Plus", 1, 2, encoder_weights=str(path))
    assert report["mode"] == "file" and report["match_fraction"] == 1.0
    assert report["matched_keys"] == report["encoder_keys"] > 10
    k = next(iter(donor.encoder.state_dict()))
    torch.testing.assert_close(model.encoder.state_dict()[k], donor.encoder.state_dict()[k])


def test_local_state_dict_refused_below_threshold(tmp_path):
    donor, _ = build_model(ENC, "Unet", 1, 3)
    sd = donor.encoder.state_dict()
    keep = dict(list(sd.items())[: len(sd) // 2])
    path = tmp_path / "half.pt"
    torch.save(keep, path)
    with pytest.raises(UserError, match="expected at least 95%"):
        build_model(ENC, "Unet", 1, 3, encoder_weights=str(path))
    _, report = build_model(ENC, "Unet", 1, 3, encoder_weights=str(path), min_encoder_key_match=0.3)
    assert 0.3 <= report["match_fraction"] < 0.95


def test_rgb_weights_adapt_to_one_channel(tmp_path):
    donor, _ = build_model(ENC, "Unet", 3, 3)
    path = tmp_path / "rgb.pth"
    torch.save(donor.encoder.state_dict(), path)
    _, report = build_model(ENC, "Unet", 1, 3, encoder_weights=str(path))
    assert report["match_fraction"] == 1.0


def test_save_and_load_run_model(tmp_path):
    torch.manual_seed(0)
    model, _ = build_model(ENC, "Unet", 1, 3)
    save_model(model, tmp_path / "model")
    (tmp_path / "job.json").write_text('{"job_id": "x"}')
    loaded, meta = load_run_model(tmp_path)
    x = torch.rand(1, 1, 64, 64)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert meta == {"job_id": "x"} and not loaded.training
    with pytest.raises(UserError):
        load_run_model(tmp_path / "nothing")


def test_predict_tiled_single_tile_equals_forward():
    torch.manual_seed(0)
    model, _ = build_model(ENC, "Unet", 1, 3)
    model.eval()
    x = torch.rand(1, 64, 96)
    probs = predict_tiled(model, x, 3, tile=128, overlap=16)
    ref = model(x[None]).softmax(1)[0]
    torch.testing.assert_close(probs, ref)


@pytest.mark.parametrize("decoder", ["Unet", "DeepLabV3Plus", "DeepLabV3"])
def test_predict_tiled_any_size(decoder):
    torch.manual_seed(0)
    model, _ = build_model(ENC, decoder, 1, 3)
    model.eval()
    assert pad_multiple(model) in (8, 16, 32)
    x = torch.rand(1, 100, 130)
    probs = predict_tiled(model, x, 3, tile=64, overlap=16)  # several tiles
    assert probs.shape == (3, 100, 130)
    torch.testing.assert_close(probs.sum(0), torch.ones(100, 130))
    one = predict_tiled(model, x, 3, tile=512)  # single padded tile
    assert one.shape == (3, 100, 130)
    # tiles blend to something close to the single pass on a smooth random model (sanity, not equality)
    assert (probs.argmax(0) == one.argmax(0)).float().mean() > 0.5
    tiny = predict_tiled(model, torch.rand(1, 10, 7), 3, tile=64)
    assert tiny.shape == (3, 10, 7)
