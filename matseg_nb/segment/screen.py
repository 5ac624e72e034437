"""The QC trust flag of each segmented image: the same screening as ``matseg qc RUN --new``.

:func:`open_screener` opens ``matseg_nb.qc.RunScreener`` on the deployed model's run (its calibration
set), the screening ``screen_run`` runs. An image's conformal p-value depends only on the image and the
calibration set, not on the other images screened with it, so each image is screened on its own as it is segmented (resume-friendly); its crops' typicality keys are
stored with its record, and the run's calibration keys once per folder. :func:`batch_verdict` then gives the
batch the answer ``matseg qc RUN --new`` gives the same images: ``qc.screening.screen_scores`` on the stored
keys (the exact rank-sum test of the images' pooled crop ranks against the calibration images, with the
binomial flag count beside it), so a resumed folder gets the same batch answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from matseg_nb.segment.folder import ImageRecord, SegmentFolder
from matseg_nb.segment.model import DeployedModel

#: the note of records segmented by a version without the qc screening entry (redone when QC is on)
SCREENER_MISSING = "not screened: matseg_nb.qc.RunScreener is not available in this version"

def file_dtype(path: Path) -> str | None:
    """The stored pixel dtype of an image file (TIFF: from the header), None when unknown."""
    from matseg_nb.data.formats import RASTER_SUFFIXES

    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return str(tif.pages[0].dtype)
        if path.suffix.lower() in RASTER_SUFFIXES:
            from matseg_nb.data.readers import read_array

            return str(read_array(path).dtype)
    except Exception:  # noqa: BLE001 - the full scale is then inferred from the values
        return None
    return None


class ImageScreener:
    """Screens one image at a time against a run's calibration set (a ``qc.RunScreener``);
    :meth:`screen` -> (p-value, flagged, note, crop typicality keys (T, 3) or None)."""

    def __init__(self, screener: Any, alpha: float) -> None:
        self.screener, self.alpha = screener, alpha

    def calibration(self) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """(calibration crop keys (N, 3), their image labels (N,), info: reference / calibration split,
        detector, notes), what :func:`batch_verdict` needs besides the images' keys."""
        s = self.screener
        return (np.asarray(s.calibration.tile_scores), np.asarray(s.calibration.tile_groups),
                {"reference": s.reference_split, "calibration": s.calibration_name, "detector": s.detector,
                 "notes": list(s.notes), "run_dir": str(getattr(s.session, "run_dir", "") or "")})

    def screen(self, image_chw, name: str, path: Path) -> tuple[float | None, bool | None, str, np.ndarray | None]:
        from matseg_nb.qc.features import ImageItem
        from matseg_nb.qc.screening import DTYPE_FULL_SCALE, screen_scores

        dtype = file_dtype(path)
        meta = {"dtype": dtype, "full_scale": DTYPE_FULL_SCALE[dtype]} if dtype in DTYPE_FULL_SCALE else {}
        (keys,) = self.screener.image_keys([ImageItem(image_chw, name, meta=meta)])
        res = screen_scores(self.screener.calibration, [keys], [name], self.alpha, batch=name)
        im = res.images[0] if res.images else None
        if im is None or im.p_value is None:
            return None, None, f"not screened: {im.note if im else 'no result'}", None
        return float(im.p_value), bool(im.p_value <= self.alpha), im.reason, np.asarray(keys)

    def p_value(self, image_chw, name: str, path: Path) -> tuple[float | None, bool | None, str]:
        """(p-value, flagged, note) of one image (:meth:`screen` without the keys)."""
        return self.screen(image_chw, name, path)[:3]


def open_screener(dm: DeployedModel, settings) -> tuple[ImageScreener | None, str]:
    """(an :class:`ImageScreener` for the model's calibration run, "") or (None, why not): the model has
    no run folder, or it is a cross-validated model. Records then say why they were not screened."""
    from matseg_nb.qc import RunScreener

    if dm.open_qc is not None:  # an exported package carrying its calibration data
        return ImageScreener(dm.open_qc(), settings.alpha), ""
    if dm.calibration_run is None:
        return None, "not screened: the model has no run folder with a calibration set"
    if dm.meta.get("folds"):  # a CV run's calibration images are its own fold's (qc.cross_screening)
        return None, "not screened: a cross-validated model is screened by matseg qc --cross-conformal"
    return ImageScreener(RunScreener.open(dm.calibration_run), settings.alpha), ""


def batch_verdict(folder: SegmentFolder, records: list[ImageRecord], alpha: float) -> dict[str, Any]:
    """The batch answer of ``matseg qc RUN --new`` on the screened images, redone from the folder: the
    stored calibration keys and each image's stored crop keys through ``qc.screening.screen_scores`` (the
    rank-sum batch test, its power, the flag count). Returns ``ScreeningResult.to_json()`` without the
    per-image rows, plus ``verdict`` (its verdict words), ``sentence``, ``flagged`` (image names) and
    ``n_screened``; ``{"verdict": "not screened", ...}`` when no image was screened."""
    from matseg_nb.qc.screening import Calibration, screen_scores

    screened = [r for r in records if r.segmented and r.qc_p_value is not None]
    keys = [folder.qc_keys(r) for r in screened]
    cal = folder.qc_calibration()
    if not screened or cal is None or any(k is None for k in keys):
        missing = "no image was screened" if not screened else "the screening keys are missing (rerun to redo)"
        return {"n_screened": 0, "n_flagged": 0, "alpha": alpha, "verdict": "not screened", "sentence": missing,
                "flagged": []}
    scores, groups, info = cal
    res = screen_scores(Calibration(scores, groups), keys, [r.name for r in screened], alpha, batch="segment",
                        reference=info.get("reference", "train"), calibration_name=info.get("calibration", "val"),
                        detector=info.get("detector", "ocsvm"))
    res.notes[:0] = list(info.get("notes") or [])
    out = {k: v for k, v in res.to_json().items() if k != "images"}
    return {**out, "verdict": res.verdict_words, "sentence": res.sentence(), "n_screened": res.n_screened,
            "flagged": [i.name for i in res.images if i.flagged],
            "p_values": {i.name: i.p_value for i in res.images}}
