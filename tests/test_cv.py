"""k-fold cross-validation over image groups (``evaluation.folds``): folds keep groups apart, fold job ids
are deterministic, bad input is one line naming the field, a sweep resumes mid-CV, and a real (tiny) CV
run writes out-of-fold scores for every pool image."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _profile_helpers import tiny_profile_dict, write_profile
from _sweep_helpers import CONTROL_ENV, counted, make_fake_notebook, write_control
from _training_helpers import make_folder, tiny_job

from matseg_nb.cli import main
from matseg_nb.data.splits import assign_folds
from matseg_nb.errors import UserError
from matseg_nb.profiles import compile_jobs, load_profile, profile_from_dict


def test_assign_folds_keeps_groups_together_and_is_deterministic():
    groups = ["spot1"] * 4 + ["spot3"] * 2 + ["spot4"] * 2 + ["spot5"] * 2 + ["spot6"] * 2 + ["spot7"] * 2
    folds = assign_folds(groups, 3)
    assert sorted(folds) == sorted(set(groups)) and set(folds.values()) == {0, 1, 2}
    assert assign_folds(list(reversed(groups)), 3) == folds  # input order does not matter
    sizes = pd.Series([folds[g] for g in groups]).value_counts()
    assert sizes.max() - sizes.min() <= 2  # balanced by image count (largest group first)


def test_cv_split_on_nasa_super1_groups_apart():
    from matseg_nb.data import open_dataset
    from matseg_nb.training.runner import cv_split

    ds = open_dataset("nasa-super1")
    pool = {s.name: s.group for s in ds.samples() if s.split in ("train", "val")}
    seen: list[str] = []
    for fold in range(3):
        train, val, info = cv_split(ds, fold, 3, "none")
        assert not set(info["train_groups"]) & set(info["val_groups"])  # no spot on both sides
        assert {pool[n] for n in val.names} == set(info["val_groups"])
        assert set(train.names) | set(val.names) == set(pool) and not set(train.names) & set(val.names)
        assert not {s.name for s in ds.samples("test")} & (set(train.names) | set(val.names))  # test only scored
        seen += val.names
    assert sorted(seen) == sorted(pool)  # every train+val image is out-of-fold exactly once


def test_fold_job_ids_are_deterministic_and_holdout_ids_unchanged():
    cv = compile_jobs(profile_from_dict(tiny_profile_dict(evaluation={"folds": 3})))
    again = compile_jobs(profile_from_dict(tiny_profile_dict(evaluation={"folds": 3})))
    assert [j.job_id for j in cv] == [j.job_id for j in again]
    assert len(cv) == 2 * 3 and [j.fold for j in cv[:3]] == [0, 1, 2] and not any(j.refit for j in cv)
    assert all(f"__f{j.fold}of3__" in j.job_id for j in cv) and len({j.job_id for j in cv}) == 6
    refit = compile_jobs(profile_from_dict(tiny_profile_dict(evaluation={"folds": 3, "refit": True})))
    assert [j.refit for j in refit[:4]] == [False, False, False, True] and "__refitof3__" in refit[3].job_id
    assert [j.job_id for j in refit if not j.refit] == [j.job_id for j in cv]  # the folds are the same jobs
    holdout = compile_jobs(profile_from_dict(tiny_profile_dict()))
    explicit = compile_jobs(profile_from_dict(tiny_profile_dict(evaluation={"folds": None})))
    assert [j.job_id for j in holdout] == [j.job_id for j in explicit]  # no CV: ids as before
    assert profile_from_dict(tiny_profile_dict(evaluation={"folds": 3})).grid_size() == 6
    assert profile_from_dict(tiny_profile_dict(evaluation={"folds": 3, "refit": True})).grid_size() == 8
    restored = type(cv[1]).from_dict(json.loads(json.dumps(cv[1].to_dict())))
    assert restored == cv[1]  # what papermill passes to the notebook


def _one_group_folder(root: Path) -> Path:
    make_folder(root, {"train": 2, "val": 1, "test": 1}, hw=(64, 64))
    for sub in ("images", "masks"):
        for split, old, new in (("train", "train0", "a_tile1"), ("train", "train1", "a_tile2"),
                                ("val", "val0", "a_tile3")):
            (root / sub / split / f"{old}.png").rename(root / sub / split / f"{new}.png")
    return root


def test_bad_folds_are_one_line_errors_naming_the_field(tmp_path):
    with pytest.raises(UserError) as err:  # nasa-super1 has 6 spots in train+val
        compile_jobs(profile_from_dict(tiny_profile_dict(evaluation={"folds": 7, "pool": "train+val"})))
    text = str(err.value)
    assert text.startswith("evaluation.folds: expected 2 to 6 folds") and "found 7" in text and "\n" not in text
    with pytest.raises(UserError, match=r"^evaluation\.folds: expected 2 to 7 folds .* found 8 in all annotated"):
        compile_jobs(profile_from_dict(tiny_profile_dict(evaluation={"folds": 8})))  # 7 spots in all 18 images
    folder = _one_group_folder(tmp_path / "one")
    with pytest.raises(UserError, match=r"^evaluation\.folds: expected at least 2 image groups .* found 1"):
        compile_jobs(profile_from_dict(tiny_profile_dict(str(folder), evaluation={"folds": 2, "pool": "train+val"})))
    with pytest.raises(UserError, match=r"evaluation\.folds"):
        profile_from_dict(tiny_profile_dict(evaluation={"folds": 1}))
    path = write_profile(tmp_path, tiny_profile_dict(evaluation={"folds": 9}))
    assert main(["validate", str(path)]) != 0  # matseg validate refuses it (no traceback)


@pytest.mark.slow
def test_sweep_resumes_mid_cv(tmp_path, monkeypatch):
    """Fold 1 fails, folds 0 and 2 complete; the rerun starts only fold 1."""
    nb = make_fake_notebook(tmp_path / "fake.ipynb")
    profile = write_profile(tmp_path, tiny_profile_dict(model={"decoders": ["Unet"]}, evaluation={"folds": 3}))
    ids = [j.job_id for j in compile_jobs(load_profile(profile))]
    out, counter = tmp_path / "sweep", tmp_path / "counter.txt"
    monkeypatch.setenv(CONTROL_ENV, str(write_control(tmp_path / "c.json", counter,
                                                      jobs={"__f1of3__": {"raise": "boom"}})))
    assert main(["sweep", str(profile), "--out", str(out), "--notebook", str(nb), "--no-progress"]) == 1
    assert [(out / i / "COMPLETE").exists() for i in ids] == [True, False, True]
    monkeypatch.setenv(CONTROL_ENV, str(write_control(tmp_path / "c2.json", tmp_path / "counter2.txt")))
    assert main(["sweep", str(profile), "--out", str(out), "--notebook", str(nb), "--no-progress"]) == 0
    assert counted(tmp_path / "counter2.txt") == [ids[1]]
    assert all((out / i / "COMPLETE").exists() for i in ids)
    assert len(counted(counter)) == 3


@pytest.mark.slow
def test_real_cv_run_writes_out_of_fold_scores(tmp_path):
    """Two folds of a 4-group folder (tiny encoder, 64 px, 1 epoch x 1 step): every train+val image gets
    exactly one out-of-fold score, the test split is scored by both fold models, and compare says so."""
    from matseg_nb.compare import compare_sweeps
    from matseg_nb.compare.pipeline import ComparisonResult
    from matseg_nb.run_marker import write_marker
    from matseg_nb.training.runner import run_job
    from matseg_nb.training.spec import as_job

    folder = make_folder(tmp_path / "data", {"train": 3, "val": 1, "test": 2}, hw=(64, 64))
    sweep = tmp_path / "sweep"
    pool = {"train0", "train1", "train2", "val0"}
    oof_images = []
    for decoder in ("Unet", "FPN"):
        for fold in (0, 1):
            job = as_job({**tiny_job(folder, decoder, max_epochs=1, steps_per_epoch=1), "fold": fold, "folds": 2})
            metrics = run_job(job, sweep / job.job_id, threads=1, echo=None)
            write_marker(sweep / job.job_id, job.job_id, "2026-01-01T00:00:00+00:00", 1.0)
            assert metrics["cv"]["fold"] == fold and metrics["oof"]["n_images"] == len(metrics["cv"]["val_groups"])
            assert not set(metrics["cv"]["train_groups"]) & set(metrics["cv"]["val_groups"])
            oof = pd.read_csv(sweep / job.job_id / "oof_per_image.csv")
            test = pd.read_csv(sweep / job.job_id / "per_image.csv")
            assert {"wiou", "wiou_class_freq"} <= set(test.columns) and test["wiou"].notna().any()
            assert set(test["image"]) == {"test0", "test1"}
            if decoder == "Unet":
                oof_images += sorted(set(oof["image"]))
    assert sorted(oof_images) == sorted(pool)
    compare_sweeps([sweep], tmp_path / "cmp")
    result = ComparisonResult.load(tmp_path / "cmp")
    assert result.rows[0]["selected_on"] == "out-of-fold validation (2-fold CV)"
    assert result.rows[0]["val_interval"] == "insufficient evidence (n = 2)"
    assert result.rows[0]["runs"] == "2 folds x 1 seed"
