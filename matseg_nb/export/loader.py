"""``matseg segment`` loaders: an export folder (``export.json`` + model.onnx or model.pt) and a bioimage.io
package written by ``matseg export --format bioimageio`` (``rdf.yaml`` with ``config.matseg``; its
``pytorch_state_dict`` weights, checksummed, and its QC calibration attachments)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from matseg_nb.export.run_export import EXPORT_JSON, FORMATS
from matseg_nb.jsonio import read_json, read_json_object
from matseg_nb.segment.model import DeployedModel, ModelLoader, register_loader


class OnnxModel(nn.Module):
    """An onnxruntime session as a torch module: (N, C, H, W) tensor -> (N, K, H, W) logits (CPU)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        super().__init__()
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().numpy().astype(np.float32)
        out = self.session.run(None, {self.session.get_inputs()[0].name: arr})[0]
        return torch.from_numpy(out).to(x.device)


class ExportedModel(nn.Module):
    """An exported graph as the tiler expects it: ``parameters()`` names the device, ``encoder.output_stride``
    the input side multiple (px) that export.json states."""

    def __init__(self, graph: nn.Module, multiple: int) -> None:
        super().__init__()
        self.graph = graph
        self.device_anchor = nn.Parameter(torch.zeros(0), requires_grad=False)
        object.__setattr__(self, "encoder", SimpleNamespace(output_stride=int(multiple)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)


def _is_export(path: Path, dataset: str | None) -> bool:
    info = read_json(path / EXPORT_JSON)  # None when absent or unreadable
    return isinstance(info, dict) and info.get("format") in FORMATS


def _load_export(path: Path, dataset: str | None, device: str) -> DeployedModel:
    info = read_json_object(path / EXPORT_JSON)
    model_file = path / FORMATS[info["format"]][0]
    if info["format"] == "onnx":
        graph: nn.Module = OnnxModel(model_file)
    else:
        graph = torch.jit.load(str(model_file), map_location=device).eval()
    model = ExportedModel(graph, int(info["pad_multiple"])).to(device).eval()
    return DeployedModel(model, info["preprocessing"]["mode"], int(info["in_channels"]), list(info["classes"]),
                         int(info["pad_multiple"]), 1.0, info.get("dataset"), None, None,
                         f"export-{info['format']}", f"{info['format']} export of {info['job_id']} ({path.name})",
                         info.get("job") or {})


def _is_package(path: Path, dataset: str | None) -> bool:
    return (path / "rdf.yaml").is_file()


def _load_package(path: Path, dataset: str | None, device: str) -> DeployedModel:
    """The package's torch model (``architecture.MatsegNet`` with the run's ``input_scale`` wrapper, as
    ``models.load_run_model`` builds it) from its checksummed state dict; QC from its calibration attachments."""
    import yaml

    from matseg_nb.data.resolve import sha256_of
    from matseg_nb.errors import UserError
    from matseg_nb.export.architecture import MatsegNet
    from matseg_nb.models.tiling import with_input_scale

    rdf = yaml.safe_load((path / "rdf.yaml").read_text())
    cfg = ((rdf or {}).get("config") or {}).get("matseg")
    entry = ((rdf or {}).get("weights") or {}).get("pytorch_state_dict") or {}
    if not cfg or not entry:
        raise UserError(f"{path / 'rdf.yaml'}: expected a package written by matseg export (config.matseg and "
                        "pytorch_state_dict weights), found neither; run it with bioimageio.core instead")
    weights = path / entry["source"]
    if not weights.is_file() or (entry.get("sha256") and sha256_of(weights) != entry["sha256"]):
        raise UserError(f"{weights}: expected the state dict with sha256 {entry.get('sha256')} that rdf.yaml "
                        "lists, found a missing or different file")
    net = MatsegNet(**entry["architecture"]["kwargs"])
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model = with_input_scale(net.net, float(cfg["input_scale"])).to(device).eval()
    classes, mode = [str(c) for c in cfg["classes"]], str(cfg["normalization"])
    meta = read_json_object(path / "job.json") or {}
    open_qc = None
    if cfg.get("qc_calibration"):
        from matseg_nb.export.qc_pack import open_package_screener

        def open_qc():
            return open_package_screener(path, model, mode, len(classes))
    return DeployedModel(model, mode, int(cfg["in_channels"]), classes, int(cfg["pad_multiple"]),
                         float(cfg["input_scale"]), cfg.get("dataset"), None, path if open_qc else None,
                         "export-bioimageio", f"bioimage.io package of {cfg['job_id']} ({path.name})", meta,
                         open_qc=open_qc)


register_loader(ModelLoader("export", _is_export, _load_export))
register_loader(ModelLoader("bioimageio", _is_package, _load_package))
