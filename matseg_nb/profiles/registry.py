"""Encoder and decoder names known to segmentation_models_pytorch (smp).

Decoders are matched case-insensitively (``"unet"``, ``"DeepLabv3+"``, ``"deeplab_v3_plus"``) and
normalised to smp's class names (``"Unet"``, ``"DeepLabV3Plus"``). Encoders must be one of
``smp.encoders.get_encoder_names()`` (matched case-insensitively, stored in smp's spelling) or
``"tu-<timm model>"`` for a model that timm knows.
smp and timm are imported lazily (importing smp costs seconds) and the lists are cached.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

#: normalised spelling (lower case, no ``-``/``_``/space, ``+`` -> ``plus``) -> smp class name.
DECODER_ALIASES: dict[str, str] = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "manet": "MAnet",
    "linknet": "Linknet",
    "fpn": "FPN",
    "pspnet": "PSPNet",
    "deeplabv3": "DeepLabV3",
    "deeplabv3plus": "DeepLabV3Plus",
    "pan": "PAN",
    "upernet": "UPerNet",
    "segformer": "Segformer",
    "dpt": "DPT",
}

TIMM_PREFIX = "tu-"


def _squash(name: str) -> str:
    """``"DeepLab-v3+"`` -> ``"deeplabv3plus"``."""
    return re.sub(r"[\s_\-]", "", name.strip().lower().replace("+", "plus"))


@lru_cache(maxsize=1)
def smp_decoders() -> dict[str, str]:
    """Squashed name -> smp class name, for every architecture this smp version ships."""
    import segmentation_models_pytorch as smp

    mapping = getattr(smp, "MODEL_ARCHITECTURES_MAPPING", None) or {}
    known = {_squash(key): cls.__name__ for key, cls in mapping.items()}
    for squashed, cls_name in DECODER_ALIASES.items():
        if hasattr(smp, cls_name):
            known.setdefault(squashed, cls_name)
    return known


@lru_cache(maxsize=1)
def smp_encoders() -> frozenset[str]:
    """Encoder names of ``smp.encoders.get_encoder_names()`` (without the ``tu-`` family)."""
    import segmentation_models_pytorch as smp

    return frozenset(smp.encoders.get_encoder_names())


def _close(name: str, options: list[str]) -> str:
    hits = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(h) for h in hits)}?)" if hits else ""


def normalise_decoder(name: str) -> str:
    """Return smp's class name for ``name``; raise ``ValueError("expected ..., found ...")`` if unknown."""
    known = smp_decoders()
    cls_name = known.get(_squash(name))
    if cls_name is None:
        options = sorted(set(known.values()))
        hits = difflib.get_close_matches(_squash(name), list(known), n=2, cutoff=0.6)
        hint = f" (did you mean {', '.join(repr(known[h]) for h in hits)}?)" if hits else ""
        raise ValueError(f"expected an smp decoder ({', '.join(options)}), found {name!r}{hint}")
    return cls_name


def check_encoder(name: str) -> str:
    """Return smp's spelling of ``name`` (``"ResNet50"`` -> ``"resnet50"``) if smp can build it;
    raise ``ValueError("expected ..., found ...")`` otherwise."""
    if name in smp_encoders():
        return name
    by_lower = {n.lower(): n for n in smp_encoders()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    if name.startswith(TIMM_PREFIX):
        import timm

        model = name[len(TIMM_PREFIX):]
        if model and timm.is_model(model):
            return name
        hits = difflib.get_close_matches(model, timm.list_models(), n=3, cutoff=0.6) if model else []
        hint = f" (did you mean {', '.join(repr(TIMM_PREFIX + h) for h in hits)}?)" if hits else ""
        raise ValueError(f"expected 'tu-' + a model name that timm knows, found {name!r}{hint}")
    raise ValueError(
        f"expected an smp encoder name (smp.encoders.get_encoder_names()) or 'tu-<timm model>', "
        f"found {name!r}{_close(name, sorted(smp_encoders()))}"
    )


#: smp constructor arguments a profile may not set through ``model.decoder_options`` (the grid sets them)
RESERVED_DECODER_ARGUMENTS = ("encoder_name", "encoder_weights", "in_channels", "classes")


def decoder_parameters(decoder: str) -> list[str]:
    """Constructor arguments of smp's ``decoder`` class that ``model.decoder_options`` may set."""
    import inspect

    import segmentation_models_pytorch as smp

    signature = inspect.signature(getattr(smp, normalise_decoder(decoder)).__init__)
    return [name for name, par in signature.parameters.items()
            if name != "self" and name not in RESERVED_DECODER_ARGUMENTS
            and par.kind not in (par.VAR_KEYWORD, par.VAR_POSITIONAL)]
