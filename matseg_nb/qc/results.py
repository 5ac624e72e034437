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
    #: per validation set: {"set", "support", "alone": {detector: auroc}, "combined": {detector: auroc}, "n_crops"}
    #: -- image-level AUROCs of the key's support column alone, each detector alone and the combined key
    decides: list[dict] = field(default_factory=list)

    def what_decided(self, tol: float = 1e-9) -> str:
        """One sentence: which part of the crop key decided the validation AUROCs (the k-NN support, the
        detectors, or both), from :attr:`decides`."""
        rows = [r for r in self.decides if r.get("support") is not None and r.get("combined")]
        if not rows:
            return "what decided: not measured (no validation set with AUROCs)"

        def same(a, b) -> bool:
            return a is not None and b is not None and abs(a - b) <= tol

        def span(vals) -> str:
            vals = [v for v in vals if v is not None]
            return "n/a" if not vals else (f"{min(vals):.3f}" if max(vals) - min(vals) <= tol
                                           else f"{min(vals):.3f}-{max(vals):.3f}")

        dets = list(rows[0]["combined"])
        tie = all(all(same(r["combined"][d], r["combined"][dets[0]]) for d in dets) for r in rows)
        support_only = all(all(same(r["combined"][d], r["support"]) for d in dets) for r in rows)
        alone = "; ".join(f"{d.upper()} alone AUROC {span([r['alone'].get(d) for r in rows])}"
                          for d in dets if any(r["alone"].get(d) is not None for r in rows))
        n = len(rows)
        on_all = "on the one set" if n == 1 else f"on all {n} sets"
        sup = f"support alone AUROC {span([r['support'] for r in rows])}"
        if support_only:
            return (f"The k-NN support decided: {on_all} the combined key's AUROC equals the support "
                    f"indicator's alone (key column 0; {sup}), so {' and '.join(d.upper() for d in dets)} tie"
                    + (f" ({alone})." if alone else "."))
        if tie and len(dets) > 1:
            return (f"The k-NN support and the distance to it decided: {' and '.join(d.upper() for d in dets)} give "
                    f"identical combined AUROCs {on_all} ({sup}" + (f"; {alone})." if alone else ")."))
        differ = [r["set"] for r in rows if not all(same(r["combined"][d], r["support"]) for d in dets)]
        return (f"The detectors decided on {len(differ)} of {n} sets ({', '.join(differ[:3])}"
                f"{', ...' if len(differ) > 3 else ''}): there the combined AUROC differs from the support alone "
                f"({sup}" + (f"; {alone})." if alone else ")."))

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
        collapsed = False
        for c in self.checks:
            twins = [o for o in self.checks if o.set == c.set and (o.auroc, o.low, o.high) == (c.auroc, c.low, c.high)]
            if twins[0] is not c:
                continue  # identical to an earlier row of the same set: shown once
            det = "=".join(o.detector for o in twins)
            collapsed |= len(twins) > 1
            auc = "n/a" if c.auroc is None else f"{c.auroc:.3f} [{c.low:.3f}, {c.high:.3f}]"
            dio = "" if c.iou_change is None else f", IoU change {c.iou_change:+.3f}"
            lines.append(f"  {c.set:28} {det:6} AUROC {auc}  {c.harm}{dio}")
        if collapsed:
            lines.append("  (rows with identical AUROC and interval for several detectors are shown once, 'gmm=ocsvm')")
        if self.decides:
            lines.append(f"  {self.what_decided()}")
        return "\n".join(lines)


@dataclass
class LevelResult:
    """Detector validation at one feature level (``input`` crops or ``prediction`` maps).

    ``ood``: set -> detector -> {"image": metrics, "tile": metrics} (``matseg_nb.qc.evaluate.detection_metrics``
    on typicality, see :class:`ValidationRun`); ``verdicts``: the AUROC-only verdict per set (primary
    detector, image level); ``inside_support_fraction``: per set, the fraction of its crops inside the
    reference k-NN support; ``spearman_typicality_iou``: {"rho", "n_images", "detector"} or None."""

    extractors: list[str] = field(default_factory=list)
    fit: dict = field(default_factory=dict)
    thresholds_tile: dict[str, float] = field(default_factory=dict)
    ood: dict[str, dict[str, dict]] = field(default_factory=dict)
    inside_support_fraction: dict[str, float | None] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    verdict: str = "unknown"
    spearman_typicality_iou: dict | None = None

    def image_metrics(self, set_name: str, detector: str | None) -> tuple[str, dict]:
        """(detector, image-level metrics) of ``set_name``: ``detector`` when it was run, else the first."""
        per_det = self.ood.get(set_name) or {}
        det = detector if detector in per_det else next(iter(per_det), "")
        metrics = per_det.get(det) or {}
        return det, (metrics.get("image", metrics) if isinstance(metrics, dict) else {})


#: what the per-image ``typicality`` of ``scores.csv`` and of the level metrics is
TYPICALITY_WORDS = ("median conformal p-value of the image's crops' typicality keys (inside the reference k-NN "
                    "support, detector score, minus the log nn-ratio) against the calibration crops' keys")


@dataclass
class ValidationRun:
    """What detector validation's ``qc.json`` holds (``matseg_nb.qc.folder`` reads and writes it).

    The answer is :attr:`validation` (its verdict is :attr:`verdict`); :attr:`levels` keep the per-level
    detection metrics, whose AUROC-only verdict is :attr:`auroc_only_verdict`. Per-image typicality
    everywhere is :data:`TYPICALITY_WORDS` (:attr:`typicality`), in [0, 1], higher = more typical."""

    dataset: str | None = None
    run_dir: str | None = None
    reference_split: str = "train"
    heldout_split: str = "test"
    k: int | None = None
    tile_size: int | None = None
    tiles_per_image: int | None = None
    percentile: float | None = None
    readiness_threshold: float = 0.95
    primary_detector: str | None = None
    ood_sets: list[str] = field(default_factory=list)
    levels: dict[str, LevelResult] = field(default_factory=dict)
    validation: ValidationResult | None = None
    what_decided: str = ""
    auroc_only_verdict: str = "unknown"
    verdict: str = "unknown"
    gallery: dict | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    typicality: str = TYPICALITY_WORDS
    #: the calibration crops of typicality and thresholds, e.g. "split:val (4 images)"
    calibration: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["validation"] = None if self.validation is None else self.validation.to_json()
        return d

    @classmethod
    def from_json(cls, data: dict) -> ValidationRun:
        """The record from :meth:`to_json` output (older layouts: ``matseg_nb.qc.folder.parse_validation``)."""
        d = dict(data)
        d["levels"] = {n: LevelResult(**v) for n, v in (d.get("levels") or {}).items()}
        if d.get("validation") is not None:
            d["validation"] = ValidationResult.from_json(d["validation"])
        return cls(**d)


@dataclass
class ScoreRow:
    """One row of ``scores.csv``: one image of one set at one level under one detector; ``typicality`` in
    [0, 1] (:data:`TYPICALITY_WORDS`), ``threshold`` the deployment threshold (OOD sets only), ``flag``
    typicality below it, ``iou`` the image's IoU where its mask is known."""

    level: str
    set: str
    ood: int
    image: str
    detector: str
    typicality: float | None
    threshold: float | None = None
    flag: bool | None = None
    iou: float | None = None
