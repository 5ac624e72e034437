"""``run_job``: train one job with Lightning, evaluate on the test split, write the run folder.

Run folder (docs/ARCHITECTURE.md): job.json, history.csv, metrics.json, per_image.csv, model/,
predictions/<stem>.png, plus logs/ (Lightning's CSVLogger). A cross-validation job (``folds`` set) trains
on the other folds of train+val, validates (early stopping, best checkpoint) on its own fold, and also
writes oof_per_image.csv (out-of-fold scores of its fold's images), oof_predictions/<stem>.png (their
predicted masks) and metrics.json["cv"/"oof"]. Every file is
written through ``matseg_nb.runs.Run`` (the one reader and writer of run folders), atomically. The ``COMPLETE``
marker is NOT written here (the sweep writes it after papermill saved the notebook).
"""

from __future__ import annotations

import io
import logging
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from matseg_nb.data.splits import FOLD_RULES, assign_folds, cv_pool
from matseg_nb.errors import UserError
from matseg_nb.metrics import SUMMARY_KEYS, boundary_weighted_confusion, evaluate_confusions
from matseg_nb.models import build_model, n_params, save_model
from matseg_nb.models.tiling import with_input_scale
from matseg_nb.runs import PROGRESS_FILE, Run
from matseg_nb.training.data import SegDataModule, Split, load_split
from matseg_nb.training.evaluate import predict_split
from matseg_nb.training.module import SegModule
from matseg_nb.training.spec import as_job

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_iou", "val_dice", "lr", "epoch_time_s"]
PER_IMAGE_COLUMNS = ["image", "class_id", "class_name", "iou", "dice", "pixel_accuracy", "wiou",
                     "wiou_class_freq", "gt_fraction", "pred_fraction"]
MONITOR_MODE = {"val_iou": "max", "val_dice": "max", "val_loss": "min"}


def versions() -> dict[str, str]:
    """Versions of the packages that determine a run's results."""
    import segmentation_models_pytorch as smp
    import timm

    import matseg_nb

    return {"python": platform.python_version(), "torch": torch.__version__, "smp": smp.__version__,
            "timm": timm.__version__, "lightning": L.__version__, "numpy": np.__version__,
            "matseg_nb": matseg_nb.__version__}


def git_commit() -> str | None:
    """HEAD commit of the checkout holding the package, or None (not a git checkout / no commits)."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def pick_device(requested: str = "auto") -> str:
    """'cuda' when requested/auto and available, else 'cpu' (UserError if cuda is requested but absent)."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("execution.devices: expected a visible CUDA device for 'cuda', found none")
    return "cuda" if requested in ("auto", "cuda") and torch.cuda.is_available() else "cpu"


def effective_precision(requested: str, device: str) -> str:
    """CPU: always '32'. CUDA: the requested mixed precision, and '16-mixed' when '32' is requested
    (the paper's GPU setting; the profile default '32' means 'full precision on CPU')."""
    if device != "cuda":
        return "32"
    return requested if requested in ("16-mixed", "bf16-mixed") else "16-mixed"


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*number of training batches.*")
    warnings.filterwarnings("ignore", message=r".*LightningModule.*log.*")
    warnings.filterwarnings("ignore", message=r".*`isinstance\(treespec, LeafSpec\)`.*")


def _png(mask: np.ndarray) -> bytes:
    import imageio.v3 as iio

    buf = io.BytesIO()
    iio.imwrite(buf, mask.astype(np.uint8), extension=".png")
    return buf.getvalue()


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _load_samples(ds, samples: list, normalization: str) -> Split:
    from matseg_nb.data import normalize_image

    return Split([normalize_image(ds.load_image(s), normalization) for s in samples],
                 [ds.load_mask(s).astype(np.int64) for s in samples], [s.name for s in samples])


def cv_split(ds, fold: int, folds: int, normalization: str = "percentile",
             pool_name: str = "train+val") -> tuple[Split, Split, dict]:
    """(train, val, info) of fold ``fold`` of ``folds``-fold CV over the image groups of the pool
    (``evaluation.pool``: ``train+val``, or ``all`` annotated images).

    ``info``: fold, folds, rule, pool, train_groups, val_groups. UserError names ``evaluation.folds`` when the
    pool has fewer groups than folds (or a single group).
    """
    pool = cv_pool(ds.samples(), pool_name)
    try:
        assignment = assign_folds([s.group for s in pool], folds)
    except ValueError as err:
        raise UserError(f"evaluation.folds: {err} in {pool_name} of {ds.name}") from None
    train = [s for s in pool if assignment[s.group] != fold]
    val = [s for s in pool if assignment[s.group] == fold]
    info = {"fold": fold, "folds": folds, "rule": FOLD_RULES[pool_name], "pool": pool_name,
            "train_groups": sorted({s.group for s in train}), "val_groups": sorted({s.group for s in val})}
    return _load_samples(ds, train, normalization), _load_samples(ds, val, normalization), info


