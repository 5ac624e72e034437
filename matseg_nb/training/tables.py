"""Small display helpers for the training notebook."""

from __future__ import annotations

import pandas as pd

EXAMPLE_JOB = {
    "dataset": "nasa-super1",
    "encoder": "tu-test_resnet",
    "decoder": "Unet",
    "seed": 0,
    "encoder_weights": "none",
    "training": {"crop_size": 64, "batch_size": 2, "max_epochs": 1, "steps_per_epoch": 2, "tile_size": 512,
                 "tile_overlap": 64},
}


def example_job() -> dict:
    """A tiny job (tiny encoder, 64 px crops, 1 epoch x 2 steps) used when the notebook runs without a job."""
    return {**EXAMPLE_JOB, "training": dict(EXAMPLE_JOB["training"])}


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Rows: dataset-level (pooled) and per-image mean; columns: iou, dice, wiou, pixel_accuracy."""
    keys = ["iou", "dice", "wiou", "pixel_accuracy"]
    return pd.DataFrame(
        {"dataset_level (pooled)": [metrics["dataset_level"].get(k) for k in keys],
         "per_image_mean": [metrics["per_image_mean"].get(k) for k in keys]},
        index=keys,
    ).T


def per_class_table(metrics: dict) -> pd.DataFrame:
    """One row per class (pooled over the test split): iou, dice, pixel_accuracy, wiou, gt_fraction."""
    return pd.DataFrame(metrics["per_class"]).T
