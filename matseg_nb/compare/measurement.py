"""The measurement error of each cell, beside its IoU: how wrong the microstructure numbers of its models are.

For every complete run of a cell, ``matseg_nb.segment.summary.run_test_bias`` measures its saved test
predictions and the ground-truth masks (area fraction per class; equivalent-diameter median of the
interior objects per foreground class) and takes ``prediction - truth`` per image. A cross-validation fold
run without test predictions (k-fold CV over all annotated images, ``evaluation.pool: all``) is measured OUT
OF FOLD instead: its saved out-of-fold masks (``oof_predictions/``, the images its fold model did not train
on) against their ground truth, the same measurements (``run_test_bias(..., oof=True)``). The cell gets the
mean of each bias over its runs' images (each run weighted by its number of images, so a CV cell's value is
the mean over every pooled image), as two columns: ``af_abs_bias_pp`` (the largest |area-fraction bias| over
the foreground classes, percentage points) and ``measurement_error`` (per foreground class:
``<class>: area ±x pp, d50 ±y <unit>``, ending ``(out of fold)`` when measured out of fold). Runs with neither
saved test nor out-of-fold predictions (fold runs from before ``oof_predictions/``) leave the columns empty.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: the measurement_error text's ending for a cell measured on out-of-fold images
OOF_SUFFIX = " (out of fold)"


def _run_biases(run_dir: str, cache: dict) -> dict[tuple[str, str], tuple[float, str, int]]:
    """(class, quantity) -> (bias, unit, n images) of one run, plus ("", "foreground") -> the foreground
    class names (ids >= 1) in order and ("", "oof") -> whether it was measured out of fold; {} without saved
    test or out-of-fold predictions or classes."""
    if run_dir in cache:
        return cache[run_dir]
    from matseg_nb.runs import Run, RunFileError
    from matseg_nb.segment.summary import run_test_bias

    out: dict[tuple[str, str], tuple[float, str, int]] = {}
    oof = False
    try:
        run = Run(run_dir)
        classes = [str(c.get("name")) for c in sorted(run.provenance().get("classes") or [], key=lambda c: c["id"])]
        rows, _ = run_test_bias(run_dir, classes) if classes else ([], {})
        job = run.job()
        if classes and not rows and job.get("folds") and not job.get("refit"):
            rows, _ = run_test_bias(run_dir, classes, oof=True)
            oof = True
    except (RunFileError, OSError, ValueError, KeyError):
        rows = []
    for r in rows:
        if r.bias is not None and r.name in ("area_fraction", "eqd_median"):
            out[(r.class_name, r.name)] = (r.bias, r.unit, r.n)
    if out:
        out[("", "foreground")] = (math.nan, " ".join(classes[1:]), 0)
        out[("", "oof")] = (float(oof), "", 0)
    cache[run_dir] = out
    return out


def measurement_columns(cells: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with ``af_abs_bias_pp`` and ``measurement_error`` added (see the module docstring);
    ``runs``: ``RunSet.runs`` (job rows with ``run_dir``, ``status`` and the cell keys)."""
    from matseg_nb.compare.aggregate import _cell_mask

    cache: dict = {}
    af, words = [], []
    for _, cell in cells.iterrows():
        done = runs[_cell_mask(runs, cell) & (runs["status"] == "complete")]
        per_run = [_run_biases(str(d), cache) for d in done.get("run_dir", pd.Series(dtype=str))]
        per_run = [b for b in per_run if b]
        if not per_run:
            af.append(math.nan)
            words.append("—")
            continue
        keys = sorted({k for b in per_run for k in b if k[0]})
        mean = {k: (float(np.average([b[k][0] for b in per_run if k in b], weights=[b[k][2] for b in per_run if k in b])),
                    next(b[k][1] for b in per_run if k in b)) for k in keys}
        fg = per_run[0][("", "foreground")][1].split(" ")
        af_fg = [abs(mean[(c, "area_fraction")][0]) for c in fg if (c, "area_fraction") in mean]
        af.append(max(af_fg) if af_fg else math.nan)
        parts = []
        for c in fg:
            a = mean.get((c, "area_fraction"))
            d = mean.get((c, "eqd_median"))
            text = f"{c}: area {a[0]:+.2f} pp" if a else f"{c}: area ?"
            parts.append(text + (f", d50 {d[0]:+.3g} {d[1]}" if d else ", d50 n/a (no interior objects)"))
        oof = any(b[("", "oof")][0] for b in per_run)
        words.append(("; ".join(parts) + (OOF_SUFFIX if oof else "")) if parts else "—")
    return cells.assign(af_abs_bias_pp=af, measurement_error=words)
