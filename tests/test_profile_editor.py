"""Profile editor: the state model and the ipywidgets view, driven directly (no browser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from matseg_nb.errors import UserError  # noqa: E402
from matseg_nb.profiles import profile_from_dict  # noqa: E402
from matseg_nb.widgets.profile_editor import ProfileEditor, ProfileEditorModel, default_profile  # noqa: E402


def test_default_profile_is_valid_and_compiles():
    model = ProfileEditorModel()
    assert model.problems == [] and model.valid
    assert profile_from_dict(model.data).grid_size() == 1


def test_model_reports_problems_live_and_clears_them():
    model = ProfileEditorModel()
    model.set("training", "lr", -1.0)
    assert any("training.lr" in p for p in model.problems)
    model.set("training", "lr", 1e-3)
    assert model.problems == []
    model.set("model", "decoders", [])
    assert any("model.decoders" in p for p in model.problems)


def test_dataset_picker_fills_context_from_the_manifest():
    model = ProfileEditorModel()
    model.set_datasets(["nasa-super1", "nasa-ebc1"])
    refs = [e["ref"] for e in model.data["dataset"]]
    assert refs == ["nasa-super1", "nasa-ebc1"]
    assert model.data["dataset"][0]["modality"] == "SEM"
    assert model.data["dataset"][0]["material"]["class"] == "metals"
    model.set_context(modality="Optical")
    assert {e["modality"] for e in model.data["dataset"]} == {"Optical"}
    assert model.valid


def test_save_is_atomic_json_and_refuses_invalid_or_outside(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    model = ProfileEditorModel(workspace=ws)
    path = model.save("profiles/p.json")
    assert path == (ws / "profiles" / "p.json").resolve()
    assert json.loads(path.read_text()) == model.data
    with pytest.raises(UserError, match="outside"):
        model.save("../escape.json")
    with pytest.raises(UserError, match="outside"):
        model.save(str(tmp_path / "abs.json"))
    model.set("name", "bad name!")
    with pytest.raises(UserError, match="not saved: profile: name"):
        model.save("p2.json")
    assert not (ws / "p2.json").exists() and not (tmp_path / "escape.json").exists()


def test_from_file_round_trip(tmp_path):
    src = tmp_path / "p.json"
    src.write_text(json.dumps(default_profile("nasa-ebc1")))
    model = ProfileEditorModel.from_file(src)
    assert model.data["dataset"][0]["ref"] == "nasa-ebc1" and model.valid
    with pytest.raises(UserError):
        ProfileEditorModel.from_file(tmp_path / "none.json")


def test_view_edits_the_model_and_shows_problems(tmp_path):
    editor = ProfileEditor(ProfileEditorModel(), save_to=str(tmp_path / "out.json"))
    assert "nasa-super1" in editor.datasets.options
    editor.name.value = "bad name!"
    assert "Problems" in editor.problems.value and "name" in editor.problems.value
    assert editor.save() is None and "not saved" in editor.status.value
    editor.name.value = "edited"
    editor.training["max_epochs"].value = 3
    editor.decoders.value = ("Unet", "FPN")
    editor.seeds.value = "0, 1"
    assert "profile is valid" in editor.problems.value
    saved = editor.save()
    data = json.loads(saved.read_text())
    assert data["name"] == "edited" and data["training"]["max_epochs"] == 3
    assert data["model"]["decoders"] == ["Unet", "FPN"] and data["seeds"] == [0, 1]
    assert profile_from_dict(data).grid_size() == 4
    editor.seeds.value = "zero"
    assert "seeds" in editor.problems.value


def test_view_preview_draws_the_first_dataset():
    editor = ProfileEditor(ProfileEditorModel())
    editor.show_preview(n=1)
    assert editor.preview_image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "nasa-super1" in editor.preview.value
    editor.datasets.value = ()
    editor.show_preview()
    assert "choose a dataset" in editor.preview.value
