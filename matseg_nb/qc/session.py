"""One run loaded once for every QC call: :class:`QCSession` (model, dataset, split images, a feature
cache) and the crop-feature :class:`_Extractor` it hands out; images are keyed by :func:`image_fingerprint`."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matseg_nb.errors import UserError
from matseg_nb.qc.features import FeatureContext, ImageItem, make_extractor, tile_boxes
from matseg_nb.qc.sources import dataset_items


def image_fingerprint(image: np.ndarray) -> int:
    """CRC-32 of an image's shape and bytes: seeds its crops and keys the feature cache, so an image
    gets the same crops (and features) whatever batch, position or call it is scored in."""
    a = np.ascontiguousarray(image)
    return zlib.crc32(a.tobytes(), zlib.crc32(repr((a.shape, str(a.dtype))).encode()))


class _Extractor:
    """Tiles every image with boxes seeded by ``seed`` and the image's content and runs a set of
    extractors on them; ``cache`` (shared by a :class:`QCSession`) keeps each image's features."""

    def __init__(self, names: tuple[str, ...], ctx: FeatureContext, tile_size: int, tiles: int, seed: int,
                 cache: dict | None = None) -> None:
        self.fns = {n: make_extractor(n, ctx) for n in names}
        self.tile_size, self.tiles, self.seed = tile_size, tiles, seed
        self.cache = {} if cache is None else cache

    def one(self, it: ImageItem) -> dict[str, np.ndarray]:
        """{extractor: (tiles, F)} of one image (cached by content, crop settings and extractor)."""
        fp = image_fingerprint(it.image)
        h, w = it.image.shape[-2:]
        boxes = None
        out = {}
        for n, fn in self.fns.items():
            key = (n, fp, self.tile_size, self.tiles, self.seed)
            if key not in self.cache:
                boxes = boxes or tile_boxes(h, w, self.tile_size, self.tiles, self.seed * 2**32 + fp)
                self.cache[key] = fn(it, boxes)
            out[n] = self.cache[key]
        return out

    def __call__(self, items: list[ImageItem], desc: str = "QC features") -> tuple[dict[str, np.ndarray], np.ndarray]:
        from matseg_nb.progress import progress_bar

        blocks: dict[str, list[np.ndarray]] = {n: [] for n in self.fns}
        groups = []
        for i, it in enumerate(progress_bar(items, desc=desc, unit="image", leave=False, disable=len(items) < 2)):
            feats = self.one(it)
            for n in self.fns:
                blocks[n].append(feats[n])
            groups += [i] * len(feats[next(iter(self.fns))])
        return {n: np.concatenate(b) for n, b in blocks.items()}, np.asarray(groups)


@dataclass
class QCSession:
    """One run loaded once for every QC call (screening, validation): its model, dataset, split
    images and a feature cache, so each image's features are extracted once per session."""

    run_dir: Path | None
    model: object
    meta: dict
    ds: object
    ctx: FeatureContext
    splits: dict[str, list[ImageItem]] = field(default_factory=dict)
    features: dict = field(default_factory=dict)

    @classmethod
    def open(cls, run_dir: str | Path | None, dataset: str | None = None) -> QCSession:
        """Load the run's model (``run_dir`` None: model-free, ``dataset`` required) and open its dataset."""
        from matseg_nb.data import open_dataset

        model, meta = None, {}
        if run_dir is not None:
            from matseg_nb.models import load_run_model

            model, meta = load_run_model(run_dir)
        ds_ref = dataset or meta.get("dataset")
        if not ds_ref:
            raise UserError("qc: expected a run folder with job.json or a dataset, found neither")
        ds = open_dataset(ds_ref)
        ctx = FeatureContext(model=model, normalization=meta.get("normalization") or "percentile",
                             num_classes=ds.num_classes)
        return cls(None if run_dir is None else Path(run_dir), model, {**meta, "dataset": meta.get("dataset") or ds_ref},
                   ds, ctx)

    def items(self, split: str) -> list[ImageItem]:
        """The images of ``split`` of the run's dataset (loaded once; [] when the split is empty)."""
        if split not in self.splits:
            self.splits[split] = dataset_items(self.ds, split) if self.ds.split_counts().get(split) else []
        return self.splits[split]

    def extractor(self, names: tuple[str, ...], tile_size: int, tiles: int, seed: int) -> _Extractor:
        return _Extractor(tuple(names), self.ctx, tile_size, tiles, seed, cache=self.features)
