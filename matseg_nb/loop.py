"""One loop: the folder layout of a loop's outputs and the one set of named stage settings.

``matseg demo`` (``matseg_nb.pipeline``), the dashboard and the notebooks all build a :class:`LoopLayout`
for their output folder and take their QC / explanation settings from :func:`stage_settings`
(:data:`DEMO_SETTINGS` unless ``$MATSEG_NB_STAGE_SETTINGS`` names another entry of :data:`NAMED_SETTINGS`),
so the three routes produce the same artefacts::

    <root>/data/      <dataset>.json (summary), <dataset>-preview.png
    <root>/sweep/     run folders, sweep.json, summary.json        (matseg_nb.runs.Sweep)
    <root>/compare/   tables, plots, recommendation                 (matseg_nb.compare)
    <root>/qc/        qc.json, scores, ROC, gallery                 (matseg_nb.qc)
    <root>/explain/   heatmap, faithfulness, explain.json           (matseg_nb.explain)
    <root>/report.html, <root>/report.json                          (matseg_nb.report)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from matseg_nb.jsonio import JsonRecord
from matseg_nb.qc.settings import DEMO_QC_SHIFTS, QC_SHIFTS, QCSettings
from matseg_nb.runs import Sweep

__all__ = ["DEMO_QC_SHIFTS", "QC_SHIFTS", "QCSettings", "LoopLayout", "ExplainSettings", "StageSettings",
           "DEMO_SETTINGS", "TINY_SETTINGS", "NAMED_SETTINGS", "stage_settings"]


@dataclass(frozen=True)
class LoopLayout:
    """The folders of one loop under ``root`` (nothing is created until :meth:`make`)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sweep(self) -> Path:
        return self.root / "sweep"

    @property
    def compare(self) -> Path:
        return self.root / "compare"

    @property
    def qc(self) -> Path:
        return self.root / "qc"

    @property
    def explain(self) -> Path:
        return self.root / "explain"

    @property
    def segment(self) -> Path:
        """``matseg segment`` output of the loop's test images (``matseg_nb.segment.SegmentFolder``)."""
        return self.root / "segment"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    def make(self) -> LoopLayout:
        """Create the root folder (stages create their own sub-folder); returns self."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def open_sweep(self) -> Sweep:
        """The typed sweep folder (``matseg_nb.runs.Sweep``); UserError when it is not a sweep."""
        return Sweep.open(self.sweep)

    @classmethod
    def from_sweep(cls, sweep_dir: str | os.PathLike) -> LoopLayout:
        """The layout whose ``sweep`` folder is ``sweep_dir`` (its parent is the root)."""
        return cls(Path(sweep_dir).parent)


@dataclass(frozen=True)
class ExplainSettings(JsonRecord):
    """Arguments of ``matseg_nb.explain.explain_image`` for the loop: occlusion ``kernel``; ``window`` and
    ``stride`` in pixels, or None: chosen on this machine (``matseg_nb.explain.pipeline.choose_grid``) so
    that heatmap + faithfulness test + model-randomisation check fit ``budget_minutes``; centre ``crop`` in pixels, None: the whole image
    at full resolution; A = the ground truth's class boundaries, ``boundary_width`` px wide."""

    kernel: str = "blur"
    window: int | None = None
    stride: int | None = None
    crop: int | None = None
    n_draws: int = 20  # draws per faithfulness baseline (20 is the fewest that can reach p <= 0.05)
    budget_minutes: float = 3.0
    boundary_width: int = 3
    # deletion-curve points of the faithfulness test (fraction of the image's pixels): two instead of the
    # API's four halve its cost, (1 + 3 n_draws + 1 + 39 ring shuffles) x 2 = 202 whole-image passes
    fractions: tuple[float, ...] = (0.05, 0.2)

    def explain_kwargs(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "window": self.window, "stride": self.stride, "n_draws": self.n_draws,
                "budget_minutes": self.budget_minutes, "fractions": self.fractions}


@dataclass(frozen=True)
class StageSettings(JsonRecord):
    """The named settings of every analysis stage of the loop (``to_dict``/``from_dict``: JSON round trip)."""

    qc: QCSettings = field(default_factory=QCSettings)
    explain: ExplainSettings = field(default_factory=ExplainSettings)

    def with_qc(self, **changes: Any) -> StageSettings:
        return replace(self, qc=replace(self.qc, **changes))

    def with_explain(self, **changes: Any) -> StageSettings:
        return replace(self, explain=replace(self.explain, **changes))


#: the settings ``matseg demo``, the dashboard and the notebooks use
DEMO_SETTINGS = StageSettings()

#: a seconds-scale variant for tests and smoke runs: one shift, texture features on 64 px tiles, a 64 px
#: explanation crop with a coarse occlusion grid and 5 faithfulness draws (too few to call a map faithful)
TINY_SETTINGS = StageSettings(
    qc=QCSettings(shifts=("noise:strong",), level="input", extractors=("texture",), tile_size=64, tiles_per_image=4),
    explain=ExplainSettings(window=16, stride=16, crop=64, n_draws=5),
)

#: the named stage settings; ``MATSEG_NB_STAGE_SETTINGS`` picks one for every route of the loop
NAMED_SETTINGS: dict[str, StageSettings] = {"demo": DEMO_SETTINGS, "tiny": TINY_SETTINGS}

SETTINGS_ENV = "MATSEG_NB_STAGE_SETTINGS"


def stage_settings(name: str | None = None) -> StageSettings:
    """The named stage settings ``name``; None reads ``$MATSEG_NB_STAGE_SETTINGS`` (default ``"demo"``).

    The demo, the dashboard and the notebooks all call this, so one environment variable switches every
    route of the loop at once (the notebook-chain test runs them all on ``"tiny"``)."""
    from matseg_nb.errors import UserError

    chosen = name if name is not None else (os.environ.get(SETTINGS_ENV) or "demo")
    if chosen not in NAMED_SETTINGS:
        source = "stage settings" if name is not None else f"${SETTINGS_ENV}"
        raise UserError(f"{source}: expected one of {', '.join(sorted(NAMED_SETTINGS))}, found {chosen!r}")
    return NAMED_SETTINGS[chosen]
