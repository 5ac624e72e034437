"""Whole images under a time budget (``choose_grid``, ``explain_image(budget_minutes=...)``), the
explanation figure, and bad input of ``matseg explain`` as one line or a stated note."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from _explain_helpers import box_mask, rand_image, tiny_model
from _qc_helpers import folder_dataset
from PIL import Image

from matseg_nb.cli import main
from matseg_nb.errors import UserError
from matseg_nb.explain import ExplanationResult, ProbFn, explain_image, explanation_figure, save_annotation
from matseg_nb.explain.figures import H_UNIT
from matseg_nb.explain.pipeline import RandomisationLoad, choose_grid
from matseg_nb.models import save_model

CANDIDATES = ((8, 4), (16, 16), (32, 32))


def test_budget_picks_the_finest_grid_that_fits_and_the_coarsest_when_none_does():
    fn = ProbFn(tiny_model("Unet"), device="cpu")
    img, a = rand_image(1, 64, 64), box_mask(64, 64, (20, 40, 20, 40))
    lines: list[str] = []
    win, st, plan = choose_grid(fn, img, a, budget_s=3600, n_faith_passes=10, candidates=CANDIDATES, log=lines.append)
    assert (win, st) == (8, 4) and plan["fits"] and len(plan["tried"]) == 1
    assert plan["tried"][0]["locations"] == 15 * 15 and plan["forward_s"] > 0
    assert "window 8 px, stride 4 px" in lines[0] and "faithfulness about" in lines[0]
    win, st, plan = choose_grid(fn, img, a, budget_s=1e-6, n_faith_passes=10, candidates=CANDIDATES, log=None)
    assert (win, st) == (32, 32) and not plan["fits"] and len(plan["tried"]) == 3
    est = [t["heatmap_estimate_s"] for t in plan["tried"]]
    assert plan["tried"][0]["locations"] > plan["tried"][1]["locations"] > plan["tried"][2]["locations"]
    assert est[0] >= est[2]  # 225 locations cost more than 4
    # a candidate window larger than the image is skipped
    assert choose_grid(fn, rand_image(1, 24, 24), box_mask(24, 24, (4, 12, 4, 12)), 3600, 1, CANDIDATES,
                       log=None)[:2] == (8, 4)
    assert choose_grid(fn, rand_image(1, 24, 24), box_mask(24, 24, (4, 12, 4, 12)), 3600, 1, ((32, 32),),
                       log=None)[:2] == (24, 24)


class SlowProbFn(ProbFn):
    """The tiny model's probability function, ``DELAY`` s longer per image: measured seconds then dwarf the
    timing noise of a shared machine, so the budget's choice is reproducible."""

    DELAY = 0.05

    def __call__(self, x, crop=None, windows=None):
        time.sleep(self.DELAY * x.shape[0])
        return super().__call__(x, crop=crop, windows=windows)


