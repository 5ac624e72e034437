"""``matseg init FOLDER`` writes a valid profile (six pairs, CPU/GPU sizing) and names the next command."""

from __future__ import annotations

import json

from _data_helpers import data_env, make_folder, run_cli  # noqa: F401

from matseg_nb.profiles import compile_jobs, load_profile


def test_init_cpu_and_gpu_profiles(tmp_path, capsys, monkeypatch, data_env):  # noqa: F811
    root = make_folder(tmp_path / "my-sem", ["a", "b", "c", "d", "e"], size=(64, 96), mask_scale=255)
    argv = ["init", str(root), "--modality", "SEM", "--material", "Ni superalloy", "--material-class", "metals"]
    assert run_cli([*argv, "--device", "cpu"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"next: matseg demo {root / 'profile.json'}" in out
    jobs = compile_jobs(load_profile(root / "profile.json"))  # 5 images: 5-fold CV over all of them
    assert len(jobs) == 6 * 5 and {j.decoder for j in jobs} == {"Unet", "DeepLabV3", "DeepLabV3Plus"}
    assert "5-fold cross-validation over all annotated images" in out and {j.pool for j in jobs} == {"all"}
    assert {j.encoder for j in jobs} == {"resnet18", "tu-seresnext26d_32x4d"} and jobs[0].encoder_weights == "none"
    doc = json.loads((root / "profile.json").read_text())
    assert doc["dataset"][0]["ref"] == "." and doc["training"]["crop_size"] == 64  # fits the 64 px high images
    assert doc["execution"]["executor"] == "dask" and doc["execution"]["threads_per_worker"] == 1
    assert run_cli([*argv, "--device", "gpu"], monkeypatch) == 2
    assert "profile.json: expected no existing profile, found one" in capsys.readouterr().err
    assert run_cli([*argv, "--device", "cpu", "--force", "--holdout"], monkeypatch) == 0
    assert len(compile_jobs(load_profile(root / "profile.json"))) == 6  # the fixed split, on request
    assert run_cli([*argv, "--device", "gpu", "--force"], monkeypatch) == 0
    assert "matseg weights fetch resnet50 se_resnext101_32x4d" in capsys.readouterr().out
    jobs = compile_jobs(load_profile(root / "profile.json"))
    assert {j.encoder for j in jobs} == {"resnet50", "se_resnext101_32x4d"} and jobs[0].encoder_weights == "imagenet"


def test_init_bad_folder_and_modality(tmp_path, capsys, monkeypatch, data_env):  # noqa: F811
    assert run_cli(["init", str(tmp_path / "nothing")], monkeypatch) == 2
    assert "nothing" in capsys.readouterr().err
    root = make_folder(tmp_path / "ds", ["a", "b", "c"], mask_scale=255)
    assert run_cli(["init", str(root), "--modality", "NMR"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "modality" in err and not (root / "profile.json").exists()
