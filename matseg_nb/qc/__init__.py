"""Quality control of a run's inputs: detector validation (``qc.run``), screening new images (``qc.screening``).

``from matseg_nb.qc import RunScreener`` is the public screening entry (imported on first use, so importing a
light submodule such as ``qc.results`` does not load the models)."""

from __future__ import annotations

__all__ = ["RunScreener"]


def __getattr__(name: str):
    if name == "RunScreener":
        from matseg_nb.qc.screening import RunScreener

        return RunScreener
    raise AttributeError(f"module 'matseg_nb.qc' has no attribute {name!r}")
