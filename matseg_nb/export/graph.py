"""Write and check the exported graphs: ONNX (onnxruntime) and TorchScript, each against torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

#: ONNX opset of every export
ONNX_OPSET = 17
#: largest |exported - torch| accepted on the check input (logits)
MAX_ABS_DIFF = 1e-4


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """``model`` -> ONNX at ``path`` (opset :data:`ONNX_OPSET`; batch, height and width dynamic)."""
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(model, (example,), str(path), opset_version=ONNX_OPSET, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": axes, "logits": axes}, dynamo=False)


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    """Logits (N, K, H, W) of the ONNX file for float32 input ``x`` (N, C, H, W), on CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def write_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """``model`` traced with ``example`` -> TorchScript archive at ``path``."""
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))


def run_torchscript(path: Path, x: np.ndarray) -> np.ndarray:
    """Logits of the TorchScript archive for ``x`` (N, C, H, W)."""
    module = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.no_grad():
        return module(torch.from_numpy(x.astype(np.float32))).numpy()
