"""Synthetic sweep folders with known answers for tests/test_compare_*.py (no training involved).

Each job gets job.json, metrics.json, per_image.csv (a background row and one foreground row per image;
the foreground IoU is the value given), COMPLETE -- or error.json (failed) / nothing (incomplete).
"""

from __future__ import annotations

import csv
import json
import zlib
from pathlib import Path

import numpy as np


def job_id(dataset: str, encoder: str, decoder: str, seed: int) -> str:
    slug = Path(dataset).name  # a folder reference -> its name (job ids are folder names)
    return f"{slug}__{encoder}__{decoder}__s{seed}__{zlib.crc32(f'{dataset}{encoder}{decoder}{seed}'.encode()):08x}"


def write_job(sweep: Path, dataset: str, encoder: str, decoder: str, seed: int,
              ious: list[float] | np.ndarray | None = None, status: str = "complete",
              weights: str = "none", latency_s: float = 0.01, n_params: int = 1_000_000,
              val_iou: float | None = None) -> str:
    """Write one run folder; returns its job id. ``ious``: foreground IoU per test image;
    ``val_iou``: the best validation IoU recorded (default: the test mean)."""
    jid = job_id(dataset, encoder, decoder, seed)
    d = sweep / jid
    d.mkdir(parents=True, exist_ok=True)
    (d / "job.json").write_text(json.dumps({"job_id": jid, "dataset": dataset, "encoder": encoder,
                                            "decoder": decoder, "seed": seed, "encoder_weights": weights}))
    if status == "failed":
        (d / "error.json").write_text(json.dumps({"type": "RuntimeError", "message": "CUDA out of memory",
                                                  "traceback": "..."}))
        return jid
    if status != "complete":
        return jid
    ious = np.asarray(ious, dtype=float)
    with open(d / "per_image.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "class_id", "class_name", "iou", "dice", "pixel_accuracy", "gt_fraction",
                    "pred_fraction"])
        for i, v in enumerate(ious):
            w.writerow([f"img{i:03d}", 0, "background", 0.99, 0.99, 0.99, 0.9, 0.9])
            w.writerow([f"img{i:03d}", 1, "phase", v, 2 * v / (1 + v), v, 0.1, 0.1])
    mean = float(ious.mean())
    metrics = {"dataset_level": {"iou": mean, "dice": 2 * mean / (1 + mean), "wiou": mean, "pixel_accuracy": 0.95},
               "per_image_mean": {"iou": mean}, "per_class": {}, "epochs_run": 3, "best_epoch": 2,
               "train_time_s": 12.5, "latency_s_per_image": latency_s, "n_params": n_params,
               "encoder_weights": weights, "best_val": {"val_iou": mean if val_iou is None else val_iou}}
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "COMPLETE").write_text(json.dumps({"job_id": jid, "finished_at": "2026-01-01T00:00:00Z"}))
    return jid


def write_summary(sweep: Path, extra_pending: list[str] = ()) -> None:
    """summary.json listing every job folder plus ``extra_pending`` ids that have no folder."""
    jobs = []
    for d in sorted(p for p in sweep.iterdir() if p.is_dir()):
        st = "complete" if (d / "COMPLETE").exists() else "failed" if (d / "error.json").exists() else "running"
        jobs.append({"job_id": d.name, "status": st})
    jobs += [{"job_id": j, "status": "pending"} for j in extra_pending]
    (sweep / "summary.json").write_text(json.dumps({"jobs": jobs}))


def demo_sweep(root: Path, n_images: int = 12, seeds: tuple[int, ...] = (0, 1)) -> Path:
    """Two datasets x 2 encoders x 2 decoders; on 'easy' Unet is clearly best, on 'hard' DeepLabV3Plus
    is best; one failed job, one incomplete job and one pending job (no folder)."""
    sweep = root / "sweep"
    rng = np.random.default_rng(0)
    base = {("easy", "Unet"): 0.9, ("easy", "DeepLabV3Plus"): 0.7,
            ("hard", "Unet"): 0.4, ("hard", "DeepLabV3Plus"): 0.6}
    for (ds, dec), mu in base.items():
        for enc, bonus in (("resnet18", 0.0), ("resnet34", 0.03)):
            for s in seeds:
                ious = np.clip(mu + bonus + rng.normal(0, 0.03, n_images), 0, 1)
                write_job(sweep, ds, enc, dec, s, ious, latency_s=0.01 if dec == "Unet" else 0.02)
    write_job(sweep, "easy", "resnet50", "Unet", 0, status="failed")
    write_job(sweep, "hard", "resnet50", "Unet", 0, status="incomplete")
    write_summary(sweep, extra_pending=[job_id("hard", "resnet50", "DeepLabV3", 0)])
    return sweep


# -- synthetic image folders for the recommendation tests ---------------------------------------------
def _save_png(path: Path, arr: np.ndarray) -> None:
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, arr)


def disc_folder(root: Path, n: int = 4, size: int = 128, masks: bool = True, seed: int = 0) -> Path:
    """High-contrast binary discs with sharp edges (dark matrix 40, discs 200, noise sd 4), 2-D, 8-bit."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        for _ in range(6):
            cy, cx, r = rng.integers(16, size - 16), rng.integers(16, size - 16), rng.integers(8, 15)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        img = np.clip(40 + 160 * mask + rng.normal(0, 4, mask.shape), 0, 255).astype(np.uint8)
        _save_png(root / "images" / f"disc_{i:02d}.png", img)
        if masks:
            _save_png(root / "masks" / f"disc_{i:02d}.png", mask)
    return root


def crack_folder(root: Path, n: int = 4, size: int = 128, masks: bool = True, seed: int = 1) -> Path:
    """Low-contrast noisy thin cracks (1 px random walks, ~1-2 % of pixels; matrix 128, crack 116,
    noise sd 10), 2-D, 8-bit."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        for _ in range(2):
            y, x = rng.integers(10, size - 10), 0
            while x < size:
                mask[int(np.clip(y, 0, size - 1)), x] = 1
                y += rng.integers(-1, 2)
                x += 1
        img = np.clip(128 - 12 * mask + rng.normal(0, 10, mask.shape), 0, 255).astype(np.uint8)
        _save_png(root / "images" / f"crack_{i:02d}.png", img)
        if masks:
            _save_png(root / "masks" / f"crack_{i:02d}.png", mask)
    return root
