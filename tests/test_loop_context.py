"""One loop: named stage settings picked by name or $MATSEG_NB_STAGE_SETTINGS, and loop_context's paths."""

from __future__ import annotations

import pytest

from matseg_nb.errors import UserError
from matseg_nb.loop import DEMO_SETTINGS, SETTINGS_ENV, TINY_SETTINGS, LoopLayout, stage_settings
from matseg_nb.pipeline import loop_context, project_dir


def test_settings_default_to_demo_and_follow_the_environment(monkeypatch):
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    assert stage_settings() is DEMO_SETTINGS
    monkeypatch.setenv(SETTINGS_ENV, "tiny")
    assert stage_settings() is TINY_SETTINGS
    assert stage_settings("demo") is DEMO_SETTINGS  # an explicit name wins over the environment
    assert TINY_SETTINGS.qc.tiles_per_image < DEMO_SETTINGS.qc.tiles_per_image
    assert TINY_SETTINGS.explain.crop and DEMO_SETTINGS.explain.crop is None  # the demo explains whole images


def test_unknown_settings_name_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(SETTINGS_ENV, "huge")
    with pytest.raises(UserError, match=r"MATSEG_NB_STAGE_SETTINGS: expected one of demo, tiny, found 'huge'"):
        stage_settings()


def _project(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "p.json").write_text("{}")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "02_train.ipynb").write_text("{}")
    return tmp_path


def test_relative_paths_resolve_from_the_root_or_from_notebooks(tmp_path, monkeypatch):
    root = _project(tmp_path).resolve()
    for cwd in (root, root / "notebooks"):
        monkeypatch.chdir(cwd)
        assert project_dir() == root
        ctx = loop_context("profiles/p.json", "runs/demo")
        assert ctx.profile_path == root / "profiles" / "p.json"
        assert ctx.layout == LoopLayout(root / "runs" / "demo")
        assert ctx.layout.report_json == root / "runs" / "demo" / "report.json"
    monkeypatch.chdir(root / "profiles")  # an ordinary folder is its own base
    assert project_dir() == root / "profiles"
    assert loop_context("p.json", "out").out == root / "profiles" / "out"


def test_missing_profile_names_the_path(tmp_path, monkeypatch):
    monkeypatch.chdir(_project(tmp_path))
    with pytest.raises(UserError, match=r"profile profiles/nope.json: expected a JSON file, found nothing at"):
        loop_context("profiles/nope.json", "runs/demo")


def test_context_carries_the_named_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(_project(tmp_path))
    monkeypatch.setenv(SETTINGS_ENV, "tiny")
    assert loop_context("profiles/p.json", "r").settings is TINY_SETTINGS
    assert loop_context("profiles/p.json", "r", settings=DEMO_SETTINGS).settings is DEMO_SETTINGS


def test_settings_and_answers_round_trip_through_json():
    import json

    from matseg_nb.loop import StageSettings
    from matseg_nb.report import DatasetAnswer

    for settings in (DEMO_SETTINGS, TINY_SETTINGS):
        back = StageSettings.from_dict(json.loads(json.dumps(settings.to_dict())))
        assert back == settings and isinstance(back.qc.shifts, tuple)
    answer = DatasetAnswer("ds", recommended="a", interval=(0.25, 0.5), missing=["QC (qc/qc.json)"])
    assert DatasetAnswer.from_dict(json.loads(json.dumps(answer.to_dict()))) == answer
    assert DatasetAnswer.from_dict({"dataset": "ds", "added_later": 1}) == DatasetAnswer("ds")  # newer files load
