"""``run_qc``: reference features -> QC model -> scores of held-out and candidate OOD sets -> files.

Writes into ``out_dir``: ``qc.json`` (verdict, metrics per level/detector/OOD set, thresholds,
per-image scores), ``scores.csv`` (one row per image, level and detector), ``roc.png`` and, when a
model and masks are available, ``gallery.png`` (Figure 3: least typical predictions).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matseg_nb.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from matseg_nb.errors import UserError
from matseg_nb.jsonio import jsonable
from matseg_nb.qc.core import QCModel, fit_qc
from matseg_nb.qc.evaluate import detection_metrics, flag, verdict
from matseg_nb.qc.features import PREDICTION_EXTRACTORS, FeatureContext, ImageItem
from matseg_nb.qc.power import readiness_power_sentence
from matseg_nb.qc.results import ShiftCheck, ValidationResult
from matseg_nb.qc.screening import tile_keys
from matseg_nb.qc.session import QCSession, _Extractor, image_fingerprint  # noqa: F401 - re-exported
from matseg_nb.qc.settings import LEVELS, QCSettings
from matseg_nb.qc.shifts import parse_shift
from matseg_nb.qc.sources import ImageSet, resolve_source, shifted_set
from matseg_nb.qc.validation import harm, key_auroc_interval, readiness


@dataclass
class QCResult:
    """Outcome of :func:`run_qc`; ``summary`` is what ``qc.json`` holds."""

    out_dir: Path
    verdict: str
    summary: dict
    scores: list[dict] = field(default_factory=list)


@dataclass
class _Scored:
    tile: dict[str, np.ndarray]  # detector -> (T_total,)
    image: dict[str, np.ndarray]  # detector -> (n_images,) mean crop score
    keys: dict[str, list[np.ndarray]] = field(default_factory=dict)  # detector -> per image (T_i, 3) crop keys
    crops: dict[str, list[np.ndarray]] = field(default_factory=dict)  # detector -> per image (T_i,) raw crop scores


def _predict(items: list[ImageItem], ctx: FeatureContext, tile: int, probs: bool = True,
             crop: int | None = None) -> None:
    """Set ``pred`` (and ``probs`` when ``probs``) of every item not predicted yet; an image up to
    ``tile`` px on a side gets one forward pass (no tiles), the same for every set compared.

    ``crop`` (only without ``probs``): predict the centre ``crop`` px square of larger images; its box
    (top, left, size) goes to ``meta["pred_box"]`` and ``pred`` has the crop's shape (see :func:`_pred_view`)."""
    import torch

    from matseg_nb.data import normalize_image
    from matseg_nb.models import predict_tiled

    with torch.no_grad():
        for it in items:
            if it.probs is None and (probs or it.pred is None):
                img = it.image
                h, w = img.shape[-2:]
                if crop and not probs and max(h, w) > crop:
                    size = min(crop, h, w)
                    box = ((h - size) // 2, (w - size) // 2, size)
                    it.meta["pred_box"] = box
                    img = img[..., box[0]:box[0] + size, box[1]:box[1] + size]
                x = torch.as_tensor(normalize_image(img, ctx.normalization))
                p = predict_tiled(ctx.model, x, ctx.num_classes, tile=tile).numpy()
                it.pred = p.argmax(0).astype(np.int64)
                it.probs = p if probs else None


def _pred_view(it: ImageItem) -> ImageItem:
    """The item restricted to the region its ``pred`` covers (itself unless :func:`_predict` cropped)."""
    box = it.meta.get("pred_box")
    if box is None:
        return it
    t, left, size = box
    sl = (slice(t, t + size), slice(left, left + size))
    return ImageItem(it.image[(..., *sl)], it.name, pred=it.pred, mask=None if it.mask is None else it.mask[sl],
                     meta=it.meta)


def _image_iou(pred: np.ndarray, mask: np.ndarray, k: int) -> float:
    from matseg_nb.metrics import confusion_matrix, summarize

    return float(summarize(confusion_matrix(pred, mask, k))["iou"])


def _score_set(model: QCModel, ext: _Extractor, items: list[ImageItem]) -> _Scored:
    blocks, groups = ext(items)
    tile, feats = model.score(blocks, groups)
    image = {d: np.array([s[groups == i].mean() for i in range(len(items))]) for d, s in tile.items()}
    keys = {d: [k[groups == i] for i in range(len(items))]
            for d, k in tile_keys(tile, feats, model.feature_names()).items()}
    crops = {d: [s[groups == i] for i in range(len(items))] for d, s in tile.items()}
    return _Scored(tile, image, keys, crops)


def _metrics(model: QCModel, idset: _Scored, ood: _Scored) -> dict:
    out = {}
    for d in model.detectors:
        thr_tile = model.thresholds[d]
        cal = model.calibration_scores[d]
        cal_img = [cal[model.calibration_groups == g].mean() for g in np.unique(model.calibration_groups)]
        thr_img = float(np.percentile(cal_img, model.percentile))
        out[d] = {
            "image": detection_metrics(idset.image[d], ood.image[d], thr_img),
            "tile": detection_metrics(idset.tile[d], ood.tile[d], thr_tile),
        }
    return out


def _roc_png(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4.5), squeeze=False)
    for ax, (level, sets) in zip(axes[0], curves.items(), strict=True):
        for name, (ids, oods) in sets.items():
            y = np.r_[np.zeros(len(ids)), np.ones(len(oods))]
            fpr, tpr, _ = roc_curve(y, -np.r_[ids, oods])
            ax.plot(fpr, tpr, label=name, lw=1.2)
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(title=f"{level} level (tiles)", xlabel="FPR (ID flagged)", ylabel="TPR (OOD flagged)")
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _gallery_png(rows: list[tuple[ImageItem, float, float]], num_classes: int) -> bytes:
    """Figure 3: per row prediction, ground truth, pixel difference, overlay (title: IoU, typicality)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matseg_nb.data import normalize_image

    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 3.1 * len(rows)), squeeze=False)
    for r, (it, score, iou) in enumerate(rows):
        grey = normalize_image(it.image, "percentile").mean(0)
        diff = (it.pred != it.mask).astype(float)
        panels = [(it.pred, "prediction"), (it.mask, "ground truth"), (diff, "pixel difference")]
        for c, (a, title) in enumerate(panels):
            axes[r, c].imshow(a, cmap="gray" if c == 2 else "viridis", vmin=0, vmax=1 if c == 2 else num_classes - 1,
                              interpolation="nearest")
            axes[r, c].set_title(f"{title}" if c else f"{it.name}\n{title}", fontsize=7)
        axes[r, 3].imshow(grey, cmap="gray")
        axes[r, 3].imshow(np.ma.masked_equal(it.pred, 0), cmap="autumn", alpha=0.45, interpolation="nearest")
        axes[r, 3].set_title(f"overlay  IoU {iou:.3f}  typicality {score:.3g}", fontsize=7)
        for a in axes[r]:
            a.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def run_qc(run_dir: str | Path | None, settings: QCSettings | None = None, *, out_dir: str | Path = "qc_out",
           test: list[str] | tuple[str, ...] = (), dataset: str | None = None, session: QCSession | None = None,
           extra_ood: list[ImageSet] | tuple[ImageSet, ...] = ()) -> QCResult:
    """Forte-style QC of a trained model's deployment data; see module docstring for outputs.

    run_dir: run folder (model + job.json) or None with ``dataset`` (model-free extractors only);
    ``settings``: what to fit and test (:class:`QCSettings`, default ``QCSettings()``); ``test``: candidate
    OOD sources (``split:<name>``, dataset refs ``name[:split]``, image files/folders) besides the settings'
    shifts; ``extra_ood``: OOD sets already loaded; ``session``: a :class:`QCSession` of the same run to share
    its model and features with other QC calls. Units: scores are per crop (``tile_size`` px,
    ``tiles_per_image`` per image, seeded) and per image (mean of its crops' typicality)."""
    settings = settings or QCSettings()
    if settings.level not in LEVELS:
        raise UserError(f"--level: expected one of {sorted(LEVELS)}, found {settings.level!r}")
    if not settings.detectors:
        raise UserError("--detectors: expected at least one of gmm, ocsvm, kde, found none")
    for spec in settings.shifts:
        parse_shift(spec)
    reference_split, heldout_split, level, seed = settings.reference_split, settings.heldout_split, settings.level, settings.seed
    k, tile_size, tiles_per_image, detectors = settings.k, settings.tile_size, settings.tiles_per_image, tuple(settings.detectors)
    percentile, extractors, shifts = settings.percentile, tuple(settings.extractors), list(settings.shifts)
    session = session or QCSession.open(run_dir, dataset)
    model, meta, ds, ctx = session.model, session.meta, session.ds, session.ctx
    ds_ref = meta["dataset"]
    thr_ready = settings.readiness_threshold if settings.readiness_threshold is not None else float(
        (meta.get("task") or {}).get("readiness_threshold", 0.95))
    if "prediction" in LEVELS[level] and model is None:
        raise UserError("--level prediction: expected a run folder with a model, found none")

    reference = session.items(reference_split)
    heldout = ImageSet(f"split:{heldout_split}", session.items(heldout_split), False, same_labels=True)
    if len(reference) < 2 or not heldout.items:
        raise UserError(f"{ds_ref}: expected >= 2 '{reference_split}' and >= 1 '{heldout_split}' images, found "
                        f"{len(reference)} and {len(heldout.items)}")
    ood_sets = [*extra_ood, *(resolve_source(t, ds) for t in test), *(shifted_set(heldout, s, seed) for s in shifts)]
    if model is not None:  # predictions: for prediction-level features, per-image IoU and the gallery
        need_all = "prediction" in LEVELS[level]
        sets = [reference] if need_all else []
        for st in [*sets, heldout.items, *[o.items for o in ood_sets if need_all or o.same_labels]]:
            _predict(st, ctx, max(tile_size, settings.predict_tile), probs=need_all,
                     crop=None if need_all else settings.iou_crop)

    primary = settings.primary_detector
    level_names = {"input": tuple(extractors), "prediction": PREDICTION_EXTRACTORS}
    summary: dict = {"run_dir": str(run_dir) if run_dir else None, "dataset": ds_ref, "reference_split": reference_split,
                     "heldout_split": heldout_split, "k": k, "tile_size": tile_size, "tiles_per_image": tiles_per_image,
                     "percentile": percentile, "readiness_threshold": thr_ready, "primary_detector": primary,
                     "ood_sets": [o.name for o in ood_sets], "levels": {}}
    rows: list[dict] = []
    curves: dict = {}
    per_image_typ: dict[str, dict[str, np.ndarray]] = {}
    set_keys: dict[str, dict[str, dict[str, list[np.ndarray]]]] = {}  # level -> set -> detector -> keys
    set_crops: dict[str, dict[str, dict[str, list[np.ndarray]]]] = {}  # level -> set -> detector -> raw crop scores
    for lv in LEVELS[level]:
        ext = session.extractor(level_names[lv], tile_size, tiles_per_image, seed)
        blocks, groups = ext(reference)
        qc = fit_qc(blocks, groups, k, detectors, percentile=percentile, seed=seed)
        sc_id = _score_set(qc, ext, heldout.items)
        lv_out = {"extractors": list(level_names[lv]), "fit": qc.fit_info, "thresholds_tile": qc.thresholds,
                  "ood": {}}
        curves[lv] = {}
        per_image_typ[lv] = {heldout.name: sc_id.image[primary]}
        for st, sc in [(heldout, sc_id)] + [(o, None) for o in ood_sets]:
            sc = sc or _score_set(qc, ext, st.items)
            per_image_typ[lv][st.name] = sc.image[primary]
            set_keys.setdefault(lv, {})[st.name] = sc.keys
            set_crops.setdefault(lv, {})[st.name] = sc.crops
            inside = [k[:, 0] for k in sc.keys.get(primary, [])]  # column 0 of the key: inside the support
            lv_out.setdefault("inside_support_fraction", {})[st.name] = (
                float(np.concatenate(inside).mean()) if inside else None)
            if st.ood:
                m = _metrics(qc, sc_id, sc)
                lv_out["ood"][st.name] = m
                curves[lv][st.name] = (sc_id.tile[primary], sc.tile[primary])
            for d in qc.detectors:
                thr = lv_out["ood"][st.name][d]["image"]["threshold"] if st.ood else None
                for i, it in enumerate(st.items):
                    rows.append({"level": lv, "set": st.name, "ood": int(st.ood), "image": it.name, "detector": d,
                                 "typicality": float(sc.image[d][i]), "threshold": thr,
                                 "flag": None if thr is None else bool(flag([sc.image[d][i]], thr)[0])})
        aurocs = [v[primary]["image"].get("auroc") for v in lv_out["ood"].values()]
        lv_out["verdicts"] = {n: verdict(v[primary]["image"].get("auroc"), thr_ready) for n, v in lv_out["ood"].items()}
        lv_out["verdict"] = (verdict(min(aurocs), thr_ready) if aurocs and None not in aurocs else "unknown")
        summary["levels"][lv] = lv_out

    _iou_and_gallery(summary, rows, per_image_typ, heldout, ood_sets, ds.num_classes, settings.gallery_rows, Path(out_dir))
    summary["validation"] = _validation(summary, rows, set_keys, heldout.name, reference_split, thr_ready,
                                        detectors, set_crops).to_json()
    summary["what_decided"] = ValidationResult.from_json(summary["validation"]).what_decided()
    levels = summary["levels"]
    summary["auroc_only_verdict"] = "ready" if levels and all(v["verdict"] == "ready" for v in levels.values()) else (
        "unknown" if any(v["verdict"] == "unknown" for v in levels.values()) else "not ready")
    summary["verdict"] = summary["validation"]["verdict"]
    out = Path(out_dir)
    atomic_write_json(out / "qc.json", jsonable(summary))
    buf = io.StringIO()
    fields = ["level", "set", "ood", "image", "detector", "typicality", "threshold", "flag", "iou"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "scores.csv", buf.getvalue())
    if any(curves.values()):
        atomic_write_bytes(out / "roc.png", _roc_png(curves))
    return QCResult(out, summary["verdict"], summary, rows)


def _validation(summary: dict, rows: list[dict], set_keys: dict, heldout: str, reference: str, threshold: float,
                detectors: tuple[str, ...], set_crops: dict | None = None) -> ValidationResult:
    """Per (OOD set, detector) image-level AUROC with 95% interval and the shift's IoU change; verdict
    from the first level (input) -- see :func:`matseg_nb.qc.validation.readiness`. Images are ranked by
    the screening's crop key (``set_keys``: level -> set -> detector -> per-image keys), see
    :func:`matseg_nb.qc.validation.key_auroc_interval`."""
    lv = next(iter(summary["levels"]), None)
    checks, table = [], []
    for name in summary.get("ood_sets", []):
        for d in detectors:
            sel = [r for r in rows if r["level"] == lv and r["detector"] == d]
            ci = key_auroc_interval(set_keys[lv][heldout][d], set_keys[lv][name][d])
            hm = harm([r.get("iou") for r in sel if r["set"] == heldout] or None,
                      [r.get("iou") for r in sel if r["set"] == name and r.get("iou") is not None] or None)
            checks.append(ShiftCheck(name, d, ci["auroc"], ci["low"], ci["high"], ci["n_id"], ci["n_ood"],
                                     hm["harm"], hm["iou_change"]))
            table.append({"set": name, "detector": d, "low": ci["low"], "n_id": ci["n_id"], "n_ood": ci["n_ood"],
                          "harm": hm["harm"], "auroc": ci["auroc"]})
    decides = [_what_decides(name, set_keys[lv], (set_crops or {}).get(lv), heldout, detectors)
               for name in summary.get("ood_sets", [])] if lv is not None else []
    verdict_, why = readiness(table, threshold, tuple(detectors))
    if verdict_ == "insufficient evidence" and why.startswith("fewer than"):  # what would decide (qc/power.py)
        why = "; ".join(filter(None, [why, readiness_power_sentence(table, threshold)]))
    return ValidationResult(verdict_, why, threshold, heldout, reference, checks, list(detectors), decides)


def _what_decides(name: str, keys: dict, crops: dict | None, heldout: str, detectors: tuple[str, ...]) -> dict:
    """Image-level AUROC (held-out vs ``name``) of the support indicator alone (key column 0), of each
    detector's raw crop scores alone and of each detector's combined key, all from the same crops; ``n_crops``
    counts the (held-out, set) crops each AUROC ranked."""
    def auc(a: list[np.ndarray], b: list[np.ndarray]) -> float | None:
        return key_auroc_interval(a, b)["auroc"]

    def count(a: list[np.ndarray], b: list[np.ndarray]) -> list[int]:
        return [int(sum(len(x) for x in a)), int(sum(len(x) for x in b))]

    first = detectors[0]
    sid, sood = [k[:, 0] for k in keys[heldout][first]], [k[:, 0] for k in keys[name][first]]
    row = {"set": name, "support": auc(sid, sood), "alone": {}, "combined": {},
           "n_crops": {"support": count(sid, sood)}}
    for d in detectors:
        row["combined"][d] = auc(keys[heldout][d], keys[name][d])
        row["n_crops"][f"combined {d}"] = count(keys[heldout][d], keys[name][d])
        if crops:
            row["alone"][d] = auc(crops[heldout][d], crops[name][d])
            row["n_crops"][f"alone {d}"] = count(crops[heldout][d], crops[name][d])
    return row


def _iou_and_gallery(summary, rows, typ, heldout, ood_sets, k, n_rows, out_dir: Path) -> None:
    """Per-image IoU, Spearman(typicality, IoU) per level, and the Figure-3 gallery."""
    from scipy.stats import spearmanr

    sets = [st for st in (heldout, *ood_sets) if st.same_labels]  # IoU only where classes match the run's
    views = {(st.name, it.name): _pred_view(it) for st in sets for it in st.items}
    ious = {key: _image_iou(v.pred, v.mask, k) for key, v in views.items() if v.pred is not None and v.mask is not None}
    if not ious:
        return
    for r in rows:
        r["iou"] = ious.get((r["set"], r["image"]))
    for lv, by_set in typ.items():
        xs, ys = [], []
        for st in sets:
            for i, it in enumerate(st.items):
                if (st.name, it.name) in ious:
                    xs.append(by_set[st.name][i])
                    ys.append(ious[(st.name, it.name)])
        rho = spearmanr(xs, ys).statistic if len(xs) >= 3 else float("nan")
        summary["levels"][lv]["spearman_typicality_iou"] = {"rho": _finite(rho), "n_images": len(xs),
                                                            "detector": summary["primary_detector"]}
    lv = "prediction" if "prediction" in typ else next(iter(typ))
    cands = [(typ[lv][st.name][i], st.name, it) for st in sets for i, it in enumerate(st.items)
             if (st.name, it.name) in ious]
    cands.sort(key=lambda c: c[0])
    chosen = [(views[(name, it.name)], s, ious[(name, it.name)]) for s, name, it in cands[:n_rows]]
    if chosen:
        atomic_write_bytes(out_dir / "gallery.png", _gallery_png(chosen, k))
        summary["gallery"] = {"level": lv, "images": [f"{it.name}" for it, _, _ in chosen]}


