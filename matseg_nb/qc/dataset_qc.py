"""Both QC questions for one dataset's selected model, with one model load and one feature pass.

:func:`qc_dataset` (what the demo's QC stage runs per dataset) answers

* screening: the held-out images, one shifted copy of them and the other datasets' images, each as a
  batch of new images (per-image conformal p-values, flags, batch verdict);
* validation: the detector's AUROC with a 95% interval on the imaging shifts and the other datasets,
  the shifts' harm to the model and the readiness verdict.

Every image's features are extracted once (a :class:`matseg_nb.qc.session.QCSession` cache keyed by the
image's content) and reused by screening and validation. Output folder::

    <out>/qc.json, scores.csv, roc.png, gallery.png   validation (run_qc)
    <out>/screening/qc.json                            screening (screen_run)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from matseg_nb.qc.results import ScreeningResult, ValidationResult


@dataclass
class DatasetQC:
    """The QC answers for one dataset's model: screening batches, detector validation, timings (s)."""

    dataset: str
    run_dir: str
    screening: list[ScreeningResult]
    validation: ValidationResult
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "run_dir": self.run_dir, "seconds": self.seconds,
                "screening": [r.to_json() for r in self.screening], "validation": self.validation.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> DatasetQC:
        return cls(data["dataset"], data["run_dir"], [ScreeningResult.from_json(r) for r in data["screening"]],
                   ValidationResult.from_json(data["validation"]), dict(data.get("seconds") or {}))

    @classmethod
    def load(cls, folder: str | Path) -> DatasetQC:
        """Read a :func:`qc_dataset` output folder (``qc.json`` + ``screening/qc.json``)."""
        from matseg_nb.errors import UserError
        from matseg_nb.qc.folder import QCFolder

        qc = QCFolder(folder)
        run = qc.validation()
        if run is None or run.validation is None or not qc.screening_folder.has_results():
            raise UserError(f"{folder}: expected qc.json (with a detector validation) and screening/qc.json of a "
                            "QC run, found neither or an unreadable one")
        return cls(str(run.dataset), str(run.run_dir), qc.screening_folder.screening(), run.validation,
                   dict(run.seconds))

    def summary(self) -> str:
        """Screening verdicts (one line per batch), then the validation table and verdict, in words."""
        lines = [f"QC of {self.dataset} ({Path(self.run_dir).name})", "  screening new images:"]
        for r in self.screening:
            lines += [f"    {r.headline()}", *(f"      note: {n}" for n in r.notes)]
        lines += ["  " + ln for ln in self.validation.summary().splitlines()]
        return "\n".join(lines)


def qc_dataset(run_dir: str | Path, other_datasets: list[str], out_dir: str | Path, settings=None,
               log=None) -> DatasetQC:
    """Screening + detector validation of one run (see module docstring).

    ``other_datasets``: dataset refs whose ``settings.other_split`` images are screened and used as OOD
    sets; ``settings``: a :class:`matseg_nb.qc.settings.QCSettings` (default ``DEMO_SETTINGS.qc``)."""
    from matseg_nb.qc.folder import QCFolder
    from matseg_nb.qc.run import run_qc
    from matseg_nb.qc.screening import screen_run
    from matseg_nb.qc.session import QCSession
    from matseg_nb.qc.sources import ImageSet, resolve_source, shifted_set

    if settings is None:
        from matseg_nb.loop import DEMO_SETTINGS

        settings = DEMO_SETTINGS.qc
    out = Path(out_dir)
    t0 = time.perf_counter()
    session = QCSession.open(run_dir)
    others = [f"{o}:{settings.other_split}" if settings.other_split else o for o in other_datasets]
    other_sets = [resolve_source(o, session.ds) for o in others]
    seconds = {"load": time.perf_counter() - t0}
    t = time.perf_counter()
    val = run_qc(run_dir, settings, out_dir=out, session=session, extra_ood=other_sets)
    seconds["validation"] = time.perf_counter() - t
    t = time.perf_counter()
    heldout = session.items(settings.heldout_split)
    batches = [(f"split:{settings.heldout_split}", heldout)]
    if settings.screening_shift:
        sh = shifted_set(ImageSet(f"split:{settings.heldout_split}", heldout, True), settings.screening_shift, 0)
        batches.append((f"split:{settings.heldout_split}@{settings.screening_shift}", sh.items))
    batches += [(o.name, o.items) for o in other_sets]
    detector = settings.screening_detector
    from matseg_nb.qc.cross_screening import cv_fold_runs, screen_loop_batches

    if folds := cv_fold_runs(run_dir):  # a k-fold CV run: every fold's held-out images calibrate (docs/qc.md)
        screened = screen_loop_batches(folds, batches, out / "screening", settings, detector)
    else:
        screened = screen_run(run_dir, [], out / "screening", reference_split=settings.reference_split,
                              extractors=tuple(settings.extractors), detector=detector, tile_size=settings.tile_size,
                              tiles_per_image=settings.tiles_per_image, session=session, sources=batches)
    seconds["screening"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    val.run.seconds = seconds
    QCFolder(out).write_validation(val.run)
    res = DatasetQC(str(session.meta.get("dataset")), str(run_dir), screened, val.run.validation, seconds)
    if log is not None:
        log(res.summary())
    return res


def qc_each_dataset(sweep_dir: str | Path, datasets: dict[str, str], out_root: str | Path, settings=None):
    """QC of every dataset of a sweep, as the demo and the dashboard run it: for each ``name -> ref`` of
    ``datasets``, :func:`qc_dataset` on its validation-selected run (``Sweep.best_run`` by name, else by
    ref) with the other datasets' refs as new images and OOD sets, into ``out_root/<name>/``.

    Yields ``(name, run folder or None, DatasetQC or None)`` per dataset (None: no complete run)."""
    from matseg_nb.runs import Sweep

    sweep = Sweep(Path(sweep_dir))
    for name, ref in datasets.items():
        run = sweep.best_run(name) or sweep.best_run(ref)
        if run is None:
            yield name, None, None
            continue
        others = [r for n, r in datasets.items() if n != name]
        yield name, run.path, qc_dataset(run.path, others, Path(out_root) / name, settings)


def result_frames(res: DatasetQC) -> dict:
    """pandas tables of one :class:`DatasetQC`: {"screening": per image, "validation": per check}."""
    import pandas as pd

    return {"screening": pd.concat([r.to_frame() for r in res.screening], ignore_index=True),
            "validation": res.validation.to_frame()}


__all__ = ["DatasetQC", "qc_dataset", "qc_each_dataset", "result_frames"]
