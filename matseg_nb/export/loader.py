"""``matseg segment`` loader for an export folder (``export.json`` + model.onnx or model.pt)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from matseg_nb.export.run_export import EXPORT_JSON, FORMATS
from matseg_nb.segment.model import DeployedModel, ModelLoader, register_loader


class OnnxModel:
    """Torch-callable wrapper of an onnxruntime session: (N, C, H, W) tensor -> (N, K, H, W) logits."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().numpy().astype(np.float32)
        out = self.session.run(None, {self.session.get_inputs()[0].name: arr})[0]
        return torch.from_numpy(out).to(x.device)

    def eval(self) -> OnnxModel:
        return self


def _is_export(path: Path, dataset: str | None) -> bool:
    return (path / EXPORT_JSON).is_file()


def _load_export(path: Path, dataset: str | None, device: str) -> DeployedModel:
    info = json.loads((path / EXPORT_JSON).read_text())
    model_file = path / FORMATS[info["format"]][0]
    if info["format"] == "onnx":
        model = OnnxModel(model_file)
    else:
        model = torch.jit.load(str(model_file), map_location=device).eval()
    return DeployedModel(model, info["preprocessing"]["mode"], int(info["in_channels"]), list(info["classes"]),
                         int(info["pad_multiple"]), 1.0, info.get("dataset"), None, None,
                         f"export-{info['format']}", f"{info['format']} export of {info['job_id']} ({path.name})",
                         info.get("job") or {})


register_loader(ModelLoader("export", _is_export, _load_export))
