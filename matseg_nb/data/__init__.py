"""Datasets: manifests, readers, file resolution (cache -> mirror -> download), plain folders.

>>> ds = open_dataset("nasa-super1")          # name | manifest .yaml | folder with images/ + masks/
>>> s = ds.samples("train")[0]
>>> ds.load_image(s).shape, ds.load_mask(s).dtype  # (C, H, W) float32, (H, W) int64
"""

from matseg_nb.data.dataset import Dataset, open_dataset
from matseg_nb.data.decode import decode_mask
from matseg_nb.data.folder import Sample
from matseg_nb.data.readers import image_hw, normalize_image, read_array, read_image
from matseg_nb.data.resolve import list_manifests, load_manifest, manifest_path
from matseg_nb.data.schema import ClassDef, Manifest

__all__ = [
    "ClassDef",
    "Dataset",
    "Manifest",
    "Sample",
    "decode_mask",
    "image_hw",
    "list_manifests",
    "load_manifest",
    "manifest_path",
    "normalize_image",
    "open_dataset",
    "read_array",
    "read_image",
]
