"""INPUT arguments of ``matseg segment`` -> the images to segment, each with a unique name and pixel size.

An INPUT is an image file, a folder (searched recursively for every suffix ``matseg_nb.data.formats``
reads), a glob (``'scans/*.tif'``), or a dataset ref ``name[:split]`` (a manifest name, manifest path or
dataset folder; every split when none is named). Pixel size per image: ``--pixel-size`` when given, else
the dataset manifest's, else the file's own calibration (TIFF tags, DM/EMD metadata), else unknown (px).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matseg_nb.data.formats import SUPPORTED_SUFFIXES, file_pixel_size_um
from matseg_nb.data.resolve import sha256_of
from matseg_nb.errors import UserError


@dataclass(frozen=True)
class InputImage:
    """One image to segment: ``path``, ``name`` (unique within the batch: output file stem),
    ``slice_index`` (volume slice of a dataset) and ``pixel_size_um`` with its ``pixel_size_source``."""

    path: Path
    name: str
    slice_index: int | None = None
    pixel_size_um: float | None = None
    pixel_size_source: str = "unknown"


def content_key(path: Path, slice_index: int | None = None) -> str:
    """sha256 of the file's bytes (+ ``@slice``): the resume key (a changed file gets a new key)."""
    return sha256_of(path) + (f"@{slice_index}" if slice_index is not None else "")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


def _is_dataset_folder(p: Path) -> bool:
    return p.is_dir() and ((p / "images").is_dir() or any(p.glob("*.yaml")))


def _dataset_images(ref: str) -> list[tuple[Path, int | None, float | None, str]]:
    from matseg_nb.data import open_dataset

    p = Path(ref)
    name, split = (ref, None) if p.exists() else (ref.partition(":")[0], ref.partition(":")[2] or None)
    try:
        ds = open_dataset(name)
    except UserError as err:
        raise UserError(f"INPUT {ref}: expected an image file, folder, glob or dataset ref; {err.problems[0]}") from None
    samples = ds.samples(split) if split else ds.samples()
    if not samples:
        raise UserError(f"INPUT {ref}: expected images in dataset {ds.name}{f' split {split}' if split else ''}, found none")
    return [(s.image, s.slice_index, ds.pixel_size_um_of(s), "manifest" if ds.manifest.pixel_size_um else "file")
            for s in samples]


def _unique_names(stems: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for s in stems:
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.append(s if n == 0 else f"{s}-{n + 1}")
    return out


def collect_inputs(inputs: list[str], pixel_size_um: float | None = None) -> list[InputImage]:
    """The images named by ``inputs`` in order (duplicates dropped), names unique. UserError for an INPUT
    that names nothing (missing path, folder or glob without images, unknown dataset)."""
    if not inputs:
        raise UserError("INPUT: expected at least one image file, folder, glob or dataset ref, found none")
    found: list[tuple[Path, int | None, float | None, str]] = []
    for ref in inputs:
        p = Path(ref)
        if p.is_file():
            found.append((p, None, None, "unknown"))
        elif _is_dataset_folder(p) and not _images_in_top(p):
            found += _dataset_images(ref)
        elif p.is_dir():
            files = _images_in(p)
            if not files:
                raise UserError(f"INPUT {ref}: expected image files ({' '.join(sorted(SUPPORTED_SUFFIXES))}), "
                                "found none")
            found += [(f, None, None, "unknown") for f in files]
        elif any(c in ref for c in "*?["):
            files = sorted(Path(f) for f in glob.glob(ref, recursive=True) if Path(f).is_file())
            if not files:
                raise UserError(f"INPUT {ref}: expected files matching the pattern, found none")
            found += [(f, None, None, "unknown") for f in files]
        else:
            found += _dataset_images(ref)
    seen: set[tuple[str, int | None]] = set()
    unique = []
    for item in found:
        k = (str(item[0].resolve()), item[1])
        if k not in seen:
            seen.add(k)
            unique.append(item)
    stems = [p.stem + (f"_z{z:04d}" if z is not None else "") for p, z, _, _ in unique]
    out = []
    for (path, z, px, src), name in zip(unique, _unique_names(stems), strict=True):
        if pixel_size_um is not None:
            px, src = float(pixel_size_um), "--pixel-size"
        elif px is None:
            px = file_pixel_size_um(path)
            src = "file" if px else "unknown"
        out.append(InputImage(path, name, z, px, src if px else "unknown"))
    return out


def _images_in_top(p: Path) -> bool:
    """A folder that holds image files itself (not only images/ + masks/) is a plain image folder."""
    return any(f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES for f in p.iterdir())


def pixel_size_note(images: list[InputImage]) -> tuple[float | None, str, list[str]]:
    """(the batch's pixel size in µm or None when unknown or mixed, its source, warnings): images whose pixel
    sizes disagree are warned about and each is measured with its own."""
    sizes: dict[float | None, list[str]] = {}
    for im in images:
        sizes.setdefault(round(im.pixel_size_um, 9) if im.pixel_size_um else None, []).append(im.name)
    sources = sorted({im.pixel_size_source for im in images})
    if len(sizes) <= 1:
        px = next(iter(sizes), None)
        return px, ", ".join(sources), []
    parts = [f"{'unknown' if k is None else f'{k:g} µm'} ({len(v)} image(s), e.g. {v[0]})"
             for k, v in sorted(sizes.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))]
    return None, ", ".join(sources), [
        "pixel sizes disagree across inputs: " + "; ".join(parts) +
        ". Each image is measured with its own; images without one are measured in px and summarised apart"]


def read_input(image: InputImage, channel: str | None = None) -> tuple[np.ndarray, list[str]]:
    """(C, H, W) float32 pixels in native units and the channel names, through the data layer's readers
    (``data.formats.read_file``; a volume slice through ``data.read_image``).

    ``channel``: None keeps what the reader returns (every page of a multi-page TIFF, every EMD signal, R/G/B;
    an AFM file's height channel); a name picks that channel (the reader's names: AFM channel names, ``page1``,
    an EMD signal's title, ``red``; case-insensitive); digits pick that 0-based index of the reader's
    channels. UserError naming the file and its channels for a channel it does not have."""
    from matseg_nb.data import read_image
    from matseg_nb.data.formats import pick_channels, read_file

    key = None if channel is None else str(channel).strip()
    by_index = key is not None and key.isdigit()
    if image.slice_index is not None:  # one slice of a volume: its channels have no names in the file
        arr = read_image(image.path, image.slice_index)
        names = ["intensity"] if arr.shape[0] == 1 else [f"channel{i}" for i in range(arr.shape[0])]
        if key is not None and not by_index:
            picked = pick_channels(image.path, names, [key])
            arr, names = arr[[names.index(n) for n in picked]], picked
    else:
        data = read_file(image.path, [key] if key is not None and not by_index else None)
        arr, names = data.array, list(data.channel_names)
    if by_index:
        idx = int(key)
        if idx >= len(names):
            raise UserError(f"{image.path}: expected channel index 0..{len(names) - 1} ({', '.join(names)}), "
                            f"found {idx}")
        arr, names = arr[[idx]], [names[idx]]
    return arr, names
