"""Add images to a dashboard workspace: uploaded images + masks -> checked plain-folder dataset.

Files are written to a hidden staging folder ``<ws>/datasets/.upload-<random>/{images,masks}``,
checked with the same functions as ``matseg data check`` (:func:`matseg_nb.data.open_dataset` on
the folder, :meth:`Dataset.describe` with ``full=True``), and only when every file passes is the
staging folder renamed to ``<ws>/datasets/<name>``. A name already taken is refused, so nothing in
the workspace is overwritten; a refused upload leaves nothing behind.
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matseg_nb.atomic import atomic_write_bytes
from matseg_nb.data.folder import MASK_SUFFIX_RE
from matseg_nb.data.readers import IMAGE_SUFFIXES
from matseg_nb.errors import UserError

DATASETS_DIR = "datasets"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class UploadedFile:
    """One uploaded file: its browser-side name and its bytes."""

    name: str
    content: bytes

    @classmethod
    def from_widget(cls, item: Any) -> UploadedFile:
        """From an ipywidgets 8 ``FileUpload.value`` entry (dict or namedtuple with name/content)."""
        get = item.get if isinstance(item, dict) else lambda k: getattr(item, k)
        return cls(str(get("name")), bytes(get("content")))


@dataclass
class UploadResult:
    """Outcome of :func:`add_uploaded_dataset`: the dataset folder, or the problems (one per bad file)."""

    folder: Path | None = None
    problems: list[str] = field(default_factory=list)
    summary: dict | None = None
    class_mapping: list[dict] = field(default_factory=list)
    preview_png: Path | None = None

    @property
    def ok(self) -> bool:
        return self.folder is not None and not self.problems


def list_uploaded_datasets(workspace: Path) -> list[Path]:
    """Dataset folders added through the dashboard (``<ws>/datasets/<name>`` with images/ and masks/)."""
    root = Path(workspace) / DATASETS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and (p / "images").is_dir()
                  and (p / "masks").is_dir())


def _precheck(role: str, files: list[UploadedFile], suffixes: Collection[str] = IMAGE_SUFFIXES,
              one_per_stem: bool = True) -> tuple[list[UploadedFile], list[str]]:
    """Files that may be written, and one problem line per file that may not: a plain name, given once (and,
    with ``one_per_stem``, one file per stem), a suffix in ``suffixes``, not empty."""
    problems: list[str] = []
    names = Counter(Path(f.name).name for f in files)
    stems = Counter(Path(f.name).name.rsplit(".", 1)[0] for f in files)
    keep: list[UploadedFile] = []
    for f in files:
        base = Path(f.name).name
        stem, suffix = Path(base).stem, Path(base).suffix.lower()
        if base != f.name or base.startswith(".") or not base:
            problems.append(f"{role} {f.name!r}: expected a plain file name, found a path or hidden name")
        elif names[base] > 1:
            problems.append(f"{role} {base}: expected each name once, found it {names[base]} times")
        elif one_per_stem and stems[stem] > 1:
            problems.append(f"{role} {base}: expected one file per name, found {stems[stem]} files named {stem}.*")
        elif suffix not in suffixes:
            problems.append(f"{role} {base}: expected an image ({', '.join(sorted(suffixes))}), "
                            f"found {suffix or 'no extension'}")
        elif not f.content:
            problems.append(f"{role} {base}: expected image data, found an empty (0-byte) file")
        else:
            keep.append(f)
    return keep, problems


def _pair(images: list[UploadedFile], masks: list[UploadedFile]
          ) -> tuple[list[UploadedFile], list[UploadedFile], list[str]]:
    """Paired images and masks (names matched as in ``matseg_nb.data.folder``), and one problem line per
    image without a mask or mask without an image."""
    image_stems = {Path(f.name).stem for f in images}

    def key(mask: UploadedFile) -> str:
        stem = Path(mask.name).stem
        return stem if stem in image_stems else MASK_SUFFIX_RE.sub("", stem)

    mask_keys = {key(f) for f in masks}
    problems = [f"image {f.name}: expected a mask named {Path(f.name).stem}.* or {Path(f.name).stem}_mask.*, "
                "found none" for f in images if Path(f.name).stem not in mask_keys]
    problems += [f"mask {f.name}: expected an image of the same name, found none" for f in masks
                 if key(f) not in image_stems]
    return ([f for f in images if Path(f.name).stem in mask_keys], [f for f in masks if key(f) in image_stems],
            problems)


def add_uploaded_dataset(workspace: str | Path, name: str, images: list[UploadedFile],
                         masks: list[UploadedFile], preview: bool = True) -> UploadResult:
    """Check uploaded ``images`` + ``masks`` and, when all pass, add them as ``<ws>/datasets/<name>``.

    Every bad file is named in ``problems`` (non-image, 0-byte, duplicate name, image without mask,
    mask without image, undecodable, mask size different from its image); then nothing is written.
    """
    workspace = Path(workspace).resolve()
    root = workspace / DATASETS_DIR
    if not NAME_RE.match(name or ""):
        return UploadResult(problems=[f"dataset name {name!r}: expected letters, digits, '.', '_' or '-' "
                                      "(up to 64, starting with a letter or digit), found something else"])
    target = root / name
    if target.exists():
        return UploadResult(problems=[f"dataset name {name}: expected a new name, found datasets/{name} already "
                                      "in the workspace (nothing was changed)"])
    if not images:
        return UploadResult(problems=["images: expected at least one uploaded image, found none"])
    if not masks:
        return UploadResult(problems=["masks: expected one uploaded mask per image, found none"])
    good_images, problems = _precheck("image", images)
    good_masks, mask_problems = _precheck("mask", masks)
    good_images, good_masks, pairing = _pair(good_images, good_masks)
    problems += mask_problems + pairing
    staging = root / f".upload-{secrets.token_hex(6)}"
    try:
        for sub, files in (("images", good_images), ("masks", good_masks)):
            (staging / sub).mkdir(parents=True)
            for f in files:
                atomic_write_bytes(staging / sub / f.name, f.content)
        summary, data_problems, mapping = _data_check(staging) if good_images and good_masks else (None, [], [])
        problems += [p for p in data_problems if p not in problems]
        if problems:
            return UploadResult(problems=problems)
        preview_png = None
        if preview:
            from matseg_nb.data import open_dataset
            from matseg_nb.data.preview import save_preview

            preview_png = save_preview(open_dataset(staging), staging / "preview.png", n=4)
        try:
            staging.rename(target)  # refuses an existing non-empty folder: nothing is overwritten
        except OSError:
            return UploadResult(problems=[f"dataset name {name}: expected a new name, found datasets/{name} "
                                          "already in the workspace (nothing was changed)"])
        summary = dict(summary or {}, name=name)
        return UploadResult(folder=target, summary=summary, class_mapping=mapping,
                            preview_png=(target / "preview.png") if preview_png else None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _data_check(folder: Path) -> tuple[dict | None, list[str], list[dict]]:
    """``matseg data check`` on a staging folder: (summary, problems with staging paths shortened, class mapping)."""
    from matseg_nb.data import open_dataset

    def short(line: str) -> str:
        line = line.replace(str(folder / "images") + "/", "image ").replace(str(folder / "masks") + "/", "mask ")
        return line.replace(str(folder / "images"), "images").replace(str(folder / "masks"), "masks")

    try:
        ds = open_dataset(folder)
        summary = ds.describe(full=True)
    except UserError as err:
        return None, [short(p) for p in err.problems], []
    dec = ds.manifest.mask
    mapping = []
    for c in ds.manifest.classes:
        value = ({0: "0", 1: "255"}.get(c.id, str(c.id)) if dec.kind == "binary" else str(c.id))
        mapping.append({"mask value": value, "class id": c.id, "class": c.name})
    return summary, [short(p) for p in summary["problems"]], mapping


def result_html(result: UploadResult, esc) -> str:
    """HTML of an upload outcome: the problems (one per line) or the summary and class mapping."""
    if not result.ok:
        items = "".join(f"<li class='matseg-upload-problem'>{esc(p)}</li>" for p in result.problems)
        return (f"<div class='matseg-msg matseg-msg-error' style='color:#8a1c1c'>not added ({len(result.problems)} "
                f"problem(s)); nothing in the workspace was changed:<ul>{items}</ul></div>")
    s = result.summary or {}
    pairs = sum(v["pairs"] for v in s.get("splits", {}).values())
    splits = ", ".join(f"{k} {v['pairs']}" for k, v in s.get("splits", {}).items())
    rows = "".join(f"<tr><td>{esc(m['mask value'])}</td><td>{esc(m['class id'])}</td><td>{esc(m['class'])}</td></tr>"
                   for m in result.class_mapping)
    return (f"<div class='matseg-msg matseg-msg-ok' style='color:#17602c'>added dataset <code>{esc(s.get('name'))}"
            f"</code>: {pairs} pairs checked ({esc(splits)}), {esc(s.get('in_channels'))} channel(s); pick it in the "
            "profile editor's datasets list</div>"
            "<table class='matseg-class-mapping' border='1' cellpadding='4' style='border-collapse:collapse'>"
            f"<thead><tr><th>mask value</th><th>class id</th><th>class</th></tr></thead><tbody>{rows}</tbody></table>")


#: images uploaded to be segmented (no masks): ``<ws>/images/<name>/``
IMAGES_DIR = "images"


def list_image_folders(workspace: Path) -> list[Path]:
    """Folders of images uploaded for segmentation (``<ws>/images/<name>``), by name."""
    root = Path(workspace) / IMAGES_DIR
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def add_uploaded_images(workspace: str | Path, name: str, images: list[UploadedFile]) -> UploadResult:
    """Save uploaded images (no masks: to be segmented) as ``<ws>/images/<name>/``.

    Every file is checked by name (plain name, once, a suffix ``matseg_nb.data.formats`` reads, not empty);
    one bad file refuses the upload and nothing is written. Pixels are checked when segmented (an unreadable
    file gets its ``not segmented`` line there). ``summary``: ``{"name", "n_images"}``."""
    from matseg_nb.data.formats import SUPPORTED_SUFFIXES

    workspace = Path(workspace).resolve()
    if not NAME_RE.match(name or ""):
        return UploadResult(problems=[f"image folder name {name!r}: expected letters, digits, '.', '_' or '-' "
                                      "(up to 64, starting with a letter or digit), found something else"])
    target = workspace / IMAGES_DIR / name
    if target.exists():
        return UploadResult(problems=[f"image folder name {name}: expected a new name, found {IMAGES_DIR}/{name} "
                                      "already in the workspace (nothing was changed)"])
    if not images:
        return UploadResult(problems=["images: expected at least one uploaded image, found none"])
    _, problems = _precheck("image", images, SUPPORTED_SUFFIXES, one_per_stem=False)
    if problems:
        return UploadResult(problems=problems)
    staging = workspace / IMAGES_DIR / f".upload-{secrets.token_hex(6)}"
    try:
        staging.mkdir(parents=True)
        for f in images:
            atomic_write_bytes(staging / f.name, f.content)
        try:
            staging.rename(target)
        except OSError:
            return UploadResult(problems=[f"image folder name {name}: expected a new name, found "
                                          f"{IMAGES_DIR}/{name} already in the workspace (nothing was changed)"])
        return UploadResult(folder=target, summary={"name": name, "n_images": len(images)})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
