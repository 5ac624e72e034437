"""Small-data protocol (issue 27): k-fold CV over ALL annotated images, the Nadeau-Bengio corrected paired
comparison on out-of-fold per-image IoU (level on ties, power on a planted difference), the power sentence
against simulation, an unlearned class named, the deployed fold ensemble, and one-line bad input."""

from __future__ import annotations

import csv
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from _profile_helpers import tiny_profile_dict
from _training_helpers import make_folder

from matseg_nb.compare import compare_sweeps
from matseg_nb.compare.pipeline import ComparisonResult
from matseg_nb.compare.stats import (
    cv_paired_test,
    images_for_power,
    paired_test,
    power_at,
    power_sentence,
    seeds_for_power,
)
from matseg_nb.errors import UserError
from matseg_nb.profiles import compile_jobs, profile_from_dict

DATASET = "lab-folder"
CLASSES = ["matrix", "phase", "crack"]


# ------------------------------------------------------------------ statistics: level, power, power sentence


def _cv_draws(rng, sims: int, n: int, k: int, delta: float, sd: float, fold_sd: float = 0.0):
    """(sims, n) per-image differences and the fold of each image: image noise plus a fold effect shared by
    the images one fold model scored, equicorrelated 1/k between folds (shared training images)."""
    fold_of = np.arange(n) % k
    rho = 1.0 / k
    cov = fold_sd**2 * ((1 - rho) * np.eye(k) + rho)
    fold_eff = rng.multivariate_normal(np.zeros(k), cov, size=sims) if fold_sd else np.zeros((sims, k))
    return delta + fold_eff[:, fold_of] + rng.normal(0, sd, (sims, n)), fold_of


@pytest.mark.parametrize(("n", "k"), [(5, 5), (18, 5), (30, 5)])
def test_cv_paired_test_holds_its_level_on_ties(n, k):
    """Two tied architectures (mean difference 0): rejections at alpha = 0.05 stay <= 5% + 1.5 points."""
    rng = np.random.default_rng(n)
    draws, fold_of = _cv_draws(rng, 3000, n, k, 0.0, 0.05, fold_sd=0.03)
    results = [cv_paired_test(d, fold_of) for d in draws]
    rate = np.mean([r.p_value < 0.05 for r in results])
    assert rate <= 0.065
    # the 95% interval of the paired difference is the same test: it covers 0 exactly when p >= 0.05
    assert all((r.ci_lo <= 0 <= r.ci_hi) == (r.p_value >= 0.05) for r in results)


def test_cv_paired_test_has_power_against_a_planted_difference():
    """0.10 IoU apart with per-image SD 0.05 over 18 images in 5 folds: found in >= 90% of draws."""
    rng = np.random.default_rng(7)
    draws, fold_of = _cv_draws(rng, 1000, 18, 5, 0.10, 0.05, fold_sd=0.01)
    results = [cv_paired_test(d, fold_of) for d in draws]
    assert np.mean([r.verdict == "significant" and r.mean_diff > 0 for r in results]) >= 0.9
    assert results[0].n == 18 and "5 folds" in results[0].method  # the answer rests on all 18 images


@pytest.mark.parametrize(("delta", "sd", "k"), [(0.05, 0.06, 5), (0.03, 0.05, 5), (0.08, 0.1, 10)])
def test_power_statement_agrees_with_simulation_cv(delta, sd, k):
    """At the number of images the sentence names, the simulated corrected test reaches 80% power within
    5 points (tolerance stated in docs/compare.md)."""
    need = images_for_power(delta, sd, folds=k)
    assert need is not None and need > k
    rng = np.random.default_rng(need)
    draws, fold_of = _cv_draws(rng, 3000, need, k, delta, sd)
    sim = np.mean([cv_paired_test(d, fold_of).p_value < 0.05 for d in draws])
    assert abs(sim - power_at(need, delta, sd, folds=k)) <= 0.05
    assert abs(sim - 0.8) <= 0.06


def test_power_statement_agrees_with_simulation_holdout():
    """Holdout (exact sign-flip test): the t-based power at the named n matches simulation within 6 points."""
    need = images_for_power(0.1, 0.08)
    assert need == 8
    rng = np.random.default_rng(3)
    sim = np.mean([paired_test(rng.normal(0.1, 0.08, need), np.zeros(need)).verdict == "significant"
                   for _ in range(1000)])
    assert abs(sim - power_at(need, 0.1, 0.08)) <= 0.06


