"""``open_dataset``: a manifest name / manifest path / plain folder -> :class:`Dataset`."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from matseg_nb.data.decode import decode_mask
from matseg_nb.data.folder import Sample, folder_mask_mapping, infer_folder_manifest, scan_folder
from matseg_nb.data.readers import image_hw, page_count, read_array, read_image
from matseg_nb.data.resolve import (
    is_plain_folder,
    load_manifest,
    manifest_path,
    offline,
    resolve_files,
    search_roots,
    where_to_put,
)
from matseg_nb.data.schema import SPLITS, Manifest, SplitRule
from matseg_nb.data.splits import assign_splits, group_of
from matseg_nb.errors import UserError

MAX_LISTED = 12


class Dataset:
    """Samples of one dataset plus the manifest that describes them.

    Images load as (C, H, W) float32 in native units, masks as (H, W) int64 class ids.
    """

    def __init__(self, manifest: Manifest, samples: list[Sample], missing: list[str], origin: Path | None):
        self.manifest = manifest
        self.origin = origin
        self.missing: list[str] = list(missing)
        self.missing_notes: dict[str, str] = {}
        self._samples = list(samples)
        self._pixel_sizes: dict[Path, float | None] = {}
        self.mask_mapping = None  # MaskMapping of a plain folder (decode.infer_mask_mapping), else None

    # -- metadata -------------------------------------------------------------
    name = property(lambda self: self.manifest.name)
    title = property(lambda self: self.manifest.title)
    modality = property(lambda self: self.manifest.modality)
    material = property(lambda self: self.manifest.material.text or self.manifest.material.class_)
    material_class = property(lambda self: self.manifest.material.class_)
    task = property(lambda self: self.manifest.task)
    difficulty = property(lambda self: self.manifest.difficulty)
    pixel_size_um = property(lambda self: self.manifest.pixel_size_um)
    classes = property(lambda self: list(self.manifest.classes))
    class_names = property(lambda self: [c.name for c in self.manifest.classes])
    num_classes = property(lambda self: len(self.manifest.classes))
    in_channels = property(lambda self: self.manifest.channels.count)
    channel_names = property(
        lambda self: list(self.manifest.channels.names) or (["gray"] if self.in_channels == 1 else ["r", "g", "b"])
    )

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={len(self.samples(s))}" for s in SPLITS)
        return f"Dataset({self.name!r}, {self.modality}, classes={self.class_names}, {counts}, missing={len(self.missing)})"

    # -- samples --------------------------------------------------------------
    def samples(self, split: str | None = None) -> list[Sample]:
        """Samples of one split (``train``/``val``/``test``), or all when ``split`` is None."""
        if split is not None and split not in SPLITS:
            raise UserError(f"split: expected one of {list(SPLITS)}, found '{split}'")
        return [s for s in self._samples if split is None or s.split == split]

    def split_counts(self) -> dict[str, int]:
        return {s: len(self.samples(s)) for s in SPLITS}

    def pixel_size_um_of(self, sample: Sample) -> float | None:
        """Edge of one pixel of ``sample`` in µm: the manifest's ``pixel_size_um``, else the image
        file's calibration (instrument metadata, TIFF resolution tags); None when unknown."""
        if self.manifest.pixel_size_um:
            return float(self.manifest.pixel_size_um)
        if sample.image not in self._pixel_sizes:
            from matseg_nb.data.formats import file_pixel_size_um

            self._pixel_sizes[sample.image] = file_pixel_size_um(sample.image)
        return self._pixel_sizes[sample.image]

    def load_image(self, sample: Sample) -> np.ndarray:
        """(C, H, W) float32, native intensity units (16-bit stays 0..65535)."""
        kind = self.manifest.channels.kind
        img = read_image(sample.image, sample.slice_index, channels=kind)
        if img.shape[0] != self.in_channels:
            raise UserError(f"{sample.image}: expected {self.in_channels} channel(s), found {img.shape[0]}")
        return img

    def load_mask(self, sample: Sample) -> np.ndarray:
        """(H, W) int64 class ids 0..K-1."""
        if sample.mask is None:
            raise UserError(f"{sample.image}: expected a mask, found none")
        raw = read_array(sample.mask, page=sample.slice_index)
        return decode_mask(raw, self.manifest.mask, self.num_classes, sample.mask)

    def load_pair(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """Image and mask, checked to have the same (H, W)."""
        img, mask = self.load_image(sample), self.load_mask(sample)
        if img.shape[1:] != mask.shape:
            raise UserError(
                f"{sample.mask}: expected the image's shape {tuple(img.shape[1:])}, found {tuple(mask.shape)}"
            )
        return img, mask

    # -- summaries ------------------------------------------------------------
    def describe(self, full: bool = False, progress: bool = False) -> dict:
        """Summary dict: pairs per split, image sizes ("HxW": count), pooled per-class pixel
        fractions per split, missing files, and ``problems`` (one line per bad file).
        ``full=True`` also decodes every image (slower, catches corrupt pixel data).
        ``progress``: a ``tqdm.auto`` bar over the pairs (text on the CLI, a widget in Jupyter)."""
        from matseg_nb.progress import progress_bar

        bar = progress_bar(total=len(self._samples), desc="data check", unit="pair", disable=not progress, leave=False)
        out: dict = {
            "name": self.name, "title": self.title, "modality": self.modality, "material": self.material,
            "classes": self.class_names, "in_channels": self.in_channels,
            "splits": {}, "missing": list(self.missing), "problems": [],
        }
        for split in SPLITS:
            counts = np.zeros(self.num_classes, dtype=np.int64)
            sizes: Counter[str] = Counter()
            for s in self.samples(split):
                try:
                    if full:
                        img, mask = self.load_pair(s)
                        hw = tuple(img.shape[1:])
                    else:
                        mask = self.load_mask(s)
                        hw = image_hw(s.image, s.slice_index)
                        if hw != mask.shape:
                            raise UserError(f"{s.mask}: expected the image's shape {hw}, found {tuple(mask.shape)}")
                except UserError as err:
                    out["problems"].extend(err.problems)
                    continue
                finally:
                    bar.update(1)
                sizes[f"{hw[0]}x{hw[1]}"] += 1
                counts += np.bincount(mask.ravel(), minlength=self.num_classes)[: self.num_classes]
            total = int(counts.sum())
            out["splits"][split] = {
                "pairs": len(self.samples(split)),
                "image_sizes": dict(sizes),
                "pixels": total,
                "class_fractions": {
                    c.name: (float(counts[c.id]) / total if total else 0.0) for c in self.manifest.classes
                },
            }
        bar.close()
        return out

    def check(self) -> list[str]:
        """One line per bad file (unreadable image, undecodable mask, shape mismatch); empty = fine."""
        return self.describe(full=True)["problems"]


# ------------------------------------------------------------------ opening
def _manifest_samples(manifest: Manifest, found: dict[str, Path]) -> list[Sample]:
    pairs = [p for p in manifest.pairs if p.image.path in found and (p.mask is None or p.mask.path in found)]
    groups = {id(p): p.group or group_of(Path(p.image.path).stem, manifest.split.group_pattern) for p in pairs}
    seeded = assign_splits(list(groups.values()), manifest.split) if manifest.split.kind == "seeded" else {}
    samples: list[Sample] = []
    for p in pairs:
        img = found[p.image.path]
        mask = found[p.mask.path] if p.mask else None
        split = p.split if manifest.split.kind == "folders" else seeded[groups[id(p)]]
        if manifest.volume is not None:
            samples += [Sample(img, mask, split, img.stem, z) for z in range(page_count(img))]
        else:
            samples.append(Sample(img, mask, split, groups[id(p)]))
    return samples


def _open_listed(manifest: Manifest) -> Dataset:
    refs = [r for p in manifest.pairs for r in (p.image, p.mask) if r is not None]
    found, absent = resolve_files(manifest, refs)
    hard = [r for r in absent if r.sha256]
    if hard:
        from matseg_nb.data.resolve import DOWNLOAD_ERROR

        lines = [f"{r.path}: expected in the cache or a mirror, found nothing" for r in hard]
        if "error" in DOWNLOAD_ERROR:
            lines.insert(0, f"download failed: {DOWNLOAD_ERROR['error']}")
        if len(lines) > MAX_LISTED:
            lines = lines[:MAX_LISTED] + [f"... and {len(lines) - MAX_LISTED} more file(s)"]
        looked = ", ".join(str(r) for r in search_roots(manifest))
        raise UserError(
            f"{manifest.name}: {len(hard)} file(s) not found locally and not downloadable"
            f"{' (MATSEG_OFFLINE is set)' if offline() else ''}; looked in {looked}",
            *lines,
            f"{manifest.name}: {where_to_put(manifest)} (layout: <mirror>/{manifest.source.mirror_subdir}/<path>)",
        )
    ds = Dataset(manifest, _manifest_samples(manifest, found), [r.path for r in absent], None)
    ds.missing_notes = {r.path: r.note for r in absent if r.note}
    return ds


def _open_byo(manifest: Manifest) -> Dataset:
    roots = [r for r in search_roots(manifest) if (r / "images").is_dir()]
    if not roots:
        looked = ", ".join(str(r) for r in search_roots(manifest))
        raise UserError(
            f"{manifest.name}: bring-your-own dataset, files not found (looked in {looked}); "
            f"{where_to_put(manifest)} with layout: {manifest.layout or 'images/ and masks/'}"
        )
    root = roots[0]
    volume = True if manifest.volume is not None else False
    samples = scan_folder(root, manifest.split, volume=volume)
    return Dataset(manifest, samples, [], root)


def _open_folder(root: Path) -> Dataset:
    rule = SplitRule(kind="seeded")
    samples = scan_folder(root, rule, volume=None)
    mapping = folder_mask_mapping(root, samples)
    ds = Dataset(infer_folder_manifest(root, samples, mapping), samples, [], root)
    ds.mask_mapping = mapping
    return ds


def open_dataset(ref: str | os.PathLike | Manifest, base_dir: Path | None = None) -> Dataset:
    """Open a dataset from a manifest name, a manifest ``.yaml`` path, a folder with
    ``images/`` + ``masks/``, or a :class:`Manifest` object.

    Files are looked up cache -> mirrors -> download (see :mod:`matseg_nb.data.resolve`);
    raises :class:`UserError` listing what is missing and where to put it.
    """
    if isinstance(ref, Manifest):
        manifest = ref
    else:
        path = manifest_path(ref, base_dir)
        if is_plain_folder(path):
            return _open_folder(path)
        manifest = load_manifest(path)
    if manifest.availability == "bring-your-own" and not manifest.pairs:
        return _open_byo(manifest)
    return _open_listed(manifest)
