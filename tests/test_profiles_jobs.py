"""Compilation phi: deterministic order, stable content-derived ids, JSON round trip."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from _profile_helpers import make_plain_folder, tiny_profile_dict, write_profile

from matseg_nb.errors import UserError
from matseg_nb.profiles import Job, compile_jobs, load_profile, profile_from_dict

ID = re.compile(r"^(?P<ds>[a-z0-9.-]+)__(?P<enc>[^_].*)__(?P<dec>[A-Za-z0-9]+)__s(?P<seed>\d+)__(?P<h>[0-9a-f]{8})$")


def _ids(data: dict, base_dir=None) -> list[str]:
    return [j.job_id for j in compile_jobs(profile_from_dict(data, base_dir=base_dir))]


def test_order_is_dataset_encoder_decoder_seed():
    data = tiny_profile_dict(["nasa-super1", "nasa-ebc1"], model={"encoders": ["tu-test_resnet", "resnet18"]},
                             seeds=[3, 1])
    jobs = compile_jobs(profile_from_dict(data))
    assert len(jobs) == 2 * 2 * 2 * 2
    keys = [(j.dataset, j.encoder, j.decoder, j.seed) for j in jobs]
    assert keys == [(d, e, m, s) for d in ("nasa-super1", "nasa-ebc1") for e in ("tu-test_resnet", "resnet18")
                    for m in ("Unet", "DeepLabV3Plus") for s in (3, 1)]
    for job in jobs:
        match = ID.match(job.job_id)
        assert match, job.job_id
        assert (match["ds"], match["enc"], match["dec"], int(match["seed"])) == (
            job.dataset_slug, job.encoder, job.decoder, job.seed)
    assert len({j.job_id for j in jobs}) == len(jobs)
    assert len({j.job_id.rsplit("__", 1)[1] for j in jobs}) == len(jobs)


def test_same_profile_same_ids_wherever_the_profile_lives(tmp_path):
    a = load_profile(write_profile(tmp_path / "a", tiny_profile_dict()))
    b = load_profile(write_profile(tmp_path / "elsewhere" / "b", tiny_profile_dict(), name="other.json"))
    assert [j.job_id for j in compile_jobs(a)] == [j.job_id for j in compile_jobs(b)] == _ids(tiny_profile_dict())


@pytest.mark.parametrize("change", [
    {"training": {"lr": 2e-4}},
    {"training": {"batch_size": 3}},
    {"training": {"crop_size": 96}},
    {"training": {"tile_size": 256}},
    {"training": {"tile_overlap": 8}},
    {"training": {"loss": "dice"}},
    {"training": {"max_epochs": 2}},
    {"training": {"steps_per_epoch": None}},
    {"training": {"early_stopping_patience": 5}},
    {"training": {"normalization": "dtype"}},
    {"training": {"optimizer": "adamw"}},
    {"training": {"augmentations": {"hflip": False}}},
    {"training": {"precision": "bf16-mixed"}},
    {"model": {"encoder_weights": "imagenet"}},
])
def test_result_changing_settings_change_every_id(change):
    before = _ids(tiny_profile_dict())
    after = _ids(tiny_profile_dict(**change))
    assert len(after) == len(before)
    assert all(a != b for a, b in zip(before, after, strict=True))
    # the readable prefix is unchanged, only the hash differs
    assert [a.rsplit("__", 1)[0] for a in after] == [b.rsplit("__", 1)[0] for b in before]


@pytest.mark.parametrize("change", [
    {"task": {"objective": "something else", "metrics": ["iou"], "qc_signals": ["auroc"],
              "readiness_threshold": 0.9}},
    {"execution": {"executor": "dask", "devices": "cuda", "workers": 4, "threads_per_worker": 2}},
    {"description": "another description"},
    {"name": "renamed"},
    {"model": {"min_encoder_key_match": 0.5}},
])
def test_settings_that_do_not_change_results_keep_ids(change):
    assert _ids(tiny_profile_dict(**change)) == _ids(tiny_profile_dict())


def test_seed_and_dataset_change_ids():
    base = _ids(tiny_profile_dict())
    assert _ids(tiny_profile_dict(seeds=[1]))[0] != base[0]
    assert _ids(tiny_profile_dict("nasa-ebc1"))[0].rsplit("__", 1)[1] != base[0].rsplit("__", 1)[1]


def test_manifest_referenced_by_path_is_identified_by_its_content(tmp_path, repo_root):
    shutil.copy(repo_root / "data_manifests" / "nasa-super1.yaml", tmp_path / "nasa-super1.yaml")
    by_path = load_profile(write_profile(tmp_path, tiny_profile_dict("./nasa-super1.yaml")))
    assert by_path.dataset[0].ref == str((tmp_path / "nasa-super1.yaml").resolve())
    assert [j.job_id for j in compile_jobs(by_path)] == _ids(tiny_profile_dict())
    with (tmp_path / "nasa-super1.yaml").open("a") as fh:
        fh.write("# edited\n")
    assert [j.job_id for j in compile_jobs(by_path)] != _ids(tiny_profile_dict())


def test_plain_folder_resolves_against_the_profile_and_ids_follow_its_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "project"
    make_plain_folder(project / "my data")
    profile = load_profile(write_profile(project, tiny_profile_dict("my data")))
    jobs = compile_jobs(profile)
    assert jobs[0].dataset == str((project / "my data").resolve())
    assert jobs[0].dataset_kind == "folder" and jobs[0].dataset_slug == "my-data"
    ids = [j.job_id for j in jobs]
    # moving the project keeps the ids (content-based, not path-based)
    shutil.move(str(project), str(tmp_path / "moved"))
    assert [j.job_id for j in compile_jobs(load_profile(tmp_path / "moved" / "profile.json"))] == ids
    # a new image changes them
    make_plain_folder(tmp_path / "moved" / "my data", stems=("c",))
    assert [j.job_id for j in compile_jobs(load_profile(tmp_path / "moved" / "profile.json"))] != ids


def test_local_weights_file_is_identified_by_content(tmp_path):
    (tmp_path / "enc.pth").write_bytes(b"weights v1")
    ids1 = [j.job_id for j in compile_jobs(load_profile(write_profile(tmp_path, tiny_profile_dict(
        model={"encoder_weights": "enc.pth"}))))]
    assert ids1 != _ids(tiny_profile_dict())
    (tmp_path / "enc.pth").write_bytes(b"weights v2")
    ids2 = [j.job_id for j in compile_jobs(load_profile(tmp_path / "profile.json"))]
    assert ids2 != ids1


def test_same_dataset_twice_is_an_error(tmp_path, repo_root):
    shutil.copy(repo_root / "data_manifests" / "nasa-super1.yaml", tmp_path / "copy.yaml")
    profile = profile_from_dict(tiny_profile_dict(["nasa-super1", "copy.yaml"]), base_dir=tmp_path)
    with pytest.raises(UserError, match=r"dataset\[1\].ref: expected a dataset not listed before"):
        compile_jobs(profile)


def test_job_round_trips_through_json():
    job = compile_jobs(profile_from_dict(tiny_profile_dict()))[1]
    data = json.loads(json.dumps(job.to_dict()))
    assert data["job_id"] == job.job_id and data["training"]["crop_size"] == 64
    again = Job.from_dict(data)
    assert again == job and again.job_id == job.job_id
    assert len({job, again}) == 1
    tampered = {**data, "training": {**data["training"], "lr": 0.1}}
    with pytest.raises(UserError, match="expected id"):
        Job.from_dict(tampered)


def test_effective_config_excludes_task_and_execution():
    job = compile_jobs(profile_from_dict(tiny_profile_dict()))[0]
    eff = job.effective_config()
    assert set(eff) == {"hash_version", "dataset", "encoder", "decoder", "encoder_weights", "seed", "training"}
    assert eff["training"]["crop_size"] == 64 and eff["dataset"]["kind"] == "manifest"


def test_decoder_options_change_only_that_decoders_ids():
    base = _ids(tiny_profile_dict())
    options = {"model": {"decoder_options": {"deeplabv3plus": {"decoder_atrous_rates": [6, 12, 18]}}}}
    after = _ids(tiny_profile_dict(**options))
    unet, dlv3p = (i for i in zip(base, after, strict=True))
    assert unet[0] == unet[1], "Unet has no options: its id must not change"
    assert dlv3p[0] != dlv3p[1] and dlv3p[0].rsplit("__", 1)[0] == dlv3p[1].rsplit("__", 1)[0]
    job = compile_jobs(profile_from_dict(tiny_profile_dict(**options)))[1]
    assert job.decoder == "DeepLabV3Plus" and job.decoder_options == {"decoder_atrous_rates": [6, 12, 18]}
    assert Job.from_dict(json.loads(json.dumps(job.to_dict()))) == job


def test_dataset_training_changes_only_that_datasets_jobs():
    data = tiny_profile_dict(["nasa-super1", "nasa-ebc1"])
    base = compile_jobs(profile_from_dict(data))
    data["dataset"][1]["training"] = {"input_scale": 1.0, "max_epochs": 3, "augmentations": {"hflip": False}}
    jobs = compile_jobs(profile_from_dict(data))
    assert [j.job_id for j in jobs[:2]] == [j.job_id for j in base[:2]]
    assert all(a.job_id != b.job_id for a, b in zip(jobs[2:], base[2:], strict=True))
    ebc1 = jobs[2].training
    assert (ebc1.input_scale, ebc1.max_epochs, ebc1.augmentations.hflip) == (1.0, 3, False)
    # unset keys keep the profile's values, augmentations are merged key by key
    assert ebc1.crop_size == base[2].training.crop_size and ebc1.augmentations.vflip == base[2].training.augmentations.vflip
    assert jobs[0].training == base[0].training
