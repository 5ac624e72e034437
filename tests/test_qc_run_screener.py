"""matseg_nb.qc.RunScreener: the public screening entry (reference fitted once, calibration scored once)."""

from __future__ import annotations

import json

import numpy as np
from _qc_helpers import blob_image, folder_dataset, tiny_run

from matseg_nb.loop import QCSettings
from matseg_nb.qc import RunScreener
from matseg_nb.qc.features import ImageItem
from matseg_nb.qc.screening import screen_run
from matseg_nb.qc.session import QCSession
from matseg_nb.qc.shifts import apply_shift


def _new(seed: int, n: int) -> list[ImageItem]:
    rng = np.random.default_rng(seed)
    return [ImageItem(blob_image(rng)[0][None].astype(np.float32), f"new{i}") for i in range(n)]


def test_in_distribution_passes_strong_shift_flagged_and_screen_run_agrees(tmp_path):
    ds = folder_dataset(tmp_path / "ds", n_train=6, n_test=10)
    run = tiny_run(tmp_path / "run", ds)
    settings = QCSettings(tile_size=48, tiles_per_image=8, detectors=("ocsvm",))
    session = QCSession.open(run)
    scr = RunScreener.open(run, settings, session=session)
    assert scr.calibration_name == "test" and scr.n_calibration == 10  # no val split: test calibrates
    assert len(scr.calibration_keys()) == 10 and all(k.shape == (8, 3) for k in scr.calibration_keys())
    same = _new(7, 8)
    keys = scr.image_keys(same)
    assert len(keys) == 8 and all(k.shape == (8, 3) for k in keys)

    ok = scr.screen(same, batch="same")
    assert ok.batch_verdict != "shifted" and ok.n_flagged <= 2, ok.verdict_words
    shifted = [ImageItem(apply_shift(it.image, "noise:strong", i), f"{it.name}@noise") for i, it in enumerate(same)]
    bad = scr.screen(shifted, batch="noisy")
    assert bad.batch_verdict == "shifted" and bad.n_flagged >= 6, bad.verdict_words
    assert "test split is the calibration set" in " ".join(bad.notes)

    # screen_run is a thin wrapper: the same p-values for the same images (session shared, features cached)
    out = screen_run(run, [], tmp_path / "out", reference_split="train", tile_size=48, tiles_per_image=8,
                     session=session, sources=[("noisy", shifted)])
    assert [im.p_value for im in out[0].images] == [im.p_value for im in bad.images]
    assert json.loads((tmp_path / "out" / "qc.json").read_text())["calibration_split"] == "test"
