"""Starting profiles as plain dicts: the smoke-size :func:`default_profile` and the dashboard's
:func:`starter_profile`, with dataset entries filled from the shipped manifests."""

from __future__ import annotations

from typing import Any

from matseg_nb.vocabulary import MATERIAL_ALIASES
from matseg_nb.vocabulary import MATERIAL_CLASSES as MATERIALS

#: manifest material class -> profile material class (both use ``matseg_nb.vocabulary``)
MATERIAL_FROM_MANIFEST = {**{m: m for m in MATERIALS}, **MATERIAL_ALIASES}
def default_profile(dataset: str = "nasa-super1") -> dict:
    """A tiny valid profile (2 epochs x 2 steps of 64 px crops, a test encoder) for ``dataset``: smoke tests only;
    it does not learn. The dashboard starts from :func:`starter_profile`."""
    return {
        "version": 1,
        "name": "my-profile",
        "description": "",
        "dataset": [_dataset_entry(dataset)],
        "task": {"objective": "Segment the microstructure", "metrics": ["iou", "dice"], "primary_metric": "iou"},
        "model": {"encoders": ["tu-test_resnet"], "decoders": ["Unet"], "encoder_weights": "none"},
        "training": {"max_epochs": 2, "batch_size": 2, "crop_size": 64, "tile_size": 256, "tile_overlap": 32,
                     "steps_per_epoch": 2},
        "seeds": [0],
        "execution": {"executor": "local", "devices": "cpu", "workers": 1},
    }


#: training settings of the dashboard's starter profile: a resnet18 UNet from random weights that learns
#: on a 2-core CPU in a few minutes (lr 1e-3, ce+dice, foreground-centred 128 px crops, 10 epochs x 10
#: steps; the same recipe as profiles/demo-cpu.json). :func:`default_profile` stays the 2x2-step smoke size.
STARTER_TRAINING = {
    "batch_size": 4, "lr": 1e-3, "optimizer": "adam", "scheduler": "cosine", "loss": "ce+dice",
    "max_epochs": 10, "steps_per_epoch": 10, "crop_size": 128, "foreground_crop_fraction": 0.5,
    "val_crop_size": 256, "tile_size": 1024, "tile_overlap": 64, "normalization": "percentile",
    "early_stopping_patience": 20, "monitor": "val_iou",
}


def starter_profile(dataset: str = "nasa-super1") -> dict:
    """The dashboard's first profile: one resnet18 UNet that actually learns (see :data:`STARTER_TRAINING`)."""
    prof = default_profile(dataset)
    prof["name"] = "starter"
    prof["description"] = ("Starter: one resnet18 UNet trained from random weights with lr 1e-3 on 128 px crops, "
                           "10 epochs x 10 steps; a few minutes on a 2-core CPU.")
    prof["model"] = {"encoders": ["resnet18"], "decoders": ["Unet"], "encoder_weights": "none"}
    prof["training"] = dict(STARTER_TRAINING)
    return prof


def _dataset_entry(name: str) -> dict:
    """Profile dataset entry for manifest ``name``, modality/material taken from the manifest."""
    entry: dict[str, Any] = {"ref": name, "modality": "other", "material": {"class": "other", "text": ""}}
    try:
        from matseg_nb.data import load_manifest

        m = load_manifest(name)
        entry["modality"] = m.modality
        entry["material"] = {"class": MATERIAL_FROM_MANIFEST.get(m.material.class_, "other"), "text": m.material.text}
    except Exception:  # noqa: BLE001 - an unknown ref is reported by validation, not here
        pass
    return entry


def manifest_choices() -> list[str]:
    """Dataset names offered by the picker (``matseg_nb.data.list_manifests``)."""
    try:
        from matseg_nb.data import list_manifests

        return list(list_manifests())
    except Exception:  # noqa: BLE001
        return []