def test_power_sentence_says_what_would_decide():
    text = power_sentence("resnet18+Unet", "resnet18+DeepLabV3Plus", 0.10, 0.08, 4)
    assert text.startswith("resnet18+Unet vs resnet18+DeepLabV3Plus: 0.100 IoU apart")
    assert "about 4 more annotated images would decide at 80% power (n = 8)" in text
    assert "practically tied" in power_sentence("a", "b", 0.0005, 0.1, 10)
    seeds, why = seeds_for_power(np.full((1, 6), 0.1))
    assert seeds is None and "1 seed" in why
    # image-to-image spread dominates: no number of seeds decides at 3 images
    rng = np.random.default_rng(0)
    image_effect = rng.normal(0.02, 0.2, 3)
    seeds, why = seeds_for_power(image_effect + rng.normal(0, 0.001, (3, 3)))
    assert seeds is None and "between images" in why


# ------------------------------------------------------------------ synthetic CV-over-all-images sweeps


def _write_rows(path: Path, scores: dict[str, dict[str, float]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "class_id", "class_name", "iou", "dice", "gt_fraction"])
        for image, per_class in scores.items():
            for cid, name in enumerate(CLASSES):
                v = per_class.get(name, 0.99)
                w.writerow([image, cid, name, v, 2 * v / (1 + v), 0.002 if name == "crack" else 0.4])


def write_all_cv_job(sweep: Path, decoder: str, seed: int, fold: int, folds: int,
                     oof: dict[str, dict[str, float]]) -> str:
    """A complete CV job of pool 'all': out-of-fold rows only (per_image.csv has no test image)."""
    jid = f"{DATASET}__resnet18__{decoder}__s{seed}__f{fold}of{folds}__{zlib.crc32(f'{decoder}{seed}{fold}'.encode()):08x}"
    d = sweep / jid
    d.mkdir(parents=True)
    (d / "job.json").write_text(json.dumps({"job_id": jid, "dataset": DATASET, "encoder": "resnet18",
                                            "decoder": decoder, "seed": seed, "encoder_weights": "none",
                                            "fold": fold, "folds": folds, "pool": "all"}))
    _write_rows(d / "per_image.csv", {})
    _write_rows(d / "oof_per_image.csv", oof)
    fg = float(np.mean([np.mean([v["phase"], v["crack"]]) for v in oof.values()]))
    metrics = {"dataset_level": {"iou": None}, "per_image_mean": {}, "per_class": {}, "epochs_run": 3,
               "best_epoch": 2, "train_time_s": 1.0, "latency_s_per_image": 0.01, "n_params": 10,
               "encoder_weights": "none", "best_val": {"val_iou": 0.99},
               "cv": {"fold": fold, "folds": folds, "pool": "all"},
               "oof": {"dataset_level": {"iou": fg}, "per_image_mean": {"iou": fg}, "n_images": len(oof)}}
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "COMPLETE").write_text(json.dumps({"job_id": jid, "finished_at": "2026-01-01T00:00:00Z"}))
    return jid


def all_cv_sweep(root: Path, n_images: int, folds: int, unet: float, dlv3p: float, seeds=(0,),
                 sd: float = 0.03) -> Path:
    """Every image out of fold once per seed; 'crack' is never learned (IoU 0) by either architecture.
    Image difficulty is shared by both architectures (paired)."""
    rng = np.random.default_rng(n_images)
    hardness = rng.normal(0, 0.1, n_images)
    sweep = root / f"cv{n_images}"
    for decoder, level in (("Unet", unet), ("DeepLabV3Plus", dlv3p)):
        for seed in seeds:
            for fold in range(folds):
                oof = {f"img{i:02d}": {"phase": float(np.clip(level + hardness[i] + rng.normal(0, sd), 0, 1)),
                                       "crack": 0.0}
                       for i in range(n_images) if i % folds == fold}
                write_all_cv_job(sweep, decoder, seed, fold, folds, oof)
    return sweep


def test_cv_over_all_images_ranks_on_out_of_fold_iou_of_all_n(tmp_path):
    sweep = all_cv_sweep(tmp_path, 18, 5, unet=0.80, dlv3p=0.60)
    compare_sweeps([sweep], tmp_path / "out")
    row = ComparisonResult.load(tmp_path / "out").rows[0]
    assert row["arch"] == "resnet18+Unet" and row["winner"] == "resnet18+Unet"
    assert row["n_images"] == 18 and "Nadeau-Bengio" in row["test"]
    assert row["scored_on"].startswith("out-of-fold (18 images") and not row["power"]


def test_five_image_folder_answers_rest_on_five_and_say_what_would_decide(tmp_path):
    """5 images in 5 folds, two close architectures: the answer says n = 5 (not 1) and how many more images
    would decide; the terminal summary fits 100 columns."""
    sweep = all_cv_sweep(tmp_path, 5, 5, unet=0.72, dlv3p=0.70)
    compare_sweeps([sweep], tmp_path / "out")
    result = ComparisonResult.load(tmp_path / "out")
    row = result.rows[0]
    assert row["n_images"] == 5 and row["winner"] == "no significant difference between the top 2"
    assert "n = 5)" in row["power"] and "more annotated images would decide at 80% power" in row["power"]
    assert "What would decide (lab-folder)" in result.summary()
    assert all(len(line) <= 100 for line in result.terminal(100).splitlines())