def refit_split(ds, folds: int, normalization: str = "percentile",
                pool_name: str = "train+val") -> tuple[Split, Split, dict]:
    """(train, val, info) of the refit after ``folds``-fold CV: train on the whole pool; "val" is the same
    images (no held-out image is left: it only picks the checkpoint, on training images)."""
    pool = cv_pool(ds.samples(), pool_name)
    if not pool:
        raise UserError(f"evaluation.pool: expected annotated images in {pool_name} of {ds.name}, found none")
    train = _load_samples(ds, pool, normalization)
    info = {"refit": True, "folds": folds, "rule": FOLD_RULES[pool_name], "pool": pool_name,
            "train_groups": sorted({s.group for s in pool}), "val_groups": []}
    return train, train, info


def _evaluate(predictor, split: Split, num_classes: int, class_names: list[str], cfg: dict):
    """(predictions, metrics, per-image rows, latency) of ``split`` at full resolution (tiled)."""
    if not len(split):
        empty = {k: None for k in SUMMARY_KEYS}
        return [], {"dataset_level": dict(empty), "per_image_mean": dict(empty), "per_class": {},
                    "n_images": 0}, [], float("nan")
    preds, cms, latency = predict_split(predictor, split, num_classes, cfg["tile_size"], cfg["tile_overlap"])
    wcms = [boundary_weighted_confusion(p, m, num_classes) for p, m in zip(preds, split.masks, strict=True)]
    metrics, rows = evaluate_confusions(cms, class_names, split.names, weighted_cms=wcms)
    return preds, metrics, rows, latency


def job_splits(ds, typed, norm: str) -> tuple[Split, Split, Split, dict | None]:
    """(train, val, test, cv_info) of the typed job ``typed`` on dataset ``ds``: the fixed splits, or a CV
    fold / the refit on the pool (pool 'all' leaves no test split: its images are scored out of fold).
    UserError without training images or, outside CV, without test images."""
    cv_info = None
    if typed.folds:
        pool_name = typed.pool or "train+val"
        if typed.refit:
            train, val, cv_info = refit_split(ds, typed.folds, norm, pool_name)
        else:
            train, val, cv_info = cv_split(ds, int(typed.fold), typed.folds, norm, pool_name)
        test = load_split(ds, "test", norm) if pool_name == "train+val" else Split([], [], [])
    else:
        train, val, test = (load_split(ds, s, norm) for s in ("train", "val", "test"))
    if not len(train) or (not len(test) and cv_info is None):
        raise UserError(f"{typed.dataset}: expected train and test samples with masks, found "
                        f"{len(train)} train, {len(test)} test")
    return train, val, test, cv_info


