"""Per-image signals for :mod:`matseg_nb.suggest.ranking` from one run: QC typicality, mean softmax entropy and
the QC feature vector, for the unlabelled candidates and for the run's own images.

The QC model is the screening's (:mod:`matseg_nb.qc.screening`): PRDC reference and detector fit on the
run's training split, calibration on its validation split (the test split, stated, when there is none).
Entropy is in nats, per pixel of the model's full-resolution softmax (tiled), averaged over the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json
from matseg_nb.qc.features import ImageItem


@dataclass
class Signals:
    """``names`` (m,); ``typicality`` (m,) median crop conformal p-value vs the held-out crops;
    ``mean_entropy`` (m,) nats; ``features`` (m, F) and ``labelled_features`` (n_l, F) per-image QC features
    (standardised on the training crops, each extractor weighted equally); ``heldout_entropy`` (n_h,) nats."""

    names: list[str]
    typicality: np.ndarray
    mean_entropy: np.ndarray
    features: np.ndarray
    labelled_features: np.ndarray
    heldout_entropy: np.ndarray
    calibration: str
    num_classes: int
    notes: list[str] = field(default_factory=list)


def mean_entropy(model, items: list[ImageItem], normalization: str, num_classes: int, tile: int = 512
                 ) -> np.ndarray:
    """(len(items),) mean per-pixel entropy (nats) of the model's softmax over each whole image."""
    import torch

    from matseg_nb.data import normalize_image
    from matseg_nb.models import predict_tiled

    out = np.zeros(len(items))
    with torch.no_grad():
        for i, it in enumerate(items):
            p = predict_tiled(model, torch.as_tensor(normalize_image(it.image, normalization)), num_classes,
                              tile=tile).clamp_min(1e-12)
            out[i] = float(-(p * p.log()).sum(0).mean())
    return out


def image_features(blocks: dict[str, np.ndarray], groups: np.ndarray, n_images: int,
                   stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(n_images, F) per-image mean crop features, each extractor z-scored with ``stats`` (mean, sd) and
    scaled by 1/sqrt(its width) so every extractor weighs the same in Euclidean distance."""
    cols = []
    for name in sorted(blocks):
        mu, sd = stats[name]
        z = (np.asarray(blocks[name], float) - mu) / sd / np.sqrt(mu.size)
        cols.append(np.stack([z[groups == i].mean(0) for i in range(n_images)]))
    return np.concatenate(cols, axis=1)


def _split_images(session, reference_split: str) -> tuple[list[ImageItem], list[ImageItem], str, list[str]]:
    """(reference, held-out, held-out name, notes): a CV fold run's own training and held-out groups
    (``metrics.json["cv"]``), else the run's ``reference_split`` and its validation split (test when none).
    A refit on the whole CV pool has no held-out image: UserError naming the fix."""
    from matseg_nb.qc.sources import dataset_items

    cv = {}
    if session.run_dir is not None:
        metrics = read_json(session.run_dir / "metrics.json")
        cv = (metrics.get("cv") if isinstance(metrics, dict) else None) or {}
    if cv.get("refit"):
        raise UserError(f"suggest {session.run_dir}: expected a run with held-out images, found a refit on every "
                        "annotated image; pass one of its fold runs (..__f0of<k>__..)")
    if cv.get("val_groups"):
        pool = [it for it in dataset_items(session.ds, None) if it.mask is not None]
        train, val = set(map(str, cv.get("train_groups") or [])), set(map(str, cv["val_groups"]))
        return ([it for it in pool if str(it.meta.get("group")) in train],
                [it for it in pool if str(it.meta.get("group")) in val], f"fold {cv.get('fold')} held-out", [])
    heldout = session.items("val")
    if heldout:
        return session.items(reference_split), heldout, "val", []
    return (session.items(reference_split), session.items("test"), "test",
            ["no 'val' split: the test split is the calibration set"])


def run_signals(session, candidates: list[ImageItem], qc_settings, detector: str = "ocsvm", k: int = 5,
                seed: int = 0) -> Signals:
    """:class:`Signals` of ``candidates`` against the run of ``session`` (a :class:`matseg_nb.qc.session.QCSession`)."""
    from matseg_nb.qc.conformal import conformal_pvalues
    from matseg_nb.qc.model import fit_qc

    reference, heldout, cal_name, notes = _split_images(session, qc_settings.reference_split)
    if len(reference) < 2 or not heldout:
        raise UserError(f"suggest: expected >= 2 '{qc_settings.reference_split}' images and a validation or test "
                        f"split in {session.meta.get('dataset')}, found {len(reference)} and {len(heldout)}")
    ext = session.extractor(tuple(qc_settings.extractors), qc_settings.tile_size, qc_settings.tiles_per_image, seed)
    ref_blocks, ref_groups = ext(reference, desc="suggest: reference features")
    qc = fit_qc(ref_blocks, ref_groups, k, (detector,), seed=seed)

    def keys(blocks: dict, groups: np.ndarray) -> np.ndarray:
        return qc.keys(blocks, groups, (detector,))[0][detector]

    cal_blocks, cal_groups = ext(heldout, desc="suggest: held-out features")
    cal_keys = keys(cal_blocks, cal_groups)
    cand_blocks, cand_groups = ext(candidates, desc="suggest: candidate features")
    cand_keys = keys(cand_blocks, cand_groups)
    typicality = np.array([float(np.median(conformal_pvalues(cal_keys, cand_keys[cand_groups == i])))
                           for i in range(len(candidates))])
    stats = {n: (np.asarray(b, float).mean(0), np.where(np.asarray(b, float).std(0) > 0, np.asarray(b, float).std(0), 1.0))
             for n, b in ref_blocks.items()}
    ctx = session.ctx
    tile = int(getattr(qc_settings, "predict_tile", 512))
    return Signals([it.name for it in candidates], typicality,
                   mean_entropy(session.model, candidates, ctx.normalization, ctx.num_classes, tile),
                   image_features(cand_blocks, cand_groups, len(candidates), stats),
                   image_features(ref_blocks, ref_groups, len(reference), stats),
                   mean_entropy(session.model, heldout, ctx.normalization, ctx.num_classes, tile),
                   cal_name, ctx.num_classes, notes)
