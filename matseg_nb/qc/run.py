"""``run_qc``: detector validation of one run, a thin orchestrator.

images (``session``, ``sources``) -> predictions (``predictions``) -> per level the fit and the typicality
of every set (``model``) -> detection metrics (``evaluate``) and the validation answer (``validate``) ->
the typed record (``results.ValidationRun``) -> files (``folder``: ``qc.json``, ``scores.csv``; ``figures``:
``roc.png`` and, with a model and masks, ``gallery.png``, the least typical predictions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matseg_nb.errors import UserError
from matseg_nb.qc.evaluate import detection_metrics, verdict
from matseg_nb.qc.features import PREDICTION_EXTRACTORS
from matseg_nb.qc.folder import GALLERY_FILE, ROC_FILE, QCFolder
from matseg_nb.qc.model import ScoredImages, fit_qc, score_images
from matseg_nb.qc.predictions import image_iou, pred_view, predict_items
from matseg_nb.qc.results import LevelResult, ScoreRow, ValidationRun
from matseg_nb.qc.session import QCSession
from matseg_nb.qc.settings import LEVELS, QCSettings
from matseg_nb.qc.shifts import parse_shift
from matseg_nb.qc.sources import ImageSet, resolve_source, shifted_set
from matseg_nb.qc.validate import validate


@dataclass
class QCResult:
    """Outcome of :func:`run_qc`: the record ``qc.json`` holds and the rows of ``scores.csv``."""

    out_dir: Path
    run: ValidationRun
    scores: list[ScoreRow] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.run.verdict


def run_qc(run_dir: str | Path | None, settings: QCSettings | None = None, *, out_dir: str | Path = "qc_out",
           test: list[str] | tuple[str, ...] = (), dataset: str | None = None, session: QCSession | None = None,
           extra_ood: list[ImageSet] | tuple[ImageSet, ...] = ()) -> QCResult:
    """Forte-style validation of a trained model's QC; see the module docstring for the outputs.

    run_dir: run folder (model + job.json) or None with ``dataset`` (model-free extractors only);
    ``settings``: what to fit and test (:class:`QCSettings`, default ``QCSettings()``); ``test``: candidate
    OOD sources (``split:<name>``, dataset refs ``name[:split]``, image files/folders) besides the settings'
    shifts; ``extra_ood``: OOD sets already loaded; ``session``: a :class:`QCSession` of the same run to share
    its model and features with other QC calls. Typicality per image: ``results.TYPICALITY_WORDS``."""
    st = _checked(settings or QCSettings())
    session = session or QCSession.open(run_dir, dataset)
    reference, heldout, ood_sets, calibration = _image_sets(session, st, test, extra_ood)
    ious = _ious([heldout, *ood_sets], session.ds.num_classes)
    thr_ready = st.readiness_threshold if st.readiness_threshold is not None else float(
        (session.meta.get("task") or {}).get("readiness_threshold", 0.95))
    levels, scored, rows = {}, {}, []
    for lv in LEVELS[st.level]:
        levels[lv], scored[lv], lv_rows = _level(lv, session, st, reference, heldout, ood_sets, thr_ready,
                                                 calibration)
        rows += lv_rows
    for r in rows:
        r.iou = ious.get((r.set, r.image))
    for lv, level in levels.items():
        level.spearman_typicality_iou = _spearman(rows, lv, st.primary_detector, ious) if ious else None
    first = scored[next(iter(scored))]  # the validation answer comes from the first level (input)
    result = validate({s: sc.keys for s, sc in first.items()}, {s: sc.crops for s, sc in first.items()},
                      {s.name: [ious.get((s.name, it.name)) for it in s.items] for s in (heldout, *ood_sets)},
                      heldout.name, [o.name for o in ood_sets], st.reference_split, thr_ready, tuple(st.detectors))
    run = ValidationRun(
        dataset=session.meta["dataset"], run_dir=str(run_dir) if run_dir else None,
        reference_split=st.reference_split, heldout_split=st.heldout_split, k=st.k, tile_size=st.tile_size,
        tiles_per_image=st.tiles_per_image, percentile=st.percentile, readiness_threshold=thr_ready,
        primary_detector=st.primary_detector, ood_sets=[o.name for o in ood_sets], levels=levels, validation=result,
        what_decided=result.what_decided(), auroc_only_verdict=_auroc_only(levels), verdict=result.verdict,
        calibration=f"split:{st.calibration_split} ({len(calibration)} images)" if calibration else
        f"{st.reference_split}: the half not used as PRDC reference (no '{st.calibration_split}' images)")
    folder = QCFolder(Path(out_dir))
    _figures(folder, run, scored, heldout, ood_sets, ious, session.ds.num_classes, st)
    folder.write_validation(run)
    folder.write_scores(rows)
    return QCResult(folder.path, run, rows)


def _image_sets(session: QCSession, st: QCSettings, test, extra_ood) -> tuple[list, ImageSet, list[ImageSet], list]:
    """(reference images, held-out set, OOD sets, calibration images), predicted where QC needs it."""
    if "prediction" in LEVELS[st.level] and session.model is None:
        raise UserError("--level prediction: expected a run folder with a model, found none")
    reference = session.items(st.reference_split)
    heldout = ImageSet(f"split:{st.heldout_split}", session.items(st.heldout_split), False, same_labels=True)
    if len(reference) < 2 or not heldout.items:
        raise UserError(f"{session.meta['dataset']}: expected >= 2 '{st.reference_split}' and >= 1 "
                        f"'{st.heldout_split}' images, found {len(reference)} and {len(heldout.items)}")
    ood_sets = [*extra_ood, *(resolve_source(t, session.ds) for t in test),
                *(shifted_set(heldout, s, st.seed) for s in st.shifts)]
    own = st.calibration_split in ("", st.heldout_split, st.reference_split)
    calibration = [] if own else session.items(st.calibration_split)
    if session.model is not None:  # predictions: prediction-level features (every set) or the IoU change
        need_all = "prediction" in LEVELS[st.level]
        for items in [*([reference, calibration] if need_all else []), heldout.items,
                      *[o.items for o in ood_sets if need_all or o.same_labels]]:
            predict_items(items, session.ctx, max(st.tile_size, st.predict_tile), probs=need_all,
                          crop=None if need_all else st.iou_crop)
    return reference, heldout, ood_sets, calibration


def _auroc_only(levels: dict[str, LevelResult]) -> str:
    """The older AUROC-only verdict: "ready" when every level is, "unknown" when a level is."""
    if levels and all(v.verdict == "ready" for v in levels.values()):
        return "ready"
    return "unknown" if any(v.verdict == "unknown" for v in levels.values()) else "not ready"


def _checked(st: QCSettings) -> QCSettings:
    if st.level not in LEVELS:
        raise UserError(f"--level: expected one of {sorted(LEVELS)}, found {st.level!r}")
    if not st.detectors:
        raise UserError("--detectors: expected at least one of gmm, ocsvm, kde, found none")
    for spec in st.shifts:
        parse_shift(spec)
    return st


def _ious(sets: list[ImageSet], k: int) -> dict[tuple[str, str], float]:
    """{(set, image): IoU} of every predicted image with a mask, in sets whose classes match the run's; an
    image whose IoU is undefined (NaN: no class present in its mask or prediction) is left out."""
    views = {(s.name, it.name): pred_view(it) for s in sets if s.same_labels for it in s.items}
    ious = {key: image_iou(v.pred, v.mask, k) for key, v in views.items() if v.pred is not None and v.mask is not None}
    return {key: v for key, v in ious.items() if np.isfinite(v)}


def _level(lv: str, session: QCSession, st: QCSettings, reference, heldout: ImageSet, ood_sets, thr_ready: float,
           calibration: list) -> tuple[LevelResult, dict[str, ScoredImages], list[ScoreRow]]:
    """Fit at one level (typicality calibrated on ``calibration`` images when there are any), score every
    set, detection metrics per OOD set and detector, scores.csv rows."""
    names = tuple(st.extractors) if lv == "input" else PREDICTION_EXTRACTORS
    ext = session.extractor(names, st.tile_size, st.tiles_per_image, st.seed)
    model = fit_qc(*ext(reference), st.k, tuple(st.detectors), percentile=st.percentile, seed=st.seed)
    if calibration:
        blocks, groups = ext(calibration, desc="QC features: calibration")
        model.calibrate(model.keys(blocks, groups)[0], groups)
    thr_img = {d: float(np.percentile(model.calibration_image_typicality(d), st.percentile)) for d in model.detectors}
    out = LevelResult(extractors=list(names), fit=model.fit_info, thresholds_tile=dict(model.thresholds))
    scored, rows = {}, []
    for s in (heldout, *ood_sets):
        sc = scored[s.name] = score_images(model, *ext(s.items), len(s.items))
        out.inside_support_fraction[s.name] = sc.inside_support_fraction(st.primary_detector)
        if s.ood:
            base = scored[heldout.name]
            out.ood[s.name] = {d: {"image": detection_metrics(base.image[d], sc.image[d], thr_img[d]),
                                   "tile": detection_metrics(base.tile[d], sc.tile[d], model.thresholds[d])}
                               for d in model.detectors}
        for d in model.detectors:
            thr = thr_img[d] if s.ood else None
            rows += [ScoreRow(lv, s.name, int(s.ood), it.name, d, float(sc.image[d][i]), thr,
                              None if thr is None else bool(sc.image[d][i] < thr)) for i, it in enumerate(s.items)]
    out.verdicts = {n: verdict(v[st.primary_detector]["image"].get("auroc"), thr_ready) for n, v in out.ood.items()}
    aurocs = [v[st.primary_detector]["image"].get("auroc") for v in out.ood.values()]
    out.verdict = verdict(min(aurocs), thr_ready) if aurocs and None not in aurocs else "unknown"
    return out, scored, rows


def _spearman(rows: list[ScoreRow], lv: str, detector: str, ious: dict) -> dict:
    """Spearman's rho of image typicality (``detector``) with IoU over the images with both, at level ``lv``."""
    from scipy.stats import spearmanr

    pairs = [(r.typicality, ious[(r.set, r.image)]) for r in rows
             if r.level == lv and r.detector == detector and (r.set, r.image) in ious]
    rho = spearmanr(*zip(*pairs, strict=True)).statistic if len(pairs) >= 3 else float("nan")
    return {"rho": float(rho) if np.isfinite(rho) else None, "n_images": len(pairs), "detector": detector}


