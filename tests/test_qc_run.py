import json

import numpy as np
import torch
from _qc_helpers import folder_dataset, tiny_run

from matseg_nb.cli import main
from matseg_nb.qc.run import run_qc
from matseg_nb.qc.settings import QCSettings

torch.set_num_threads(1)


def test_run_qc_model_free_detects_strong_noise(tmp_path):
    ds = folder_dataset(tmp_path / "ds")
    settings = QCSettings(shifts=("noise:strong",), extractors=("texture",), tile_size=48, tiles_per_image=8,
                          detectors=("gmm", "kde"))
    res = run_qc(None, settings, dataset=str(ds), out_dir=tmp_path / "out")
    q = json.loads((tmp_path / "out" / "qc.json").read_text())
    m = q["levels"]["input"]["ood"]["shift:noise:strong"]
    assert m["gmm"]["tile"]["auroc"] > 0.9
    inside = q["levels"]["input"]["inside_support_fraction"]
    assert set(inside) == {"split:test", "shift:noise:strong"} and all(0 <= v <= 1 for v in inside.values())
    assert {c["detector"] for c in q["validation"]["checks"]} == {"gmm", "kde"}
    assert q["verdict"] == res.verdict == "insufficient evidence"  # 3 held-out images cannot support a claim
    assert (tmp_path / "out" / "roc.png").stat().st_size > 0
    rows = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * (3 + 3)  # header + detectors x (held-out + shifted) images


def test_cli_qc_both_levels_with_model(tmp_path, capsys):
    ds = folder_dataset(tmp_path / "ds", n_train=4, n_test=2)
    run = tiny_run(tmp_path / "run", ds)
    rc = main(["qc", str(run), "--shift", "blur:strong", "--out", str(tmp_path / "out"), "--level", "both",
               "--extractors", "encoder", "--tile", "48", "--tiles", "6", "--detectors", "gmm"])
    assert rc == 0
    q = json.loads((tmp_path / "out" / "qc.json").read_text())
    assert set(q["levels"]) == {"input", "prediction"} and q["readiness_threshold"] == 0.9
    assert "rho" in q["levels"]["prediction"]["spearman_typicality_iou"]
    assert (tmp_path / "out" / "gallery.png").is_file()
    assert "verdict" in capsys.readouterr().out
    ious = [r.split(",")[-1] for r in (tmp_path / "out" / "scores.csv").read_text().splitlines()[1:]]
    assert all(0 <= float(v) <= 1 for v in ious if v)


def test_cli_qc_bad_input_exits_2(tmp_path, capsys):
    assert main(["qc", "--dataset", "nasa-super1", "--shift", "noise:huge", "--out", str(tmp_path)]) == 2
    assert "noise:huge" in capsys.readouterr().err
    assert main(["qc", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert np.isfinite(1.0)


def test_cli_screen_new_lone_image_and_validate_without_gmm(tmp_path, capsys):
    from matseg_nb.qc.results import ScreeningResult

    ds = folder_dataset(tmp_path / "ds", n_train=4, n_test=3)
    run = tiny_run(tmp_path / "run", ds)
    one = ds / "images" / "test" / "stest0.png"
    rc = main(["qc", str(run), "--new", str(ds / "images" / "test"), str(one), "--shift", "noise:strong",
               "--out", str(tmp_path / "scr"), "--extractors", "texture", "--tile", "48", "--tiles", "6"])
    assert rc == 0
    q = json.loads((tmp_path / "scr" / "qc.json").read_text())
    batch, lone = (ScreeningResult.from_json(r) for r in q["screening"][:3:2])
    assert q["calibration_split"] == "test" and lone.n_screened == 1
    same = next(i for i in batch.images if i.name == "stest0")
    assert lone.images[0].p_value == same.p_value and lone.batch_verdict == "too few images to tell"
    printed = capsys.readouterr().out
    assert "too few images to tell" in printed
    assert all(len(ln) <= 100 or "/" in ln for ln in printed.splitlines())  # only a long path overflows
    table = (tmp_path / "scr" / "screening.csv").read_text()
    assert f"{tmp_path / 'scr' / 'screening.csv'}" in printed and "stest0" in table
    rc = main(["qc", str(run), "--validate", "--shift", "noise:strong", "--out", str(tmp_path / "val"),
               "--extractors", "texture", "--tile", "48", "--tiles", "6", "--detectors", "ocsvm"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert all(len(ln) <= 100 or "/" in ln for ln in printed.splitlines())
    assert str(tmp_path / "val" / "validation.csv") in printed
    assert "ocsvm" in (tmp_path / "val" / "validation.csv").read_text()
    v = json.loads((tmp_path / "val" / "qc.json").read_text())["validation"]
    assert v["verdict"] == "insufficient evidence" and v["checks"][0]["detector"] == "ocsvm"


def test_validation_typicality_is_screening_typicality_on_the_validation_split(tmp_path):
    """With a validation split, run_qc calibrates typicality on it, as screening does: the held-out images'
    typicality in scores.csv equals RunScreener's for the same settings, image by image."""
    import imageio.v3 as iio
    from _qc_helpers import blob_image

    from matseg_nb.qc import RunScreener

    ds = folder_dataset(tmp_path / "ds", n_train=6, n_test=3)
    rng = np.random.default_rng(5)
    for sub in ("images", "masks"):
        (ds / sub / "val").mkdir()
    for i in range(3):
        img, mask = blob_image(rng)
        iio.imwrite(ds / "images" / "val" / f"v{i}.png", img)
        iio.imwrite(ds / "masks" / "val" / f"v{i}.png", mask)
    run = tiny_run(tmp_path / "run", ds)
    settings = QCSettings(shifts=("noise:strong",), extractors=("texture",), detectors=("gmm", "ocsvm"),
                          tile_size=48, tiles_per_image=6)
    res = run_qc(run, settings, out_dir=tmp_path / "out")
    assert res.run.calibration == "split:val (3 images)"
    screener = RunScreener.open(run, settings)
    screened = screener.screen(screener.session.items("test"))
    mine = [r.typicality for r in res.scores if r.set == "split:test" and r.detector == "ocsvm"]
    assert len(mine) == 3 and np.allclose(mine, [i.typicality for i in screened.images])
    assert all(0 < r.typicality <= 1 for r in res.scores)


def test_an_image_without_foreground_has_no_iou_and_spearman_stays_defined():
    """IoU is undefined (NaN) for an image with no foreground in mask or prediction: it is left out of the
    IoU table, so Spearman(typicality, IoU) is computed over the other images instead of becoming NaN."""
    from matseg_nb.qc.features import ImageItem
    from matseg_nb.qc.results import ScoreRow
    from matseg_nb.qc.run import _ious, _spearman
    from matseg_nb.qc.sources import ImageSet

    z = np.zeros((8, 8), dtype=np.int64)
    items = []
    for i in range(5):
        mask = z.copy()
        mask[: i + 1] = 1 if i else 0  # image 0: no foreground at all
        pred = z.copy()
        pred[:2] = 1 if i else 0
        items.append(ImageItem(np.zeros((1, 8, 8)), f"i{i}", pred=pred, mask=mask))
    ious = _ious([ImageSet("split:test", items, False, same_labels=True)], 2)
    assert ("split:test", "i0") not in ious and len(ious) == 4
    rows = [ScoreRow("input", "split:test", 0, f"i{i}", "gmm", 0.1 * i) for i in range(5)]
    rho = _spearman(rows, "input", "gmm", ious)
    assert rho["n_images"] == 4 and rho["rho"] is not None
