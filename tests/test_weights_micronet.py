"""MicroNet weights: file names as NASA's bucket spells them; fetch from a local fake mirror (never the
internet), checksummed; a mismatch is refused and leaves the cache as it was."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest

from matseg_nb.errors import UserError
from matseg_nb.micronet import cached_micronet, fetch_micronet, micronet_filename


class _Handler(http.server.SimpleHTTPRequestHandler):
    etag: str | None = None

    def end_headers(self):
        if self.etag:
            self.send_header("ETag", f'"{self.etag}"')
        super().end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "mirror"
    root.mkdir()
    handler = type("H", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_file_names_follow_the_bucket():
    assert micronet_filename("resnet50", "micronet") == "resnet50_pretrained_microscopynet_v1.1.pth.tar"
    assert micronet_filename("se_resnext101_32x4d", "imagenet-micronet") == \
        "se_resnext101_32x4d_pretrained_imagenet-microscopynet_v1.0.pth.tar"
    with pytest.raises(UserError, match="expected one of micronet, imagenet-micronet"):
        micronet_filename("resnet50", "imagenet")


def test_fetch_verifies_etag_and_pins_sha256(mirror):
    root, handler, url = mirror
    name = micronet_filename("resnet50", "micronet")
    (root / name).write_bytes(b"weights v1")
    handler.etag = hashlib.md5(b"weights v1").hexdigest()
    report = fetch_micronet("resnet50", "micronet", endpoint=url)
    assert report["verified"] and report["sha256"] == hashlib.sha256(b"weights v1").hexdigest()
    assert cached_micronet("resnet50", "micronet").read_bytes() == b"weights v1"
    handler.etag = "0" * 32  # corrupt download: ETag does not match
    with pytest.raises(UserError, match="expected MD5 0{32}"):
        fetch_micronet("resnet50", "micronet", endpoint=url)
    handler.etag = None  # mirror changed the file: differs from the pinned SHA-256
    (root / name).write_bytes(b"weights v2")
    with pytest.raises(UserError, match="expected SHA-256"):
        fetch_micronet("resnet50", "micronet", endpoint=url)
    assert cached_micronet("resnet50", "micronet").read_bytes() == b"weights v1"


def test_missing_file_is_one_line(mirror):
    _, _, url = mirror
    with pytest.raises(UserError, match="expected a download, found HTTPError"):
        fetch_micronet("resnet34", "micronet", endpoint=url)
    assert cached_micronet("resnet34", "micronet") is None


def test_cli_fetch_source_micronet(mirror, monkeypatch, capsys):
    from matseg_nb.cli import main

    root, handler, url = mirror
    name = micronet_filename("se_resnext101_32x4d", "imagenet-micronet")
    (root / name).write_bytes(b"w")
    handler.etag = hashlib.md5(b"w").hexdigest()
    monkeypatch.setenv("MATSEG_MICRONET_ENDPOINT", url)
    assert main(["weights", "fetch", "se_resnext101_32x4d", "--source", "imagenet-micronet"]) == 0
    assert "MD5 matches" in capsys.readouterr().out
    assert cached_micronet("se_resnext101_32x4d", "imagenet-micronet").read_bytes() == b"w"


def test_training_loads_cached_micronet_and_names_fetch_when_absent(tmp_path, monkeypatch):
    import torch

    from matseg_nb.micronet import micronet_cache_dir
    from matseg_nb.models.build import build_model

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="matseg weights fetch resnet18 --source micronet"):
        build_model("resnet18", "Unet", 1, 2, encoder_weights="micronet")
    donor, _ = build_model("resnet18", "Unet", 3, 2, encoder_weights="none")
    sd = {k: v + 0.5 for k, v in donor.encoder.state_dict().items() if v.is_floating_point()}
    micronet_cache_dir().mkdir(parents=True)
    torch.save(sd, micronet_cache_dir() / "resnet18_pretrained_microscopynet_v1.0.pth")
    model, report = build_model("resnet18", "Unet", 3, 2, encoder_weights="micronet")
    assert torch.equal(model.encoder.layer1[0].conv1.weight, sd["layer1.0.conv1.weight"])


def test_profile_asking_for_absent_micronet_names_the_fetch_command(tmp_path, monkeypatch):
    from matseg_nb.profiles.loader import _resource_problems

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    problems = _resource_problems({"model": {"encoders": ["resnet50"], "encoder_weights": "micronet"}}, tmp_path)
    assert problems and "matseg weights fetch resnet50 --source micronet" in problems[0]
