"""LightningModule: loss, optimiser, cosine schedule, tiled full-resolution validation, per-epoch history."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss
from torch import nn

from matseg_nb.errors import UserError
from matseg_nb.metrics import confusion_matrix, summarize
from matseg_nb.models.tiling import predict_tiled, with_input_scale


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (the sweep records the job as failed)."""


def _losses(num_classes: int, class_weights: list[float] | None = None
            ) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """Loss functions by profile name; ``class_weights`` (one per class) weight the cross-entropy term."""
    dice = DiceLoss(mode="multiclass", from_logits=True)
    weight = None
    if class_weights is not None:
        if len(class_weights) != num_classes:
            raise UserError(f"training.class_weights: expected {num_classes} weights (one per class), "
                            f"found {len(class_weights)}")
        weight = torch.tensor(class_weights, dtype=torch.float32)

    def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, weight=None if weight is None else weight.to(logits.device))

    return {
        "ce": ce,
        "dice": lambda logits, y: dice(logits, y),
        "ce+dice": lambda logits, y: ce(logits, y) + dice(logits, y),
    }


OPTIMIZERS: dict[str, Callable] = {
    "adam": lambda p, lr, wd: torch.optim.Adam(p, lr=lr, weight_decay=wd),
    "adamw": lambda p, lr, wd: torch.optim.AdamW(p, lr=lr, weight_decay=wd),
    "sgd": lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd),
}


class SegModule(L.LightningModule):
    """Trains ``model`` on crops (resampled by ``input_scale``); validates on whole images with
    ``predict_tiled`` at full resolution (through ``with_input_scale``).

    Logged per epoch: train_loss, val_loss (NLL of the blended probabilities), val_iou / val_dice
    (dataset-level, foreground mean, see docs/metrics.md), lr. ``history`` keeps one dict per epoch.
    """

    #: when set, ``{epoch, max_epochs, val_iou}`` is written there after every epoch (atomic JSON)
    progress_file = None

    def __init__(self, model: nn.Module, num_classes: int, training: dict, channels_last: bool = False,
                 echo: Callable[[str], None] | None = print) -> None:
        super().__init__()
        self.model, self.num_classes, self.cfg = model, num_classes, training
        self.loss_fn = _losses(num_classes, training.get("class_weights"))[training.get("loss", "ce+dice")]
        self.channels_last = channels_last
        self.echo = echo
        self.history: list[dict] = []
        self._train_losses: list[float] = []
        self._val_cms: list[torch.Tensor] = []
        self._val_nll: list[float] = []
        self._epoch_t0 = time.perf_counter()
        self._epoch_lr = float(training["lr"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_train_epoch_start(self) -> None:
        self._epoch_t0 = time.perf_counter()
        self._train_losses = []
        self._epoch_lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])  # before the epoch's scheduler step

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = self.loss_fn(self.model(x), y)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at epoch {self.current_epoch}, step {batch_idx} "
                f"(lr {self.cfg['lr']}); try a lower learning rate, precision '32' or check the images"
            )
        self._train_losses.append(float(loss.detach()))
        self.log("train_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_cms, self._val_nll = [], []

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        net = with_input_scale(self.model, self.cfg.get("input_scale", 1.0))  # full-resolution in and out
        probs = predict_tiled(net, x[0], self.num_classes, self.cfg["tile_size"], self.cfg["tile_overlap"])
        target = y[0].cpu()
        self._val_cms.append(confusion_matrix(probs.argmax(0), target, self.num_classes))
        p_true = probs.gather(0, target.clamp(0, self.num_classes - 1)[None])[0]
        self._val_nll.append(float(-torch.log(p_true.clamp_min(1e-8)).mean()))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._val_cms:
            return
        pooled = torch.stack(self._val_cms).sum(0)
        s = summarize(pooled)
        val_iou = s["iou"] if not math.isnan(s["iou"]) else 0.0
        val_dice = s["dice"] if not math.isnan(s["dice"]) else 0.0
        self.log("val_iou", val_iou)
        self.log("val_dice", val_dice)
        self.log("val_loss", float(np.mean(self._val_nll)))

    def on_train_epoch_end(self) -> None:
        # Lightning runs validation before this hook when validation is due this epoch
        m = self.trainer.callback_metrics
        row = {
            "epoch": self.current_epoch,
            "train_loss": float(np.mean(self._train_losses)) if self._train_losses else math.nan,
            "val_loss": float(m["val_loss"]) if "val_loss" in m else math.nan,
            "val_iou": float(m["val_iou"]) if "val_iou" in m else math.nan,
            "val_dice": float(m["val_dice"]) if "val_dice" in m else math.nan,
            "lr": self._epoch_lr,
            "epoch_time_s": round(time.perf_counter() - self._epoch_t0, 3),
        }
        self.history.append(row)
        if self.progress_file is not None:  # followed by the dashboard's Run tab while the job runs
            from matseg_nb.atomic import atomic_write_json

            val = row["val_iou"]
            atomic_write_json(self.progress_file, {"epoch": row["epoch"] + 1, "max_epochs": self.trainer.max_epochs,
                                                   "val_iou": val if math.isfinite(val) else None})
        if self.echo:
            self.echo(
                f"epoch {row['epoch'] + 1}/{self.trainer.max_epochs}  train_loss {row['train_loss']:.4f}  "
                f"val_loss {row['val_loss']:.4f}  val_iou {row['val_iou']:.4f}  val_dice {row['val_dice']:.4f}  "
                f"lr {row['lr']:.2e}  {row['epoch_time_s']:.1f}s"
            )

    def configure_optimizers(self):
        opt = OPTIMIZERS[self.cfg.get("optimizer", "adam")](
            self.model.parameters(), self.cfg["lr"], self.cfg.get("weight_decay", 0.0)
        )
        if self.cfg.get("scheduler", "cosine") == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.cfg["max_epochs"]))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        return opt
