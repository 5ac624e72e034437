"""The model's error on the measurements for a k-fold cross-validated deployment: out of fold.

A CV deployment (the fold ensemble of ``runs.Sweep.deployed_runs``, or the refit trained on the whole pool)
has no image it did not train on when the pool is every annotated image (``evaluation.pool: all``), so its
error cannot be measured on its own predictions without measuring it in-sample. :func:`cv_oof_bias`
measures each pooled image with the fold model that did not train on it (the fold whose held-out groups,
job.json ``cv.val_groups``, hold the image), the CV estimate of the deployed model's error. Fold runs save
those out-of-fold masks at training time (``oof_predictions/<stem>.png``, ``runs.Run.predictions(oof=True)``)
and they are measured as saved; a fold run from before that (no saved out-of-fold masks) predicts its
held-out images again here (the same tiled inference as the batch, passed in as ``predict``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from matseg_nb.segment.folder import BiasRow


def cv_oof_bias(fold_runs: list[Path], class_names: list[str], length_unit: str | None,
                predict: Callable[[Any, np.ndarray], np.ndarray], deployed: str = "fold ensemble"
                ) -> tuple[list[BiasRow], dict[str, Any]]:
    """(rows, info) of ``summary.measurement_bias`` over the out-of-fold images of ``fold_runs``.

    Each fold run's saved out-of-fold masks are used when it has one for every held-out image; otherwise
    ``predict(deployed_model, image_chw) -> (H, W) class ids`` (``segment.model.DeployedModel``, native
    units) predicts them again. ``info``: run_dir (the first fold run), n_images, method ``out-of-fold``,
    ``fold_of`` {image: fold job id}, ``source`` {fold job id: ``saved`` or ``re-predicted``}, not_learned,
    note (what was measured and what it does not cover). A fold run that does not record its held-out groups
    gives no rows and a note saying why."""
    from matseg_nb.data import open_dataset
    from matseg_nb.runs import Run
    from matseg_nb.segment.model import from_run
    from matseg_nb.segment.summary import (
        held_out_samples,
        measurement_bias,
        not_learned,
        saved_prediction_pairs,
    )

    info: dict[str, Any] = {"run_dir": str(fold_runs[0]) if fold_runs else None, "n_images": 0,
                            "method": "out-of-fold", "fold_of": {}, "source": {}}
    pairs: dict[str, tuple[np.ndarray, np.ndarray, float | None]] = {}
    datasets: dict[str, Any] = {}
    for path in fold_runs:
        run = Run(Path(path))
        ref = str(run.dataset)
        if ref not in datasets:
            datasets[ref] = open_dataset(ref)
        ds = datasets[ref]
        held = held_out_samples(ds, run.provenance())
        if held is None:
            info["note"] = (f"{run.path.name} records no held-out image groups (job.json cv.val_groups): the "
                            f"{deployed}'s error on these numbers is unknown (not measured in-sample)")
            return [], info
        saved = run.predictions(oof=True)
        if held and all(s.name in saved for s in held):
            mine = saved_prediction_pairs(ds, held, saved)
            info["source"][run.job_id] = "saved"
        else:  # a fold run from before oof_predictions/: predict its held-out images again
            fold_model = from_run(run.path)
            mine = {s.name: (predict(fold_model, ds.load_image(s)), ds.load_mask(s), ds.pixel_size_um_of(s))
                    for s in held}
            info["source"][run.job_id] = "re-predicted"
        pairs.update(mine)
        info["fold_of"].update(dict.fromkeys(mine, run.job_id))
    info["n_images"] = len(pairs)
    info["not_learned"] = not_learned(pairs, class_names)
    names = ", ".join(sorted(datasets)) or "?"
    how = sorted(set(info["source"].values()))
    masks = {("saved",): "its out-of-fold mask saved at training time",
             ("re-predicted",): "predicted again here"}.get(tuple(how), "saved at training time or predicted again")
    info["note"] = (f"model - ground truth on {len(pairs)} annotated image(s) of {names}, each predicted out of "
                    f"fold by the one of the {len(fold_runs)} fold models that did not train on it ({masks}; "
                    f"the CV estimate for the deployed {deployed}, which trained on these images and is not "
                    "scored on them); it does not cover flagged images")
    return measurement_bias(pairs, class_names, length_unit), info
