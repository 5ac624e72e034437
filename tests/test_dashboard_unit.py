"""Dashboard without a browser: workspace confinement, the app's widgets and the sweep launcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from matseg_nb.errors import UserError  # noqa: E402
from matseg_nb.report.workspace import is_in_workspace, resolve_in_workspace  # noqa: E402


def test_resolve_in_workspace_accepts_inside_paths(tmp_path):
    ws = tmp_path / "ws"
    (ws / "a").mkdir(parents=True)
    assert resolve_in_workspace(ws, "a/b.json") == (ws / "a" / "b.json").resolve()
    assert resolve_in_workspace(ws, "a/../c.json") == (ws / "c.json").resolve()
    assert resolve_in_workspace(ws, str(ws / "a")) == (ws / "a").resolve()
    assert resolve_in_workspace(ws, ".") == ws.resolve()


@pytest.mark.parametrize("bad", ["../x.json", "a/../../x.json", "/etc/passwd", "~/x.json", "", "a\x00b"])
def test_resolve_in_workspace_refuses_escapes(tmp_path, bad):
    ws = tmp_path / "ws"
    (ws / "a").mkdir(parents=True)
    with pytest.raises(UserError) as err:
        resolve_in_workspace(ws, bad)
    assert "expected a path inside the workspace" in err.value.problems[0]
    assert not is_in_workspace(ws, bad)


def test_resolve_in_workspace_refuses_symlinks_leading_outside(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws / "link").symlink_to(outside)
    (ws / "filelink.json").symlink_to(outside / "f.json")
    (ws / "inner").mkdir()
    (ws / "ok").symlink_to(ws / "inner")
    for bad in ("link", "link/x.json", "filelink.json"):
        with pytest.raises(UserError, match="outside"):
            resolve_in_workspace(ws, bad)
    assert resolve_in_workspace(ws, "ok/x.json") == (ws / "inner" / "x.json").resolve()


def test_sibling_prefix_is_not_inside(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws2").mkdir()
    assert not is_in_workspace(tmp_path / "ws", str(tmp_path / "ws2" / "x"))


def test_app_builds_tabs_and_seeds_the_starter_profile(tmp_path):
    from matseg_nb.widgets.dashboard_app import TABS, DashboardApp

    app = DashboardApp(tmp_path / "ws")
    assert [app.tabs.get_title(i) for i in range(len(TABS))] == list(TABS)
    assert app.configure.picker.options == ("profiles/starter.json",)
    assert app.configure.editor is not None and app.configure.editor.model.valid
    assert app.state.profile_path == (tmp_path / "ws" / "profiles" / "starter.json").resolve()
    assert "profiles/starter.json" in app.run.profile_label.value


def test_configure_refuses_a_path_outside_the_workspace_visibly(tmp_path):
    from matseg_nb.widgets.dashboard_app import DashboardApp

    (tmp_path / "secret.json").write_text("{}")
    app = DashboardApp(tmp_path / "ws")
    before = app.configure.editor
    assert not app.configure.load("../secret.json")
    assert "refused" in app.configure.message.value and "outside" in app.configure.message.value
    assert app.configure.editor is before  # nothing loaded
    assert not app.configure.load(str(tmp_path / "secret.json"))


def test_editor_save_outside_is_refused_in_the_dashboard(tmp_path):
    from matseg_nb.widgets.dashboard_app import DashboardApp

    app = DashboardApp(tmp_path / "ws")
    editor = app.configure.editor
    editor.save_path.value = "../../evil.json"
    assert editor.save() is None
    assert "outside" in editor.status.value
    editor.name.value = "renamed"
    editor.save_path.value = "profiles/renamed.json"
    assert editor.save() == (tmp_path / "ws" / "profiles" / "renamed.json").resolve()
    assert "profiles/renamed.json" in app.configure.picker.options
    assert json.loads((tmp_path / "ws" / "profiles" / "renamed.json").read_text())["name"] == "renamed"


def test_start_sweep_refuses_invalid_or_outside_profiles(tmp_path):
    from matseg_nb.widgets.dashboard_app import DashboardState

    st = DashboardState(tmp_path / "ws")
    with pytest.raises(UserError, match="outside"):
        st.start_sweep("../x.json")
    with pytest.raises(UserError, match="found nothing"):
        st.start_sweep("profiles/none.json")
    (tmp_path / "ws" / "profiles" / "bad.json").write_text(json.dumps({"name": "bad"}))
    with pytest.raises(UserError):
        st.start_sweep("profiles/bad.json")
    assert st.process is None


def test_start_sweep_launches_a_detached_argument_list(tmp_path, monkeypatch):
    import subprocess

    from matseg_nb.widgets import dashboard_app

    calls = {}

    class FakePopen:
        pid = 4242

        def __init__(self, cmd, **kw):
            calls["cmd"], calls["kw"] = cmd, kw

        def poll(self):
            return None

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    st = dashboard_app.DashboardState(tmp_path / "ws")
    sweep = st.start_sweep("profiles/starter.json")
    assert sweep == (tmp_path / "ws" / "runs" / "starter" / "sweep").resolve()
    cmd, kw = calls["cmd"], calls["kw"]
    assert cmd[1:5] == ["-m", "matseg_nb.cli", "sweep", str((tmp_path / "ws" / "profiles" / "starter.json").resolve())]
    assert cmd[5:7] == ["--out", str(sweep)]
    assert kw["start_new_session"] is True and "shell" not in kw
    assert (sweep.parent / "sweep.pid").read_text() == "4242"
    with pytest.raises(UserError, match="running"):
        st.start_sweep("profiles/starter.json")


def test_no_eval_exec_or_shell_in_the_dashboard():
    for path in (REPO / "matseg_nb" / "widgets" / "dashboard_app.py", REPO / "matseg_nb" / "widgets" / "profile_editor.py",
                 REPO / "matseg_nb" / "commands" / "dashboard.py", REPO / "matseg_nb" / "dashboard" / "actions.py",
                 REPO / "matseg_nb" / "dashboard" / "background.py"):
        text = path.read_text()
        for banned in ("eval(", "exec(", "shell=True", "os.system"):
            assert banned not in text, (path.name, banned)


def test_dashboard_command_is_loopback_voila(tmp_path, capsys):
    from matseg_nb.cli import main

    assert main(["dashboard", "--port", "9123", "--workspace", str(tmp_path / "w"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "widgets/dashboard.ipynb" in out and "--Voila.ip=127.0.0.1" in out and "--port=9123" in out
    assert f"MATSEG_WORKSPACE={(tmp_path / 'w').resolve()}" in out and "--no-browser" in out
    assert main(["dashboard", "--port", "0", "--dry-run"]) == 2


def test_dashboard_notebook_is_thin():
    import nbformat

    nb = nbformat.read(REPO / "widgets" / "dashboard.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) <= 3 and "DashboardApp" in "".join(c.source for c in code)
    assert "MATSEG_WORKSPACE" in "".join(c.source for c in code)


def _write_dataset_qc(folder):
    """A qc_dataset output folder (qc.json + screening/qc.json) with one screened batch and one check."""
    from matseg_nb.qc.results import ImageScreen, ScreeningResult, ShiftCheck, ValidationResult

    images = [ImageScreen("im0", 0.031, 0.015, True, "flagged: its median crop is less typical than 97% of "
                          "validation crops (p=0.031 <= 0.05)"), ImageScreen("im1", 0.6, 0.3, False, "typical: p=0.6 > 0.05")]
    scr = ScreeningResult("split:test", images, 0.05, 1, 2, "shifted", "rank-sum", 0.029, 0.1, "train", "val",
                          "ocsvm", 4, [], 0.9)
    val = ValidationResult("insufficient evidence", "fewer than 10 images on a side", 0.95, "split:test", "train",
                           [ShiftCheck("shift:noise:strong", "gmm", 1.0, 0.83, 1.0, 4, 4, "harmful", -0.5)], ["gmm"])
    (folder / "screening").mkdir(parents=True)
    (folder / "qc.json").write_text(json.dumps({"dataset": "nasa-super1", "run_dir": "r", "validation": val.to_json()}))
    (folder / "screening" / "qc.json").write_text(json.dumps({"screening": [scr.to_json()]}))


def test_analysis_tabs_show_their_folders(tmp_path):
    from _report_helpers import write_png

    from matseg_nb.widgets.dashboard_app import DashboardApp

    app = DashboardApp(tmp_path / "ws")
    run = tmp_path / "ws" / "runs" / "starter"
    comp, qc = run / "compare", run / "qc"
    comp.mkdir(parents=True)
    qc.mkdir()
    (comp / "best_table.csv").write_text("dataset,encoder,decoder,iou\nnasa-super1,tu-test_resnet,Unet,0.51234\n")
    write_png(comp / "heatmap_iou.png")
    (comp / "recommendation.json").write_text(json.dumps({"dataset": "nasa-super1", "confidence": "low",
                                                         "confidence_reason": "one run",
                                                         "ranked": [{"arch": "tu-test_resnet+Unet"}]}))
    _write_dataset_qc(qc / "nasa-super1")
    write_png(qc / "nasa-super1" / "roc.png")
    app.compare.show(comp)
    app.compare.message.value = "done: runs/starter/compare"
    html = "".join(c.value for c in app.compare.output.children if hasattr(c, "value") and isinstance(c.value, str))
    assert "matseg-compare-table" in html and "0.5123" in html and "runs/starter/compare" in app.compare.message.value
    assert any(getattr(c, "format", "") == "png" for c in app.compare.output.children)
    assert "Recommended for nasa-super1: <b>tu-test_resnet+Unet</b> (confidence low" in html
    (run / "qc.state.json").write_text(json.dumps({"state": "done", "pid": 1, "out": str(qc), "elapsed_s": 3}))
    app.run.current_run = run
    app.quality.follow()
    shown = app.quality.output.children[0].value
    assert "QC of nasa-super1: detector validation insufficient evidence" in shown and "done in 3 s" in app.quality.message.value
    assert "split:test: shifted (1 of 2 images flagged" in shown and "matseg-qc-table" in shown
    assert "0.031" in shown and "flagged: its median crop" in shown and "AUROC" in shown
    assert "-5e+07" not in shown and "typicality" not in shown  # p-values and flags, no raw scores
    assert any(getattr(c, "format", "") == "png" for c in app.quality.output.children)
    (run / "qc.state.json").write_text(json.dumps({"state": "failed", "pid": 1, "error": "runs/starter: expected a "
                                                   "complete job to check, found none"}))
    app.quality.follow()
    app.run.current_run = None
    assert "failed" in app.quality.message.value and "expected a complete job" in app.quality.message.value


def test_analysis_without_a_run_asks_for_one(tmp_path):
    from matseg_nb.widgets.dashboard_app import DashboardApp

    app = DashboardApp(tmp_path / "ws")
    app.compare.start()
    assert "Run tab" in app.compare.message.value
    app.explain.find_jobs()
    assert "Run tab" in app.explain.message.value


def test_run_tab_follows_an_existing_sweep_folder(tmp_path):
    from _report_helpers import make_fake_loop

    from matseg_nb.widgets.dashboard_app import DashboardApp

    ws = tmp_path / "ws"
    make_fake_loop(ws / "runs" / "old")
    app = DashboardApp(ws)
    assert app.run.runs.options == ("runs/old",)
    app.run.runs.value = "runs/old"
    assert app.run.current_run == (ws / "runs" / "old").resolve()
    assert "matseg-status-table" in app.run.table.value and "complete" in app.run.table.value
    app.run.build_report()
    assert "data:text/html;base64," in app.run.report_link.value
    assert (ws / "runs" / "old" / "report.html").exists()
    app.run.attach("../../elsewhere")
    assert "refused" in app.run.message.value
    app.run.current_run = None  # stop the poller


def test_analyses_are_the_demo_stages_on_the_run_layout(tmp_path, monkeypatch):
    """One route: compare, QC, explain and report are ``matseg_nb.pipeline``'s stage functions on the loop
    context of ``runs/<name>`` (its recorded profile, its LoopLayout, the loop's stage settings)."""
    from _sweep_helpers import write_fake_run

    import matseg_nb.pipeline as pipeline
    from matseg_nb.dashboard.actions import ANALYSES, DashboardState
    from matseg_nb.loop import LoopLayout, stage_settings

    st = DashboardState(tmp_path / "ws")
    sweep = st.workspace / "runs" / "starter" / "sweep"
    write_fake_run(sweep, "a1", val_iou=0.7)
    (sweep.parent / "profile.json").write_text((st.workspace / "profiles" / "starter.json").read_text())
    calls = []
    for name in ("stage_compare", "stage_qc", "stage_explain", "stage_report"):
        monkeypatch.setattr(pipeline, name, lambda ctx, _n=name, **kw: calls.append((_n, ctx, kw)))
    run = sweep.parent
    assert ANALYSES["compare"](st, run) == LoopLayout(run).compare
    assert ANALYSES["qc"](st, run) == LoopLayout(run).qc
    assert ANALYSES["explain"](st, run, job_dir=sweep / "a1", image_path=Path("x.png"),
                               mask_png=run / "explain" / "A.png") == LoopLayout(run).explain
    assert st.report(run) == LoopLayout(run).report_html
    assert [c[0] for c in calls] == ["stage_compare", "stage_qc", "stage_explain", "stage_report"]
    for _name, ctx, _kw in calls:
        assert ctx.layout == LoopLayout(run.resolve()) and ctx.settings == stage_settings()
        assert ctx.profile_path == (run / "profile.json").resolve()
    assert calls[2][2] == {"mask": run / "explain" / "A.png", "run": sweep / "a1", "image": Path("x.png")}
    empty = st.workspace / "runs" / "none"
    empty.mkdir()
    (empty / "profile.json").write_text((run / "profile.json").read_text())
    with pytest.raises(UserError, match="expected a complete job"):
        st.qc(empty)


def test_a_sweep_started_elsewhere_takes_the_profile_its_sweep_json_records(tmp_path):
    from matseg_nb.dashboard.actions import DashboardState

    st = DashboardState(tmp_path / "ws")
    run = st.workspace / "runs" / "other"
    (run / "sweep").mkdir(parents=True)
    with pytest.raises(UserError, match="expected a sweep started from a profile"):
        st.loop(run)
    profile = json.loads((st.workspace / "profiles" / "starter.json").read_text())
    (run / "sweep" / "sweep.json").write_text(json.dumps({"profile": profile, "job_ids": []}))
    assert st.loop(run).profile.name == "starter"
    with pytest.raises(UserError, match="outside"):
        st.loop(st.workspace / ".." / "x")
