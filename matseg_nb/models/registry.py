"""smp architecture classes by name, over the one name registry ``matseg_nb.profiles.registry``."""

from __future__ import annotations

import inspect

import segmentation_models_pytorch as smp
from segmentation_models_pytorch.base import SegmentationModel

from matseg_nb.errors import UserError
from matseg_nb.profiles.registry import check_encoder as _check_encoder
from matseg_nb.profiles.registry import normalise_decoder

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
    """smp architecture class for a decoder name (case-insensitive, '-'/'_' ignored: 'DeepLabV3+' too).

    Names are resolved by the one registry, ``matseg_nb.profiles.registry.normalise_decoder``."""
    try:
        return getattr(smp, normalise_decoder(decoder))
    except ValueError as exc:
        raise UserError(f"decoder: {exc}") from None


def check_encoder(encoder: str) -> str:
    """smp's spelling of ``encoder`` (an smp encoder name or 'tu-<timm model>'); UserError otherwise.

    The check is the one registry's, ``matseg_nb.profiles.registry.check_encoder``."""
    try:
        return _check_encoder(encoder)
    except ValueError as exc:
        raise UserError(f"encoder: {exc}") from None
