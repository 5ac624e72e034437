"""``matseg segment`` loader for an export folder (``export.json`` + model.onnx or model.pt)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from matseg_nb.export.run_export import EXPORT_JSON, FORMATS
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
    return (path / EXPORT_JSON).is_file()


def _load_export(path: Path, dataset: str | None, device: str) -> DeployedModel:
    info = json.loads((path / EXPORT_JSON).read_text())
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


register_loader(ModelLoader("export", _is_export, _load_export))
