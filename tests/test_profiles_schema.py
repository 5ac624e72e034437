"""Profile schema: shipped profiles, defaults, name registries, JSON Schema export."""

from __future__ import annotations

import json

import jsonschema
import pytest
from _profile_helpers import tiny_profile_dict
from pydantic import ValidationError

from matseg_nb.profiles import Profile, TrainingConfig, compile_jobs, load_profile, profile_from_dict
from matseg_nb.profiles.export_schema import SCHEMA_PATH, export_schema
from matseg_nb.profiles.registry import check_encoder, normalise_decoder

PAPER_PAIRS = {(e, d) for e in ("resnet50", "se_resnext101_32x4d") for d in ("Unet", "DeepLabV3", "DeepLabV3Plus")}
#: the CPU demo's stand-ins of the two encoder families (docs/training.md), same three decoders
DEMO_PAIRS = {(e, d) for e in ("resnet18", "tu-seresnext26d_32x4d") for d in ("Unet", "DeepLabV3", "DeepLabV3Plus")}


@pytest.mark.parametrize("name", ["demo-cpu", "paper"])
def test_shipped_profiles_validate_with_the_papers_six_pairs(repo_root, name):
    profile = load_profile(repo_root / "profiles" / f"{name}.json")
    jobs = compile_jobs(profile)
    assert len(jobs) == 12
    assert {(j.encoder, j.decoder) for j in jobs} == (PAPER_PAIRS if name == "paper" else DEMO_PAIRS)
    assert sorted(e.ref for e in profile.dataset) == ["nasa-ebc1", "nasa-super1"]
    assert profile.training.early_stopping_patience == 20 and profile.training.monitor == "val_iou"


def test_demo_is_cpu_sized_and_paper_uses_paper_settings(repo_root):
    demo = load_profile(repo_root / "profiles" / "demo-cpu.json")
    paper = load_profile(repo_root / "profiles" / "paper.json")
    assert demo.model.encoder_weights == "none" and "none" in demo.description
    assert (demo.training.batch_size, demo.training.crop_size, demo.training.lr) == (4, 128, 1e-3)
    assert demo.training.val_every == 1 and demo.training.tile_size == 1024
    assert "stand-in" in demo.description.lower() and paper.training.foreground_crop_fraction == 0.0
    assert demo.training.val_crop_size == 768 and paper.training.val_crop_size is None
    assert demo.training.input_scale == 0.5 and paper.training.input_scale == 1.0
    t = paper.training
    assert paper.model.encoder_weights == "imagenet"
    assert (t.batch_size, t.lr, t.optimizer, t.scheduler, t.max_epochs, t.crop_size) == (16, 1e-4, "adam", "cosine", 200, 512)


def test_training_defaults_are_the_papers():
    t = TrainingConfig()
    assert (t.batch_size, t.lr, t.scheduler, t.early_stopping_patience, t.monitor) == (16, 1e-4, "cosine", 20, "val_iou")


def test_task_and_model_defaults():
    p = Profile.model_validate(tiny_profile_dict(task={"objective": "x", "metrics": ["iou", "dice", "wiou", "pixel_accuracy"]}))
    assert p.task.readiness_threshold == 0.95
    assert set(p.task.qc_signals) <= {"auroc", "f1", "precision", "fpr95"}
    assert Profile.model_validate({**tiny_profile_dict(), "model": {"encoders": ["resnet50"], "decoders": ["unet"]}}
                                  ).model.min_encoder_key_match == 0.95


@pytest.mark.parametrize(
    "given, expected",
    [("unet", "Unet"), ("UNET", "Unet"), ("deeplabv3", "DeepLabV3"), ("deeplabv3plus", "DeepLabV3Plus"),
     ("DeepLabv3+", "DeepLabV3Plus"), ("deeplab_v3_plus", "DeepLabV3Plus"), ("unet++", "UnetPlusPlus"), ("FPN", "FPN")],
)
def test_decoder_names_normalise_to_smp_class_names(given, expected):
    import segmentation_models_pytorch as smp

    assert normalise_decoder(given) == expected
    assert hasattr(smp, expected)


@pytest.mark.parametrize("bad", ["unt", "deeplab", "resnet50", ""])
def test_unknown_decoder_is_rejected(bad):
    with pytest.raises(ValueError, match="expected an smp decoder"):
        normalise_decoder(bad)


@pytest.mark.parametrize("name", ["resnet50", "se_resnext101_32x4d", "tu-test_resnet", "tu-resnet18"])
def test_known_encoders_pass(name):
    assert check_encoder(name) == name


def test_encoder_case_is_normalised_to_smp_spelling():
    assert check_encoder("ResNet50") == "resnet50"
    assert check_encoder("SE_ResNeXt101_32x4d") == "se_resnext101_32x4d"


@pytest.mark.parametrize("name", ["resnet5", "SE-ResNeXt101", "tu-", "tu-not_a_timm_model", "vgg"])
def test_unknown_encoders_fail(name):
    with pytest.raises(ValueError, match="expected"):
        check_encoder(name)


def test_decoders_are_normalised_in_profiles_and_duplicates_after_normalisation_fail():
    p = Profile.model_validate(tiny_profile_dict(model={"decoders": ["unet", "deeplabv3+"]}))
    assert p.model.decoders == ["Unet", "DeepLabV3Plus"]
    with pytest.raises(ValidationError, match="distinct"):
        Profile.model_validate(tiny_profile_dict(model={"decoders": ["unet", "Unet"]}))


@pytest.mark.parametrize(
    "section, value",
    [("training", {"crop_size": 100}), ("training", {"tile_size": 128, "tile_overlap": 64}),
     ("training", {"lr": 0}), ("task", {"objective": "x", "metrics": ["iou"], "primary_metric": "dice"}),
     ("seeds", [1, 1]), ("execution", {"slurm": {"memory": "lots"}})],
)
def test_semantic_checks(section, value):
    with pytest.raises(ValidationError):
        Profile.model_validate(tiny_profile_dict(**{section: value}))


def test_profile_round_trips_through_its_dict(tmp_path):
    profile = profile_from_dict(tiny_profile_dict())
    again = profile_from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again == profile
    assert profile.to_dict()["dataset"][0]["material"]["class"] == "metals"


def test_committed_json_schema_is_current():
    committed = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert committed == export_schema(), (
        "profiles/schema.json is stale: run `python -m matseg_nb.profiles.export_schema`"
    )


def test_json_schema_accepts_shipped_profiles_and_rejects_unknown_keys(repo_root):
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    for name in ("demo-cpu", "paper"):
        jsonschema.validate(json.loads((repo_root / "profiles" / f"{name}.json").read_text()), schema)
    bad = tiny_profile_dict(training={"bach_size": 4})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
