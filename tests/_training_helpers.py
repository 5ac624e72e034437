"""Tiny synthetic data folder and job dicts for the training tests (not a conftest)."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

TINY_TRAINING = {"crop_size": 64, "batch_size": 2, "max_epochs": 2, "steps_per_epoch": 2, "tile_size": 64,
                 "tile_overlap": 16, "early_stopping_patience": 5}


def make_folder(root: Path, sizes: dict[str, int] | None = None, hw: tuple[int, int] = (72, 90), seed: int = 0) -> Path:
    """``root/images/<split>/*.png`` (uint8 grey) + ``root/masks/<split>/*.png`` (ids 0..2: bright discs = 1,
    dark squares = 2) so that a model can learn something."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"train": 3, "val": 2, "test": 2}
    for split, n in sizes.items():
        for i in range(n):
            h, w = hw
            mask = np.zeros((h, w), np.uint8)
            yy, xx = np.mgrid[:h, :w]
            for _ in range(3):
                cy, cx, r = rng.integers(8, h - 8), rng.integers(8, w - 8), rng.integers(4, 9)
                mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
            y0, x0 = rng.integers(0, h - 10), rng.integers(0, w - 10)
            mask[y0 : y0 + 8, x0 : x0 + 8] = 2
            img = np.choose(mask, [120, 220, 30]).astype(np.float64) + rng.normal(0, 10, (h, w))
            for sub, arr in (("images", np.clip(img, 0, 255).astype(np.uint8)), ("masks", mask)):
                d = root / sub / split
                d.mkdir(parents=True, exist_ok=True)
                iio.imwrite(d / f"{split}{i}.png", arr)
    return root


def tiny_job(dataset: str | Path, decoder: str = "Unet", seed: int = 0, **training) -> dict:
    return {"dataset": str(dataset), "encoder": "tu-test_resnet", "decoder": decoder, "seed": seed,
            "encoder_weights": "none", "training": {**TINY_TRAINING, **training}}
