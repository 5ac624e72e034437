"""The dashboard's Segment tab without a browser: uploads checked, the action is the demo's segment stage (the
same masks as ``matseg segment``), the view shows the table with flags, the overlays and a CSV download."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from PIL import Image

from matseg_nb.dashboard.uploads import UploadedFile


def _png_bytes(seed: int, size: int = 64) -> bytes:
    import io

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def segment_workspace(ws: Path) -> Path:
    """A dashboard workspace whose starter loop (``runs/starter``) holds one complete tiny nasa-super1 run
    (``profile.json`` recorded); returns the loop folder."""
    from test_segment_batch import _run

    from matseg_nb.dashboard.actions import DashboardState

    st = DashboardState(ws)
    loop = st.workspace / "runs" / "starter"
    _run(loop.parent / "starter-tmp")  # <loop>/../starter-tmp/loop/sweep/nasa-super1__tiny
    (loop / "sweep").mkdir(parents=True)
    (loop.parent / "starter-tmp" / "loop" / "sweep" / "nasa-super1__tiny").rename(loop / "sweep" / "nasa-super1__tiny")
    (loop / "profile.json").write_text((st.workspace / "profiles" / "starter.json").read_text())
    return loop


def test_upload_checks_names_and_adds_a_folder(tmp_path):
    from matseg_nb.dashboard.actions import DashboardState, add_segment_images, segment_sources

    st = DashboardState(tmp_path / "ws")
    bad = add_segment_images(st, "scans", [UploadedFile("a.png", _png_bytes(0)), UploadedFile("notes.txt", b"x"),
                                           UploadedFile("empty.tif", b"")])
    assert not bad.ok and not (st.workspace / "images" / "scans").exists()
    assert any("notes.txt" in p and "expected an image" in p for p in bad.problems)
    assert any("empty.tif" in p and "0-byte" in p for p in bad.problems)
    assert not add_segment_images(st, "../up", [UploadedFile("a.png", _png_bytes(0))]).ok
    ok = add_segment_images(st, "scans", [UploadedFile("a.png", _png_bytes(0)), UploadedFile("b.png", _png_bytes(1))])
    assert ok.ok and sorted(p.name for p in ok.folder.iterdir()) == ["a.png", "b.png"]
    assert not add_segment_images(st, "scans", [UploadedFile("c.png", _png_bytes(2))]).ok  # never overwritten
    assert segment_sources(st) == [("the test images of each dataset", ""), ("images/scans (2 file(s))", "images/scans")]


def test_segment_action_is_the_cli_route_and_the_tab_shows_flags_overlays_csv(tmp_path):
    from matseg_nb.cli import main
    from matseg_nb.dashboard.actions import ANALYSES, DashboardState, add_segment_images, segment_results
    from matseg_nb.segment import SegmentFolder
    from matseg_nb.widgets.dashboard_app import DashboardApp

    loop = segment_workspace(tmp_path / "ws")
    st = DashboardState(tmp_path / "ws")
    up = add_segment_images(st, "scans", [UploadedFile("a.png", _png_bytes(0)), UploadedFile("b.png", _png_bytes(1))])
    out = ANALYSES["segment"](st, loop, images=up.folder)
    assert out == loop / "segment"
    folder = SegmentFolder.open(out / "nasa-super1")
    # the same masks and flags as ``matseg segment`` with the same model on the same images
    assert main(["segment", str(loop / "sweep" / "nasa-super1__tiny"), str(up.folder), "--out",
                 str(tmp_path / "cli")]) == 0
    cli = {r.name: r for r in SegmentFolder(tmp_path / "cli").images()}
    for rec in folder.images():
        assert np.array_equal(folder.mask_array(rec), SegmentFolder(tmp_path / "cli").mask_array(cli[rec.name]))
        assert rec.qc_p_value == cli[rec.name].qc_p_value and rec.qc_flag == cli[rec.name].qc_flag
    (view,) = segment_results(out)
    assert view.dataset == "nasa-super1" and [r["image"] for r in view.rows] == ["a", "b"]
    assert {r["flag"] for r in view.rows} <= {"ok", "flagged"} and all(r["QC p-value"] is not None for r in view.rows)
    assert "matrix area %" in view.columns and "precipitate eq. diameter median [px]" in view.columns
    assert len(view.overlays) == 2 and view.csv.is_file()
    assert any(line.startswith("QC:") for line in view.lines) and any("model error" in x for x in view.lines)

    app = DashboardApp(tmp_path / "ws")
    assert app.tabs.get_title(len(app.views) - 1) == "Segment"
    app.run.current_run = loop
    (loop / "segment.state.json").write_text(json.dumps({"state": "done", "pid": 1, "out": str(out), "elapsed_s": 4}))
    app.segment.follow()
    app.run.current_run = None  # stop pollers
    html = app.segment.output.children[0].value
    assert "matseg-segment-table" in html and "nasa-super1: 2 image(s)" in html
    link = html.split("href='data:text/csv;base64,")[1].split("'")[0]
    assert base64.b64decode(link).decode() == view.csv.read_text()
    grid = app.segment.output.children[1]
    assert len(grid.children) == 2 and all(t.children[1].format == "png" for t in grid.children)
    assert app.segment.paths(loop) == {}  # default: each dataset's test images
    app.segment.refresh_sources(pick="images/scans")
    assert app.segment.paths(loop) == {"images": "images/scans"}


def test_segment_without_a_complete_job_says_so(tmp_path):
    import pytest

    from matseg_nb.dashboard.actions import DashboardState, segment_in_loop
    from matseg_nb.errors import UserError

    st = DashboardState(tmp_path / "ws")
    run = st.workspace / "runs" / "starter"
    (run / "sweep").mkdir(parents=True)
    (run / "profile.json").write_text((st.workspace / "profiles" / "starter.json").read_text())
    with pytest.raises(UserError, match="expected a complete job to segment with"):
        segment_in_loop(st, run)
