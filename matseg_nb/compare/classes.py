"""Name the classes no model learned: a class whose IoU is at most :data:`UNLEARNED_IOU` in every compared
model (mean per-image IoU over the scored images that contain it: test images, or out-of-fold images under
cross-validation), with what would help."""

from __future__ import annotations

import pandas as pd

#: a class whose IoU is at most this in every model is "not learned"
UNLEARNED_IOU = 0.01
#: below this mean share of an image's annotated pixels a class counts as rare
RARE_FRACTION = 0.01


def class_scores(per_class: pd.DataFrame, arch_of_job: dict[str, str], dataset_of_job: dict[str, str]) -> pd.DataFrame:
    """One row per (dataset, arch, class): mean IoU over the scored images that contain the class
    (``gt_fraction > 0``; every image when no fraction is recorded), the number of those images and the
    mean fraction of pixels the class covers in them. Background (class 0) is left out when other classes exist."""
    cols = ["dataset", "arch", "class_id", "class_name", "iou", "n_images", "gt_fraction"]
    if per_class is None or per_class.empty:
        return pd.DataFrame(columns=cols)
    pc = per_class.assign(arch=per_class["job_id"].map(arch_of_job), dataset=per_class["job_id"].map(dataset_of_job))
    pc = pc.dropna(subset=["arch", "dataset"])
    if pc["class_id"].nunique() > 1:
        pc = pc[pc["class_id"] >= 1]
    frac = pd.to_numeric(pc["gt_fraction"], errors="coerce")
    present = pc[frac.isna() | (frac > 0)]
    # one value per (model, image, class): seeds averaged first, then images
    per_img = present.groupby(["dataset", "arch", "class_id", "class_name", "image"], as_index=False).agg(
        iou=("iou", "mean"), gt_fraction=("gt_fraction", "mean"))
    out = per_img.groupby(["dataset", "arch", "class_id", "class_name"], as_index=False).agg(
        iou=("iou", "mean"), n_images=("image", "nunique"), gt_fraction=("gt_fraction", "mean"))
    return out[cols]


def unlearned_classes(scores: pd.DataFrame, threshold: float = UNLEARNED_IOU) -> list[dict]:
    """Classes of each dataset whose IoU is <= ``threshold`` in EVERY compared model:
    dataset, class_name, best_iou, best_arch, n_models, n_images, gt_fraction, text."""
    out = []
    for (ds, cid, name), g in scores.groupby(["dataset", "class_id", "class_name"], sort=True):
        vals = g["iou"].dropna()
        if vals.empty or float(vals.max()) > threshold:
            continue
        best = g.loc[vals.idxmax()]
        frac = float(g["gt_fraction"].mean())
        n_img = int(g["n_images"].max())
        out.append({"dataset": ds, "class_id": int(cid), "class_name": str(name), "best_iou": float(vals.max()),
                    "best_arch": str(best["arch"]), "n_models": int(vals.size), "n_images": n_img,
                    "gt_fraction": frac, "text": unlearned_text(str(name), float(vals.max()), int(vals.size),
                                                                n_img, frac, threshold)})
    return out


def unlearned_text(name: str, best_iou: float, n_models: int, n_images: int, gt_fraction: float,
                   threshold: float = UNLEARNED_IOU) -> str:
    """"crack: not learned by any model (IoU <= 0.01; best 0.004 of 6 models) ..." with what would help."""
    share = "" if gt_fraction != gt_fraction else f", {100 * gt_fraction:.2g}% of their pixels"
    helps = [f"annotate more images that contain {name}"]
    if gt_fraction == gt_fraction and gt_fraction < RARE_FRACTION:
        helps += [f"weight {name} in the loss (class-weighted cross-entropy or Dice) and centre more training crops "
                  "on it (training.foreground_crop_fraction)",
                  "train at full resolution (training.input_scale 1) if it is thin"]
    helps.append("train longer (training.max_epochs)")
    return (f"{name}: not learned by any model (IoU <= {threshold:g}; best {best_iou:.3f} of {n_models} "
            f"model{'s' * (n_models != 1)}; present in {n_images} scored image{'s' * (n_images != 1)}{share}). "
            f"Would help: {'; '.join(helps)}.")
