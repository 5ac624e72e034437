"""Bad profiles: every problem is one line `<file>: <json.path>: expected ..., found ...`, exit 2, no traceback."""

from __future__ import annotations

import re

import pytest
from _profile_helpers import tiny_profile_dict, write_profile

from matseg_nb.cli import main
from matseg_nb.errors import UserError
from matseg_nb.profiles import load_profile

LINE = re.compile(r"^error: (?P<file>[^:]+): (?P<path>[^:]+): expected .+, found .+$")


def _run(capsys, path) -> tuple[int, list[str], str]:
    rc = main(["validate", str(path)])
    out, err = capsys.readouterr()
    return rc, [line for line in err.splitlines() if line], out


def _single_problem(capsys, path) -> re.Match:
    rc, lines, out = _run(capsys, path)
    assert rc == 2, lines
    assert len(lines) == 1, lines
    assert "Traceback" not in out and "ok:" not in out
    match = LINE.match(lines[0])
    assert match, lines[0]
    assert match["file"] == str(path)
    return match


def test_malformed_json_names_line_and_column(tmp_path, capsys):
    path = write_profile(tmp_path, '{\n  "name": "x",\n  "seeds": [1 2]\n}\n')
    match = _single_problem(capsys, path)
    assert match["path"] == "line 3, column 15"
    assert "valid JSON" in match.group(0)


def test_wrong_type(tmp_path, capsys):
    path = write_profile(tmp_path, tiny_profile_dict(training={"batch_size": "16"}))
    match = _single_problem(capsys, path)
    assert match["path"] == "training.batch_size"
    assert 'expected an integer, found "16" (a string)' in match.group(0)


def test_unknown_key_suggests_the_known_one(tmp_path, capsys):
    path = write_profile(tmp_path, tiny_profile_dict(training={"bach_size": 4}))
    match = _single_problem(capsys, path)
    assert match["path"] == "training.bach_size"
    assert "unknown key 'bach_size' (did you mean 'batch_size'?)" in match.group(0)


def test_unknown_top_level_key(tmp_path, capsys):
    path = write_profile(tmp_path, {**tiny_profile_dict(), "modell": {}})
    assert _single_problem(capsys, path)["path"] == "modell"


def test_unknown_encoder(tmp_path, capsys):
    path = write_profile(tmp_path, tiny_profile_dict(model={"encoders": ["tu-test_resnet", "resnet5"]}))
    match = _single_problem(capsys, path)
    assert match["path"] == "model.encoders[1]"
    assert "'resnet5'" in match.group(0) and "did you mean 'resnet50'" in match.group(0)


def test_unknown_decoder(tmp_path, capsys):
    path = write_profile(tmp_path, tiny_profile_dict(model={"decoders": ["Unet", "SegNet"]}))
    match = _single_problem(capsys, path)
    assert match["path"] == "model.decoders[1]"
    assert "DeepLabV3Plus" in match.group(0)


@pytest.mark.parametrize("changes, path, expected", [
    ({"lr": -1}, "dataset[0].training.lr", "expected a number > 0"),
    ({"crop_size": 100}, "dataset[0].training.crop_size", "expected a multiple of 32"),
    ({"tile_size": 128, "tile_overlap": 64}, "dataset[0].training", "expected tile_overlap < tile_size / 2"),
    ({"augmentations": {"hflipp": True}}, "dataset[0].training.augmentations.hflipp", "did you mean 'hflip'"),
])
def test_bad_dataset_training_changes(tmp_path, capsys, changes, path, expected):
    data = tiny_profile_dict()
    data["dataset"][0]["training"] = changes
    match = _single_problem(capsys, write_profile(tmp_path, data))
    assert match["path"] == path
    assert expected in match.group(0)


@pytest.mark.parametrize("options, expected", [
    ({"Unet": {"output_stride": 16}}, "expected arguments of smp.Unet ("),
    ({"Unet": {"classes": 5}}, "expected arguments of smp.Unet ("),
    ({"FPN": {"no_such_argument": 0.1}}, "expected arguments of smp.FPN ("),  # outside the grid: still checked
])
def test_bad_decoder_options(tmp_path, capsys, options, expected):
    path = write_profile(tmp_path, tiny_profile_dict(model={"decoder_options": options}))
    match = _single_problem(capsys, path)
    assert match["path"] == "model.decoder_options"
    assert expected in match.group(0)


@pytest.mark.parametrize("section, value, path", [
    ("model", {"encoders": []}, "model.encoders"),
    ("model", {"decoders": []}, "model.decoders"),
    ("seeds", [], "seeds"),
    ("dataset", [], "dataset"),
])
def test_empty_grid(tmp_path, capsys, section, value, path):
    data = tiny_profile_dict(**{section: value}) if section != "dataset" else {**tiny_profile_dict(), "dataset": []}
    match = _single_problem(capsys, write_profile(tmp_path, data))
    assert match["path"] == path
    assert "expected at least one item, found an empty list" in match.group(0)


