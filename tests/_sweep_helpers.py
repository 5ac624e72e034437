"""Helpers for the sweep tests: a tiny stand-in training notebook and tiny profiles.

The stand-in notebook has the real notebook's parameters (``job``, ``run_dir``, ``threads``)
and is executed by real papermill. It appends the job id to a counter file, then behaves as the
control file (env ``MATSEG_SWEEP_TEST_CONTROL``) says for the job: ``sleep`` seconds, ``raise``
a ValueError, or ``exit`` (``os._exit(1)``: kernel death); else it writes job.json and a
metrics.json whose IoU is a deterministic function of the seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

CONTROL_ENV = "MATSEG_SWEEP_TEST_CONTROL"

_BODY = '''
import json, os, pathlib, time
control = json.loads(pathlib.Path(os.environ["MATSEG_SWEEP_TEST_CONTROL"]).read_text())
rd = pathlib.Path(run_dir)
rd.mkdir(parents=True, exist_ok=True)
with open(control["counter"], "a") as fh:
    fh.write(job["job_id"] + "\\n")
act = dict(control.get("default", {}))
for key, value in control.get("jobs", {}).items():
    if key in job["job_id"]:
        act.update(value)
(rd / "job.json").write_text(json.dumps({"job_id": job["job_id"], "job": job}))
(rd / "history.csv").write_text("epoch,val_iou\\n0,0.25\\n1,0.5\\n")
time.sleep(act.get("sleep", 0))
if act.get("raise"):
    raise ValueError(act["raise"])
if act.get("exit"):
    os._exit(1)
metrics = {"dataset_level": {"iou": 0.1 + 0.01 * job["seed"]}, "threads": threads,
           "omp": os.environ.get("OMP_NUM_THREADS"), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}
(rd / "metrics.json").write_text(json.dumps(metrics))
'''


def make_fake_notebook(path: Path) -> Path:
    """Write the stand-in training notebook to ``path``."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('job = {}\nrun_dir = ""\nthreads = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(_BODY.strip())]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, path)
    return path


def write_control(path: Path, counter: Path, jobs: dict | None = None, default: dict | None = None) -> Path:
    """Write the control file: ``jobs`` maps a job-id substring to ``{sleep, raise, exit}``."""
    path.write_text(json.dumps({"counter": str(counter), "jobs": jobs or {}, "default": default or {}}))
    return path


def counted(counter: Path) -> list[str]:
    """Job ids the stand-in notebook started, in order."""
    return counter.read_text().split() if counter.exists() else []


def tiny_profile_dict(seeds=(0, 1, 2), decoders=("Unet",), name="sweep-test", **training) -> dict:
    """A small valid profile (nasa-super1, tu-test_resnet, no weights, 64 px, 1 epoch, 2 steps)."""
    train = {"batch_size": 2, "max_epochs": 1, "steps_per_epoch": 2, "crop_size": 64, "tile_size": 256,
             "tile_overlap": 32, "num_workers": 0, **training}
    return {
        "version": 1,
        "name": name,
        "dataset": [{"ref": "nasa-super1", "modality": "SEM", "material": {"class": "metals", "text": "superalloy"}}],
        "task": {"objective": "sweep test"},
        "model": {"encoders": ["tu-test_resnet"], "decoders": list(decoders), "encoder_weights": "none"},
        "training": train,
        "seeds": list(seeds),
        "execution": {"executor": "local",
                      "slurm": {"partition": "gpu-a100", "account": "mat-seg", "walltime": "03:30:00",
                                "cores": 8, "memory": "32GB", "gpus": 2,
                                "extra_directives": ["--constraint=a100"]}},
    }


def write_profile(path: Path, **kwargs) -> Path:
    """Write :func:`tiny_profile_dict` as JSON to ``path``."""
    path.write_text(json.dumps(tiny_profile_dict(**kwargs), indent=2))
    return path


def sweep_cmd(profile: Path, out: Path, *extra: str) -> list[str]:
    """``python -m matseg_nb.sweep PROFILE --out OUT --no-progress ...``."""
    return [sys.executable, "-m", "matseg_nb.sweep", str(profile), "--out", str(out), "--no-progress", *extra]


def run_sweep_cli(profile: Path, out: Path, *extra: str, control: Path | None = None, timeout: float = 300):
    """Run the sweep CLI to completion in a subprocess; returns the CompletedProcess."""
    env = dict(os.environ)
    if control is not None:
        env[CONTROL_ENV] = str(control)
    return subprocess.run(sweep_cmd(profile, out, *extra), env=env, capture_output=True, text=True,
                          timeout=timeout)


# -- fake run folders (the one writer every test helper uses) ------------------------------------------
def write_fake_run(sweep: Path, job_id: str, *, dataset: str = "nasa-super1", encoder: str = "tu-test_resnet",
                   decoder: str = "Unet", seed: int = 0, status: str = "complete",
                   ious: list[float] | None = None, dice: float | None = None, weights: str = "none",
                   latency_s: float = 0.01, n_params: int = 1_000_000, train_time_s: float = 12.5,
                   error: tuple[str, str] = ("RuntimeError", "CUDA out of memory"),
                   extra_job: dict | None = None, val_iou: float = 0.5) -> Path:
    """Write one run folder through ``matseg_nb.runs.Run``; returns it.

    ``status``: complete (job.json, history.csv, per_image.csv, metrics.json, COMPLETE), failed
    (job.json + error.json with ``error`` = (type, message)) or incomplete (job.json only). ``ious``: foreground IoU per test image
    (default one image at 0.8); the dataset-level IoU is their mean. ``val_iou``: the best-epoch validation IoU.
    """
    from matseg_nb.runs import Run

    run = Run(sweep / job_id)
    run.write_job({"job_id": job_id, "dataset": dataset, "encoder": encoder, "decoder": decoder, "seed": seed,
                   "encoder_weights": weights, "versions": {"torch": "2.x", "smp": "0.6.0"}, **(extra_job or {})})
    if status == "failed":
        run.write_error({"type": error[0], "message": error[1], "traceback": "..."})
        return run.path
    if status != "complete":
        return run.path
    ious = [0.8] if ious is None else [float(v) for v in ious]
    run.write_history([{"epoch": 0, "val_iou": val_iou / 2}, {"epoch": 1, "val_iou": val_iou}], ["epoch", "val_iou"])
    rows = []
    for i, v in enumerate(ious):
        rows.append({"image": f"img{i:03d}", "class_id": 0, "class_name": "background", "iou": 0.99, "dice": 0.99})
        rows.append({"image": f"img{i:03d}", "class_id": 1, "class_name": "phase", "iou": v, "dice": 2 * v / (1 + v)})
    run.write_per_image(rows, ["image", "class_id", "class_name", "iou", "dice"])
    mean = sum(ious) / len(ious)
    run.write_metrics({"dataset_level": {"iou": mean, "dice": dice if dice is not None else 2 * mean / (1 + mean),
                                         "wiou": mean, "pixel_accuracy": 0.95},
                       "per_image_mean": {"iou": mean}, "epochs_run": 2, "best_epoch": 1,
                       "best_val": {"val_iou": val_iou}, "train_time_s": train_time_s, "latency_s_per_image": latency_s,
                       "n_params": n_params, "encoder_weights": weights, "n_images": len(ious)})
    run.mark_complete("2026-01-01T00:00:00+00:00", 1.0)
    return run.path
