"""Golden files of a small deterministic QC run: ``qc.json`` and ``scores.csv`` of detector validation and
the screening ``qc.json``, compared structurally with a float tolerance.

A redesign of ``matseg_nb.qc`` may add fields but change no answer: every key of the golden file must be
present with the same value (floats within :data:`RTOL`/:data:`ATOL`), lists keep their length and order.
Regenerate on purpose only (``MATSEG_NB_UPDATE_GOLDEN=1 pytest tests/test_qc_golden.py``) and say in the
commit which answer changed and why. History: captured before the QC redesign; regenerated once when
``scores.csv``, the deployment thresholds, the per-level detection metrics and ``auroc_only_verdict`` moved
from raw detector scores to the typicality key (the screening's per-image typicality); the validation
answer, ``what_decided``, the fit and the screening output stayed the same.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest
import torch
from _qc_helpers import folder_dataset, tiny_run

GOLDEN = Path(__file__).parent / "data" / "qc_golden"
RTOL, ATOL = 1e-5, 1e-8
#: volatile fields (timings), compared by presence only
VOLATILE = {"seconds"}


def _normalise(obj, tmp: str):
    """Temporary paths replaced by ``<tmp>``; tuples as lists (the JSON view)."""
    if isinstance(obj, dict):
        return {k.replace(tmp, "<tmp>"): _normalise(v, tmp) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_normalise(v, tmp) for v in obj]
    if isinstance(obj, str):
        return obj.replace(tmp, "<tmp>")
    return obj


def _num(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def differences(golden, new, where: str = "") -> list[str]:
    """Where ``new`` differs from ``golden`` (extra keys in ``new`` are allowed: new fields)."""
    if isinstance(golden, dict):
        if not isinstance(new, dict):
            return [f"{where}: expected an object, found {type(new).__name__}"]
        out = []
        for k, v in golden.items():
            if k not in new:
                out.append(f"{where}.{k}: missing")
            elif k not in VOLATILE:
                out += differences(v, new[k], f"{where}.{k}")
        return out
    if isinstance(golden, list):
        if not isinstance(new, list) or len(new) != len(golden):
            return [f"{where}: expected a list of {len(golden)}, found {new!r:.80}"]
        return [d for i, (a, b) in enumerate(zip(golden, new, strict=True)) for d in differences(a, b, f"{where}[{i}]")]
    a, b = _num(golden), _num(new)
    if a is not None and b is not None:
        if math.isnan(a) and math.isnan(b) or math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL):
            return []
        return [f"{where}: expected {a!r}, found {b!r}"]
    return [] if golden == new else [f"{where}: expected {golden!r:.80}, found {new!r:.80}"]


def _csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def qc_outputs(tmp_path_factory) -> dict:
    """The QC outputs of a 6-train/3-test synthetic dataset and an untrained tiny Unet, as JSON values."""
    from matseg_nb.qc.run import run_qc
    from matseg_nb.qc.screening import screen_run
    from matseg_nb.qc.settings import QCSettings

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("golden")
    ds = folder_dataset(tmp / "ds", n_train=6, n_test=3, seed=0)
    other = folder_dataset(tmp / "other", n_train=1, n_test=3, seed=7)
    run = tiny_run(tmp / "run", ds)
    settings = QCSettings(shifts=("noise:strong", "blur:strong"), level="both", extractors=("encoder", "texture"),
                          detectors=("gmm", "ocsvm"), tile_size=48, tiles_per_image=6, predict_tile=1024,
                          iou_crop=None, gallery_rows=2)
    run_qc(run, settings, test=[f"{other}:test"], out_dir=tmp / "val")
    screen_run(run, [str(ds / "images" / "test")], tmp / "scr", extractors=("texture",), tile_size=48,
               tiles_per_image=6, shifts=["noise:strong"])
    t = str(tmp)
    return {"qc.json": _normalise(json.loads((tmp / "val" / "qc.json").read_text()), t),
            "scores.csv": _normalise(_csv_rows(tmp / "val" / "scores.csv"), t),
            "screening.json": _normalise(json.loads((tmp / "scr" / "qc.json").read_text()), t)}


@pytest.mark.parametrize("name", ["qc.json", "scores.csv", "screening.json"])
def test_qc_outputs_match_the_golden_files(qc_outputs, name):
    path = GOLDEN / f"{name}.golden.json"
    if os.environ.get("MATSEG_NB_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(qc_outputs[name], indent=1, sort_keys=True) + "\n")
    golden = json.loads(path.read_text())
    diff = differences(golden, qc_outputs[name], name)
    assert not diff, "\n".join(diff[:20]) + (f"\n(+{len(diff) - 20} more)" if len(diff) > 20 else "")


def test_the_comparison_can_fail():
    """A changed number, a changed word, a missing key and a shorter list are all found; a new key is not."""
    golden = {"a": 1.0, "b": "ready", "c": [1, 2], "d": {"e": 0.5}}
    assert differences(golden, {**golden, "new": 3}) == []
    assert differences(golden, {**golden, "a": 1.0 + 1e-3})
    assert differences(golden, {**golden, "b": "not ready"})
    assert differences(golden, {k: v for k, v in golden.items() if k != "d"})
    assert differences(golden, {**golden, "c": [1]})
