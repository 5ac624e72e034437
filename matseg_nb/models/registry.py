"""Decoder registry (smp architectures by name) and encoder-name validation."""

from __future__ import annotations

import inspect

import segmentation_models_pytorch as smp
from segmentation_models_pytorch.base import SegmentationModel

from matseg_nb.errors import UserError

#: lower-case smp architecture name -> class, e.g. "unet", "deeplabv3", "deeplabv3plus", "fpn", ...
DECODERS: dict[str, type[SegmentationModel]] = {
    name.lower(): cls
    for name, cls in vars(smp).items()
    if inspect.isclass(cls) and issubclass(cls, SegmentationModel) and cls is not SegmentationModel
}

#: the paper's grid (encoders x decoders)
PAPER_ENCODERS = ("resnet50", "se_resnext101_32x4d")
PAPER_DECODERS = ("Unet", "DeepLabV3", "DeepLabV3Plus")


def decoder_class(decoder: str) -> type[SegmentationModel]:
    """smp architecture class for a decoder name (case-insensitive, '-'/'_' ignored: 'DeepLabV3+' too)."""
    key = decoder.lower().replace("-", "").replace("_", "").replace("+", "plus")
    if key not in DECODERS:
        raise UserError(f"decoder: expected one of {sorted(c.__name__ for c in DECODERS.values())}, found {decoder!r}")
    return DECODERS[key]


def check_encoder(encoder: str) -> None:
    """Raise UserError unless ``encoder`` is an smp encoder name or 'tu-<timm model>'."""
    if encoder.startswith("tu-"):
        import timm

        base = encoder[3:].split(".")[0]
        if not timm.list_models(base):
            raise UserError(f"encoder: expected 'tu-<timm model name>', found {encoder!r} (no timm model {base!r})")
        return
    names = smp.encoders.get_encoder_names()
    if encoder not in names:
        raise UserError(
            f"encoder: expected an smp encoder name (e.g. {', '.join(PAPER_ENCODERS)}) or 'tu-<timm model>', "
            f"found {encoder!r}"
        )
