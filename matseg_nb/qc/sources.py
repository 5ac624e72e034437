"""Resolve QC image sources: a dataset split, a dataset ref, image files or folders, shifted copies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matseg_nb.data.formats.base import SUPPORTED_SUFFIXES
from matseg_nb.errors import UserError
from matseg_nb.qc.features import ImageItem
from matseg_nb.qc.shifts import apply_shift, shift_mask

#: every file suffix the package reads (rasters, electron-microscopy and AFM files): the one set, data.formats
IMAGE_EXT = SUPPORTED_SUFFIXES


@dataclass
class ImageSet:
    """A named list of images; ``ood`` marks candidate out-of-distribution sets; ``same_labels``: masks
    use the run's class definitions (held-out split, its shifted copies, ``split:`` sources)."""

    name: str
    items: list[ImageItem]
    ood: bool
    same_labels: bool = False


def dataset_items(ds, split: str | None) -> list[ImageItem]:
    """Images (and masks where present) of ``split`` (None = every split) of an open dataset."""
    out = []
    for s in ds.samples(split) if split else ds.samples():
        mask = ds.load_mask(s) if s.mask is not None else None
        name = f"{s.split}/{Path(s.image).stem}" + (f"[{s.slice_index}]" if s.slice_index is not None else "")
        out.append(ImageItem(ds.load_image(s), name, mask=mask, meta={"group": s.group}))
    return out


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXT and p.is_file())
    return [path]


def resolve_source(ref: str, default_ds=None) -> ImageSet:
    """``split:<name>`` (the run's dataset), ``<dataset ref>[:split]``, or an image file/folder."""
    from matseg_nb.data import open_dataset, read_image

    if ref.startswith("split:"):
        if default_ds is None:
            raise UserError(f"--test {ref}: expected a run folder or --dataset to take the split from, found none")
        return ImageSet(ref, dataset_items(default_ds, ref[6:]), True, same_labels=True)
    p = Path(ref)
    if p.exists() and (p.is_file() or not any(p.glob("*.yaml"))) and not (p / "images").is_dir():
        files = _files(p)
        if not files:
            raise UserError(f"--test {ref}: expected image files ({', '.join(sorted(IMAGE_EXT))}), found none")
        return ImageSet(ref, [ImageItem(read_image(f), f.stem) for f in files], True)
    name, _, split = ref.partition(":") if not p.exists() else (ref, "", "")
    try:
        ds = open_dataset(name)
    except UserError as err:
        raise UserError(f"--test {ref}: expected a dataset ref, split:<name> or image path; {err.problems[0]}") from None
    return ImageSet(ref, dataset_items(ds, split or None), True)


def shifted_set(base: ImageSet, spec: str, seed: int = 0) -> ImageSet:
    """Copy of ``base`` with imaging shift ``spec`` applied to every image (masks follow geometry)."""
    items = [
        ImageItem(apply_shift(it.image, spec, seed + i), f"{it.name}@{spec}",
                  mask=None if it.mask is None else shift_mask(it.mask, spec), meta=dict(it.meta))
        for i, it in enumerate(base.items)
    ]
    return ImageSet(f"shift:{spec}", items, True, same_labels=base.same_labels)
