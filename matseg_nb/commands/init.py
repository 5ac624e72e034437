"""``matseg init FOLDER``: write ``FOLDER/profile.json`` for a plain data folder (images/ + masks/).

The profile holds the paper's six encoder x decoder pairs, sized for this machine: on a GPU the
paper's pairs (resnet50, se_resnext101_32x4d x Unet, DeepLabV3, DeepLabV3Plus) with ImageNet
weights and paper training settings; on a CPU the demo-scale stand-ins of the same two encoder
families (resnet18, tu-seresnext26d_32x4d) from random weights with the demo's short schedule (10 epochs x
8 steps of 4 crops of 128 px), two jobs at a time with one thread each (Dask, as ``make demo``).

A folder with fewer than 30 annotated images (``matseg_nb.data.splits.SMALL_DATA_IMAGES``) gets k-fold
cross-validation over ALL of them (``evaluation: {folds: k, pool: all}``, k = 5 or the number of image
groups if fewer), so every image is scored once out of fold and the comparison rests on all N images; pass
``--holdout`` to keep the folder's fixed train/val/test split instead.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

DECODERS = ["Unet", "DeepLabV3", "DeepLabV3Plus"]
GPU_MODEL = {"encoders": ["resnet50", "se_resnext101_32x4d"], "encoder_weights": "imagenet"}
CPU_MODEL = {"encoders": ["resnet18", "tu-seresnext26d_32x4d"], "encoder_weights": "none",
             "decoder_options": {"DeepLabV3": {"encoder_output_stride": 16}}}  # as profiles/demo-cpu.json
GPU_TRAINING = {"batch_size": 16, "lr": 1e-4, "max_epochs": 200, "steps_per_epoch": None, "crop_size": 512,
                "tile_size": 512, "num_workers": 4}
CPU_TRAINING = {"batch_size": 4, "lr": 1e-3, "max_epochs": 10, "steps_per_epoch": 8, "crop_size": 128,
                "val_crop_size": 256, "foreground_crop_fraction": 0.5, "tile_size": 1024, "num_workers": 0}
#: on a CPU, jobs run side by side with one torch thread each, as in profiles/demo-cpu.json: small batches
#: of 128 px crops use a second thread poorly (docs/training.md has the step times)
CPU_WORKERS = max(1, min(2, os.cpu_count() or 1))
COMMON_TRAINING = {"optimizer": "adam", "weight_decay": 0.0, "scheduler": "cosine", "early_stopping_patience": 20,
                   "monitor": "val_iou", "val_every": 1, "tile_overlap": 64, "loss": "ce+dice",
                   "augmentations": {"hflip": True, "vflip": True, "rot90": True, "brightness": 0.1,
                                     "contrast": 0.1, "gaussian_noise": 0.0},
                   "normalization": "percentile", "precision": "32"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("init", help="write FOLDER/profile.json for a plain data folder (images/ + masks/)")
    p.add_argument("folder", metavar="FOLDER")
    p.add_argument("--modality", default="other", help="SEM, TEM, AFM, optical, XCT, ... (default other)")
    p.add_argument("--material", default="", help='free text, e.g. "Ni superalloy"; its class is guessed')
    p.add_argument("--material-class", default="other", help="Table 1 material class (default other)")
    p.add_argument("--task", default=None, help="objective in words (default: segment the folder's classes)")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto", help="size for this machine (auto)")
    p.add_argument("--out", default=None, help="profile path (default FOLDER/profile.json)")
    p.add_argument("--force", action="store_true", help="overwrite an existing profile")
    p.add_argument("--holdout", action="store_true",
                   help="keep the fixed train/val/test split (default below 30 annotated images: k-fold CV over all)")
    p.set_defaults(func=init_handler)


def has_gpu() -> bool:
    """True when torch sees a CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def build_profile(folder: Path, out: Path, *, modality: str, material_class: str, material: str,
                  task: str | None, gpu: bool, holdout: bool = False) -> dict:
    """The profile dict for ``folder`` (checked by opening the dataset first)."""
    from matseg_nb.data import open_dataset
    from matseg_nb.data.readers import image_hw
    from matseg_nb.data.splits import cv_pool, default_folds

    ds = open_dataset(folder)
    folds = None if holdout else default_folds([s.group for s in cv_pool(ds.samples(), "all")])
    first = ds.samples()[0]
    h, w = image_hw(first.image, first.slice_index)
    try:
        ref = str(folder.resolve().relative_to(out.parent.resolve())) or "."
    except ValueError:
        ref = str(folder.resolve())
    classes = ", ".join(ds.class_names[1:])
    training = {**COMMON_TRAINING, **(GPU_TRAINING if gpu else CPU_TRAINING)}
    training["crop_size"] = min(training["crop_size"], h, w) // 32 * 32 or 32
    if "val_crop_size" in training:
        training["val_crop_size"] = min(training["val_crop_size"], h, w) // 32 * 32 or 32
    profile = {
        "version": 1,
        "name": ds.name,
        "description": f"written by matseg init for {folder} ({'GPU' if gpu else 'CPU'} sizing)",
        "dataset": [{
            "ref": ref,
            "modality": modality,
            "material": {"class": material_class, "text": material},
            "metadata": [{"term": "mds:ImageSize", "value": [h, w], "unit": "pixel"},
                         {"term": "mds:NumberOfClasses", "value": ds.num_classes}],
            "provenance": {"source": f"local folder {folder.resolve()}", "licence": "unknown"},
        }],
        "task": {"objective": task or f"Segment {classes} in {modality} micrographs of {material or 'the material'}",
                 "metrics": ["iou", "dice", "wiou", "pixel_accuracy"], "primary_metric": "iou",
                 "qc_signals": ["auroc", "f1", "precision", "fpr95"], "readiness_threshold": 0.95},
        "model": {**copy.deepcopy(GPU_MODEL if gpu else CPU_MODEL), "decoders": list(DECODERS),
                  "min_encoder_key_match": 0.95},
        "training": training,
        "seeds": [0],
        "execution": ({"executor": "local", "devices": "cuda", "workers": 1, "threads_per_worker": 4} if gpu
                      else {"executor": "dask", "devices": "cpu", "workers": CPU_WORKERS, "threads_per_worker": 1}),
    }
    if folds:
        profile["evaluation"] = {"folds": folds, "pool": "all"}
    return profile


