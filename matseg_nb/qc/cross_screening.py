"""Screen new images against the k fold runs of a cross-validation: every annotated image calibrates.

Fold run k's QC model is fitted on its own training images (the reference) and calibrated on its own
held-out images (``metrics.json["cv"]["val_groups"]``); a new image is scored by every fold's model, and
the folds' counts are pooled by :mod:`matseg_nb.qc.cross_conformal` (cross-conformal p-values, Vovk 2015).
So screening calibrates on all N annotated images instead of the 3-4 of one validation split. The batch
verdict follows the same rules as single-run screening (:func:`matseg_nb.qc.conformal.batch_test`):
"shifted" at p <= alpha, else "in distribution" with strong / weak evidence by the test's power against a
strong shift with N vs m images, else "too few images to tell".
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json_object
from matseg_nb.qc.conformal import MIN_POWER, TARGET_POWER, batch_power, flag_count_test, reason
from matseg_nb.qc.cross_conformal import cross_conformal_batch_test, cross_conformal_image_pvalues
from matseg_nb.qc.features import ImageItem
from matseg_nb.qc.power import screening_power_words
from matseg_nb.qc.results import ImageScreen, ScreeningResult


def fold_groups(run_dir: str | Path) -> tuple[list[str], list[str]]:
    """(train groups, held-out groups) of a cross-validation fold run, from ``metrics.json["cv"]``."""
    path = Path(run_dir) / "metrics.json"
    data = read_json_object(path)
    if data is None:
        raise UserError(f"{path}: expected the metrics.json of a cross-validation fold run, found no such file")
    cv = data.get("cv")
    if not isinstance(cv, dict) or not cv.get("val_groups") or not cv.get("train_groups"):
        raise UserError(f"{path}: expected 'cv' with train_groups and val_groups (a k-fold run), found {cv!r}")
    return [str(g) for g in cv["train_groups"]], [str(g) for g in cv["val_groups"]]


#: a CV job id: <config>__f<fold>of<folds>__<hash8> (matseg_nb.profiles.jobs)
#: (the refit on the whole pool: <config>__refitof<folds>__<hash8>; its folds are its siblings)
FOLD_ID = re.compile(r"^(?P<config>.+)__(?:f(?P<fold>\d+)of|refitof)(?P<folds>\d+)__[0-9a-f]+$")


def sibling_fold_runs(run_dir: str | Path) -> list[Path]:
    """The complete fold runs of ``run_dir``'s cross-validation (itself included; for a refit run, the folds it
    was refitted after), from the job ids in its sweep folder; UserError naming the folder when it is not a
    CV run or a fold is missing."""
    from matseg_nb.runs import Run

    run_dir = Path(run_dir)
    m = FOLD_ID.match(run_dir.name)
    if not m:
        raise UserError(f"{run_dir}: expected a cross-validation fold run (job id ..__f<k>of<K>__<hash>), found "
                        f"{run_dir.name}")
    folds = int(m["folds"])
    found = {}
    for p in sorted(run_dir.parent.iterdir()):
        q = FOLD_ID.match(p.name)
        if q and q["fold"] is not None and q["config"] == m["config"] and int(q["folds"]) == folds \
                and Run(p).is_complete:
            found[int(q["fold"])] = p
    missing = sorted(set(range(folds)) - set(found))
    if missing:
        raise UserError(f"{run_dir.parent}: expected the {folds} complete fold runs of {m['config']}, found none "
                        f"complete for fold(s) {', '.join(map(str, missing))}")
    return [found[k] for k in range(folds)]


def screen_run_folds(run_dir: str | Path, new: list[str], out_dir: str | Path, alpha: float = 0.05,
                     qc_settings=None, detector: str = "ocsvm", k: int = 5, seed: int = 0) -> list[ScreeningResult]:
    """Cross-conformal screening of each ``new`` source (files, folders, dataset refs) against the fold runs of
    ``run_dir``'s CV; writes ``out_dir/qc.json`` {"mode": "screening", "cross_conformal": true, "fold_runs",
    "screening": [...]} like :func:`matseg_nb.qc.screening.screen_run`. Returns the results."""
    from matseg_nb.qc.folder import QCFolder
    from matseg_nb.qc.screening import load_new_images
    from matseg_nb.qc.session import QCSession

    if not new:
        raise UserError("--new: expected at least one image file, folder or dataset ref, found none")
    runs = sibling_fold_runs(run_dir)
    ds = QCSession.open(runs[0]).ds
    results = []
    for ref in new:
        items, notes = load_new_images(ref, ds.in_channels, ds)
        res = screen_folds(runs, items, ref, alpha, qc_settings, detector, k, seed)
        res.images += [ImageScreen(n, None, None, None, "not screened", note) for n, note in notes.items()]
        results.append(res)
    QCFolder(Path(out_dir)).write_screening(results, cross_conformal=True, run_dir=str(run_dir),
                                            fold_runs=[str(r) for r in runs], alpha=alpha, detector=detector)
    return results


def _fold_keys(run_dir: Path, pool: list[ImageItem], new: list[ImageItem], qc_settings, detector: str, k: int,
               seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(held-out images' crop keys, new images' crop keys) under fold run ``run_dir``'s model and QC fit."""
    from matseg_nb.qc.model import fit_qc
    from matseg_nb.qc.session import QCSession

    train_groups, val_groups = fold_groups(run_dir)
    reference = [it for it in pool if str(it.meta.get("group")) in set(train_groups)]
    heldout = [it for it in pool if str(it.meta.get("group")) in set(val_groups)]
    if len(reference) < 2 or not heldout:
        raise UserError(f"{run_dir}: expected >= 2 training and >= 1 held-out images of its fold in the dataset, "
                        f"found {len(reference)} and {len(heldout)}")
    session = QCSession.open(run_dir)
    ext = session.extractor(tuple(qc_settings.extractors), qc_settings.tile_size, qc_settings.tiles_per_image, seed)
    qc = fit_qc(*ext(reference, desc=f"QC fold {run_dir.name}: reference"), k, (detector,), seed=seed)

    def per_image(items: list[ImageItem]) -> list[np.ndarray]:
        if not items:
            return []
        blocks, groups = ext(items, desc=f"QC fold {run_dir.name}: scoring")
        keys = qc.keys(blocks, groups, (detector,))[0][detector]
        return [keys[groups == i] for i in range(len(items))]

    return per_image(heldout), per_image(new)


