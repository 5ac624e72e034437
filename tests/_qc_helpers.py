"""Shared builders for the QC tests: synthetic embeddings, a tiny folder dataset, a tiny run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _model_helpers import tiny_smp


def clustered(n_groups: int, per: int, d: int, shift: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n_groups * per, d) points: per-group offsets around a common mean, plus ``shift``; group labels."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(per, d)) + rng.normal(size=d) * 0.3 + shift for _ in range(n_groups)])
    return x, np.repeat(np.arange(n_groups), per)


def blob_image(rng: np.random.Generator, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 micrograph-like image (bright discs on a noisy background) and its 0/1 mask."""
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(6):
        cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 10)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    img = 60 + 120 * mask + rng.normal(0, 12, (size, size))
    return np.clip(img, 0, 255).astype(np.uint8), mask


def folder_dataset(root: Path, n_train: int = 6, n_test: int = 3, seed: int = 0) -> Path:
    """``root/images/{train,test}/*.png`` + ``root/masks/{train,test}/*.png`` (class ids 0/1)."""
    import imageio.v3 as iio

    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, mask = blob_image(rng)
            iio.imwrite(root / "images" / split / f"s{split}{i}.png", img)
            iio.imwrite(root / "masks" / split / f"s{split}{i}.png", mask)
    return root


def tiny_run(run_dir: Path, dataset: Path, classes: int = 2) -> Path:
    """A run folder with an untrained Unet(tu-test_resnet) saved offline and a minimal job.json."""

    from matseg_nb.models import save_model

    model = tiny_smp(classes=classes, eval_mode=False)
    save_model(model, run_dir / "model")
    (run_dir / "job.json").write_text(json.dumps({"dataset": str(dataset), "normalization": "percentile",
                                                  "task": {"readiness_threshold": 0.9}}))
    return run_dir