def init_handler(args: argparse.Namespace) -> int:
    from matseg_nb.atomic import atomic_write_text
    from matseg_nb.errors import UserError
    from matseg_nb.profiles import compile_jobs, load_profile

    folder = Path(args.folder)
    out = Path(args.out) if args.out else folder / "profile.json"
    if out.exists() and not args.force:
        raise UserError(f"{out}: expected no existing profile, found one (use --force to overwrite)")
    gpu = has_gpu() if args.device == "auto" else args.device == "gpu"
    profile = build_profile(folder, out, modality=args.modality, material_class=args.material_class,
                            material=args.material, task=args.task, gpu=gpu, holdout=args.holdout)
    atomic_write_text(out, json.dumps(profile, indent=2) + "\n")
    try:
        jobs = compile_jobs(load_profile(out))
    except UserError:
        out.unlink()
        raise
    folds = profile.get("evaluation", {}).get("folds")
    print(f"wrote {out}: {len(jobs)} jobs ({len(profile['model']['encoders'])} encoders x {len(DECODERS)} decoders"
          f"{f' x {folds} folds' if folds else ''}), sized for {'GPU' if gpu else 'CPU'}")
    if folds:
        print(f"{folds}-fold cross-validation over all annotated images (fewer than 30): every image is scored "
              "once out of fold; --holdout keeps the fixed split")
    if profile["model"]["encoder_weights"] == "imagenet":
        print(f"ImageNet weights: matseg weights fetch {' '.join(profile['model']['encoders'])}  (once, needs internet)")
    print(f"next: matseg demo {out}")
    return 0
