""":class:`QCSettings`: every setting of a QC run in one typed record (sizes in pixels).

Depends on the base layer only, so ``matseg_nb.loop`` can name the loop's QC settings without importing
the analyses (tests/test_import_layers.py places this module in the loop layer).
"""

from __future__ import annotations

from dataclasses import dataclass

from matseg_nb.jsonio import JsonRecord

#: every imaging shift at both strengths (``matseg qc --shift all``)
QC_SHIFTS: tuple[str, ...] = tuple(f"{kind}:{strength}"
                                   for kind in ("noise", "blur", "contrast", "brightness", "rescale", "bitdepth_down")
                                   for strength in ("mild", "strong"))
#: the demo's validation shifts: one strong version of each kind that changes what the model sees
#: (noise, blur, magnification) plus brightness, which percentile normalisation removes (a harmless
#: shift that must not count against the detector); each costs one feature pass and one prediction
#: per held-out image
DEMO_QC_SHIFTS: tuple[str, ...] = ("noise:strong", "blur:strong", "rescale:strong", "brightness:strong")

#: feature levels of ``level``: input crops, the model's predictions, or both
LEVELS: dict[str, tuple[str, ...]] = {"input": ("input",), "prediction": ("prediction",),
                                      "both": ("input", "prediction")}


@dataclass(frozen=True)
class QCSettings(JsonRecord):
    """Settings of detector validation (:func:`matseg_nb.qc.run.run_qc`) and of the loop's QC stage.

    Reference fit: ``extractors`` on ``tiles_per_image`` crops of ``tile_size`` px per image of
    ``reference_split`` (crops seeded by ``seed`` and each image's content), ``k`` neighbours, each of
    ``detectors``; typicality is calibrated on ``calibration_split`` (images neither model was fitted on; when
    it is empty, on the reference split's held-back half); ``percentile``: the deployment threshold's
    percentile of the calibration images' typicality.
    Validation: the ``heldout_split`` images against each of ``shifts`` (specs such as ``noise:strong``)
    and the OOD sets a caller names; ``readiness_threshold`` (None: the profile's task, else 0.95) is the
    AUROC a detector's lower 95% bound must exceed. Predictions for the IoU change of a shift: one pass
    per image up to ``predict_tile`` px, on the centre ``iou_crop`` px square of larger images (None: the
    whole image); ``gallery_rows``: the least typical predictions drawn. Loop only: ``screening_shift`` (the
    held-out images' shifted copy screened as new images) and ``other_split`` (the split of the other
    datasets screened and used as OOD sets)."""

    reference_split: str = "train"
    heldout_split: str = "test"
    calibration_split: str = "val"
    shifts: tuple[str, ...] = DEMO_QC_SHIFTS
    level: str = "input"
    extractors: tuple[str, ...] = ("encoder", "texture")
    detectors: tuple[str, ...] = ("gmm", "ocsvm")
    k: int = 5
    tile_size: int = 128
    tiles_per_image: int = 16
    percentile: float = 5.0
    readiness_threshold: float | None = None
    gallery_rows: int = 4
    seed: int = 0
    predict_tile: int = 512
    iou_crop: int | None = 512
    screening_shift: str = "noise:strong"
    other_split: str = "test"

    @property
    def primary_detector(self) -> str:
        """The detector whose per-image typicality the plots, Spearman and gallery use (GMM when fitted)."""
        return "gmm" if "gmm" in self.detectors else self.detectors[0]

    @property
    def screening_detector(self) -> str:
        """The one detector screening uses (OCSVM when among ``detectors``; docs/qc.md)."""
        return "ocsvm" if "ocsvm" in self.detectors or not self.detectors else self.detectors[0]
