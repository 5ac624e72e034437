"""The model's error on the measurements for a k-fold cross-validated deployment: out of fold.

A CV deployment (the fold ensemble of ``runs.Sweep.deployed_runs``, or the refit trained on the whole pool)
has no image it did not train on when the pool is every annotated image (``evaluation.pool: all``), so its
error cannot be measured on its own predictions without measuring it in-sample. :func:`cv_oof_bias`
measures each pooled image with the fold model that did not train on it (the fold whose held-out groups,
job.json ``cv.val_groups``, hold the image), the CV estimate of the deployed model's error. The run folders
keep out-of-fold scores (oof_per_image.csv) but not out-of-fold masks, so the fold models predict their
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

    ``predict(deployed_model, image_chw) -> (H, W) class ids`` (``segment.model.DeployedModel``, native
    units). ``info``: run_dir (the first fold run), n_images, method ``out-of-fold``, ``fold_of`` {image:
    fold job id}, not_learned, note (what was measured and what it does not cover). A fold run that does not
    record its held-out groups gives no rows and a note saying why."""
    from matseg_nb.data import open_dataset
    from matseg_nb.data.splits import cv_pool
    from matseg_nb.runs import Run
    from matseg_nb.segment.model import from_run
    from matseg_nb.segment.summary import measurement_bias, not_learned

    info: dict[str, Any] = {"run_dir": str(fold_runs[0]) if fold_runs else None, "n_images": 0,
                            "method": "out-of-fold", "fold_of": {}}
    pairs: dict[str, tuple[np.ndarray, np.ndarray, float | None]] = {}
    datasets: dict[str, Any] = {}
    for path in fold_runs:
        run = Run(Path(path))
        job = run.job()
        cv = job.get("cv") if isinstance(job.get("cv"), dict) else {}
        if cv.get("val_groups") is None:
            info["note"] = (f"{run.path.name} records no held-out image groups (job.json cv.val_groups): the "
                            f"{deployed}'s error on these numbers is unknown (not measured in-sample)")
            return [], info
        ref = str(run.dataset)
        if ref not in datasets:
            datasets[ref] = open_dataset(ref)
        ds = datasets[ref]
        held = set(cv["val_groups"])
        pool = cv_pool(ds.samples(), cv.get("pool") or job.get("pool") or "train+val")
        fold_model = from_run(run.path)
        for s in pool:
            if s.group not in held:
                continue
            name = Path(s.image).stem + (f"_z{s.slice_index:04d}" if s.slice_index is not None else "")
            pairs[name] = (predict(fold_model, ds.load_image(s)), ds.load_mask(s), ds.pixel_size_um_of(s))
            info["fold_of"][name] = run.job_id
    info["n_images"] = len(pairs)
    info["not_learned"] = not_learned(pairs, class_names)
    names = ", ".join(sorted(datasets)) or "?"
    info["note"] = (f"model - ground truth on {len(pairs)} annotated image(s) of {names}, each predicted out of "
                    f"fold by the one of the {len(fold_runs)} fold models that did not train on it (the CV "
                    f"estimate for the deployed {deployed}, which trained on these images and is not scored "
                    "on them); it does not cover flagged images")
    return measurement_bias(pairs, class_names, length_unit), info
