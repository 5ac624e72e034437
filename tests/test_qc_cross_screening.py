"""Cross-conformal screening over the fold runs of a 5-fold CV: all 10 annotated images calibrate."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from _model_helpers import tiny_smp
from _qc_helpers import blob_image

from matseg_nb.errors import UserError
from matseg_nb.qc.cross_screening import fold_groups, screen_folds, sibling_fold_runs
from matseg_nb.qc.features import ImageItem
from matseg_nb.runs import Run

N, FOLDS = 10, 5


@pytest.fixture(scope="module")
def fold_runs(tmp_path_factory):

    from matseg_nb.models import save_model

    root = tmp_path_factory.mktemp("cvqc")
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / "data" / sub / "train").mkdir(parents=True)
    for i in range(N):
        img, mask = blob_image(rng, 64)
        iio.imwrite(root / "data" / "images" / "train" / f"im{i}.png", img)
        iio.imwrite(root / "data" / "masks" / "train" / f"im{i}.png", mask)
    for sub in ("images", "masks"):  # a fixed test split outside the CV pool (pool "train+val")
        (root / "data" / sub / "test").mkdir(parents=True)
    for i in range(3):
        img, mask = blob_image(rng, 64)
        iio.imwrite(root / "data" / "images" / "test" / f"te{i}.png", img)
        iio.imwrite(root / "data" / "masks" / "test" / f"te{i}.png", mask)
    runs = []
    for k in range(FOLDS):
        run = root / "sweep" / f"tiny__u__s0__f{k}of{FOLDS}__{k:08x}"
        save_model(tiny_smp(seed=k, eval_mode=False), run / "model")
        (run / "job.json").write_text(json.dumps({"dataset": str(root / "data"), "normalization": "percentile",
                                                  "fold": k, "folds": FOLDS}))
        val = [f"im{i}" for i in range(N) if i % FOLDS == k]
        (run / "metrics.json").write_text(json.dumps({"dataset_level": {}, "cv": {
            "fold": k, "folds": FOLDS, "val_groups": val,
            "train_groups": [f"im{i}" for i in range(N) if f"im{i}" not in val]}}))
        Run(run).mark_complete("2026-01-01T00:00:00", 1.0)
        runs.append(run)
    return runs


def _items(rng, stripes: bool = False) -> list[ImageItem]:
    out = []
    for i in range(4):
        img = blob_image(rng, 64)[0].astype(np.float32)
        if stripes:
            img = np.where((np.arange(64)[None, :] // 2) % 2 == 0, 60.0, 190.0) * np.ones((64, 1)) \
                + rng.normal(0, 12, (64, 64))
        out.append(ImageItem(img[None].astype(np.float32), f"new{i}"))
    return out


def test_calibrates_on_every_annotated_image_and_catches_a_shift(fold_runs):
    from matseg_nb.loop import TINY_SETTINGS

    rng = np.random.default_rng(1)
    same = screen_folds(fold_runs, _items(rng), "same", settings=TINY_SETTINGS)
    assert same.n_calibration_images == N and same.batch_verdict != "shifted", same.headline()
    assert "cross-conformal over 5 folds" in same.notes[0]
    shifted = screen_folds(fold_runs, _items(rng, stripes=True), "stripes", settings=TINY_SETTINGS)
    assert shifted.batch_verdict == "shifted" and shifted.n_flagged == 4, shifted.headline()


def test_cli_screens_against_the_sibling_folds(fold_runs, tmp_path):
    import subprocess
    import sys

    assert sibling_fold_runs(fold_runs[2]) == fold_runs
    refit = fold_runs[0].parent / f"tiny__u__s0__refitof{FOLDS}__deadbeef"
    refit.mkdir(exist_ok=True)
    assert sibling_fold_runs(refit) == fold_runs  # the deployed refit screens against the folds it came after
    folder = tmp_path / "new"
    folder.mkdir()
    for i, item in enumerate(_items(np.random.default_rng(2), stripes=True)):
        iio.imwrite(folder / f"s{i}.png", np.clip(item.image[0], 0, 255).astype(np.uint8))
    proc = subprocess.run([sys.executable, "-m", "matseg_nb", "qc", str(fold_runs[0]), "--new", str(folder),
                           "--cross-conformal", "--extractors", "texture", "--tile", "64", "--tiles", "4",
                           "--out", str(tmp_path / "qc")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stdout.split())  # the CLI wraps at 100 columns
    assert "shifted" in said and "10 calibration images in all" in said, proc.stdout
    written = json.loads((tmp_path / "qc" / "qc.json").read_text())
    assert written["cross_conformal"] and len(written["fold_runs"]) == FOLDS


def test_a_run_without_cv_is_one_line(tmp_path, fold_runs):
    (tmp_path / "metrics.json").write_text(json.dumps({"dataset_level": {}}))
    with pytest.raises(UserError, match="expected 'cv' with train_groups and val_groups"):
        fold_groups(tmp_path)
    with pytest.raises(UserError, match="expected the >= 2 fold runs"):
        screen_folds(fold_runs[:1], [])
    with pytest.raises(UserError, match="expected a cross-validation fold run"):
        sibling_fold_runs(tmp_path)
    (fold_runs[4] / "COMPLETE").rename(fold_runs[4] / "COMPLETE.bak")
    try:
        with pytest.raises(UserError, match=r"found none complete for fold\(s\) 4"):
            sibling_fold_runs(fold_runs[0])
    finally:
        (fold_runs[4] / "COMPLETE.bak").rename(fold_runs[4] / "COMPLETE")


def test_suggest_on_a_fold_run_calibrates_on_its_own_held_out_images(fold_runs, tmp_path):
    from matseg_nb.loop import TINY_SETTINGS
    from matseg_nb.suggest import suggest

    folder = tmp_path / "new"
    folder.mkdir()
    for i, item in enumerate(_items(np.random.default_rng(3))):
        iio.imwrite(folder / f"n{i}.png", np.clip(item.image[0], 0, 255).astype(np.uint8))
    res = suggest(fold_runs[1], [str(folder)], 2, tmp_path / "s", settings=TINY_SETTINGS)
    assert res.calibration == "fold 1 held-out" and res.n_heldout == N // FOLDS and len(res.suggestions) == 2


def test_the_qc_loop_screens_a_cv_run_cross_conformally(fold_runs, tmp_path):
    """qc_dataset on a fold run: the test split (outside the pool) and another dataset calibrate on all N."""
    from _qc_helpers import folder_dataset

    from matseg_nb.loop import QCSettings
    from matseg_nb.qc.dataset_qc import DatasetQC, qc_dataset

    other = folder_dataset(tmp_path / "other", n_train=2, n_test=2, seed=5)
    settings = QCSettings(shifts=("noise:strong",), extractors=("texture",), tile_size=48, tiles_per_image=4,
                          other_split="")
    res = qc_dataset(fold_runs[0], [str(other)], tmp_path / "qc", settings)
    assert [r.batch for r in res.screening] == ["split:test", "split:test@noise:strong", str(other)]
    assert all(r.n_calibration_images == N and "cross-conformal" in r.notes[0] for r in res.screening)
    assert DatasetQC.load(tmp_path / "qc") == res


def test_images_in_the_cv_pool_are_not_screened_as_new(fold_runs, tmp_path):
    from matseg_nb.loop import TINY_SETTINGS
    from matseg_nb.qc.cross_screening import screen_loop_batches

    rng = np.random.default_rng(4)
    seen, fresh = _items(rng)[:2], _items(rng)[2:]
    for i, it in enumerate(seen):
        it.meta["group"] = f"im{i}"  # in the pool: trained on by 4 of the 5 fold models
    res = screen_loop_batches(fold_runs, [("split:val", seen), ("split:test", fresh + seen)], tmp_path / "s",
                              TINY_SETTINGS)
    assert [r.batch for r in res] == ["split:test"] and res[0].n_screened == 2
    assert any("2 image(s) of this batch are in the CV pool" in n for n in res[0].notes)
    assert any(n.startswith("split:val not screened") for n in res[0].notes)
    assert json.loads((tmp_path / "s" / "qc.json").read_text())["cross_conformal"]
