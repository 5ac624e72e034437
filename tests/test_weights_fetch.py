"""``matseg weights fetch | list`` against a fake Hugging Face hub on 127.0.0.1 (no network):
cache layout, SHA-256 mismatch refused, then an ``encoder_weights: imagenet`` model loads from the cache."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest
import torch
from _data_helpers import run_cli

from matseg_nb.errors import UserError
from matseg_nb.models import build_model
from matseg_nb.models.weights import fetch_imagenet, weights_repo


class FakeHub(http.server.ThreadingHTTPServer):
    """Serves ``/<repo>/resolve/<revision>/<file>`` from ``files``; ``etags`` may lie (corruption)."""

    def __init__(self, files: dict[str, bytes], commit: str, etags: dict[str, str] | None = None):
        self.files, self.commit = files, commit
        self.etags = {n: hashlib.sha256(b).hexdigest() for n, b in files.items()} | (etags or {})
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def _serve(self, body: bool) -> None:
        hub: FakeHub = self.server
        hub.requests.append(f"{self.command} {self.path}")
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        if "/resolve/" not in self.path or name not in hub.files:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        data = hub.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Repo-Commit", hub.commit)
        self.send_header("ETag", f'"{hub.etags[name]}"')
        self.send_header("X-Linked-Etag", f'"{hub.etags[name]}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self):  # noqa: N802
        self._serve(body=False)

    def do_GET(self):  # noqa: N802
        self._serve(body=True)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    return cache


def _serve(files, commit, etags=None):
    hub = FakeHub(files, commit, etags)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    return hub


def _resnet18_files() -> tuple[dict[str, bytes], torch.Tensor]:
    import segmentation_models_pytorch as smp
    from safetensors.torch import save

    torch.manual_seed(3)
    encoder = smp.encoders.get_encoder("resnet18", in_channels=3, weights=None)
    sd = {k: v.contiguous() for k, v in encoder.state_dict().items()}
    return {"config.json": b"{}", "model.safetensors": save(sd)}, sd["layer1.0.conv1.weight"]


def test_fetch_layout_then_imagenet_model_loads(hub_env, monkeypatch, capsys):
    repo_id, revision, _ = weights_repo("resnet18")
    files, reference = _resnet18_files()
    hub = _serve(files, revision)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    try:
        assert run_cli(["weights", "fetch", "resnet18"], monkeypatch) == 0
    finally:
        hub.shutdown()
    out = capsys.readouterr().out
    assert "resnet18: smp-hub/resnet18.imagenet" in out and "sha256 verified" in out
    repo_dir = hub_env / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    assert (snapshot / "model.safetensors").is_symlink() or (snapshot / "model.safetensors").is_file()
    blob = (snapshot / "model.safetensors").resolve()
    assert blob.parent == (repo_dir / "blobs").resolve()
    assert blob.name == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert any(r.startswith("GET /smp-hub/resnet18.imagenet/resolve/") for r in hub.requests)
    assert run_cli(["weights", "list"], monkeypatch) == 0
    assert "smp-hub/resnet18.imagenet" in capsys.readouterr().out
    # the normal (offline) training path loads from the cache; the server is down now
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    model, report = build_model("resnet18", "Unet", 1, 2, encoder_weights="imagenet")
    assert report["mode"] == "imagenet" and report["repo_id"] == repo_id
    assert torch.equal(model.encoder.state_dict()["layer1.0.conv1.weight"], reference)


def test_checksum_mismatch_refused_and_removed(hub_env, monkeypatch):
    repo_id, revision, _ = weights_repo("resnet18")
    files = {"config.json": b"{}", "model.safetensors": b"not the weights the hub lists"}
    hub = _serve(files, revision, etags={"model.safetensors": "ab" * 32})
    try:
        with pytest.raises(UserError) as err:
            fetch_imagenet("resnet18", endpoint=hub.endpoint)
    finally:
        hub.shutdown()
    (line,) = err.value.problems
    assert line.startswith(f"{repo_id}/model.safetensors: expected SHA-256 {'ab' * 32}, found ")
    assert "removed from the cache" in line
    assert not list(hub_env.rglob("model.safetensors"))


def test_missing_weights_message_names_the_command(hub_env):
    with pytest.raises(UserError, match=r"matseg weights fetch resnet18"):
        build_model("resnet18", "Unet", 1, 2, encoder_weights="imagenet")
    with pytest.raises(UserError, match="expected an smp encoder name"):
        weights_repo("resnet9000")
