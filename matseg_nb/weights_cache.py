"""Where encoder weight files live: the Hugging Face hub cache (ImageNet weights, ``models.weights``) and
``<hub cache>/micronet`` (MicroNet weights, :mod:`matseg_nb.micronet`). A base-layer module, so profile
validation can tell whether weights are cached without importing the model layer."""

from __future__ import annotations

import os
from pathlib import Path


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder as the environment says now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)