def _figures(folder: QCFolder, run: ValidationRun, scored, heldout: ImageSet, ood_sets, ious: dict, k: int,
             st: QCSettings) -> None:
    """``roc.png`` (crop typicality per level and OOD set) and the gallery of the least typical predictions."""
    from matseg_nb.qc.figures import gallery_png, roc_png

    d = st.primary_detector
    curves = {lv: {o.name: (by_set[heldout.name].tile[d], by_set[o.name].tile[d]) for o in ood_sets}
              for lv, by_set in scored.items()}
    if any(curves.values()):
        folder.write_png(ROC_FILE, roc_png(curves))
    if not ious:
        return
    lv = "prediction" if "prediction" in scored else next(iter(scored))
    views = {(s.name, it.name): (pred_view(it), float(scored[lv][s.name].image[d][i]))
             for s in (heldout, *ood_sets) if s.same_labels for i, it in enumerate(s.items)}
    chosen = sorted(((typ, key) for key, (_, typ) in views.items() if key in ious), key=lambda c: c[0])
    chosen = chosen[:st.gallery_rows]
    if chosen:
        folder.write_png(GALLERY_FILE, gallery_png([(views[key][0], typ, ious[key]) for typ, key in chosen], k))
        run.gallery = {"level": lv, "images": [key[1] for _, key in chosen]}
