"""Deployment quality control (docs/qc.md): screening new images and validating the detector.

Public entries, imported on first use so that importing a light submodule (``qc.results``, ``qc.settings``)
does not load the models: :class:`RunScreener` (screen new images against a run), :func:`run_qc` (validate
the detector, with a :class:`QCSettings`), :func:`qc_dataset` (both questions for one dataset's model, as
the loop runs them) and :class:`QCFolder` (read and write a QC output folder)."""

from __future__ import annotations

from importlib import import_module

#: public name -> the module that defines it
_ENTRIES = {"RunScreener": "matseg_nb.qc.screening", "run_qc": "matseg_nb.qc.run",
            "QCSettings": "matseg_nb.qc.settings", "qc_dataset": "matseg_nb.qc.dataset_qc",
            "QCFolder": "matseg_nb.qc.folder"}

__all__ = sorted(_ENTRIES)


def __getattr__(name: str):
    if name in _ENTRIES:
        return getattr(import_module(_ENTRIES[name]), name)
    raise AttributeError(f"module 'matseg_nb.qc' has no attribute {name!r}")