def fit(module, dm, cfg: dict, run_dir: Path, device: str, precision: str, monitor: str | None,
        has_val: bool) -> tuple[float, int]:
    """Train ``module`` with Lightning (checkpoint of the best ``monitor`` epoch, early stopping, CSV log under
    ``run_dir/logs``, no progress bar), load the best epoch's weights; returns (train seconds, best epoch)."""
    work = Path(tempfile.mkdtemp(prefix=".ckpt-", dir=run_dir))
    callbacks: list = []
    ckpt = None
    if monitor:
        ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=work, filename="best", monitor=monitor,
                                                   mode=MONITOR_MODE[monitor], save_top_k=1, save_weights_only=True)
        callbacks.append(ckpt)
        if cfg.get("early_stopping_patience", 20) > 0:
            callbacks.append(L.pytorch.callbacks.EarlyStopping(monitor=monitor, mode=MONITOR_MODE[monitor],
                                                               patience=cfg["early_stopping_patience"]))
    trainer = L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu", devices=1, precision=precision,
        max_epochs=cfg["max_epochs"], limit_train_batches=cfg.get("steps_per_epoch") or 1.0,
        check_val_every_n_epoch=cfg.get("val_every", 1), num_sanity_val_steps=0,
        limit_val_batches=1.0 if has_val else 0, callbacks=callbacks,
        logger=L.pytorch.loggers.CSVLogger(run_dir, name="logs", version=""),
        enable_progress_bar=False, enable_model_summary=False,
        deterministic=True if device == "cpu" else "warn", default_root_dir=work,
    )
    t0 = time.perf_counter()
    try:
        trainer.fit(module, datamodule=dm)
        train_time = time.perf_counter() - t0
        best_epoch = len(module.history) - 1
        if ckpt is not None and ckpt.best_model_path:
            state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
            scores = [r[monitor] for r in module.history]
            finite = [(i, s) for i, s in enumerate(scores) if isinstance(s, float) and math.isfinite(s)]
            if finite:
                pick = max if MONITOR_MODE[monitor] == "max" else min
                best_epoch = pick(finite, key=lambda t: t[1])[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return train_time, best_epoch


def run_job(job: Any, run_dir: str | os.PathLike, threads: int = 0, echo=print) -> dict:
    """Train and test one job, writing ``run_dir`` (see module docstring); returns metrics.json's content.

    ``job``: a ``matseg_nb.profiles.Job`` or a dict (made one by ``training.spec.as_job``; the typed job is
    read). ``threads`` > 0 sets torch's CPU threads. Raises UserError for bad input, ``NonFiniteLossError`` for a NaN/inf loss.
    """
    from matseg_nb.data import open_dataset
    from matseg_nb.data.readers import model_normalization

    _quiet_lightning()
    if threads and threads > 0:
        torch.set_num_threads(int(threads))
    typed = as_job(job)
    spec = typed.to_dict()  # what job.json records
    cfg = spec["training"]
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = typed.seed
    device = pick_device(typed.execution.devices)
    precision = effective_precision(cfg.get("precision", "32"), device)
    L.seed_everything(seed, workers=True, verbose=False)

    ds = open_dataset(typed.dataset)
    norm = model_normalization(cfg.get("normalization", "percentile"), typed.encoder_weights)
    train, val, test, cv_info = job_splits(ds, typed, norm)
    class_names = [c.name for c in ds.classes]
    model, weights_report = build_model(typed.encoder, typed.decoder, ds.in_channels, ds.num_classes,
                                        typed.encoder_weights, typed.min_encoder_key_match,
                                        **typed.decoder_options)
    meta = {
        **spec,
        "job": spec,
        "run_started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "git_commit": git_commit(),
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "precision": precision,
        "channels_last": device == "cuda",
        "torch_threads": torch.get_num_threads(),
        "classes": [{"id": c.id, "name": c.name} for c in ds.classes],
        "in_channels": ds.in_channels,
        "normalization": norm,
        "encoder_weights_report": weights_report,
        "split_sizes": {"train": len(train), "val": len(val), "test": len(test)},
        "cv": cv_info,
    }
    run = Run(run_dir)
    run.write_job(meta)

    channels_last = device == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    module = SegModule(model, ds.num_classes, cfg, channels_last=channels_last, echo=echo)
    module.progress_file = run_dir / PROGRESS_FILE
    monitor = cfg.get("monitor", "val_iou") if len(val) else None
    train_time, best_epoch = fit(module, SegDataModule(train, val, cfg, seed), cfg, run_dir, device, precision,
                                 monitor, has_val=bool(len(val)))
    run.write_history(module.history, HISTORY_COLUMNS)

    model = module.model.eval()
    predictor = with_input_scale(model, cfg.get("input_scale", 1.0))  # full-resolution in and out
    preds, metrics, rows, latency = _evaluate(predictor, test, ds.num_classes, class_names, cfg)
    for name, pred in zip(test.names, preds, strict=True):
        run.write_prediction(name, _png(pred))
    run.write_per_image(rows, PER_IMAGE_COLUMNS)
    if cv_info is not None and cv_info.get("refit"):
        metrics["cv"] = {**cv_info, "n_train": len(train)}
    elif cv_info is not None:  # out-of-fold: the fold's own images, scored by the model that never trained on them
        oof_preds, oof, oof_rows, _ = _evaluate(predictor, val, ds.num_classes, class_names, cfg)
        for name, pred in zip(val.names, oof_preds, strict=True):
            run.write_prediction(name, _png(pred), oof=True)
        run.write_per_image(oof_rows, PER_IMAGE_COLUMNS, oof=True)
        metrics["cv"] = {**cv_info, "n_train": len(train), "n_val": len(val)}
        metrics["oof"] = {k: oof[k] for k in ("dataset_level", "per_image_mean", "n_images")}
    save_model(model.to("cpu").to(memory_format=torch.contiguous_format), run.model_path)
    best_row = module.history[best_epoch] if module.history else {}
    metrics.update({
        "job_id": typed.job_id, "dataset": typed.dataset, "encoder": typed.encoder, "decoder": typed.decoder,
        "seed": seed, "split": "test", "fold": typed.fold, "folds": typed.folds,
        "epochs_run": len(module.history), "best_epoch": best_epoch,
        "best_val": {k: _finite(best_row.get(k)) for k in ("val_iou", "val_dice", "val_loss")},
        "monitor": monitor, "train_time_s": round(train_time, 3),
        "latency_s_per_image": round(latency, 4), "n_params": n_params(model),
        "encoder_weights": weights_report["mode"], "pretrained": bool(weights_report.get("pretrained")),
        "device": device, "precision": precision,
    })
    run.write_metrics(metrics)
    return metrics
