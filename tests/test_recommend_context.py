"""Context descriptors and the architecture recommendation on contrasting synthetic datasets."""

from __future__ import annotations

import json

import pytest
from _compare_helpers import crack_folder, disc_folder, write_job, write_summary

from matseg_nb.cli import main
from matseg_nb.compare import recommend
from matseg_nb.compare.descriptors import Descriptors, compute_descriptors, estimate_difficulty
from matseg_nb.compare.recommend import paper_evidence


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    return {"discs": disc_folder(root / "discs"), "cracks": crack_folder(root / "cracks"),
            "discs_nomask": disc_folder(root / "discs_nomask", masks=False),
            "cracks_nomask": crack_folder(root / "cracks_nomask", masks=False)}


def test_descriptors_separate_the_two_contexts(folders):
    discs, cracks = compute_descriptors(folders["discs"]), compute_descriptors(folders["cracks"])
    assert discs.has_masks and cracks.has_masks and not discs.is_volume and discs.bit_depth == 8
    assert discs.separability > 0.9 and cracks.separability < 0.3
    assert discs.rms_contrast > 3 * cracks.rms_contrast and discs.michelson > cracks.michelson
    assert 0.05 < discs.foreground_fraction < 0.4 and cracks.minority_fraction < 0.05
    assert discs.feature_width_px > 8 and cracks.feature_width_px < 4
    assert 15 < discs.feature_diameter_median_px < 35
    assert cracks.boundary_density > 0 and discs.boundary_density > 0
    assert estimate_difficulty(discs)[0] == "Easy" and estimate_difficulty(cracks)[0] == "Very Hard"


def test_estimate_difficulty_rule():
    hard = Descriptors(name="x", separability=0.1, minority_fraction=0.01, feature_width_px=2.0, is_volume=True)
    assert estimate_difficulty(hard)[0] == "Very Hard"
    easy = Descriptors(name="y", separability=0.95, minority_fraction=0.3, feature_width_px=20.0)
    level, reasons = estimate_difficulty(easy)
    assert level == "Easy" and len(reasons) == 4
    unknown = Descriptors(name="z", separability=0.2)  # unknown flags do not count
    assert estimate_difficulty(unknown)[0] == "Moderate"


def test_top_decoder_changes_with_context(folders):
    a = recommend(folders["discs"])
    b = recommend(folders["cracks"])
    assert a.ranked[0].decoder == "Unet" and b.ranked[0].decoder == "DeepLabV3Plus"
    assert a.difficulty == "Easy" and b.difficulty == "Very Hard"
    for rec in (a, b):
        assert len(rec.ranked) == 6 and all(c.reasons for c in rec.ranked)
        assert [c.score for c in rec.ranked] == sorted((c.score for c in rec.ranked), reverse=True)
        assert rec.confidence in ("high", "medium", "low") and "similarity" in rec.confidence_reason
        assert rec.evidence and {"dataset", "similarity", "iou"} <= set(rec.evidence[0])
    assert any("Contact Corrosion" in r for r in a.ranked[0].reasons)
    assert any("Al-Mg-Si SC" in r for r in b.ranked[0].reasons)
    json.dumps(b.to_dict(), default=str)


def test_image_folder_without_masks_works(folders):
    rec = recommend(folders["discs_nomask"])
    d = rec.descriptors
    assert d["has_masks"] is False and d["structure_source"] == "otsu"
    assert d["foreground_fraction"] is None and d["minority_fraction"] is None
    assert d["feature_width_px"] > 8 and rec.ranked[0].decoder == "Unet"
    assert any("no masks" in n for n in rec.notes)
    cr = compute_descriptors(folders["cracks_nomask"])
    assert cr.low_contrast and cr.heavy_imbalance is None


def test_local_sweep_on_the_same_dataset_is_used(folders, tmp_path):
    sweep = tmp_path / "sweep"
    ref = str(folders["discs"])
    write_job(sweep, ref, "resnet18", "DeepLabV3Plus", 0, [0.9, 0.92, 0.88])
    write_job(sweep, ref, "resnet18", "Unet", 0, [0.7, 0.72, 0.71])
    write_summary(sweep)
    rec = recommend(folders["discs"], sweep_dirs=[sweep], use_paper=False)
    assert [c.arch for c in rec.ranked] == ["resnet18+DeepLabV3Plus", "resnet18+Unet"]
    assert any("the same dataset" in r for r in rec.ranked[0].reasons)
    both = recommend(folders["discs"], sweep_dirs=[sweep])
    assert {e["source"] for e in both.evidence} >= {"paper Table 3", "local sweep (1 seed(s))"}


def test_paper_prior_is_packaged_with_citation():
    table = paper_evidence()
    assert len(table) == 42 and set(table["decoder"]) == {"Unet", "DeepLabV3", "DeepLabV3Plus"}
    assert table["volume"].notna().all()
    from importlib import resources

    text = (resources.files("matseg_nb") / "resources" / "paper_table3.CITATION.txt").read_text()
    assert "Context determines optimal architecture in materials segmentation" in text


def test_cli_recommend_json_and_bad_input(folders, capsys, tmp_path):
    assert main(["recommend", str(folders["cracks"]), "--json", "--top", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["ranked"]) == 3 and out["ranked"][0]["decoder"] == "DeepLabV3Plus"
    assert main(["recommend", str(folders["discs"]), "--sweep", str(tmp_path / "nope")]) == 2
    assert main(["recommend", str(tmp_path)]) == 2  # empty folder: no images
    assert "expected image files" in capsys.readouterr().err


def test_single_pair_local_dataset_carries_no_ranking_information(folders, tmp_path):
    sweep = tmp_path / "one"
    write_job(sweep, str(folders["discs"]), "tiny", "DeepLabV3", 0, [0.01, 0.02])
    rec = recommend(folders["discs"], sweep_dirs=[sweep])
    assert all(c.encoder != "tiny" for c in rec.ranked)
    assert any("only one complete pair" in n for n in rec.notes)


@pytest.mark.parametrize(("name", "decoder"), [("al-mg-si-sc", "DeepLabV3Plus"), ("contact-corrosion", "Unet")])
def test_paper_manifest_without_files_uses_its_own_table3_rows(name, decoder):
    from matseg_nb.data import list_manifests

    if name not in list_manifests():
        pytest.skip(f"manifest {name} not in this checkout")
    rec = recommend(name)
    assert rec.difficulty_source == "declared in the manifest"
    assert rec.ranked[0].decoder == decoder
    assert any("the same dataset" in r for r in rec.ranked[0].reasons)


def test_inconsistent_table3_rows_are_flagged_and_down_weighted():
    table = paper_evidence()
    bad = table[table["dice"] < table["iou"]]
    assert len(bad) > 0 and (bad["reliability"] < 1).all() and bad["flag"].str.contains("Dice < IoU").all()
    good = table[table["dice"] >= table["iou"]]
    assert (good["reliability"] == 1).all() and (good["flag"] == "").all()


def test_single_run_evidence_caps_confidence_and_says_what_it_rests_on(folders):
    rec = recommend(folders["discs"])
    assert rec.confidence != "high" and "single training run" in rec.confidence_reason
    assert rec.notes[0].startswith("rests on: ") and "single-run" in rec.notes[0]
    assert any("Dice < IoU" in n for n in rec.notes)
    assert any(r.get("flag") for r in rec.evidence) or all("flag" in r for r in rec.evidence)
