"""`matseg suggest`: a planted out-of-distribution image and a planted hard image rank first; bad input is one line.

The model is a tiny Unet trained here for a few seconds on 64 px images of bright discs (class 1) on a dark
background, with grey squares whose pixels are labelled 0 or 1 at random: it learns to be unsure on grey.
The planted hard image is half grey squares (pixel values seen in training, the model unsure); the planted
out-of-distribution image is a fine stripe pattern (a texture never seen).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from _model_helpers import tiny_smp

from matseg_nb.errors import UserError
from matseg_nb.suggest import SuggestResult, SuggestWeights, rank_candidates
from matseg_nb.suggest.ranking import percentile_against

SIZE = 64


def _image(rng: np.random.Generator, grey_squares: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (64, 64) image and its 0/1 mask; grey squares get random pixel labels."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    mask = np.zeros((SIZE, SIZE), np.uint8)
    value = np.full((SIZE, SIZE), 60.0)
    for _ in range(grey_squares):
        y0, x0 = rng.integers(0, SIZE - 16, 2)
        value[y0:y0 + 16, x0:x0 + 16] = 125
        mask[y0:y0 + 16, x0:x0 + 16] = rng.integers(0, 2, (16, 16))
    for _ in range(4):
        cy, cx, r = *rng.integers(8, SIZE - 8, 2), rng.integers(4, 8)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        value[disc], mask[disc] = 190, 1
    return np.clip(value + rng.normal(0, 8, value.shape), 0, 255).astype(np.uint8), mask


def _stripes(rng: np.random.Generator) -> np.ndarray:
    img = np.where((np.arange(SIZE)[None, :] // 2) % 2 == 0, 60.0, 190.0) * np.ones((SIZE, 1))
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def _train(images: list[np.ndarray], masks: list[np.ndarray]):
    import torch

    from matseg_nb.data import normalize_image

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few seconds on one core; more threads only contend on a shared machine
    x = torch.tensor(np.stack([normalize_image(i[None].astype(np.float32), "percentile") for i in images]))
    y = torch.tensor(np.stack(masks).astype(np.int64))
    model = tiny_smp(seed=None, eval_mode=False)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(run_dir, candidates folder): dataset with train 8 / val 6 / test 2 images, 4 ordinary candidates,
    one hard (half grey) and one out-of-distribution (stripes)."""
    from matseg_nb.models import save_model

    root = tmp_path_factory.mktemp("suggest")
    rng = np.random.default_rng(0)
    train = []
    for split, n in (("train", 8), ("val", 6), ("test", 2)):
        for i in range(n):
            img, mask = _image(rng)
            for sub, arr in (("images", img), ("masks", mask)):
                (root / "data" / sub / split).mkdir(parents=True, exist_ok=True)
                iio.imwrite(root / "data" / sub / split / f"{split}{i}.png", arr)
            if split == "train":
                train.append((img, mask))
    run = root / "run"
    save_model(_train(*zip(*train, strict=True)), run / "model")
    (run / "job.json").write_text(json.dumps({"dataset": str(root / "data"), "normalization": "percentile"}))
    cand = root / "unlabelled"
    cand.mkdir()
    for i in range(4):
        iio.imwrite(cand / f"ordinary{i}.png", _image(rng)[0])
    iio.imwrite(cand / "hard.png", _image(rng, grey_squares=8)[0])
    iio.imwrite(cand / "stripes.png", _stripes(rng))
    return run, cand


def test_planted_ood_and_hard_images_rank_first(planted, tmp_path):
    from matseg_nb.loop import TINY_SETTINGS
    from matseg_nb.suggest import suggest

    run, cand = planted
    res = suggest(run, [str(cand)], 3, tmp_path / "out", settings=TINY_SETTINGS)
    assert {s.image for s in res.suggestions[:2]} == {"stripes", "hard"}, res.summary()
    by = {s.image: s for s in res.suggestions}
    assert by["stripes"].atypicality > 0.9 and by["hard"].uncertainty > 0.9  # for the stated reasons
    rows = (tmp_path / "out" / "suggestions.csv").read_text().splitlines()
    assert rows[0].startswith("rank,image,source,score") and len(rows) == 4
    assert (tmp_path / "out" / "contact_sheet.png").read_bytes()[:4] == b"\x89PNG"
    assert SuggestResult.load(tmp_path / "out").suggestions[0].image == res.suggestions[0].image


