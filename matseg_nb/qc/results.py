"""Typed QC results: screening of new images and validation of the detector (to_json/from_json/summary).

``ScreeningResult``: per image (:class:`ImageScreen`) typicality percentile, conformal p-value, flag
and reason; per batch the flag count, the stated test, its p-value and the verdict in words.
``ValidationResult``: per (set, detector) AUROC with a 95% interval and the shift's harm, plus the
readiness verdict. Everything a person reads is in words; every number stays in the JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ImageScreen:
    """One screened image: ``p_value`` in [0, 1]; ``typicality`` = median tile conformal p-value
    (fraction of validation crops at most as typical); ``flagged`` at alpha; ``reason`` in words;
    ``note`` for inputs that limit the answer (unreadable, other channel count / bit depth)."""

    name: str
    p_value: float | None
    typicality: float | None
    flagged: bool | None
    reason: str
    note: str = ""


@dataclass
class ScreeningResult:
    """Answer to "are these new images like the validation images?" for one batch; ``batch_power``: the
    batch test's power against a strong shift at these sizes (``matseg_nb.qc.conformal.batch_power``)."""

    batch: str
    images: list[ImageScreen]
    alpha: float
    n_flagged: int
    n_screened: int
    batch_verdict: str  # "in distribution" | "shifted" | "too few images to tell"
    batch_test: str
    batch_p_value: float | None
    flag_count_p_value: float | None
    reference: str
    calibration: str
    detector: str
    n_calibration_images: int
    notes: list[str] = field(default_factory=list)
    batch_power: float | None = None
    batch_evidence: str = ""  # "strong" | "weak" for "in distribution" (matseg_nb.qc.conformal.batch_test)

    @property
    def verdict_words(self) -> str:
        """The batch verdict, with ", weak evidence" when the test had little power against a strong shift."""
        return f"{self.batch_verdict}, weak evidence" if self.batch_evidence == "weak" else self.batch_verdict

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ScreeningResult:
        d = dict(data)
        d["images"] = [ImageScreen(**i) for i in d.get("images", [])]
        return cls(**d)

    def sentence(self) -> str:
        """The batch answer as one sentence without the batch's name: verdict, k of n flagged, p-value."""
        p = "" if self.batch_p_value is None else f", batch p = {self.batch_p_value:.2g}"
        return (f"{self.verdict_words} ({self.n_flagged} of {self.n_screened} images flagged at "
                f"alpha = {self.alpha:g}{p}; {self.n_calibration_images} {self.calibration} images as calibration)")

    def headline(self) -> str:
        """The batch answer in one line: verdict, flagged k of n, the batch test's p-value, the sets used."""
        p = "" if self.batch_p_value is None else f", batch p={self.batch_p_value:.2g}"
        return (f"{self.batch}: {self.verdict_words} ({self.n_flagged} of {self.n_screened} images flagged "
                f"at alpha={self.alpha:g}{p}; calibration {self.n_calibration_images} {self.calibration} images, "
                f"reference {self.reference})")

    def to_frame(self):
        """pandas table, one row per image: batch, image, p-value, flagged, reason, note (no raw scores)."""
        import pandas as pd

        return pd.DataFrame([{"batch": self.batch, "image": i.name, "p_value": i.p_value, "flagged": i.flagged,
                              "reason": i.reason, "note": i.note} for i in self.images],
                            columns=["batch", "image", "p_value", "flagged", "reason", "note"])

    def summary(self) -> str:
        lines = [self.headline()]
        lines += [f"  {i.name}: {i.reason}" + (f" [{i.note}]" if i.note else "") for i in self.images]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class ShiftCheck:
    """One (shift or OOD set, detector): AUROC and 95% interval, harm of the shift to this model."""

    set: str
    detector: str
    auroc: float | None
    low: float | None
    high: float | None
    n_id: int
    n_ood: int
    harm: str  # "harmful" | "harmless" | "unknown"
    iou_change: float | None


@dataclass
class ValidationResult:
    """Answer to "does the detector separate held-out images from shifts that hurt the model?"."""

    verdict: str  # "ready" | "not ready" | "insufficient evidence"
    reason: str
    readiness_threshold: float
    heldout: str
    reference: str
    checks: list[ShiftCheck]
    detectors: list[str]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ValidationResult:
        d = dict(data)
        d["checks"] = [ShiftCheck(**c) for c in d.get("checks", [])]
        return cls(**d)

    def to_frame(self):
        """pandas table, one row per (set, detector): AUROC, 95% interval, images per side, harm, IoU change."""
        import pandas as pd

        cols = ["set", "detector", "auroc", "low", "high", "n_id", "n_ood", "harm", "iou_change"]
        return pd.DataFrame([asdict(c) for c in self.checks], columns=cols)

    def summary(self) -> str:
        lines = [f"detector validation: {self.verdict} ({self.reason})"]
        for c in self.checks:
            auc = "n/a" if c.auroc is None else f"{c.auroc:.3f} [{c.low:.3f}, {c.high:.3f}]"
            dio = "" if c.iou_change is None else f", IoU change {c.iou_change:+.3f}"
            lines.append(f"  {c.set:28} {c.detector:6} AUROC {auc}  {c.harm}{dio}")
        return "\n".join(lines)
