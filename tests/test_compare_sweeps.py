"""compare_sweeps on synthetic run folders with known answers (tests/_compare_helpers.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _compare_helpers import demo_sweep, write_job, write_summary

from matseg_nb.cli import main
from matseg_nb.compare import compare_sweeps, load_runs


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    sweep = demo_sweep(root)
    return sweep, compare_sweeps([sweep], root / "out")


def test_all_outputs_written(compared):
    _, paths = compared
    for key in ("complete_table_csv", "complete_table_md", "complete_table_tex", "best_table_csv", "best_table_md",
                "best_table_tex", "failures_csv", "rank_stability_csv", "heatmap_png", "per_image_png",
                "latency_png", "summary_json", "summary_md"):
        assert paths[key].exists() and paths[key].stat().st_size > 0, key
    assert paths["heatmap_png"].read_bytes()[:4] == b"\x89PNG"


def test_failed_incomplete_and_pending_jobs_are_listed(compared):
    _, paths = compared
    failures = pd.read_csv(paths["failures_csv"])
    assert sorted(failures["status"]) == ["failed", "pending", "running"]
    assert "CUDA out of memory" in failures.loc[failures["status"] == "failed", "error"].iloc[0]
    cells = pd.read_csv(paths["complete_table_csv"])
    assert len(cells) == 11  # 8 complete cells + 3 without a result, none dropped
    no_result = cells[cells["n_seeds"] == 0]
    assert set(no_result["status"].str.split(" ").str[0]) == {"no"} and len(no_result) == 3
    assert "no result" in paths["complete_table_md"].read_text()


def test_best_table_winners_dagger_and_test(compared):
    _, paths = compared
    best = pd.read_csv(paths["best_table_csv"]).set_index("dataset")
    assert best.loc["easy", "decoder"] == "Unet" and best.loc["hard", "decoder"] == "DeepLabV3Plus"
    assert (best["encoder"] == "resnet34").all()
    assert (best["verdict"] == "significant").all() and (best["n_images"] == 12).all()
    md = paths["best_table_md"].read_text()
    assert "hard†" in md and "No single decoder dominates" in md
    assert r"$^\dagger$" in paths["best_table_tex"].read_text()


def test_complete_table_has_seed_cis_and_weights(compared):
    _, paths = compared
    cells = pd.read_csv(paths["complete_table_csv"])
    done = cells[cells["n_seeds"] > 0]
    assert (done["n_seeds"] == 2).all()
    assert ((done["iou_ci_lo"] <= done["iou_img_mean"]) & (done["iou_img_mean"] <= done["iou_ci_hi"])).all()
    assert np.allclose(done["iou"], done["iou_img_mean"])  # helper: dataset IoU = mean per-image IoU
    assert (cells["encoder_weights"] == "none").all()
    for key in ("complete_table_md", "complete_table_tex", "best_table_md"):
        assert "none" in paths[key].read_text()
    for col in ("epochs_run", "train_time_s", "latency_ms_per_image", "n_params", "wiou", "pixel_accuracy"):
        assert done[col].notna().all(), col


def test_rank_stability_reflects_reversed_decoder_order(compared):
    _, paths = compared
    summary = json.loads(paths["summary_json"].read_text())
    tau = summary["rank_stability"]["mean_kendall_tau"]
    assert tau == pytest.approx(-1 / 3)  # decoders swap between 'easy' and 'hard', encoders keep their order
    assert summary["n_failed_or_incomplete"] == 3


def test_tie_and_too_few_images(tmp_path):
    sweep = tmp_path / "sweep"
    vals = np.linspace(0.5, 0.8, 10)
    write_job(sweep, "tie", "enc", "Unet", 0, vals + np.tile([0.01, -0.01], 5))
    write_job(sweep, "tie", "enc", "DeepLabV3", 0, vals)
    write_job(sweep, "few", "enc", "Unet", 0, [0.9, 0.9, 0.9])
    write_job(sweep, "few", "enc", "DeepLabV3", 0, [0.1, 0.1, 0.1])
    write_summary(sweep)
    paths = compare_sweeps([sweep], tmp_path / "out")
    best = pd.read_csv(paths["best_table_csv"]).set_index("dataset")
    assert best.loc["tie", "verdict"] == "not significant"
    assert best.loc["few", "verdict"] == "insufficient evidence (n = 3)"
    assert "insufficient evidence (n = 3)" in paths["best_table_md"].read_text()
    # one seed: one paired run, so no "probability" that the best beats the runner-up
    assert best["n_paired_runs"].eq(1).all() and best["p_beats_runner_up"].isna().all()


def test_load_runs_reads_identity_from_job_json(tmp_path):
    sweep = tmp_path / "s"
    jid = write_job(sweep, "ds", "resnet18", "Unet", 3, [0.5, 0.7], weights="imagenet")
    rs = load_runs([sweep])
    row = rs.runs.set_index("job_id").loc[jid]
    assert (row["dataset"], row["encoder"], row["decoder"], row["seed"]) == ("ds", "resnet18", "Unet", 3)
    assert row["encoder_weights"] == "imagenet" and row["status"] == "complete"
    assert sorted(rs.per_image["iou"]) == pytest.approx([0.5, 0.7])  # background rows excluded


def test_cli_compare_and_bad_input(tmp_path, capsys):
    sweep = demo_sweep(tmp_path, n_images=6, seeds=(0,))
    assert main(["compare", str(sweep), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "failed or incomplete" in out and (tmp_path / "o" / "best_table.md").exists()
    assert main(["compare", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2
    assert "expected a sweep folder" in capsys.readouterr().err


def test_all_failed_and_empty_sweeps(tmp_path):
    sweep = tmp_path / "s"
    write_job(sweep, "a", "e", "Unet", 0, status="failed")
    write_summary(sweep)
    paths = compare_sweeps([sweep], tmp_path / "o")
    assert "no complete cell" in paths["best_table_md"].read_text()
    assert len(pd.read_csv(paths["failures_csv"])) == 1
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), "--out", str(tmp_path / "o2")]) == 2