def test_the_budget_counts_the_randomisation_check():
    """With the model-randomisation check's heatmaps (6 steps x up to 48 locations on A) in the budget, a
    budget that holds the finest grid without them takes a coarser one; the plan prices the check from the
    same probe (per step: copy + heatmap set-up + locations x seconds per location)."""
    fn = SlowProbFn(tiny_model("Unet"), device="cpu")
    img, a = rand_image(1, 64, 64), box_mask(64, 64, (20, 40, 20, 40))
    kw = {"n_faith_passes": 10, "candidates": CANDIDATES, "max_batch": 4}
    finest = choose_grid(fn, img, a, budget_s=3600, log=None, **kw)[2]["total_estimate_s"]
    budget = 1.4 * finest  # the check adds about 6 x 36 / 225 = 0.96 of the finest heatmap
    alone = choose_grid(fn, img, a, budget_s=budget, log=None, **kw)
    assert alone[:2] == (8, 4) and alone[2]["randomisation_estimate_s"] == 0 and alone[2]["fits"]
    lines: list[str] = []
    win, st, plan = choose_grid(fn, img, a, budget_s=budget, log=lines.append, **kw,
                                randomisation=RandomisationLoad(steps=6, max_locations=48, twin_seconds=0.05))
    assert (win, st) == (16, 16) and plan["fits"] and plan["randomisation"]["steps"] == 6
    fine, chosen = plan["tried"]
    assert fine["randomisation_locations"] == 36  # 6 x 6 windows of 8 px at stride 4 touch A's 20 px box
    assert chosen["randomisation_locations"] == 4
    for row in plan["tried"]:
        want = 6 * (0.05 + row["setup_s"] + row["randomisation_locations"] * row["seconds_per_location"])
        assert row["randomisation_estimate_s"] == pytest.approx(want, abs=0.1)
        assert row["total_estimate_s"] == pytest.approx(
            row["heatmap_estimate_s"] + plan["faithfulness_estimate_s"] + row["randomisation_estimate_s"], abs=0.2)
    assert fine["spent_s"] + fine["total_estimate_s"] > budget >= chosen["spent_s"] + chosen["total_estimate_s"]
    assert plan["randomisation_estimate_s"] == chosen["randomisation_estimate_s"]
    assert "model randomisation about" in lines[0] and "6 x 4 locations" in lines[0]


