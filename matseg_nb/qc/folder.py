"""The QC output folder: the one module that knows ``qc.json`` and ``scores.csv`` (as ``matseg_nb.runs``
knows run folders). Writes are atomic; reads return the typed records of ``matseg_nb.qc.results``.

Layouts::

    <qc>/qc.json, scores.csv, roc.png, gallery.png   detector validation (ValidationRun, ScoreRow)
    <qc>/screening/qc.json                            the loop's screening ({"mode": "screening", ...})
    <qc>/<dataset>/...                                the loop: one such folder per dataset's model

Older layouts are read here and nowhere else (:func:`parse_validation`): a ``qc.json`` without the typed
``validation`` (AUROC-only QC), a verdict stored as ``decision`` / ``status`` or as an object, a folder
whose only JSON file has another name, and ``scores.csv`` without the ``iou`` column.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

from matseg_nb.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from matseg_nb.jsonio import finite_float, jsonable, read_json
from matseg_nb.qc.results import LevelResult, ScoreRow, ScreeningResult, ValidationResult, ValidationRun

QC_FILE = "qc.json"
SCORES_FILE = "scores.csv"
SCREENING_DIR = "screening"
ROC_FILE = "roc.png"
GALLERY_FILE = "gallery.png"
SCORE_FIELDS = [f.name for f in dataclasses.fields(ScoreRow)]
#: ``mode`` of a screening ``qc.json`` (``matseg qc --new`` and the loop's ``screening/``)
SCREENING_MODE = "screening"


@dataclass(frozen=True)
class QCFolder:
    """One QC output folder at ``path`` (nothing is created until a write)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # -- detector validation -------------------------------------------------------------------------
    def write_validation(self, run: ValidationRun) -> Path:
        return atomic_write_json(self.path / QC_FILE, jsonable(run.to_json()))

    def validation(self) -> ValidationRun | None:
        """The validation record of ``qc.json`` (older layouts upgraded), None when there is none."""
        data = read_json(self.path / QC_FILE)
        if data is None and not (self.path / QC_FILE).exists():  # oldest layout: the folder's one JSON file
            others = sorted(p for p in self.path.glob("*.json"))
            data = read_json(others[0]) if others else None
        return parse_validation(data) if isinstance(data, dict) else None

    def write_scores(self, rows: list[ScoreRow]) -> Path:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=SCORE_FIELDS)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in rows)
        return atomic_write_text(self.path / SCORES_FILE, buf.getvalue())

    def scores(self) -> list[ScoreRow]:
        """The rows of ``scores.csv`` ([] when absent or unreadable)."""
        try:
            with open(self.path / SCORES_FILE, newline="", encoding="utf-8") as fh:
                return [_score_row(r) for r in csv.DictReader(fh)]
        except (OSError, csv.Error, ValueError):
            return []

    def write_png(self, name: str, data: bytes) -> Path:
        return atomic_write_bytes(self.path / name, data)

    # -- screening -----------------------------------------------------------------------------------
    def write_screening(self, results: list[ScreeningResult], **header) -> Path:
        """``qc.json`` of a screening run: ``header`` (run_dir, dataset, alpha, splits, detector, ...) and
        the batches' :class:`ScreeningResult` records."""
        return atomic_write_json(self.path / QC_FILE, jsonable(
            {"mode": SCREENING_MODE, **header, "screening": [r.to_json() for r in results]}))

    def screening_header(self) -> dict:
        """The screening ``qc.json`` without its results ({} when absent)."""
        data = read_json(self.path / QC_FILE)
        return {k: v for k, v in data.items() if k != "screening"} if isinstance(data, dict) else {}

    def screening(self) -> list[ScreeningResult]:
        """The screened batches of this folder's screening ``qc.json``, else of ``screening/qc.json`` (the
        loop's layout); [] when there are none or they cannot be read."""
        for path in (self.path / QC_FILE, self.path / SCREENING_DIR / QC_FILE):
            data = read_json(path)
            if isinstance(data, dict) and isinstance(data.get("screening"), list):
                try:
                    return [ScreeningResult.from_json(r) for r in data["screening"]]
                except (KeyError, TypeError, ValueError):
                    return []
        return []

    @property
    def screening_folder(self) -> QCFolder:
        return QCFolder(self.path / SCREENING_DIR)

    # -- the loop's layout ---------------------------------------------------------------------------
    def has_results(self) -> bool:
        return (self.path / QC_FILE).is_file()

    def of_dataset(self, name: str) -> QCFolder:
        """The folder holding the QC of dataset ``name``: ``<qc>/<name>/`` in the loop's layout, else this
        folder (older layout: one QC for the sweep's best model, whose ``dataset`` says which)."""
        sub = QCFolder(self.path / name)
        return sub if sub.has_results() else self

    def per_dataset(self) -> dict[str, QCFolder]:
        """``{dataset: folder}`` of the loop's ``<qc>/<dataset>/`` layout ({} when this folder holds one QC)."""
        if self.has_results() or not self.path.is_dir():
            return {}
        return {p.parent.name: QCFolder(p.parent) for p in sorted(self.path.glob(f"*/{QC_FILE}"))
                if p.parent.name != SCREENING_DIR}


def parse_validation(data: dict) -> ValidationRun | None:
    """A :class:`ValidationRun` from a validation ``qc.json`` of any layout this package wrote (None for a
    screening ``qc.json``): unknown keys are dropped, a missing ``validation`` stays None (AUROC-only QC),
    the verdict comes from ``verdict``, ``decision`` or ``status`` (an object's ``label`` / ``verdict``)."""
    if data.get("mode") == SCREENING_MODE:
        return None
    names = {f.name for f in dataclasses.fields(ValidationRun)}
    d = {k: v for k, v in data.items() if k in names}
    verdict = next((data[k] for k in ("verdict", "decision", "status") if data.get(k) is not None), "unknown")
    if isinstance(verdict, dict):
        verdict = verdict.get("label") or verdict.get("verdict") or "unknown"
    d["verdict"] = str(verdict)
    level_names = {f.name for f in dataclasses.fields(LevelResult)}
    d["levels"] = {n: LevelResult(**{k: v for k, v in lv.items() if k in level_names})
                   for n, lv in (data.get("levels") or {}).items() if isinstance(lv, dict)}
    d["readiness_threshold"] = finite_float(data.get("readiness_threshold")) or 0.95
    try:
        d["validation"] = ValidationResult.from_json(data["validation"]) if isinstance(
            data.get("validation"), dict) else None
    except (KeyError, TypeError, ValueError):
        d["validation"] = None
    if not isinstance(d.get("ood_sets"), list):
        d["ood_sets"] = list(d.get("ood_sets") or [])
    return ValidationRun(**d)


def _score_row(r: dict) -> ScoreRow:
    def flag(v):
        text = str(v or "").strip().lower()
        return None if not text else text in ("true", "1")

    return ScoreRow(r.get("level") or "", r.get("set") or "", int(float(r.get("ood") or 0)), r.get("image") or "",
                    r.get("detector") or "", finite_float(r.get("typicality") or None),
                    finite_float(r.get("threshold") or None), flag(r.get("flag")), finite_float(r.get("iou") or None))
