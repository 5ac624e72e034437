"""Batch statistics over the per-image quantities, and the model's error on them over its test images.

:func:`batch_summary`: per quantity, the mean over the segmented, unflagged images with a 95 % interval of
the mean (Student t, n - 1 degrees of freedom; none below 2 images); flagged images are listed apart with
their values. :func:`measurement_bias`: per quantity, ``model - ground truth`` on each test image, its
mean (bias) and SD (spread); area fractions in percentage points (pp).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from matseg_nb.segment.folder import BiasRow, ImageRecord, Quantity, SummaryRow
from matseg_nb.segment.measure import measure_mask

#: quantities summarised across images (counts and border counts stay per image)
SUMMARISED = ("area_fraction", "number_density", "eqd_median", "eqd_q1", "eqd_q3")


def mean_interval(values: list[float], level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """(mean, lo, hi) of the mean: t interval; (mean, None, None) for one value; Nones for none."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return None, None, None
    m = float(v.mean())
    if v.size < 2:
        return m, None, None
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def _bias_unit(q: Quantity) -> str:
    return "pp" if q.name == "area_fraction" else q.unit


def batch_summary(records: list[ImageRecord], bias: list[BiasRow] | None = None) -> list[SummaryRow]:
    """One :class:`SummaryRow` per (class, quantity, unit) over the segmented images; flagged images
    (``qc_flag``) are left out of the mean and listed in ``flagged``."""
    by_key: dict[tuple[str, str, str], dict[str, list]] = {}
    for rec in records:
        if not rec.segmented:
            continue
        for q in rec.measurements:
            if q.name not in SUMMARISED:
                continue
            slot = by_key.setdefault((q.class_name, q.name, q.unit), {"ok": [], "flagged": {}})
            if rec.qc_flag:
                slot["flagged"][rec.name] = q.value
            elif q.value is not None:
                slot["ok"].append(q.value)
    errors = {(b.class_name, b.name): b for b in bias or []}
    rows = []
    for (cls, name, unit), slot in by_key.items():
        mean, lo, hi = mean_interval(slot["ok"])
        b = errors.get((cls, name))
        same_unit = b is not None and (b.unit == unit or (name == "area_fraction" and b.unit == "pp"))
        rows.append(SummaryRow(cls, name, unit, mean, lo, hi, len(slot["ok"]),
                               b.bias if same_unit else None, b.spread if same_unit else None,
                               b.n if same_unit else 0, slot["flagged"]))
    return rows


def measurement_bias(pairs: Mapping[str, tuple[np.ndarray, np.ndarray, float | None]], class_names: list[str],
                     length_unit: str | None = None) -> list[BiasRow]:
    """``pairs``: image name -> (predicted mask, ground-truth mask, pixel size in µm or None), both (H, W)
    class ids. Returns one :class:`BiasRow` per summarised quantity: per-image pred - truth, mean, SD."""
    diffs: dict[tuple[str, str, str], dict[str, float | None]] = {}
    for name, (pred, truth, px) in pairs.items():
        mp = {q.key: q for q in measure_mask(pred, class_names, px, length_unit)}
        for qt in measure_mask(truth, class_names, px, length_unit):
            if qt.name not in SUMMARISED:
                continue
            qp = mp[qt.key]
            d = None if qp.value is None or qt.value is None else qp.value - qt.value
            diffs.setdefault((qt.class_name, qt.name, _bias_unit(qt)), {})[name] = d
    rows = []
    for (cls, qname, unit), per in diffs.items():
        v = np.asarray([d for d in per.values() if d is not None], dtype=np.float64)
        rows.append(BiasRow(cls, qname, unit, float(v.mean()) if v.size else None,
                            float(v.std(ddof=1)) if v.size > 1 else None, int(v.size), per))
    return rows


def not_learned(pairs: Mapping[str, tuple[np.ndarray, np.ndarray, float | None]], class_names: list[str]
                ) -> list[dict]:
    """Foreground classes the model never predicts on the test images that contain them:
    ``[{"class_name", "n_images": images whose ground truth has the class}]`` (their numbers are 0 by
    construction, whatever the sample holds)."""
    out = []
    for cid, name in enumerate(class_names[1:], start=1):
        holding = [n for n, (_, truth, _) in pairs.items() if np.any(truth == cid)]
        if holding and not any(np.any(pairs[n][0] == cid) for n in holding):
            out.append({"class_name": name, "n_images": len(holding)})
    return out


def saved_prediction_pairs(ds, samples, preds: Mapping[str, object]
                           ) -> dict[str, tuple[np.ndarray, np.ndarray, float | None]]:
    """Sample name -> (saved predicted mask, ground-truth mask, pixel size in µm or None) for each annotated
    sample of ``samples`` (``matseg_nb.data`` samples of dataset ``ds``) with a saved PNG in ``preds``
    (``runs.Run.predictions``: name -> path)."""
    from matseg_nb.segment.folder import read_mask

    return {s.name: (read_mask(preds[s.name]), ds.load_mask(s), ds.pixel_size_um_of(s))
            for s in samples if s.name in preds and s.mask is not None}


def held_out_samples(ds, job_json: dict) -> list | None:
    """The pooled samples of dataset ``ds`` that a cross-validation fold job held out, from its job.json in
    full (``runs.Run.provenance``: the top-level ``cv`` that ``training.runner`` writes): those of its held-out
    groups (``cv.val_groups``) in its pool (``cv.pool``: ``all`` or ``train+val``). None when job.json records
    no held-out groups (not a fold job)."""
    from matseg_nb.data.splits import cv_pool

    cv = job_json.get("cv") if isinstance(job_json.get("cv"), dict) else {}
    if cv.get("val_groups") is None:
        return None
    held = set(cv["val_groups"])
    pool = cv.get("pool") or job_json.get("pool") or "train+val"
    return [s for s in cv_pool(ds.samples(), pool) if s.group in held]


def run_test_bias(run_dir, class_names: list[str], length_unit: str | None = None, oof: bool = False
                  ) -> tuple[list[BiasRow], dict]:
    """:func:`measurement_bias` over a run's test images: its saved predictions (``predictions/<stem>.png``,
    read through ``runs.Run``) against the dataset's ground-truth masks, each with its pixel size. ``oof``: a
    cross-validation fold run's out-of-fold images instead (``oof_predictions/<stem>.png`` against the masks of
    its held-out images, ``held_out_samples``). Returns (rows, info: run_dir, n_images, note,
    not_learned). No saved predictions: ([], info with the reason)."""
    from matseg_nb.data import open_dataset
    from matseg_nb.errors import UserError
    from matseg_nb.runs import Run

    run = Run(run_dir)
    what = "out-of-fold" if oof else "test"
    info = {"run_dir": str(run.path), "n_images": 0, "note": ""}
    preds = run.predictions(oof)
    if not preds:
        info["note"] = f"{run.path.name} has no {what} predictions: the model's error on these numbers is unknown"
        return [], info
    try:
        ds = open_dataset(run.dataset)
    except UserError as err:
        info["note"] = f"dataset {run.dataset} not available ({err.problems[0]}): error unknown"
        return [], info
    if oof:
        samples = held_out_samples(ds, run.provenance()) or []
    else:
        samples = ds.samples("test")
    pairs = saved_prediction_pairs(ds, samples, preds)
    info["n_images"] = len(pairs)
    info["not_learned"] = not_learned(pairs, class_names)
    info["note"] = (f"model - ground truth on {len(pairs)} {what} image(s) of {run.dataset} (the run's saved "
                    f"{what} predictions); it does not cover flagged images")
    return measurement_bias(pairs, class_names, length_unit), info
