"""Plain data folders: ``<root>/images/`` + ``<root>/masks/``, matched by file stem.

Optional split subfolders ``images/{train,val,test}/`` (masks in ``masks/<split>/`` or flat
``masks/``); otherwise a seeded group split. A mask matches an image when its stem equals the
image stem, optionally followed by ``_mask``, ``_label``, ``_labels`` or ``_annot``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from matseg_nb.data.decode import MaskMapping, infer_mask_mapping
from matseg_nb.data.formats import read_file
from matseg_nb.data.readers import IMAGE_SUFFIXES, INSTRUMENT_SUFFIXES, page_count, read_array, to_chw
from matseg_nb.data.schema import SPLITS, Channels, ClassDef, Manifest, SplitRule
from matseg_nb.data.splits import assign_splits, group_of
from matseg_nb.errors import UserError

MASK_SUFFIX_RE = re.compile(r"(?:[_-](?:mask|masks|label|labels|annot|annotation))$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    """One training/evaluation item. ``slice_index`` is set for a 2-D slice of a 3-D volume."""

    image: Path
    mask: Path | None
    split: str
    group: str
    slice_index: int | None = None

    @property
    def name(self) -> str:
        """Unique, file-name-safe id: the image stem (+ ``_z<slice>`` for volume slices)."""
        stem = self.image.stem
        return stem if self.slice_index is None else f"{stem}_z{self.slice_index:04d}"


def _files(folder: Path, suffixes: set[str] = IMAGE_SUFFIXES) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


def _split_of(path: Path, base: Path) -> str | None:
    parts = path.relative_to(base).parts
    return parts[0] if len(parts) > 1 and parts[0] in SPLITS else None


# side files instruments write next to images (metadata, notes); never images themselves
SIDECAR_SUFFIXES = {".txt", ".md", ".json", ".yaml", ".yml", ".csv", ".xml", ".hdr", ".ini", ".log"}
MASK_SUFFIXES = {".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg"}


def _unsupported(folder: Path, suffixes: set[str]) -> list[str]:
    """One problem line per file in ``folder`` whose extension no reader handles."""
    return [
        f"{p}: expected one of {' '.join(sorted(suffixes))}, found '{p.suffix}'"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in suffixes
        and p.suffix.lower() not in SIDECAR_SUFFIXES
    ]


def _mask_index(masks_dir: Path) -> dict[tuple[str | None, str], Path]:
    index: dict[tuple[str | None, str], Path] = {}
    for p in _files(masks_dir, MASK_SUFFIXES):
        split = _split_of(p, masks_dir)
        for key in {p.stem, MASK_SUFFIX_RE.sub("", p.stem)}:
            index.setdefault((split, key), p)
    return index


def scan_folder(
    root: Path,
    rule: SplitRule,
    volume: bool | None = None,
) -> list[Sample]:
    """List the samples of a plain folder.

    ``volume``: True = every multi-page TIFF is a volume (one sample per slice), False = pages are
    channels, None = a volume when image and mask have the same page count > 1.
    Raises one :class:`UserError` with a line per image lacking a mask, or for an empty folder.
    """
    images_dir, masks_dir = root / "images", root / "masks"
    images = _files(images_dir)
    if not images:
        raise UserError(f"{images_dir}: expected image files ({', '.join(sorted(IMAGE_SUFFIXES))}), found none")
    masks = _mask_index(masks_dir)
    splits = {p: _split_of(p, images_dir) for p in images}
    use_folders = any(s is not None for s in splits.values())
    problems: list[str] = _unsupported(images_dir, IMAGE_SUFFIXES) + _unsupported(masks_dir, MASK_SUFFIXES)
    if use_folders:
        problems += [f"{p}: expected under images/<train|val|test>/, found outside" for p, s in splits.items() if s is None]
    elif rule.kind == "folders":
        problems.append(f"{images_dir}: expected split subfolders train/ val/ test/ (manifest split 'folders'), found none")
    pairs: list[tuple[Path, Path, str | None]] = []
    for img in images:
        split = splits[img]
        mask = masks.get((split, img.stem)) or masks.get((None, img.stem))
        if mask is None:
            problems.append(f"{img}: expected a mask named {img.stem}.* in {masks_dir}, found none")
        else:
            pairs.append((img, mask, split))
    used = {m for _, m, _ in pairs}
    problems += [f"{m}: expected an image named {MASK_SUFFIX_RE.sub('', m.stem)}.* in {images_dir}, found none"
                 for m in sorted(set(masks.values()) - used)]
    if problems:
        raise UserError(*problems)
    groups = {img: group_of(img.stem, rule.group_pattern) for img, _, _ in pairs}
    seeded = {} if use_folders else assign_splits(list(groups.values()), rule)
    samples: list[Sample] = []
    for img, mask, split in pairs:
        try:
            n_img = page_count(img)
            is_volume = n_img > 1 and (volume if volume is not None else page_count(mask) == n_img)
        except UserError as err:  # corrupt TIFF: collect, report all at once
            problems.extend(err.problems)
            continue
        group = img.stem if is_volume else groups[img]
        split = split or seeded[groups[img]]
        slices = range(n_img) if is_volume else [None]
        samples += [Sample(img, mask, split, group, z) for z in slices]
    if problems:
        raise UserError(*problems)
    return samples


def folder_mask_mapping(root: Path, samples: list[Sample]) -> MaskMapping:
    """How the folder's masks decode (:func:`matseg_nb.data.decode.infer_mask_mapping`)."""
    return infer_mask_mapping(sorted({s.mask for s in samples if s.mask is not None}), read_array, root)


def infer_folder_manifest(root: Path, samples: list[Sample], mapping: MaskMapping | None = None) -> Manifest:
    """A manifest for a plain folder: classes and decoding detected from the masks (see
    :func:`matseg_nb.data.decode.infer_mask_mapping`; ``classes.yaml`` overrides; ``mapping`` when
    already detected), channels from the first image (an instrument file's channel names are kept)."""
    mapping = mapping or folder_mask_mapping(root, samples)
    first = samples[0]
    if first.slice_index is None and first.image.suffix.lower() in INSTRUMENT_SUFFIXES:
        names_ch = read_file(first.image).channel_names
        channels = Channels(kind="stack", names=names_ch) if len(names_ch) > 1 else Channels(kind="grayscale")
    else:
        arr = read_array(first.image, page=first.slice_index)
        stacked = first.slice_index is None and page_count(first.image) > 1
        chw = to_chw(arr, "auto", stacked=stacked)
        if stacked:
            channels = Channels(kind="stack", names=[f"ch{i}" for i in range(chw.shape[0])])
        else:
            channels = Channels(kind="grayscale" if chw.shape[0] == 1 else "rgb")
    names = mapping.names
    slug = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("-._") or "folder"
    use_folders = any((root / "images" / s).is_dir() for s in SPLITS)
    return Manifest(
        name=slug if slug[0].isalnum() else f"d{slug}",
        title=f"plain folder {root}",
        modality="other",
        material={"class": "other", "text": ""},
        classes=[ClassDef(id=i, name=n) for i, n in enumerate(names)],
        source={"url": root.as_uri(), "mirror_subdir": ".", "licence": "unknown"},
        availability="bring-your-own",
        layout=f"{root}/images/ and {root}/masks/",
        channels=channels,
        mask=mapping.decoding,
        split=SplitRule(kind="folders" if use_folders else "seeded"),
    )
