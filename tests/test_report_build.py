"""The HTML/JSON report: self-contained, every section present, tolerant to missing analyses."""

from __future__ import annotations

import json
import re

import pytest
from _report_helpers import JOB_IDS, make_fake_loop

from matseg_nb.errors import UserError
from matseg_nb.report import SECTIONS, DatasetAnswer, build_report

EXTERNAL_REF = re.compile(r"""(?:src|href|action|data)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
CSS_URL = re.compile(r"url\(\s*['\"]?\s*(?:https?:)?//", re.I)


def test_report_is_self_contained_with_every_section(tmp_path):
    sweep = make_fake_loop(tmp_path)
    html_path, json_path = build_report(sweep, tmp_path / "out" / "report.html")
    html = html_path.read_text()
    assert json_path == html_path.with_name("report.json")
    for key, heading in SECTIONS:
        assert f'id="{key}"' in html and f"<h2>{heading}</h2>" in html
    assert not EXTERNAL_REF.search(html), "external src/href found"
    assert not CSS_URL.search(html)
    assert "<link" not in html and "<script" not in html.replace("&lt;script", "")
    # panel, compare heatmap, learning curves, QC ROC, explanation; in the details: annotation, heatmap.png,
    # data preview
    assert html.count('src="data:image/png;base64,') == 8
    assert "img_007.tif" in html
    assert "ValueError: boom &lt;script&gt;" in html  # escaped, not injected
    assert "not run" not in html
    assert "@media print" in html


def test_first_section_leads_with_the_answer(tmp_path):
    sweep = make_fake_loop(tmp_path)
    html_path, _ = build_report(sweep, tmp_path / "report.html")
    html = html_path.read_text()
    answer = html.split('id="answer"')[1].split("</section>")[0]
    assert "tu-test_resnet+Unet" in answer and "IoU 0.812 [0.791, 0.831]" in answer
    assert "better than the runner-up" in answer and "tu-test_resnet+FPN" in answer
    assert "Not ready: QC does not reliably flag blur:mild (image AUROC 0.62 &lt; 0.95)" in answer
    assert "Faithful: deleting the top 10 % of pixels" in answer
    assert "missing:" not in answer
    # the details are collapsed at the end
    assert html.index('id="details"') > html.index('id="explain"')
    assert "<details>" in html.split('id="details"')[1]
    assert "0.8123456" not in html  # 2-3 significant digits everywhere


def test_tie_gives_insufficient_evidence(tmp_path):
    sweep = make_fake_loop(tmp_path)
    best = tmp_path / "compare" / "best_table.csv"
    best.write_text(best.read_text().replace("0.01,significant", "0.62,not significant"))
    _, json_path = build_report(sweep, tmp_path / "report.html")
    (answer,) = json.loads(json_path.read_text())["answers"]
    assert answer["evidence"].startswith("insufficient evidence")
    assert DatasetAnswer.from_dict(answer).summary().count("insufficient evidence") == 1


def test_report_json_holds_the_same_facts(tmp_path):
    sweep = make_fake_loop(tmp_path)
    _, json_path = build_report(sweep, tmp_path / "report.html")
    facts = json.loads(json_path.read_text())
    s = facts["sections"]
    assert [j["job_id"] for j in s["environment"]["jobs"]] == list(JOB_IDS)
    assert [j["status"] for j in s["environment"]["jobs"]] == ["complete", "failed"]
    assert s["environment"]["jobs"][0]["iou"] == pytest.approx(0.8123456)
    assert s["qc"]["verdict"] == "not ready"
    assert s["recommendation"]["recommendation"]["decoder"] == "Unet"
    assert s["profile"]["profile"]["name"] == "demo-tiny"
    assert s["compare"]["tables"][0]["rows"][0][4] == "0.812"
    assert s["explain"]["figures"][0]["path"] == "explain/explanation.png"
    assert "abs" not in json.dumps(s["explain"]["figures"])
    assert s["environment"]["versions"]["matseg-nb"] != "not installed"
    assert [d["name"] for d in s["data"]["datasets"]] == ["nasa-super1"]
    assert facts["answers"][0]["recommended"] == "tu-test_resnet+Unet"


def test_corrupted_metrics_is_named_and_the_rest_renders(tmp_path):
    sweep = make_fake_loop(tmp_path)
    (sweep / JOB_IDS[0] / "metrics.json").write_text("{truncated")
    html_path, json_path = build_report(sweep, tmp_path / "report.html")
    jobs = json.loads(json_path.read_text())["sections"]["environment"]["jobs"]
    assert jobs[0]["status"] == "failed" and "metrics.json: expected a JSON object" in jobs[0]["error"]
    html = html_path.read_text()
    assert "metrics.json: expected a JSON object" in html and 'id="answer"' in html


def test_not_a_sweep_is_a_one_line_error(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"x")
    with pytest.raises(UserError) as err:
        build_report(tmp_path / "photos", tmp_path / "r.html")
    assert "expected a sweep folder" in str(err.value) and "\n" not in str(err.value)


def test_missing_analyses_say_not_run(tmp_path):
    sweep = make_fake_loop(tmp_path, with_qc=False, with_explain=False, with_compare=False)
    html_path, json_path = build_report(sweep, tmp_path / "r.html")
    facts = json.loads(json_path.read_text())
    assert facts["sections"]["qc"] == {"status": "not run"}
    assert facts["sections"]["explain"] == {"status": "not run"}
    html = html_path.read_text()
    qc_part = html.split('id="qc"')[1].split("</section>")[0]
    assert "not run" in qc_part
    answer = html.split('id="answer"')[1].split("</section>")[0]
    assert "missing: comparison (compare/best_table.csv)" in answer and "QC (qc/qc.json)" in answer
    assert "explanation (explain/explain.json)" in answer and "QC did not run for this dataset." in answer


def test_explicit_folders_override_siblings(tmp_path):
    sweep = make_fake_loop(tmp_path / "a", with_qc=False)
    make_fake_loop(tmp_path / "b")
    _, json_path = build_report(sweep, tmp_path / "r.html", qc_dir=tmp_path / "b" / "qc")
    assert json.loads(json_path.read_text())["sections"]["qc"]["verdict"] == "not ready"
    with pytest.raises(UserError, match="--qc"):
        build_report(sweep, tmp_path / "r.html", qc_dir=tmp_path / "nope")


def test_missing_sweep_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="sweep folder"):
        build_report(tmp_path / "absent", tmp_path / "r.html")


def test_cli_report(tmp_path, capsys):
    import argparse

    from matseg_nb.commands import report as cmd
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    sweep = make_fake_loop(tmp_path)
    args = parser.parse_args(["report", str(sweep), "--out", str(tmp_path / "x.html")])
    assert args.func(args) == 0
    assert (tmp_path / "x.html").exists() and (tmp_path / "report.json").exists()
    assert str(tmp_path / "x.html") in capsys.readouterr().out


def test_provenance_from_the_manifest_and_unknown_dataset(tmp_path):
    sweep = make_fake_loop(tmp_path)
    meta = json.loads((sweep / "sweep.json").read_text())
    bad = "no-such-dataset__tu-test_resnet__Unet__s0__deadbeef"
    (sweep / bad).mkdir()
    (sweep / bad / "job.json").write_text(json.dumps({"dataset": "no-such-dataset"}))
    (sweep / "sweep.json").write_text(json.dumps(meta))
    html_path, json_path = build_report(sweep, tmp_path / "r.html")
    datasets = {d["name"]: d for d in json.loads(json_path.read_text())["sections"]["data"]["datasets"]}
    assert datasets["nasa-super1"]["licence"] == "MIT"
    assert datasets["nasa-super1"]["samples"] == {"train": 10, "val": 4, "test": 4}
    assert datasets["no-such-dataset"]["error"]
    data_part = html_path.read_text().split("<h3>Data provenance and licences</h3>")[1].split("<h3>Profile</h3>")[0]
    assert "MIT" in data_part and "Stuckner" in data_part and "manifest not readable" in data_part


def test_qc_signals_and_flags_from_run_qc_layout(tmp_path):
    """qc.json as matseg_nb.qc.run_qc writes it: verdict on top, metrics under levels, flags in scores.csv."""
    sweep = make_fake_loop(tmp_path, with_qc=False)
    qc = tmp_path / "qc"
    qc.mkdir()
    image_metrics = {"auroc": 0.97, "f1": 0.9, "precision": 0.85, "threshold": -3.2}
    (qc / "qc.json").write_text(json.dumps({
        "verdict": "not ready", "primary_detector": "gmm", "readiness_threshold": 0.95,
        "ood_sets": ["noise:strong"],
        "levels": {"input": {"ood": {"noise:strong": {"gmm": {"image": image_metrics},
                                                      "kde": {"image": {"auroc": 0.5}}}},
                             "verdicts": {"noise:strong": "ready"}, "verdict": "ready"}},
    }))
    (qc / "scores.csv").write_text(
        "level,set,ood,image,detector,typicality,threshold,flag,iou\n"
        "input,noise:strong,1,a.tif,gmm,-9.0,-3.2,True,\n"
        "input,noise:strong,1,a.tif,kde,-9.0,-3.2,True,\n"
        "input,test,0,b.tif,gmm,1.0,,,0.8\n")
    html_path, json_path = build_report(sweep, tmp_path / "r.html")
    s = json.loads(json_path.read_text())["sections"]["qc"]
    assert s["verdict"] == "not ready"
    assert s["signals"] == [{"level": "input", "OOD set": "noise:strong", "detector": "gmm", "auroc": "0.97",
                             "f1": "0.9", "precision": "0.85", "verdict": "ready"}]
    assert [f["image"] for f in s["flagged"]] == ["a.tif"]
    part = html_path.read_text().split('id="qc"')[1].split("</section>")[0]
    assert 'class="badge not-ready"' in part and "<td>noise:strong</td>" in part and "a.tif" in part