def test_the_budget_counts_what_the_stage_has_spent():
    """Time already spent (since ``started``) leaves less for the rest: an hour's budget that began an hour
    ago holds nothing, so the coarsest grid is taken and the plan says it does not fit."""
    fn = ProbFn(tiny_model("Unet"), device="cpu")
    img, a = rand_image(1, 64, 64), box_mask(64, 64, (20, 40, 20, 40))
    win, st, plan = choose_grid(fn, img, a, budget_s=3600, n_faith_passes=10, candidates=CANDIDATES, log=None,
                                started=time.perf_counter() - 3600)
    assert (win, st) == (32, 32) and not plan["fits"] and all(t["spent_s"] >= 3600 for t in plan["tried"])
    assert plan["heatmap_budget_s"] == 900  # a quarter of the budget is kept for the heatmap


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A tiny run on a folder dataset (96x96 PNG pairs), its first test image and a mask A."""
    root = tmp_path_factory.mktemp("whole")
    ds = folder_dataset(root / "ds", n_train=2, n_test=2)
    run = root / "run"
    save_model(tiny_model("Unet", 1, classes=2), run / "model")
    (run / "job.json").write_text(json.dumps({"dataset": str(ds), "in_channels": 1, "normalization": "percentile"}))
    img = ds / "images" / "test" / "stest0.png"
    a = np.zeros((96, 96), bool)
    a[30:60, 24:66] = True
    return run, img, save_annotation(a, root / "A.png", image_path=img), root


def test_budgeted_explanation_records_its_grid_and_stays_within_it(folder_run, tmp_path):
    run, img, mask, _ = folder_run
    res = explain_image(run, img, mask, tmp_path / "o", window=None, stride=None, budget_minutes=10,
                        grid_candidates=((16, 16), (32, 32)), n_draws=3, level=0.5, progress=False, log=None)
    assert (res.heatmap["window"], res.heatmap["stride"]) == (16, 16) and not res.partial
    assert res.heatmap["n_locations"] == 36
    # H, 3 x 3 baseline draws, H at cell resolution and 39 ring shuffles, at 4 fractions
    assert res.grid_plan["fits"] and res.grid_plan["faithfulness_passes"] == (1 + 3 * 3 + 1 + 39) * 4
    # the budget counted the model-randomisation check that ran: its steps and its locations at this grid
    steps = res.faithfulness.randomisation.steps
    assert res.grid_plan["randomisation"]["steps"] == len(steps) == 3
    assert res.grid_plan["tried"][0]["randomisation_locations"] == steps[-1].n_locations > 0
    assert res.grid_plan["randomisation_estimate_s"] > 0 and res.grid_plan["randomisation"]["twin_seconds"] > 0
    assert any("chosen to fit the 10-min budget" in n for n in res.notes)
    assert not any("not an image of the run's dataset" in n for n in res.notes)  # it is one
    saved = ExplanationResult.from_json(json.loads((tmp_path / "o" / "explain.json").read_text()))
    assert saved.grid_plan == res.grid_plan
    with pytest.raises(UserError, match="budget_minutes"):
        explain_image(run, img, mask, tmp_path / "x", window=None, stride=None, log=None)


def test_figure_has_readable_panels_and_the_unit_of_h(folder_run, tmp_path):
    from matseg_nb.explain import faithfulness

    img, a = rand_image(1, 64, 64), box_mask(64, 64, (20, 40, 20, 40))
    hmap = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    faith = faithfulness(tiny_model("Unet"), img, a, hmap, window=8, n_draws=2, fractions=(0.1,))
    fig = explanation_figure(img, a, hmap, faith, prediction=np.zeros((64, 64), int),
                             mask_label="A: ground-truth class boundaries (3 px), not an expert drawing")
    titles = [ax.get_title() for ax in fig.axes]
    assert fig.get_size_inches()[0] >= 18 and fig.get_size_inches()[1] >= 12
    assert any("ground-truth class boundaries" in t for t in titles) and any("heatmap H" in t for t in titles)
    assert any(H_UNIT in ax.get_ylabel() for ax in fig.axes)  # the colour bar's label
    text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts).replace("\n", " ")
    assert "ring-permutation p = " in text and "random blocks (p = " in text
    assert any("rings of distance to A" in t.get_text() for ax in fig.axes if ax.get_legend()
               for t in ax.get_legend().get_texts())


def _cli(run, img, mask, out, *extra) -> list[str]:
    return ["explain", str(run), str(img), "--mask", str(mask), "--window", "16", "--stride", "16", "--draws", "2",
            "--level", "0.5", "--out", str(out), *extra]


@pytest.mark.parametrize(("values", "message"), [
    (0, "empty.png: expected at least one pixel inside A, found an empty mask (0 of 96x96 px)"),
    (1, "whole.png: expected pixels outside A too (H is tested by distance to A), found A covering the whole "
        "96x96 px image"),
])
def test_empty_and_whole_image_masks_are_one_line(folder_run, tmp_path, capsys, values, message):
    run, img, _, _ = folder_run
    png = save_annotation(np.full((96, 96), values), tmp_path / ("whole.png" if values else "empty.png"))
    assert main(_cli(run, img, png, tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o" / "explain.json").exists()


def test_anti_aliased_masks_are_stated_notes(folder_run, tmp_path, capsys):
    run, img, _, _ = folder_run
    soft = np.zeros((96, 96), np.uint8)
    soft[20:40, 20:40] = 255
    soft[19, 20:40] = 90  # anti-aliased edge
    Image.fromarray(soft).save(tmp_path / "soft.png")
    assert main(_cli(run, img, tmp_path / "soft.png", tmp_path / "s")) == 0
    assert "soft.png is not binary" in json.loads((tmp_path / "s" / "explain.json").read_text())["summary"]
    capsys.readouterr()


def test_image_from_another_dataset_gets_a_note(folder_run, tmp_path):
    run, _, mask, _ = folder_run
    other = tmp_path / "elsewhere.png"
    Image.fromarray((np.random.default_rng(3).random((96, 96)) * 255).astype(np.uint8)).save(other)
    assert main(_cli(run, other, mask, tmp_path / "o")) == 0
    notes = json.loads((tmp_path / "o" / "explain.json").read_text())["notes"]
    assert any("elsewhere.png is not an image of the run's dataset" in n and "qc RUN --new" in n for n in notes)


@pytest.mark.parametrize(("args", "message"), [
    (["--window", "97"], "--window: expected 1..96 px (the image is 96x96), found 97"),
    (["--stride", "0"], "--stride: expected >= 1 px, found 0"),
])
def test_window_and_stride_errors_are_one_line(folder_run, tmp_path, capsys, args, message):
    run, img, mask, _ = folder_run
    assert main([*_cli(run, img, mask, tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
