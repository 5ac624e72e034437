"""A k-fold CV deployment's measurement error is out of fold: every pooled image is measured with the fold
model that did not train on it (never the fold ensemble or the refit on its own training images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _segment_helpers import blob_dataset, tiny_model_run
from PIL import Image

from matseg_nb.cli import main
from matseg_nb.segment import SegmentFolder


def cv_sweep(root: Path, folds: int = 2, refit: bool = False) -> tuple[Path, Path]:
    """(sweep, dataset) of a complete pool-'all' CV of one tiny architecture: ``folds`` fold runs, each with
    its own random weights and its held-out groups in job.json ``cv`` (as ``training.runner`` writes them)."""
    from matseg_nb.data import open_dataset
    from matseg_nb.data.splits import assign_folds, cv_pool
    from matseg_nb.runs import Run

    data = blob_dataset(root / "data", {"train": range(3), "val": range(10, 12), "test": range(20, 22)},
                        size=64, sigma=4)
    pool = cv_pool(open_dataset(str(data)).samples(), "all")
    fold_of = assign_folds([s.group for s in pool], folds)
    sweep = root / "sweep"
    jobs = [(f, False) for f in range(folds)] + ([(None, True)] if refit else [])
    for fold, is_refit in jobs:
        held = sorted(g for g, f in fold_of.items() if f == fold)
        cv = {"folds": folds, "pool": "all", **({"refit": True, "val_groups": []} if is_refit else
                                                {"fold": fold, "val_groups": held})}
        job_id = f"blobs__tu-test_resnet__Unet__s0__{'refitof' if is_refit else 'f'}{fold or 0}of{folds}"
        run = tiny_model_run(sweep, job_id, str(data), torch_seed=100 + (fold if fold is not None else 99),
                             extra_job={"folds": folds, "fold": fold, "pool": "all", "refit": is_refit, "cv": cv})
        if not is_refit:
            rows = [{"image": s.image.stem, "class_id": 1, "class_name": "blob", "iou": 0.5, "dice": 0.6}
                    for s in pool if s.group in held]
            Run(run).write_per_image(rows, ["image", "class_id", "class_name", "iou", "dice"], oof=True)
    return sweep, data


def _area_diff(run: Path, image: Path, mask: Path) -> float:
    """blob area fraction (%) of ``run``'s tiled prediction of ``image`` minus the ground truth's."""
    from matseg_nb.data import read_image
    from matseg_nb.segment.model import from_run
    from matseg_nb.segment.pipeline import SegmentSettings, predict_mask

    pred, _, _ = predict_mask(from_run(run), read_image(image), SegmentSettings(tile=64, overlap=16))
    truth = np.asarray(Image.open(mask))
    return 100.0 * (float((pred == 1).mean()) - float((truth == 1).mean()))


def test_fold_ensemble_bias_is_out_of_fold_per_image(tmp_path, capsys):
    sweep, data = cv_sweep(tmp_path)
    new = data / "images" / "test" / "b20.png"
    out = tmp_path / "out"
    assert main(["segment", str(sweep), str(new), "--out", str(out), "--no-qc", "--tile", "64",
                 "--overlap", "16"]) == 0
    folder = SegmentFolder(out)
    info = folder.bias_info()
    assert info["method"] == "out-of-fold" and info["n_images"] == 7  # every annotated image, once
    assert folder.model_info()["cv_runs"] and len(folder.model_info()["cv_runs"]) == 2
    (row,) = [b for b in folder.bias() if b.key == "blob/area_fraction"]
    assert row.n == 7 and row.unit == "pp"
    runs = {Path(p).name: Path(p) for p in folder.model_info()["cv_runs"]}
    differs = 0
    for name, fold_job in info["fold_of"].items():
        image = next(data.glob(f"images/*/{name}.png"))
        mask = data / "masks" / image.parent.name / image.name
        assert abs(row.per_image[name] - _area_diff(runs[fold_job], image, mask)) < 1e-9  # its held-out fold
        other = next(r for j, r in runs.items() if j != fold_job)
        differs += abs(row.per_image[name] - _area_diff(other, image, mask)) > 1e-6
    assert differs > 0  # the other fold's model measures differently: the pairing is what is tested
    text = capsys.readouterr().out
    assert "out of" in text and "fold ensemble" in text and "not scored" in text


def test_refit_bias_is_its_fold_runs_out_of_fold(tmp_path):
    sweep, data = cv_sweep(tmp_path, refit=True)
    out = tmp_path / "out"
    assert main(["segment", str(sweep), str(data / "images" / "test" / "b21.png"), "--out", str(out), "--no-qc",
                 "--tile", "64", "--overlap", "16"]) == 0
    folder = SegmentFolder(out)
    assert "refit" in folder.model_info()["why"]
    info = folder.bias_info()
    assert info["method"] == "out-of-fold" and info["n_images"] == 7
    assert "refit" in info["note"] and sorted(Path(p).name for p in folder.model_info()["cv_runs"]) == \
        sorted(p.name for p in sweep.iterdir() if "refitof" not in p.name)