def screen_folds(fold_runs: list[str | Path], new: list[ImageItem], batch: str = "new", alpha: float = 0.05,
                 settings=None, detector: str = "ocsvm", k: int = 5, seed: int = 0) -> ScreeningResult:
    """Cross-conformal :class:`ScreeningResult` of ``new`` images against the ``fold_runs`` of one CV.

    ``settings``: :class:`matseg_nb.loop.StageSettings` or :class:`matseg_nb.loop.QCSettings` (extractors and
    crops; default the named stage settings). The calibration set is every fold's held-out images (``n_calibration_images`` = N)."""
    from matseg_nb.loop import stage_settings
    from matseg_nb.qc.session import QCSession
    from matseg_nb.qc.sources import dataset_items

    runs = [Path(r) for r in fold_runs]
    if len(runs) < 2:
        raise UserError(f"cross-conformal screening: expected the >= 2 fold runs of a k-fold CV, found {len(runs)}")
    settings = settings or stage_settings()
    qc_settings = getattr(settings, "qc", settings)
    ds = QCSession.open(runs[0]).ds
    pool = [it for it in dataset_items(ds, None) if it.mask is not None]  # each fold picks its groups
    cal, scored = [], []
    for run in runs:
        c, s = _fold_keys(run, pool, new, qc_settings, detector, k, seed)
        cal.append(c)
        scored.append(s)
    n_cal = sum(len(c) for c in cal)
    names = [it.name for it in new]
    images = []
    if new:
        p, typ = cross_conformal_image_pvalues([np.concatenate(c) for c in cal], scored)
        n_crops = sum(len(t) for c in cal for t in c)
        smallest = min(1.0, 2.0 / (n_crops + 1))
        images = [ImageScreen(n, float(pv), float(t), bool(pv <= alpha), reason(float(pv), alpha, smallest))
                  for n, pv, t in zip(names, p, typ, strict=True)]
    test = cross_conformal_batch_test(cal, scored, alpha) if new else {"p_value": None, "test": "",
                                                                        "smallest_possible_p": 1.0}
    power = batch_power(n_cal, len(new), float(alpha)) if new else 0.0
    n_flag = sum(1 for i in images if i.flagged)
    verdict, evidence, notes = _verdict(test, power, alpha, n_flag, len(new), n_cal)
    notes.insert(0, f"cross-conformal over {len(runs)} folds: each fold's model against its own held-out images, "
                    f"{n_cal} calibration images in all")
    return ScreeningResult(batch, images, alpha, n_flag, len(new), verdict, test["test"], test["p_value"],
                           flag_count_test(n_flag, len(new), alpha), "each fold's training images",
                           "held-out (all folds)", detector, n_cal, notes, power, evidence)


