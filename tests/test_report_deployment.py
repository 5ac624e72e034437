"""The report's Deployment section from a real ``matseg segment`` output in the loop folder."""

from __future__ import annotations

import json

from test_segment_batch import _run, _seg, _tif16

from matseg_nb.loop import LoopLayout
from matseg_nb.report import build_report
from matseg_nb.report.deployment import collect_deployment, collect_deployments


def test_deployment_section_from_segment_output(tmp_path):
    run = _run(tmp_path)
    layout = LoopLayout.from_sweep(run.parent)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    _tif16(imgs / "a.tif", 0)
    _tif16(imgs / "b.tif", 1)
    (imgs / "broken.tif").write_bytes(b"II*\x00garbage")
    assert collect_deployment(layout.segment)["status"] == "not run"
    html, _ = build_report(layout.sweep, tmp_path / "before.html")
    assert "<h2>Deployment</h2>" not in html.read_text()
    _seg(str(run), str(imgs), "--out", str(layout.segment / "nasa-super1"), "--pixel-size", "0.02")
    assert list(collect_deployments(layout.segment)["outputs"]) == ["nasa-super1"]
    facts = collect_deployment(layout.segment / "nasa-super1")
    assert facts["status"] == "ok" and facts["complete"]
    status = {i["name"]: i["status"] for i in facts["images"]}
    assert status["a"] == "segmented" and status["broken"].startswith("not segmented: unreadable")
    rows = {r["quantity"]: r for r in facts["summary"]}
    assert rows["precipitate/eqd_median"]["unit"] == "µm" and rows["precipitate/area_fraction"]["unit"] == "%"
    assert facts["model"]
    html, js = build_report(layout.sweep, tmp_path / "report.html")
    text = html.read_text()
    assert "<h2>Deployment</h2>" in text and "<h3>nasa-super1</h3>" in text and "broken" in text and "µm" in text
    assert json.loads(js.read_text())["sections"]["deployment"]["status"] == "ok"
