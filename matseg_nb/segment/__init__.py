"""Deployment: segment new images with a trained model (``matseg segment MODEL INPUT... --out DIR``).

One module per job: :mod:`.folder` (the output folder's one reader/writer: ``SegmentFolder``),
:mod:`.model` (which model: ``resolve_model`` over the ``MODEL_LOADERS`` registry), :mod:`.inputs`
(files, folders, globs, dataset refs -> inputs with content keys and pixel sizes), :mod:`.measure`
(area fractions, object counts, equivalent diameters), :mod:`.summary` (batch statistics, and the model's error on
those numbers over its test images), :mod:`.bias` (that error out of fold for a k-fold CV deployment),
:mod:`.screen` (the QC flag per image and the batch test of ``qc --new``), :mod:`.pipeline` (per-image work,
resume, executors), :mod:`.text` (the terminal summary).
"""

from matseg_nb.segment.folder import (
    BiasRow,
    ClassInfo,
    ImageRecord,
    Quantity,
    SegmentFolder,
    SummaryRow,
)
from matseg_nb.segment.model import MODEL_LOADERS, DeployedModel, ModelLoader, register_loader, resolve_model

__all__ = [
    "MODEL_LOADERS",
    "BiasRow",
    "ClassInfo",
    "DeployedModel",
    "ImageRecord",
    "ModelLoader",
    "Quantity",
    "SegmentFolder",
    "SummaryRow",
    "register_loader",
    "resolve_model",
]