def _verdict(test: dict, power: float, alpha: float, n_flag: int, m: int, n_cal: int) -> tuple[str, str, list[str]]:
    """(verdict, evidence, notes) by the rules of :func:`matseg_nb.qc.conformal.batch_test`."""
    p = test["p_value"]
    if p is None or test["smallest_possible_p"] > alpha:
        return "too few images to tell", "", [f"{m} image(s) vs {n_cal} calibration images: the batch test cannot "
                                              f"reach p <= {alpha:g}"]
    if p <= alpha:
        return "shifted", "", []
    if power < MIN_POWER or (power < TARGET_POWER and n_flag):
        return "too few images to tell", "", [f"no shift found, but {m} image(s) vs {n_cal} calibration images "
                                              f"detect a strong shift only {100 * power:.0f}% of the time; "
                                              + screening_power_words(n_cal, m, alpha)]
    if power < TARGET_POWER:
        return "in distribution", "weak", [f"weak evidence: {m} image(s) vs {n_cal} calibration images detect a "
                                           f"strong shift {100 * power:.0f}% of the time (below "
                                           f"{100 * TARGET_POWER:.0f}%); " + screening_power_words(n_cal, m, alpha)]
    return "in distribution", "strong", []


def cv_fold_runs(run_dir: str | Path) -> list[Path]:
    """The fold runs of ``run_dir``'s k-fold CV when it is a CV fold or refit run with every fold complete;
    [] otherwise (a holdout run, or a CV whose folds are not all complete: single-run screening then)."""
    if not FOLD_ID.match(Path(run_dir).name):
        return []
    try:
        return sibling_fold_runs(run_dir)
    except UserError:
        return []


def screen_loop_batches(fold_runs: list[Path], batches: list[tuple[str, list[ImageItem]]], out_dir: str | Path,
                        settings=None, detector: str = "ocsvm", alpha: float = 0.05) -> list[ScreeningResult]:
    """Cross-conformal screening of the QC loop's batches (``matseg_nb.qc.dataset_qc.qc_dataset``) for a CV run.

    Images of the run's own dataset (batches named ``split:...``) whose group is in the CV pool were
    trained on by the other folds' models, so they are left out, with a note; the rest (other datasets,
    images outside the pool and their shifted copies) are screened. Writes ``out_dir/qc.json`` as
    :func:`matseg_nb.qc.screening.screen_run` does. Returns the results."""
    from matseg_nb.qc.folder import QCFolder

    pool = {g for run in fold_runs for g in fold_groups(run)[1]}
    results, skipped = [], []
    for name, items in batches:
        keep = [it for it in items if not (name.startswith("split:") and str(it.meta.get("group")) in pool)]
        if not keep and items:
            skipped.append(name)  # every image was trained on by some fold: nothing new to screen
            continue
        res = screen_folds(fold_runs, keep, name, alpha, settings, detector)
        if len(keep) < len(items):
            res.notes.append(f"{len(items) - len(keep)} image(s) of this batch are in the CV pool (trained on by "
                             "other folds) and were not screened")
        results.append(res)
    for res in results:
        res.notes += [f"{name} not screened: its images are in the CV pool (each trained on by the other folds)"
                      for name in skipped]
    QCFolder(Path(out_dir)).write_screening(results, cross_conformal=True, fold_runs=[str(r) for r in fold_runs],
                                            alpha=alpha, detector=detector)
    return results
