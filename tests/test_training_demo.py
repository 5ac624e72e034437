"""The embedded demo profile learns (loss falls on a 2-job subset) and stops early when its data is missing.

Not timed: speed lives in benchmarks/ and docs/training.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matseg_nb.profiles import compile_jobs, load_profile

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "profiles" / "demo-cpu.json"


def _data_available(name: str) -> bool:
    from matseg_nb.data import open_dataset
    from matseg_nb.errors import UserError

    try:
        open_dataset(name)
    except UserError:
        return False
    return True


def test_demo_profile_is_the_stand_in_grid():
    profile = load_profile(DEMO)
    assert [d.lower() for d in profile.model.decoders] == ["unet", "deeplabv3", "deeplabv3plus"]
    assert profile.model.encoders == ["resnet18", "tu-seresnext26d_32x4d"]
    assert profile.model.encoder_weights in (None, "none")
    assert profile.training.lr >= 5e-4  # a from-scratch rate, not the paper's fine-tuning 1e-4
    assert profile.training.val_every == 1  # one learning-curve point per epoch


@pytest.mark.skipif(not _data_available("nasa-super1"), reason="nasa-super1 mirror absent")
def test_demo_training_loss_falls_on_two_jobs(tmp_path):
    """Both encoder families of the demo, its training settings, fewer steps: the loss goes down."""
    from matseg_nb.training import run_job

    profile = load_profile(DEMO)
    jobs = [j for j in compile_jobs(profile) if "super1" in j.job_id]
    subset = [next(j for j in jobs if j.encoder == "resnet18" and j.decoder == "Unet"),
              next(j for j in jobs if j.encoder.startswith("tu-seresnext") and j.decoder == "DeepLabV3Plus")]
    for job in subset:
        spec = job.to_dict()
        training = {**spec["training"], "max_epochs": 6, "steps_per_epoch": 4, "val_crop_size": 128}
        partial = {k: spec[k] for k in ("dataset", "encoder", "decoder", "seed", "encoder_weights")}
        run = tmp_path / job.decoder
        metrics = run_job({**partial, "training": training}, run, threads=1, echo=None)
        history = pd.read_csv(run / "history.csv").to_dict("records")
        losses = [row["train_loss"] for row in history]
        assert len(losses) == 6 and all(np.isfinite(losses))
        assert np.mean(losses[-2:]) < 0.85 * np.mean(losses[:2]), (job.job_id, losses)
        assert all(np.isfinite(row["val_iou"]) for row in history)  # validated every epoch (learning curve)
        assert metrics["epochs_run"] == 6


def test_demo_with_missing_datasets_stops_in_data_stage(tmp_path, capsys):
    """One line per missing dataset, raised by the data stage before the sweep stage runs."""
    from matseg_nb.errors import UserError
    from matseg_nb.pipeline import run_demo

    absent = [n for n in ("carbon", "fractography", "l-pbf", "al-pitting") if not _data_available(n)][:2]
    if len(absent) < 2:
        pytest.skip("fewer than two bring-your-own datasets are absent here")
    profile = json.loads(DEMO.read_text())
    profile["$schema"] = str(ROOT / "profiles" / "schema.json")
    for entry, name in zip(profile["dataset"], absent, strict=True):
        entry["ref"] = name
    path = tmp_path / "missing.json"
    path.write_text(json.dumps(profile))
    with pytest.raises(UserError) as err:
        run_demo(path, tmp_path / "out", stages=["profile", "data", "sweep"])
    assert len(err.value.problems) == 2
    assert all(p.startswith("data: dataset") for p in err.value.problems)
    assert f"'{absent[0]}'" in err.value.problems[0] and f"'{absent[1]}'" in err.value.problems[1]
    log = capsys.readouterr().out
    assert "== data" in log and "== sweep" not in log
    assert not (tmp_path / "out" / "sweep").exists()
