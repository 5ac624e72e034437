"""stage_segment: each dataset's validation-selected model segments its test images into LoopLayout.segment."""

from __future__ import annotations

from pathlib import Path

from test_segment_batch import _run

from matseg_nb.pipeline import loop_context, stage_segment
from matseg_nb.segment import SegmentFolder

REPO = Path(__file__).resolve().parents[1]


def test_stage_segment_on_test_images(tmp_path):
    lines: list[str] = []
    ctx = loop_context(REPO / "profiles" / "demo-cpu.json", tmp_path / "loop", log=lines.append)
    _run(tmp_path)  # a tiny complete nasa-super1 run in <tmp>/loop/sweep; no nasa-ebc1 run
    stage_segment(ctx)
    assert list(ctx.results["segment"]) == ["nasa-super1"]
    folder = SegmentFolder.open(ctx.layout.segment / "nasa-super1")
    assert folder.is_complete() and folder.images() and all(r.segmented for r in folder.images())
    assert any("nasa-ebc1: no complete run" in line for line in lines)
