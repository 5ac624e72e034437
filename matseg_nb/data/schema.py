"""Pydantic v2 schema of a dataset manifest (``data_manifests/*.yaml``).

``data_manifests/schema.json`` is exported from :class:`Manifest` by
``python -m matseg_nb.data.schema`` (a test fails when the committed copy is stale).
"""

from __future__ import annotations

import re
import sys
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from matseg_nb.vocabulary import Difficulty, MaterialClass, Modality

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

#: the shipped manifests (package data; the checkout's ``data_manifests/`` is the same folder)
REPO_MANIFESTS = Path(str(resources.files("matseg_nb") / "resources" / "data_manifests"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class ClassDef:
    """One segmentation class; ids are 0..K-1, 0 = background/matrix. ``ClassDef(0, "matrix")``."""

    id: int = Field(ge=0)
    name: str = Field(min_length=1)


class Material(_Strict):
    class_: MaterialClass = Field(alias="class")
    text: str = ""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Source(_Strict):
    """Where the files come from. ``mirror_subdir`` is the folder inside a mirror / the cache
    that mirrors ``<url>@<commit>/<root>``."""

    url: str = ""
    commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")
    root: str = ""
    raw_url: str | None = Field(
        default=None,
        description="download URL template with {commit}, {root} and {path}; empty = no download",
    )
    licence: str = "unknown"
    citation: str = ""
    doi: str | None = None
    mirror_subdir: str = Field(min_length=1)


class FileRef(_Strict):
    """A file relative to the upstream root. ``sha256`` null = checksum unknown (never downloaded)."""

    path: str = Field(min_length=1)
    sha256: str | None = None
    note: str = ""

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not SHA256_RE.match(v):
            raise ValueError("expected 64 lowercase hex characters")
        return v


class Pair(_Strict):
    """One image with its mask; ``split`` is required by the ``folders`` split rule."""

    image: FileRef
    mask: FileRef | None = None
    split: SplitName | None = None
    group: str | None = None


class SplitRule(_Strict):
    """``folders``: each pair carries its upstream split. ``seeded``: groups are shuffled with
    ``seed`` and assigned to splits by ``ratios``, so a group never spans two splits."""

    kind: Literal["folders", "seeded"] = "folders"
    seed: int = 0
    ratios: dict[SplitName, float] = Field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    group_pattern: str | None = Field(
        default=None, description="regex on the image stem; named group 'group' (or group 1) is the group key"
    )

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        if any(r < 0 for r in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"expected non-negative ratios summing to 1, found {v}")
        return v

    @field_validator("group_pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v


class ColourEntry(_Strict):
    rgb: tuple[int, int, int]
    class_id: int = Field(ge=0)


class MaskDecoding(_Strict):
    """``index``: pixel value = class id. ``rgb``: colour table (+ optional ``default_class`` for
    any other colour). ``threshold``: value > ``threshold`` -> ``above``, else ``below``.
    ``binary``: {0,1} or {0,255} -> {0,1}."""

    kind: Literal["index", "rgb", "threshold", "binary"] = "index"
    colours: list[ColourEntry] = Field(default_factory=list)
    default_class: int | None = None
    threshold: float | None = None
    above: int = 1
    below: int = 0

    @model_validator(mode="after")
    def _complete(self) -> MaskDecoding:
        if self.kind == "rgb" and not self.colours:
            raise ValueError("rgb decoding needs a non-empty 'colours' table")
        if self.kind == "threshold" and self.threshold is None:
            raise ValueError("threshold decoding needs 'threshold'")
        return self


class Channels(_Strict):
    """``grayscale`` (RGB files with equal channels are averaged to 1), ``rgb`` (3), or ``stack``
    (pages/channels of one file, e.g. AFM height/phase/amplitude; ``names`` gives their order)."""

    kind: Literal["grayscale", "rgb", "stack"] = "grayscale"
    names: list[str] = Field(default_factory=list)

    @property
    def count(self) -> int:
        return {"grayscale": 1, "rgb": 3}.get(self.kind, len(self.names))

    @model_validator(mode="after")
    def _names(self) -> Channels:
        if self.kind == "stack" and not self.names:
            raise ValueError("a 'stack' needs channel 'names'")
        return self


class Volume(_Strict):
    """3-D data: each multi-page TIFF is a volume read as 2-D slices; the volume is the group."""

    slice_axis: Literal[0] = 0
    voxel_size_um: tuple[float, float, float] | None = None


class Manifest(_Strict):
    """A dataset: metadata, classes, source, files, split rule and decoding."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: str = ""
    modality: Modality
    material: Material
    task: str = ""
    difficulty: Difficulty | None = None
    classes: list[ClassDef] = Field(min_length=2)
    source: Source
    availability: Literal["mirror-or-download", "bring-your-own"] = "mirror-or-download"
    layout: str = Field(default="", description="expected local layout, shown when files are missing")
    channels: Channels = Field(default_factory=Channels)
    mask: MaskDecoding = Field(default_factory=MaskDecoding)
    volume: Volume | None = None
    pixel_size_um: float | None = Field(default=None, gt=0)
    split: SplitRule = Field(default_factory=SplitRule)
    pairs: list[Pair] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        ids = [c.id for c in self.classes]
        if ids != list(range(len(ids))):
            raise ValueError(f"classes: expected ids 0..{len(ids) - 1} in order, found {ids}")
        k = len(ids)
        used = [e.class_id for e in self.mask.colours] + [
            c for c in (self.mask.default_class,) if c is not None
        ]
        if any(c >= k for c in used):
            raise ValueError(f"mask: class ids must be < {k}, found {sorted(set(used))}")
        if self.availability == "mirror-or-download" and not self.pairs:
            raise ValueError("pairs: a mirror-or-download manifest must list its files")
        if self.split.kind == "folders":
            bad = [p.image.path for p in self.pairs if p.split is None]
            if bad:
                raise ValueError(f"pairs: split rule 'folders' needs a split on every pair, missing for {bad[:3]}")
        return self


def export_schema() -> dict:
    """JSON Schema of :class:`Manifest` (by alias, e.g. ``material.class``)."""
    from matseg_nb.jsonschema_export import json_schema

    return json_schema(Manifest, "data_manifests/schema.json")


def schema_text() -> str:
    from matseg_nb.jsonschema_export import json_schema_text

    return json_schema_text(Manifest, "data_manifests/schema.json")


def main(argv: list[str] | None = None) -> int:
    """Write the schema to ``data_manifests/schema.json`` (or the path given)."""
    from matseg_nb.atomic import atomic_write_text

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else REPO_MANIFESTS / "schema.json"
    atomic_write_text(out, schema_text())
    print(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
