"""The QC trust flag of each segmented image: the same screening as ``matseg qc RUN --new``.

:func:`open_screener` opens ``matseg_nb.qc.RunScreener`` on the deployed model's run (its calibration
set), the screening ``screen_run`` runs. An image's conformal p-value depends only on the image and the
calibration set, not on the other images screened with it, so each image is screened on its own as it is segmented (resume-friendly).
:func:`batch_verdict` then tests the whole batch from the stored per-image p-values: the one-sided
binomial test of the number of flags against the rate ``alpha`` (``qc.conformal.flag_count_test``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matseg_nb.segment.folder import ImageRecord
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
    """Screens one image at a time against a run's calibration set; ``p_value(image, name, path)`` ->
    (p-value, flagged, note)."""

    def __init__(self, screener: Any, alpha: float) -> None:
        self.screener, self.alpha = screener, alpha

    def p_value(self, image_chw, name: str, path: Path) -> tuple[float | None, bool | None, str]:
        from matseg_nb.qc.features import ImageItem
        from matseg_nb.qc.screening import DTYPE_FULL_SCALE

        dtype = file_dtype(path)
        meta = {"dtype": dtype, "full_scale": DTYPE_FULL_SCALE[dtype]} if dtype in DTYPE_FULL_SCALE else {}
        res = self.screener.screen([ImageItem(image_chw, name, meta=meta)], batch=name, alpha=self.alpha)
        im = res.images[0] if res.images else None
        if im is None or im.p_value is None:
            return None, None, f"not screened: {im.note if im else 'no result'}"
        return float(im.p_value), bool(im.p_value <= self.alpha), im.reason


def open_screener(dm: DeployedModel, settings) -> tuple[ImageScreener | None, str]:
    """(an :class:`ImageScreener` for the model's calibration run, "") or (None, why not): the model has
    no run folder, or it is a cross-validated model. Records then say why they were not screened."""
    from matseg_nb.qc import RunScreener

    if dm.calibration_run is None:
        return None, "not screened: the model has no run folder with a calibration set"
    if dm.meta.get("folds"):  # a CV run's calibration images are its own fold's (qc.cross_screening)
        return None, "not screened: a cross-validated model is screened by matseg qc --cross-conformal"
    return ImageScreener(RunScreener.open(dm.calibration_run), settings.alpha), ""


def batch_verdict(records: list[ImageRecord], alpha: float) -> dict[str, Any]:
    """``{"n_screened", "n_flagged", "alpha", "flag_count_p_value", "verdict", "sentence"}`` of the batch."""
    from matseg_nb.qc.conformal import flag_count_test

    screened = [r for r in records if r.qc_p_value is not None]
    n, k = len(screened), sum(bool(r.qc_flag) for r in screened)
    p = flag_count_test(k, n, alpha)
    if n == 0:
        verdict, words = "not screened", "no image was screened"
    elif p is not None and p <= alpha:
        verdict = "shifted"
        words = f"{k} of {n} images flagged, more than the {alpha:g} rate allows (binomial p={p:.2g}): the batch is shifted"
    else:
        verdict = "no shift found"
        words = (f"{k} of {n} images flagged, within the {alpha:g} false-flag rate (binomial p={p:.2g})"
                 if p is not None else f"{k} of {n} images flagged")
    return {"n_screened": n, "n_flagged": k, "alpha": alpha, "flag_count_p_value": p, "verdict": verdict,
            "sentence": words, "flagged": [r.name for r in screened if r.qc_flag]}