def test_suggest_on_an_empty_folder_is_one_line(planted, tmp_path):
    run, _ = planted
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "matseg_nb", "suggest", str(run), str(tmp_path / "empty"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "expected image files" in lines[0] and "empty" in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_ranking_mix_and_kcenter_diversity():
    """Equal atypicality and uncertainty: diversity decides, so a near-duplicate of the first pick comes last."""
    names = ["a", "a_copy", "b"]
    feats = np.array([[5.0, 0.0], [4.9, 0.0], [0.0, 5.0]])
    picks = rank_candidates(names, np.array([0.9, 0.9, 0.9]), np.array([0.5, 0.5, 0.5]), feats,
                            np.zeros((1, 2)), np.zeros(3), 3, SuggestWeights(0.4, 0.4, 0.2))
    assert [p.image for p in picks] == ["a", "b", "a_copy"]
    only_u = rank_candidates(names, np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.2, 1.0]), feats, np.zeros((1, 2)),
                             np.zeros(3), 1, SuggestWeights(0, 1, 0))
    assert only_u[0].image == "b"
    assert percentile_against(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 9.0])).tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="non-negative"):
        SuggestWeights(-1, 1, 1).normalised()


def test_bad_weights_and_n_are_one_line(planted, tmp_path):
    from matseg_nb.commands.suggest import parse_weights
    from matseg_nb.suggest import suggest

    with pytest.raises(UserError, match="--weights: expected three"):
        parse_weights("1,2")
    with pytest.raises(UserError, match="found no such file"):
        suggest(planted[0], [str(tmp_path / "missing.png")], 3, tmp_path / "o")
    with pytest.raises(UserError, match="--n: expected a positive"):
        suggest(planted[0], [str(planted[1])], 0, tmp_path / "o")
    assert not Path(tmp_path / "o").exists()


def test_a_refit_on_every_image_is_one_line(planted, tmp_path):
    """A refit on the whole CV pool has no held-out image to calibrate the signals on."""
    import shutil

    from matseg_nb.suggest import suggest

    run = tmp_path / "refit"
    shutil.copytree(planted[0], run)
    (run / "metrics.json").write_text(json.dumps({"dataset_level": {}, "cv": {"refit": True, "folds": 5}}))
    with pytest.raises(UserError, match="found a refit on every annotated image; pass one of its fold runs"):
        suggest(run, [str(planted[1])], 3, tmp_path / "o")


def test_dashboard_annotate_next_tab_shows_the_ranking(tmp_path):
    from matseg_nb.atomic import atomic_write_bytes, atomic_write_json
    from matseg_nb.dashboard.actions import ANALYSES
    from matseg_nb.suggest import Suggestion
    from matseg_nb.suggest.sheet import contact_sheet_png
    from matseg_nb.widgets.dashboard_app import DashboardApp

    app = DashboardApp(tmp_path / "ws")
    out = tmp_path / "ws" / "runs" / "starter" / "suggest" / "nasa-super1"
    res = SuggestResult("run", "nasa-super1", {}, SuggestWeights().words(), "val", 4, 2, [
        Suggestion(1, "ebc1_a", 0.9, 0.98, 1.0, 0.5, 0.19, "unlike the held-out images"),
        Suggestion(2, "super1_b", 0.4, 0.2, 0.5, 0.1, 0.17, "highest remaining mix")], out_dir=str(out))
    atomic_write_json(out / "suggest.json", res.to_json())
    atomic_write_bytes(out / "contact_sheet.png", contact_sheet_png([np.zeros((1, 8, 8))] * 2, ["#1", "#2"]))
    app.suggest.show(out)
    html = app.suggest.output.children[0].value
    assert "1. ebc1_a: unlike the held-out images" in html and "matseg-suggest-table" in html
    assert getattr(app.suggest.output.children[1], "format", "") == "png"
    assert app.suggest.paths(tmp_path) is None and "expected a workspace folder" in app.suggest.message.value
    assert "suggest" in ANALYSES
