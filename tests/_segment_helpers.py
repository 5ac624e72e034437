"""Shared set-up of the ``matseg segment`` tests (not a conftest): blob images with threshold masks, and run
folders that hold a tiny real model (``tu-test_resnet`` Unet, random weights) beside fake metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

BLOB_CLASSES = [{"id": 0, "name": "matrix"}, {"id": 1, "name": "blob"}]


def blobs(seed: int, size: int = 160, sigma: float = 6) -> np.ndarray:
    """(size, size) uint8 in [20, 220]: Gaussian-smoothed noise (``sigma`` px), a different field per seed."""
    smooth = ndimage.gaussian_filter(np.random.default_rng(seed).random((size, size)), sigma)
    return ((smooth - smooth.min()) / (np.ptp(smooth) + 1e-9) * 200 + 20).astype(np.uint8)


def blob_dataset(root: Path, seeds: Mapping[str, Iterable[int]], size: int = 160, sigma: float = 6) -> Path:
    """A plain folder dataset: ``root/images/<split>/b<seed>.png`` (:func:`blobs`) and the masks (1 where the
    image is above 120) under ``root/masks/<split>/``, for ``seeds`` {split: seeds}; returns ``root``."""
    for split, split_seeds in seeds.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for s in split_seeds:
            img = blobs(s, size, sigma)
            Image.fromarray(img).save(root / "images" / split / f"b{s}.png")
            Image.fromarray((img > 120).astype(np.uint8)).save(root / "masks" / split / f"b{s}.png")
    return root


def tiny_model_run(sweep: Path, job_id: str, dataset: str, classes: list[dict] | None = None,
                   torch_seed: int | None = None, extra_job: Mapping[str, Any] | None = None, **fake) -> Path:
    """A complete fake run folder (``_sweep_helpers.write_fake_run``, ``fake``: its keywords) whose job.json
    names ``classes`` (default :data:`BLOB_CLASSES`), one grey channel and percentile normalization, with a
    saved tiny Unet (random weights; ``torch_seed`` fixes them). ``extra_job``: more job.json fields."""
    import torch
    from _sweep_helpers import write_fake_run

    from matseg_nb.models import build_model, save_model

    classes = classes or BLOB_CLASSES
    path = write_fake_run(sweep, job_id, dataset=dataset, extra_job={
        "classes": classes, "in_channels": 1, "normalization": "percentile", "training": {"input_scale": 1.0},
        **(extra_job or {})}, **fake)
    if torch_seed is not None:
        torch.manual_seed(torch_seed)
    model, _ = build_model("tu-test_resnet", "Unet", 1, len(classes), "none")
    save_model(model, path / "model")
    return path
