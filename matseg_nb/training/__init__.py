"""Training one job: Lightning module + datamodule (random crops), tiled evaluation, ``run_job``."""

from matseg_nb.models.tiling import predict_tiled
from matseg_nb.training.data import CropDataset, FullImageDataset, SegDataModule, Split, load_split
from matseg_nb.training.module import NonFiniteLossError, SegModule
from matseg_nb.training.runner import effective_precision, pick_device, run_job
from matseg_nb.training.spec import job_dict
from matseg_nb.training.tables import example_job, metrics_table, per_class_table

__all__ = [
    "CropDataset",
    "FullImageDataset",
    "NonFiniteLossError",
    "SegDataModule",
    "SegModule",
    "Split",
    "effective_precision",
    "example_job",
    "job_dict",
    "load_split",
    "metrics_table",
    "per_class_table",
    "pick_device",
    "predict_tiled",
    "run_job",
]
