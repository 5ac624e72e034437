"""Terminal output of ``matseg compare`` and ``matseg recommend`` (issue 29): at most 100 columns, the full
tables in files whose paths are printed."""

from __future__ import annotations

import json
from pathlib import Path

from _training_helpers import make_folder
from test_cv_small_data import all_cv_sweep

from matseg_nb.cli import main


def test_recommend_prints_at_most_100_columns_and_writes_the_full_recommendation(tmp_path, capsys):
    folder = make_folder(tmp_path / "lab", {"train": 2, "val": 1, "test": 1})
    sweep = all_cv_sweep(tmp_path, 5, 5, unet=0.72, dlv3p=0.70)
    assert main(["recommend", str(folder), "--sweep", str(sweep), "--out", str(tmp_path / "rec")]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines() if not Path(line.strip()).exists()) <= 100  # a path is never split
    for name in ("recommendation.json", "evidence.csv", "recommendation.txt"):
        assert str(tmp_path / "rec" / name) in out and (tmp_path / "rec" / name).is_file()
    ranked = json.loads((tmp_path / "rec" / "recommendation.json").read_text())["ranked"]
    assert ranked and ranked[0]["arch"] in out and "reasons" in ranked[0]


def test_compare_prints_the_answer_and_paths_within_100_columns(tmp_path, capsys):
    sweep = all_cv_sweep(tmp_path, 18, 5, unet=0.80, dlv3p=0.60)
    assert main(["compare", str(sweep), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines() if not Path(line.strip()).exists()) <= 100  # a path is never split
    assert "lab-folder: best resnet18+Unet" in out and str(tmp_path / "out" / "complete_table.csv") in out
