"""Tiny profiles for tests (reusable by every area; no conftest fixtures).

>>> data = tiny_profile_dict()                 # 1 dataset x tu-test_resnet x (Unet, DeepLabV3Plus) x seed 0
>>> path = write_profile(tmp_path, data)       # -> tmp_path / "profile.json"
>>> jobs = compile_jobs(load_profile(path))    # 2 jobs
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

TINY_PROFILE: dict[str, Any] = {
    "name": "tiny",
    "description": "tiny CPU test profile",
    "dataset": [
        {"ref": "nasa-super1", "modality": "SEM", "material": {"class": "metals", "text": "Ni superalloy"}},
    ],
    "task": {"objective": "Segment gamma-prime precipitates", "metrics": ["iou", "dice"]},
    "model": {"encoders": ["tu-test_resnet"], "decoders": ["Unet", "DeepLabV3Plus"], "encoder_weights": "none"},
    "training": {
        "batch_size": 2,
        "max_epochs": 1,
        "steps_per_epoch": 2,
        "crop_size": 64,
        "tile_size": 128,
        "tile_overlap": 16,
        "num_workers": 0,
    },
    "seeds": [0],
    "execution": {"executor": "local", "devices": "cpu", "workers": 1, "threads_per_worker": 1},
}


def tiny_profile_dict(dataset: str | list[str] = "nasa-super1", **sections: Any) -> dict:
    """A deep copy of :data:`TINY_PROFILE`; ``dataset`` sets the reference(s), keyword arguments
    update top-level sections (dicts are merged one level deep: ``training={"lr": 1e-3}``)."""
    data = copy.deepcopy(TINY_PROFILE)
    refs = [dataset] if isinstance(dataset, str) else list(dataset)
    template = data["dataset"][0]
    data["dataset"] = [{**copy.deepcopy(template), "ref": ref} for ref in refs]
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def write_profile(folder: Path, data: dict | str, name: str = "profile.json") -> Path:
    """Write ``data`` (a dict, or raw text for malformed-JSON tests) to ``folder/name``."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2), encoding="utf-8")
    return path


def make_plain_folder(root: Path, stems: tuple[str, ...] = ("a", "b")) -> Path:
    """A folder with ``images/`` + ``masks/`` holding placeholder files (enough for validation and
    job ids, which fingerprint file names and sizes; not readable images)."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            (root / sub / f"{stem}.png").write_bytes(b"placeholder-" + stem.encode())
    return root
