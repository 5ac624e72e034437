"""Notebooks 01 -> 06, run in order by papermill on their defaults, write the same report as ``matseg demo``.

A project folder holds a TINY profile at the notebooks' default path ``profiles/demo-cpu.json`` (1 dataset,
resnet18 x {Unet, FPN} = 2 jobs, 1 epoch x 2 steps of 64 px crops) and the loop runs on the ``tiny`` stage
settings (``MATSEG_NB_STAGE_SETTINGS=tiny``, ``matseg_nb.loop.TINY_SETTINGS``). The six notebooks run with
papermill in that folder with NO parameter (their defaults ``profile``/``loop_root`` point there), writing
``runs/demo/``. Then ``matseg demo profiles/demo-cpu.json --out runs/demo-cli`` runs on a copy of the
notebooks' trained sweep (its sweep stage resumes; training twice would only test determinism and double
the time) and both ``report.json`` files must be equal once times, durations, latencies and paths are blanked.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAIN = ["01_configure", "02_train_sweep", "03_compare", "04_qc", "05_explain", "06_report", "07_segment"]

pytestmark = pytest.mark.slow

#: keys whose values vary between two runs of the same loop (wall-clock, measured speed, file locations)
VARYING_KEY = re.compile(r"(time|seconds|duration|latency|_s$|_ms|path|dir$|file|created|generated|host|html|json$|eta)", re.I)


def tiny_chain_profile() -> dict:
    from matseg_nb.widgets.profile_editor import default_profile

    profile = default_profile("nasa-super1")
    profile["name"] = "chain-tiny"
    profile["model"] = {"encoders": ["resnet18"], "decoders": ["Unet", "FPN"], "encoder_weights": "none"}
    profile["training"].update({"max_epochs": 1, "steps_per_epoch": 2, "val_crop_size": 64})
    return profile


def comparable(obj, roots: tuple[str, ...]):
    """``obj`` with varying keys dropped and the loop roots replaced by ROOT in every string."""
    if isinstance(obj, dict):
        return {k: comparable(v, roots) for k, v in obj.items() if not VARYING_KEY.search(str(k))}
    if isinstance(obj, list):
        return [comparable(v, roots) for v in obj]
    if isinstance(obj, str):
        for root in roots:
            obj = obj.replace(root, "ROOT")
        return re.sub(r"\d+(\.\d+)?\s?(s|ms|min)\b", "DURATION", obj)
    return obj


def _diff(a, b, where="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}: only in {'notebooks' if k in a else 'demo'}" for k in set(a) ^ set(b)]
        return out + [d for k in sorted(set(a) & set(b), key=str) for d in _diff(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: notebooks {str(a)[:200]!r} != demo {str(b)[:200]!r}"]


def test_comparable_blanks_only_what_varies():
    a = {"iou": 0.5, "duration_s": 3.0, "run": "/x/runs/demo/sweep/j", "note": "took 3.2 s"}
    b = {"iou": 0.5, "duration_s": 9.0, "run": "/y/runs/demo-cli/sweep/j", "note": "took 7 s"}
    assert comparable(a, ("/x/runs/demo",)) == comparable(b, ("/y/runs/demo-cli",))
    assert _diff(comparable({**a, "iou": 0.6}, ("/x/runs/demo",)), comparable(b, ("/y/runs/demo-cli",)))


def test_notebook_chain_on_defaults_equals_matseg_demo(tmp_path, monkeypatch):
    import papermill

    from matseg_nb.cli import main

    project = tmp_path / "project"
    (project / "profiles").mkdir(parents=True)
    (project / "profiles" / "demo-cpu.json").write_text(json.dumps(tiny_chain_profile(), indent=2))
    monkeypatch.setenv("MATSEG_NB_STAGE_SETTINGS", "tiny")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(project)
    for name in CHAIN:  # no parameters: the notebooks' defaults
        papermill.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(project / f"{name}.out.ipynb"),
                                   cwd=str(project), progress_bar=False, kernel_name="python3")
    nb_root, demo_root = project / "runs" / "demo", project / "runs" / "demo-cli"
    assert (nb_root / "report.html").is_file()
    assert (nb_root / "segment" / "nasa-super1" / "segment.json").is_file()  # 07 after 06, on its defaults
    shutil.copytree(nb_root / "sweep", demo_root / "sweep")
    assert main(["demo", "profiles/demo-cpu.json", "--out", "runs/demo-cli"]) == 0

    nb_facts = json.loads((nb_root / "report.json").read_text())
    demo_facts = json.loads((demo_root / "report.json").read_text())
    assert nb_facts["answers"] and nb_facts["answers"][0]["dataset"] == "nasa-super1"
    for section in ("compare", "qc", "explain"):  # every stage ran on both routes
        assert nb_facts["sections"][section].get("status", "ok") == "ok", (section, nb_facts["sections"][section])
    a = comparable(nb_facts, (str(nb_root.resolve()), str(nb_root)))
    b = comparable(demo_facts, (str(demo_root.resolve()), str(demo_root)))
    differences = _diff(a, b)
    assert not differences, "\n".join(differences[:20])
