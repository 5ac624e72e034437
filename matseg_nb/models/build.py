"""``build_model``: an smp model from encoder/decoder names plus an encoder-weights report."""

from __future__ import annotations

import os
import time
from pathlib import Path

from torch import nn

from matseg_nb.errors import UserError
from matseg_nb.models.registry import check_encoder, decoder_class
from matseg_nb.models.weights import WEIGHT_SUFFIXES, imagenet_source, load_encoder_file, offline_hub

NONE_REPORT = {"mode": "none", "pretrained": False, "source": None,
               "note": "encoder trained from scratch (random initialisation, no pretrained weights)"}


def _mode(encoder_weights: str | os.PathLike | None) -> str:
    if encoder_weights is None or str(encoder_weights).lower() in ("none", "", "null", "random", "scratch"):
        return "none"
    if str(encoder_weights).lower() == "imagenet":
        return "imagenet"
    if str(encoder_weights).lower() in ("micronet", "imagenet-micronet"):
        return "micronet"
    if str(encoder_weights).endswith(WEIGHT_SUFFIXES) or Path(encoder_weights).exists():
        return "file"
    raise UserError(
        f"encoder_weights: expected 'imagenet', 'none' or a path to a {'/'.join(WEIGHT_SUFFIXES)} file, "
        f"found {str(encoder_weights)!r}"
    )


def build_model(
    encoder: str,
    decoder: str,
    in_channels: int,
    classes: int,
    encoder_weights: str | os.PathLike | None = "none",
    min_encoder_key_match: float = 0.95,
    **decoder_kwargs,
) -> tuple[nn.Module, dict]:
    """Build ``decoder(encoder)`` for ``in_channels``-channel inputs and ``classes`` output logits.

    encoder_weights: "none" (from scratch), "imagenet" (smp/timm weights from the local HF cache only;
    UserError with instructions when absent) or a local state-dict path loaded into the encoder
    (refused below ``min_encoder_key_match`` matched keys). Returns ``(model, weights_report)``; the model's
    saved config always has ``encoder_weights=None`` so ``load_run_model`` never needs the Hub.
    """
    check_encoder(encoder)
    cls = decoder_class(decoder)
    mode = _mode(encoder_weights)
    t0 = time.perf_counter()
    if mode == "imagenet":
        report = imagenet_source(encoder)  # fails fast when the cache lacks the weights
        smp_weights = True if encoder.startswith("tu-") else "imagenet"
        with offline_hub():
            model = cls(encoder_name=encoder, encoder_weights=smp_weights, in_channels=in_channels,
                        classes=classes, **decoder_kwargs)
    else:
        try:
            model = cls(encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=classes,
                        **decoder_kwargs)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise UserError(f"encoder/decoder: expected a valid smp combination, found {encoder!r} x {decoder!r}: {exc}") from exc
        if mode == "file":
            report = load_encoder_file(model.encoder, encoder_weights, min_encoder_key_match)
        elif mode == "micronet":
            from matseg_nb.micronet import micronet_weights_path

            path = micronet_weights_path(encoder, str(encoder_weights).lower())
            report = load_encoder_file(model.encoder, path, min_encoder_key_match)
        else:
            report = dict(NONE_REPORT)
    model.config["encoder_weights"] = None  # the trained weights live in model.safetensors
    report = {**report, "encoder": encoder, "decoder": cls.__name__, "load_time_s": round(time.perf_counter() - t0, 3)}
    return model, report


def n_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def pad_multiple(model: nn.Module) -> int:
    """Input side multiple the model needs (smp checks ``encoder.output_stride``); 32 when unknown."""
    enc = getattr(model, "encoder", None)
    return int(getattr(enc, "output_stride", 32) or 32)
