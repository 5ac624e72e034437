"""Detector validation, compute only: from the typicality keys of the held-out images and of each OOD set
(and the images' IoU), the :class:`matseg_nb.qc.results.ValidationResult` -- per (set, detector) the
image-level AUROC with its 95% interval and the shift's harm, the readiness verdict, and what decided
(the AUROC of the support indicator alone, of each detector alone and of the combined key, all from the
same crops)."""

from __future__ import annotations

import numpy as np

from matseg_nb.qc.power import readiness_power_sentence
from matseg_nb.qc.results import ShiftCheck, ValidationResult
from matseg_nb.qc.validation import harm, key_auroc_interval, readiness

#: per set -> detector -> per image arrays (crop keys (T_i, 3) or raw crop scores (T_i,))
PerSet = dict[str, dict[str, list[np.ndarray]]]


def validate(keys: PerSet, crops: PerSet | None, ious: dict[str, list[float | None]], heldout: str,
             ood_sets: list[str], reference: str, threshold: float, detectors: tuple[str, ...]) -> ValidationResult:
    """Per (OOD set, detector) image-level AUROC with 95% interval (images ranked by the crop key,
    :func:`matseg_nb.qc.validation.key_auroc_interval`) and the shift's IoU change (``ious``: per set, per
    image, None where unknown); the verdict of :func:`matseg_nb.qc.validation.readiness` and, when too few
    images decide nothing, what would (``matseg_nb.qc.power``)."""
    checks, table = [], []
    for name in ood_sets:
        hm = harm([v for v in ious.get(heldout, []) if v is not None] or None,
                  [v for v in ious.get(name, []) if v is not None] or None)
        for d in detectors:
            ci = key_auroc_interval(keys[heldout][d], keys[name][d])
            checks.append(ShiftCheck(name, d, ci["auroc"], ci["low"], ci["high"], ci["n_id"], ci["n_ood"],
                                     hm["harm"], hm["iou_change"]))
            table.append({"set": name, "detector": d, "low": ci["low"], "n_id": ci["n_id"], "n_ood": ci["n_ood"],
                          "harm": hm["harm"], "auroc": ci["auroc"]})
    decides = [what_decides(name, keys, crops, heldout, detectors) for name in ood_sets]
    verdict, why = readiness(table, threshold, tuple(detectors))
    if verdict == "insufficient evidence" and why.startswith("fewer than"):  # what would decide (qc/power.py)
        why = "; ".join(filter(None, [why, readiness_power_sentence(table, threshold)]))
    return ValidationResult(verdict, why, threshold, heldout, reference, checks, list(detectors), decides)


def what_decides(name: str, keys: PerSet, crops: PerSet | None, heldout: str, detectors: tuple[str, ...]) -> dict:
    """Image-level AUROC (held-out vs ``name``) of the support indicator alone (key column 0), of each
    detector's raw crop scores alone and of each detector's combined key, all from the same crops; ``n_crops``
    counts the (held-out, set) crops each AUROC ranked."""
    def auc(a: list[np.ndarray], b: list[np.ndarray]) -> float | None:
        return key_auroc_interval(a, b)["auroc"]

    def count(a: list[np.ndarray], b: list[np.ndarray]) -> list[int]:
        return [int(sum(len(x) for x in a)), int(sum(len(x) for x in b))]

    first = detectors[0]
    sid, sood = [k[:, 0] for k in keys[heldout][first]], [k[:, 0] for k in keys[name][first]]
    row = {"set": name, "support": auc(sid, sood), "alone": {}, "combined": {},
           "n_crops": {"support": count(sid, sood)}}
    for d in detectors:
        row["combined"][d] = auc(keys[heldout][d], keys[name][d])
        row["n_crops"][f"combined {d}"] = count(keys[heldout][d], keys[name][d])
        if crops:
            row["alone"][d] = auc(crops[heldout][d], crops[name][d])
            row["n_crops"][f"alone {d}"] = count(crops[heldout][d], crops[name][d])
    return row
