"""Save and load a trained model in a run folder (``<run>/model``, smp save_pretrained format)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from torch import nn

from matseg_nb.errors import UserError
from matseg_nb.models.weights import offline_hub


def save_model(model: nn.Module, model_dir: str | os.PathLike) -> Path:
    """``save_pretrained`` into a temporary sibling folder, then rename it to ``model_dir`` (atomic swap)."""
    model_dir = Path(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", dir=model_dir.parent))
    try:
        model.save_pretrained(tmp)
        if model_dir.exists():
            old = model_dir.with_name(f".{model_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(model_dir, old)
            os.replace(tmp, model_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, model_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return model_dir


def load_run_model(run_dir: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode on ``device``, job.json contents or {}) from a run folder; never uses the network.

    A run trained with ``training.input_scale`` != 1 gives a ``ScaledInputModel`` (full-resolution input
    and output, the image resampled inside), so every caller predicts as the run's test evaluation did."""
    import segmentation_models_pytorch as smp

    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir}: expected a saved model (config.json + model.safetensors), found none")
    with offline_hub():
        model = smp.from_pretrained(str(model_dir))
    from matseg_nb.runs import Run

    meta = Run(run_dir).provenance()
    from matseg_nb.models.tiling import with_input_scale

    scale = (meta.get("training") or {}).get("input_scale", 1.0)
    return with_input_scale(model, scale).to(device).eval(), meta