def test_unlearned_class_is_named(tmp_path):
    sweep = all_cv_sweep(tmp_path, 10, 5, unet=0.80, dlv3p=0.60)
    paths = compare_sweeps([sweep], tmp_path / "out")
    result = ComparisonResult.load(tmp_path / "out")
    assert [u["class_name"] for u in result.unlearned] == ["crack"]
    text = result.unlearned[0]["text"]
    assert text.startswith("crack: not learned by any model (IoU <= 0.01; best 0.000 of 2 models")
    assert "Would help: annotate more images that contain crack" in text and "crack" in result.summary()
    assert "phase" not in " ".join(u["class_name"] for u in result.unlearned)
    assert "crack: not learned" in paths["best_table_csv"].read_text()


def test_compare_cli_prints_at_most_100_columns_and_the_table_paths(tmp_path, capsys):
    from matseg_nb.cli import main

    sweep = all_cv_sweep(tmp_path, 5, 5, unet=0.72, dlv3p=0.70)
    assert main(["compare", str(sweep), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines() if not Path(line.strip()).exists()) <= 100  # a path is never split
    assert str(tmp_path / "out" / "best_table.md") in out and "what would decide" in out


# ------------------------------------------------------------------ deployment: the fold ensemble


def test_deployed_runs_are_the_fold_ensemble_of_the_best_architecture(tmp_path):
    from matseg_nb.runs import Sweep

    sweep = all_cv_sweep(tmp_path, 10, 5, unet=0.80, dlv3p=0.60, seeds=(0, 1))
    runs = Sweep(sweep).deployed_runs(DATASET)
    assert len(runs) == 5 and all("__Unet__" in r.job_id for r in runs)
    assert len({r.job_id.split("__")[3] for r in runs}) == 1  # the k folds of one seed
    assert [r.job_id for r in Sweep(sweep).deployed_runs(DATASET, "resnet18+DeepLabV3Plus")][0].count("DeepLabV3Plus")


def test_fold_ensemble_averages_probabilities():
    from matseg_nb.models.ensemble import FoldEnsemble

    class Const(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.tensor(logits).view(1, -1, 1, 1)

        def forward(self, x):
            return self.logits.expand(x.shape[0], -1, x.shape[2], x.shape[3])

    ens = FoldEnsemble([Const([2.0, 0.0]), Const([0.0, 4.0])])
    probs = ens(torch.zeros(1, 1, 2, 2)).softmax(1)[0, :, 0, 0]
    expect = (torch.tensor([2.0, 0.0]).softmax(0) + torch.tensor([0.0, 4.0]).softmax(0)) / 2
    assert torch.allclose(probs, expect, atol=1e-6)


# ------------------------------------------------------------------ profiles, init, bad input


def test_pool_all_cv_split_scores_every_annotated_image_once():
    from matseg_nb.data import open_dataset
    from matseg_nb.training.runner import cv_split

    ds = open_dataset("nasa-super1")
    seen = []
    for fold in range(5):
        train, val, info = cv_split(ds, fold, 5, "none", "all")
        assert info["pool"] == "all" and not set(info["train_groups"]) & set(info["val_groups"])
        seen += val.names
    assert sorted(seen) == sorted(s.name for s in ds.samples())  # all 18, the test split included
    assert len(seen) == 18


def test_pool_changes_cv_ids_and_defaults_to_all():
    cv_all = compile_jobs(profile_from_dict(tiny_profile_dict(evaluation={"folds": 3})))
    cv_tv = compile_jobs(profile_from_dict(tiny_profile_dict(evaluation={"folds": 3, "pool": "train+val"})))
    assert {j.pool for j in cv_all} == {"all"} and {j.pool for j in cv_tv} == {"train+val"}
    assert not {j.job_id for j in cv_all} & {j.job_id for j in cv_tv}


def test_init_uses_cv_over_all_images_for_a_small_folder(tmp_path):
    from matseg_nb.commands.init import build_profile

    folder = make_folder(tmp_path / "lab", {"train": 3, "val": 1, "test": 1})
    prof = build_profile(folder, folder / "profile.json", modality="SEM", material_class="other", material="",
                         task=None, gpu=False)
    assert prof["evaluation"] == {"folds": 5, "pool": "all"}
    holdout = build_profile(folder, folder / "profile.json", modality="SEM", material_class="other",
                            material="", task=None, gpu=False, holdout=True)
    assert "evaluation" not in holdout


def test_fewer_images_than_folds_is_one_line(tmp_path):
    folder = make_folder(tmp_path / "three", {"train": 2, "test": 1})
    with pytest.raises(UserError) as err:
        compile_jobs(profile_from_dict(tiny_profile_dict(str(folder), evaluation={"folds": 5})))
    text = str(err.value)
    assert "\n" not in text and text.startswith("evaluation.folds: expected 2 to 3 folds")
    assert "among 3 images), found 5 in all annotated images" in text


def test_a_group_holding_all_images_is_one_line(tmp_path):
    import imageio.v3 as iio

    for i in range(4):
        for sub, arr in (("images", np.full((32, 32), 100 + i, np.uint8)), ("masks", np.eye(32, dtype=np.uint8))):
            (tmp_path / "one" / sub).mkdir(parents=True, exist_ok=True)
            iio.imwrite(tmp_path / "one" / sub / f"sampleA_tile{i}.png", arr)
    with pytest.raises(UserError) as err:
        compile_jobs(profile_from_dict(tiny_profile_dict(str(tmp_path / "one"), evaluation={"folds": 2})))
    text = str(err.value)
    assert "\n" not in text and "expected at least 2 image groups for cross-validation, found 1" in text
    assert "group 'sampleA' holds all 4 images" in text


def test_report_answer_says_what_would_decide_and_the_protocol():
    from matseg_nb.report.answer import DatasetAnswer, _comparison

    row = {"arch": "resnet18+Unet", "runner_up": "resnet18+DeepLabV3Plus", "iou": "0.7", "runner_up_iou": "0.69",
           "verdict": "not significant", "p_value": "0.4", "n_images": "5",
           "scored_on": "out-of-fold (5 images, 5-fold CV)", "power": "resnet18+Unet vs ...: about 9 more",
           "unlearned": "crack: not learned by any model (IoU <= 0.01)."}
    cv = DatasetAnswer("lab")
    _comparison(cv, row)
    text = cv.summary()
    assert "(out-of-fold IoU 0.7" in text and "What would decide: resnet18+Unet vs" in text
    assert "crack: not learned" in text and "Holdout protocol" not in text
    assert cv.evidence_detail.startswith("paired test on 5 out-of-fold images")
    holdout = DatasetAnswer("demo")
    _comparison(holdout, {**row, "scored_on": "test", "power": "", "unlearned": ""})
    assert "Holdout protocol: scored on the fixed test split only" in holdout.summary()


def test_real_refit_trains_on_every_image_and_is_the_deployed_model(tmp_path):
    """A real (tiny) 2-fold CV over all 5 images plus its refit: the refit trains on all 5, writes no
    out-of-fold scores and no test scores (nothing is held out), compare leaves it out, and deployment
    uses it."""
    from _training_helpers import tiny_job

    from matseg_nb.compare.runs import load_runs
    from matseg_nb.run_marker import write_marker
    from matseg_nb.runs import Sweep
    from matseg_nb.training.runner import run_job
    from matseg_nb.training.spec import as_job

    folder = make_folder(tmp_path / "data", {"train": 3, "val": 1, "test": 1}, hw=(64, 64))
    sweep = tmp_path / "sweep"
    ids = {}
    for fold in (0, 1, "refit"):
        cv = {"refit": True} if fold == "refit" else {"fold": fold}
        job = as_job({**tiny_job(folder, "Unet", max_epochs=1, steps_per_epoch=1), "folds": 2, "pool": "all", **cv})
        metrics = run_job(job, sweep / job.job_id, threads=1, echo=None)
        write_marker(sweep / job.job_id, job.job_id, "2026-01-01T00:00:00+00:00", 1.0)
        ids[fold] = job.job_id
    assert "__refitof2__" in ids["refit"] and metrics["cv"]["refit"] and metrics["cv"]["n_train"] == 5
    assert not (sweep / ids["refit"] / "oof_per_image.csv").exists()
    rs = load_runs([sweep])
    assert ids["refit"] not in set(rs.runs["job_id"]) and len(rs.oof) == 5  # all 5 images out of fold once
    assert [r.job_id for r in Sweep(sweep).deployed_runs()] == [ids["refit"]]
    assert Sweep(sweep).best_run().job_id != ids["refit"]  # its validation images were training images


def test_an_unfinished_refit_is_a_note_not_a_cell(tmp_path):
    sweep = all_cv_sweep(tmp_path, 10, 5, unet=0.80, dlv3p=0.60)
    broken = sweep / f"{DATASET}__resnet18__Unet__s0__refitof5__00000000"
    broken.mkdir()
    (broken / "error.json").write_text(json.dumps({"type": "RuntimeError", "message": "out of memory"}))
    compare_sweeps([sweep], tmp_path / "out")
    result = ComparisonResult.load(tmp_path / "out")
    assert len(result.rows) == 1 and result.rows[0]["arch"] == "resnet18+Unet"
    assert any(n.startswith(f"refit {broken.name} is failed") and "fold ensemble" in n for n in result.notes)
