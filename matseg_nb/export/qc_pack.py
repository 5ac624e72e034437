"""The QC calibration data a bioimage.io package carries (attachments ``qc_calibration.npz`` + ``.json``), and
the screener ``matseg segment`` rebuilds from it.

What is stored: the crop features (per extractor, (T, F) float64) of the run's reference images (train split)
and calibration images (validation split, else test) exactly as ``qc.RunScreener.open(run)`` computed them,
with each crop's image index, plus the calibration crops' typicality keys (T, 3) and the screening settings.
No image and no fitted object (no pickle): :func:`open_package_screener` hands the stored features to
``qc.RunScreener``'s own constructor (through a ``QCSession`` whose feature cache already holds them), which
refits the same detector and recomputes the same keys; new images get their features from the package's model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json_object

QC_NPZ = "qc_calibration.npz"
QC_JSON = "qc_calibration.json"


def write_qc_calibration(run_dir: Path, folder: Path) -> dict[str, Any]:
    """Fit the run's screening (the ``matseg qc RUN --new`` defaults, as ``matseg segment RUN`` uses) and write
    its features into ``folder``; returns the json summary (also written). UserError when QC cannot run."""
    from matseg_nb.atomic import atomic_write_text
    from matseg_nb.qc import RunScreener

    screener = RunScreener.open(run_dir)
    ex = screener.extractor
    arrays: dict[str, np.ndarray] = {}
    counts = {}
    for role, split in (("ref", screener.reference_split), ("cal", screener.calibration_name)):
        items = screener.session.items(split)
        blocks, groups = ex(items, desc=f"QC features: {split}")
        arrays.update({f"{role}__{name}": np.asarray(b, dtype=np.float64) for name, b in blocks.items()})
        arrays[f"{role}__groups"] = np.asarray(groups, dtype=np.int64)
        counts[role] = (len(items), int(len(groups)))
    arrays["cal__keys"] = np.asarray(screener.calibration.tile_scores, dtype=np.float64)
    info = {"what": "crop features of the run's reference and calibration images for matseg's QC screening "
                    "(conformal p-value per image, rank-sum batch test); read by matseg segment",
            "run": Path(run_dir).name, "dataset": screener.session.meta.get("dataset"),
            "extractors": list(ex.fns), "tile_size": int(ex.tile_size), "tiles_per_image": int(ex.tiles),
            "seed": int(ex.seed), "detector": screener.detector, "k": int(screener.model.k),
            "reference_split": screener.reference_split, "calibration_split": screener.calibration_name,
            "n_reference_images": counts["ref"][0], "n_reference_crops": counts["ref"][1],
            "n_calibration_images": counts["cal"][0], "n_calibration_crops": counts["cal"][1],
            "channels": int(screener.channels), "notes": list(screener.notes)}
    tmp = folder / f".{QC_NPZ}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    tmp.replace(folder / QC_NPZ)
    atomic_write_text(folder / QC_JSON, json.dumps(info, indent=2))
    return info


def _placeholders(n: int, channels: int, offset: int) -> list:
    """``n`` distinct 1 x 1 stand-in images: keys into the feature cache, never fed to a model."""
    from matseg_nb.qc.features import ImageItem

    return [ImageItem(np.full((channels, 1, 1), offset + i, dtype=np.float32), f"calibration{offset + i}")
            for i in range(n)]


def open_package_screener(folder: Path, model: Any, normalization: str, num_classes: int):
    """A ``qc.RunScreener`` rebuilt from the package's calibration data and ``model`` (the package's torch
    model, for the encoder features of new images). UserError when the files are missing or do not
    load (a refit whose keys differ from the stored ones adds a note)."""
    from matseg_nb.qc import RunScreener
    from matseg_nb.qc.features import FeatureContext
    from matseg_nb.qc.session import QCSession, image_fingerprint

    info = read_json_object(folder / QC_JSON)
    if info is None:
        raise UserError(f"{folder / QC_JSON}: expected the package's QC calibration settings, found no such file")
    try:
        data = dict(np.load(folder / QC_NPZ))
    except (OSError, ValueError) as err:
        raise UserError(f"{folder / QC_NPZ}: expected the package's QC calibration data, found "
                        f"{type(err).__name__}: {err}") from None
    names, size, tiles, seed = info["extractors"], info["tile_size"], info["tiles_per_image"], info["seed"]
    splits, cache = {}, {}
    for role, split, offset in (("ref", info["reference_split"], 0), ("cal", info["calibration_split"], 1 << 20)):
        groups = data[f"{role}__groups"]
        items = _placeholders(int(groups.max()) + 1, int(info["channels"]), offset)
        for i, it in enumerate(items):
            fp = image_fingerprint(it.image)
            for name in names:
                cache[(name, fp, size, tiles, seed)] = data[f"{role}__{name}"][groups == i]
        splits[split] = items
    ctx = FeatureContext(model=model, normalization=normalization, num_classes=num_classes)
    session = QCSession(None, model, {"dataset": info.get("dataset")}, None, ctx, splits, cache)
    screener = RunScreener(session, info["reference_split"], info["calibration_split"], tuple(names),
                           info["detector"], int(info["k"]), size, tiles, seed)
    screener.notes = list(info.get("notes") or [])
    if not np.allclose(screener.calibration.tile_scores, data["cal__keys"], rtol=1e-9, atol=1e-12):
        screener.notes.append("the refitted detector gives calibration keys that differ from the exported ones "
                              "(other library versions): p-values may differ slightly from the run folder's")
    return screener