def test_missing_manifest(tmp_path, capsys):
    path = write_profile(tmp_path, tiny_profile_dict(dataset="nasa-nope"))
    match = _single_problem(capsys, path)
    assert match["path"] == "dataset[0].ref"
    assert "nasa-nope" in match.group(0)


def test_missing_relative_folder_is_resolved_against_the_profile_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    path = write_profile(tmp_path / "sub", tiny_profile_dict(dataset="./data"))
    assert _single_problem(capsys, path)["path"] == "dataset[0].ref"


def test_missing_weights_file(tmp_path, capsys):
    path = write_profile(tmp_path, tiny_profile_dict(model={"encoder_weights": "weights/encoder.pth"}))
    match = _single_problem(capsys, path)
    assert match["path"] == "model.encoder_weights"
    assert str(tmp_path / "weights" / "encoder.pth") in match.group(0)


def test_missing_required_key(tmp_path, capsys):
    data = tiny_profile_dict()
    del data["task"]["objective"]
    match = _single_problem(capsys, write_profile(tmp_path, data))
    assert match["path"] == "task.objective"


def test_bad_choice_with_a_hint(tmp_path, capsys):
    data = tiny_profile_dict()
    data["dataset"][0]["material"]["class"] = "metls"
    match = _single_problem(capsys, write_profile(tmp_path, data))
    assert match["path"] == "dataset[0].material.class"
    assert "did you mean 'metals'" in match.group(0)


def test_all_problems_are_reported_at_once(tmp_path, capsys):
    data = tiny_profile_dict(dataset="nasa-nope", training={"batch_size": "16", "bach_size": 4},
                             model={"encoders": ["resnet5"], "decoders": []}, seeds=[])
    data["dataset"][0]["modality"] = "TEM"
    rc, lines, _ = _run(capsys, write_profile(tmp_path, data))
    assert rc == 2
    paths = {LINE.match(line)["path"] for line in lines}
    assert paths == {"dataset[0].modality", "dataset[0].ref", "training.batch_size", "training.bach_size",
                     "model.encoders[0]", "model.decoders", "seeds"}


@pytest.mark.parametrize("text, expected", [
    ("[1, 2]", "$: expected an object, found [1, 2] (a list)"),
    ('{"name": "a", "name": "b"}', "key 'name': expected each key once per object, found it 2 times"),
    ("", "line 1, column 1: expected valid JSON"),
    ('{"name": "a", "training": {"lr": NaN}}', "expected standard JSON numbers, found NaN"),
])
def test_other_malformed_documents(tmp_path, text, expected):
    path = write_profile(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_profile(path)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}: {expected}")


def test_missing_profile_file(tmp_path, capsys):
    rc = main(["plan", str(tmp_path / "nope.json")])
    assert rc == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope.json'}: expected a profile JSON file, found nothing at that path"


def test_plan_reports_the_same_problems(tmp_path, capsys):
    path = write_profile(tmp_path, tiny_profile_dict(training={"lr": "fast"}))
    assert main(["plan", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f'error: {path}: training.lr: expected a number, found "fast" (a string)'


def test_same_dataset_content_twice_is_reported_with_the_file(tmp_path, capsys, repo_root):
    import shutil

    shutil.copy(repo_root / "data_manifests" / "nasa-super1.yaml", tmp_path / "copy.yaml")
    path = write_profile(tmp_path, tiny_profile_dict(["nasa-super1", "copy.yaml"]))
    match = _single_problem(capsys, path)
    assert match["path"] == "dataset[1].ref"
    assert "same content as dataset[0]" in match.group(0)


def test_the_demo_profile_without_deeplabv3_validates_and_notes_its_ignored_options(tmp_path, capsys):
    """Removing a decoder from model.decoders leaves its decoder_options ignored, with a note (not an error)."""
    import json
    from pathlib import Path

    from matseg_nb.profiles import compile_jobs

    demo = json.loads((Path(__file__).resolve().parents[1] / "profiles" / "demo-cpu.json").read_text())
    assert "DeepLabV3" in demo["model"]["decoder_options"]
    demo["model"]["decoders"] = [d for d in demo["model"]["decoders"] if d != "DeepLabV3"]
    path = tmp_path / "demo-no-dlv3.json"
    path.write_text(json.dumps(demo))
    demo_dir = Path(__file__).resolve().parents[1] / "profiles"
    if "$schema" in demo:
        (tmp_path / Path(demo["$schema"]).name).write_text((demo_dir / Path(demo["$schema"]).name).read_text())
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: model.decoder_options names DeepLabV3, which is not in model.decoders: its options are ignored" in out
    jobs = compile_jobs(load_profile(path))
    assert jobs and all(j.decoder != "DeepLabV3" for j in jobs)
