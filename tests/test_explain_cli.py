"""``explain_image`` and ``matseg explain`` on a tiny saved run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _explain_helpers import tiny_model
from PIL import Image

from matseg_nb.cli import main
from matseg_nb.explain import ExplanationResult, save_annotation
from matseg_nb.models import save_model


@pytest.fixture(scope="module")
def run_and_image(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain_run")
    run = root / "run"
    save_model(tiny_model("Unet", 1, classes=3), run / "model")
    (run / "job.json").write_text(json.dumps({"in_channels": 1, "normalization": "percentile"}))
    rng = np.random.default_rng(0)
    img = root / "img.png"
    Image.fromarray((rng.random((64, 48)) * 255).astype(np.uint8)).save(img)
    gt = np.zeros((64, 48), np.uint8)
    gt[:, 24:] = 1
    Image.fromarray(gt).save(root / "gt.png")
    a = np.zeros((64, 48), bool)
    a[20:40, 10:30] = True
    save_annotation(a, root / "A.png", image_path=img)
    return run, img, root


def test_cli_writes_heatmap_faithfulness_and_figure(run_and_image, tmp_path, capsys):
    run, img, root = run_and_image
    out = tmp_path / "out"
    rc = main(["explain", str(run), str(img), "--mask", str(root / "A.png"), "--window", "16", "--stride", "16",
               "--kernel", "noise", "--kernel-param", "std=0.3", "--out", str(out)])
    assert rc == 0
    hmap = np.load(out / "heatmap.npy")
    assert hmap.shape == (64, 48) and hmap.max() > 0
    assert np.load(out / "heatmap_grid.npy").shape == (4, 3)
    faith = json.loads((out / "faithfulness.json").read_text())
    assert set(faith["baselines"]) == {"random_pixels", "random_blocks", "distance_to_A"}
    assert faith["a_pixels"] == 400 and faith["perturbation"] == "blur"  # H used noise: validate with blur
    assert all(len(b["scores"]) == 20 for b in faith["baselines"].values())
    summary = json.loads((out / "explain.json").read_text())
    assert summary["heatmap"]["kernel_params"]["std"] == 0.3 and summary["mask_meta"]["tool"] == "painter"
    assert summary["heatmap"]["amp"] is False and summary["heatmap"]["partial"] is False
    assert ExplanationResult.from_json(summary).summary() == summary["summary"]
    assert (out / "explanation.png").stat().st_size > 1000 and (out / "heatmap.png").is_file()
    cond, rand = faith["conditional"], faith["randomisation"]
    assert cond["n_perm"] == 39 and cond["cell_px"] == 16 and len(cond["scores"]) == 39
    assert faith["beyond_proximity"] == (cond["p_value"] <= 0.05)
    assert [s["label"] for s in rand["steps"]] == ["decoder head", "head and decoder",
                                                   "head, decoder and last encoder stage"]
    assert rand["verdict"] in ("differs", "similar", "undecided") and rand["steps"][0]["n_locations"] == 4
    printed = capsys.readouterr().out
    assert "heatmap: 12 locations" in printed and "ring-permutation p = " in summary["summary"]
    assert "Unconditionally (20 draws each)" in printed and "distance to A (p = " in summary["summary"]
    assert "model randomisation: H on up to 48 locations on A for each of 3" in printed
    paths = (f"heatmap: {out}", f"figure: {out}")  # file paths are printed whole
    assert max(len(line) for line in printed.splitlines() if not line.startswith(paths)) <= 100


def test_cli_mask_from_gt_boundary(run_and_image, tmp_path):
    run, img, root = run_and_image
    out = tmp_path / "gt"
    rc = main(["explain", str(run), str(img), "--mask-from-gt", str(root / "gt.png"), "--window", "16",
               "--stride", "16", "--region-dilation", "4", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "explain.json").read_text())
    assert summary["mask_meta"]["tool"] == "gt-boundary" and "ground-truth" in summary["mask_source"]
    assert summary["heatmap"]["n_locations"] < 12  # windows far from the boundary were skipped


def test_cli_wrong_size_mask_exits_2(run_and_image, tmp_path, capsys):
    run, img, _ = run_and_image
    bad = save_annotation(np.ones((10, 10)), tmp_path / "bad.png")
    rc = main(["explain", str(run), str(img), "--mask", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.png: expected an annotation of the image's size 64x48" in err
    assert main(["explain", str(tmp_path / "nope"), str(img), "--mask", str(bad), "--out", "x"]) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--window", "100"], "--window: expected 1..48 px (the image is 64x48), found 100"),
    (["--stride", "0"], "--stride: expected >= 1 px, found 0"),
])
def test_cli_window_and_stride_errors_are_one_line(run_and_image, tmp_path, capsys, args, message):
    run, img, root = run_and_image
    rc = main(["explain", str(run), str(img), "--mask", str(root / "A.png"), *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_cli_max_minutes_writes_a_partial_map(run_and_image, tmp_path, capsys):
    run, img, root = run_and_image
    out = tmp_path / "p"
    rc = main(["explain", str(run), str(img), "--mask", str(root / "A.png"), "--window", "8", "--stride", "4",
               "--max-batch", "4", "--max-minutes", "0", "--draws", "2", "--level", "0.5", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "explain.json").read_text())
    assert summary["heatmap"]["partial"] is True and summary["heatmap"]["n_locations"] == 4
    assert "PARTIAL" in summary["summary"] and "partial" in " ".join(summary["faithfulness"]["notes"])


@pytest.mark.slow
def test_explain_with_gt_boundary_on_a_nasa_test_image(tmp_path, nasa_root):
    from matseg_nb.explain import explain_with_gt_boundary, load_annotation_meta

    run = tmp_path / "run"
    save_model(tiny_model("Unet", 1, classes=3), run / "model")
    (run / "job.json").write_text(json.dumps({"dataset": "nasa-super1", "in_channels": 1,
                                              "normalization": "percentile"}))
    out = tmp_path / "out"
    result = explain_with_gt_boundary(run, out, window=128, stride=128, max_batch=4, fractions=(0.1,), n_draws=2)
    assert load_annotation_meta(out / "A_gt_boundary.png")["tool"] == "gt-boundary"
    assert "ground-truth" in result.mask_source and "ground-truth" in result.summary()
    hmap = np.load(out / "heatmap.npy")
    assert hmap.ndim == 2 and list(hmap.shape) == result.mask_meta["shape"] and hmap.max() > 0
