"""Screen new images against a trained run: per-image conformal p-values, flags and a batch verdict.

Reference set (PRDC + detector fit): the run's training split. Calibration set: the validation split
(the test split, stated, when there is none), never the training images. Every radius comes from the
reference set, so an image's score does not depend on the other images screened with it.

A crop's typicality is the key (inside the reference support, detector score, minus the log nn-ratio)
compared lexicographically (:func:`matseg_nb.qc.model.typicality_key`, re-exported here): Forte's PRDC
features are all 0 outside the support, so there the detectors cannot order crops and the distance to
the support does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matseg_nb.errors import UserError
from matseg_nb.qc.conformal import (
    MIN_POWER,
    STRONG_SHIFT_AUROC,
    TARGET_POWER,
    batch_test,
    combine_tile_pvalues,
    conformal_pvalues,
    flag_count_test,
    image_rank_statistics,
    reason,
)
from matseg_nb.qc.features import ImageItem
from matseg_nb.qc.model import fit_qc, tile_keys, typicality_key
from matseg_nb.qc.power import screening_power_words
from matseg_nb.qc.results import ImageScreen, ScreeningResult

__all__ = ["Calibration", "RunScreener", "load_new_images", "screen_run", "screen_scores", "tile_keys",
           "typicality_key"]

DTYPE_FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0}


@dataclass
class Calibration:
    """Calibration tile scores (N,) or (N, K) lexicographic keys, with image labels (N,)."""

    tile_scores: np.ndarray
    tile_groups: np.ndarray

    def per_image(self) -> list[np.ndarray]:
        """Each calibration image's tile scores, in label order."""
        s, g = np.asarray(self.tile_scores, dtype=float), np.asarray(self.tile_groups)
        return [s[g == k] for k in np.unique(g)]


def screen_scores(calibration: Calibration, tile_scores: list[np.ndarray], names: list[str], alpha: float = 0.05,
                  batch: str = "new", reference: str = "train", calibration_name: str = "val",
                  detector: str = "ocsvm", notes: dict[str, str] | None = None) -> ScreeningResult:
    """Screening answer from crop typicality: calibration tiles vs each new image's tiles (list of (T_i,) or
    (T_i, K) keys).

    Per image: typicality = median tile conformal p-value; p-value = min(1, 2 x median) (valid under
    dependence between tiles); flagged when p <= alpha; it depends on the calibration set only. Per
    batch: exact rank-sum test of the images' mean pooled tile ranks (calibration and batch images pooled,
    :func:`image_rank_statistics`) and the binomial flag-count p-value."""
    notes = dict(notes or {})
    cal = np.asarray(calibration.tile_scores, dtype=float)
    smallest_p = min(1.0, 2.0 / (cal.shape[0] + 1))
    images, screened = [], []
    for name, s in zip(names, tile_scores, strict=True):
        s = np.asarray(s, dtype=float)
        if s.shape[0] == 0:
            images.append(ImageScreen(name, None, None, None, "not screened", notes.get(name, "no crops")))
            continue
        tile_p = conformal_pvalues(cal, s)
        p = combine_tile_pvalues(tile_p)
        images.append(ImageScreen(name, p, float(np.median(tile_p)), bool(p <= alpha), reason(p, alpha, smallest_p),
                                  notes.get(name, "")))
        screened.append(s)
    for name, note in notes.items():
        if name not in names:
            images.append(ImageScreen(name, None, None, None, "not screened", note))
    n_flag = sum(1 for i in images if i.flagged)
    cal_images = calibration.per_image()
    stats = image_rank_statistics([*cal_images, *screened])
    n_cal = len(cal_images)
    test = batch_test(stats[:n_cal], stats[n_cal:], level=alpha)
    extra = []
    if smallest_p > alpha:
        extra.append(f"calibration has {cal.shape[0]} crops: no single image can be flagged at alpha={alpha:g}")
    shift_words = (f"a strong shift (new images less typical than calibration images with probability "
                   f"{STRONG_SHIFT_AUROC:g})")
    power = f"{100 * test['power']:.0f}%"
    if test["evidence"] == "weak" and n_flag:  # a weak "in distribution" only when no image argues against it
        test = {**test, "verdict": "too few images to tell", "evidence": ""}
        extra.append(f"{n_flag} of {len(screened)} image(s) flagged, but the batch test is not significant with "
                     f"{len(screened)} vs {n_cal} calibration images (power {power} against {shift_words})")
    elif test["evidence"] == "weak":
        extra.append(f"weak evidence: no shift found, but {len(screened)} image(s) vs {n_cal} calibration images "
                     f"detect {shift_words} only {power} of the time (below {100 * TARGET_POWER:.0f}%); "
                     + screening_power_words(n_cal, len(screened), alpha))
    elif test["verdict"] == "too few images to tell" and test["p_value"] is None:
        extra.append(f"{len(screened)} image(s) vs {n_cal} calibration images: the batch test cannot reach "
                     f"p <= {alpha:g} (smallest possible p {test['smallest_possible_p']:.2g})")
    elif test["verdict"] == "too few images to tell":
        extra.append(f"no shift found, but {len(screened)} image(s) vs {n_cal} calibration images detect "
                     f"{shift_words} only {power} of the time (below {100 * MIN_POWER:.0f}%); "
                     + screening_power_words(n_cal, len(screened), alpha))
    return ScreeningResult(batch, images, alpha, n_flag, len(screened), test["verdict"], test["test"],
                           test["p_value"], flag_count_test(n_flag, len(screened), alpha), reference,
                           calibration_name, detector, n_cal, extra, test["power"], test["evidence"])


def load_new_images(ref: str, channels: int | None, default_ds=None, dtype: str | None = None
                    ) -> tuple[list[ImageItem], dict[str, str]]:
    """Images of one --new source (file, folder, dataset ref, split:<name>) and per-file notes: files that
    cannot be screened (unreadable, other channel count) are left out; a file of another bit depth than
    the training images (``dtype``) is screened with a note. A folder with no images is a UserError."""
    from matseg_nb.data import read_image
    from matseg_nb.data.readers import read_array
    from matseg_nb.qc.sources import IMAGE_EXT, _files, resolve_source

    p = Path(ref)
    if not p.exists() or (p.is_dir() and (any(p.glob("*.yaml")) or (p / "images").is_dir())):
        return resolve_source(ref, default_ds).items, {}
    files = _files(p)
    if not files:
        raise UserError(f"--new {ref}: expected image files ({', '.join(sorted(IMAGE_EXT))}), found none")
    items, notes = [], {}
    for f in files:
        try:
            raw = read_array(f)
            img = read_image(f)
        except Exception as err:  # noqa: BLE001 - any unreadable file becomes a per-image note
            notes[f.stem] = f"unreadable: {str(err).splitlines()[0][:160]}"
            continue
        if channels is not None and img.shape[0] != channels:
            notes[f.stem] = f"expected {channels} channel(s) like the training images, found {img.shape[0]}"
            continue
        meta = {"dtype": str(raw.dtype)}
        if dtype is not None and str(raw.dtype) != dtype:
            notes[f.stem] = (f"{raw.dtype} file, training images are {dtype}: intensities compared as fractions "
                             "of each file's full scale")
        if str(raw.dtype) in DTYPE_FULL_SCALE:
            meta["full_scale"] = DTYPE_FULL_SCALE[str(raw.dtype)]
        items.append(ImageItem(img, f.stem, meta=meta))
    return items, notes


def _file_dtype(ds, split: str) -> str | None:
    """The pixel dtype of the first file of ``split`` (None when it cannot be read)."""
    from matseg_nb.data.readers import read_array

    try:
        return str(read_array(ds.samples(split)[0].image).dtype)
    except Exception:  # noqa: BLE001 - no dtype note rather than no screening
        return None


class RunScreener:
    """A run's screening set up once: the reference fit on ``reference_split``, the calibration images'
    (``calibration_split``, else test) crop keys scored once; then :meth:`screen` any images.

    The settings of ``matseg qc RUN --new``: ``extractors`` on ``tiles_per_image`` crops of ``tile_size`` px,
    one ``detector`` with ``k`` neighbours, crops seeded by ``seed`` and each image's content."""

    def __init__(self, session, reference_split: str = "train", calibration_split: str = "val",
                 extractors: tuple[str, ...] = ("encoder", "texture"), detector: str = "ocsvm", k: int = 5,
                 tile_size: int = 128, tiles_per_image: int = 32, seed: int = 0) -> None:
        self.session, self.detector, self.reference_split = session, detector, reference_split
        reference = session.items(reference_split)
        self.calibration_name, cal = calibration_split, session.items(calibration_split)
        self.notes: list[str] = []
        if not cal:
            self.calibration_name, cal = "test", session.items("test")
            self.notes.append(f"no '{calibration_split}' split: the test split is the calibration set")
        if len(reference) < 2 or not cal:
            raise UserError(f"qc --new: expected >= 2 '{reference_split}' images and a validation or test split in "
                            f"{session.meta.get('dataset')}, found {len(reference)} and {len(cal)}")
        self.channels = reference[0].image.shape[0]
        self.extractor = session.extractor(tuple(extractors), tile_size, tiles_per_image, seed)
        blocks, groups = self.extractor(reference, desc="QC features: reference")
        self.model = fit_qc(blocks, groups, k, (detector,), seed=seed)
        self.calibration = Calibration(*self._keys(cal, "calibration"))

    @classmethod
    def open(cls, run_dir: str | Path, settings=None, session=None) -> RunScreener:
        """Load the run's model (or use ``session``, a :class:`matseg_nb.qc.session.QCSession` of it) and set up
        screening; ``settings``: a :class:`matseg_nb.qc.settings.QCSettings` (its reference and calibration splits,
        extractors, k, crop sizes and seed; OCSVM when among its detectors) or None for the ``matseg qc --new``
        defaults."""
        from matseg_nb.qc.session import QCSession

        session = session or QCSession.open(run_dir)
        if settings is None:
            return cls(session)
        return cls(session, settings.reference_split, settings.calibration_split, tuple(settings.extractors),
                   settings.screening_detector, settings.k, settings.tile_size, settings.tiles_per_image, settings.seed)

    @property
    def n_calibration(self) -> int:
        """Number of calibration images."""
        return len(np.unique(self.calibration.tile_groups))

    def _keys(self, items: list[ImageItem], what: str) -> tuple[np.ndarray, np.ndarray]:
        """(T, 3) :func:`typicality_key` of every crop of ``items`` and (T,) the index of its image."""
        blocks, groups = self.extractor(items, desc=f"QC features: {what}")
        return self.model.keys(blocks, groups, (self.detector,))[0][self.detector], groups

    def image_keys(self, items: list[ImageItem]) -> list[np.ndarray]:
        """Per image of ``items``, its crops' (T_i, 3) typicality keys."""
        if not items:
            return []
        keys, groups = self._keys(items, "new")
        return [keys[groups == i] for i in range(len(items))]

    def calibration_keys(self) -> list[np.ndarray]:
        """Per calibration image, its crops' (T_i, 3) typicality keys."""
        return self.calibration.per_image()

    def screen(self, items: list[ImageItem], batch: str = "new", alpha: float = 0.05,
               notes: dict[str, str] | None = None) -> ScreeningResult:
        """Conformal p-value and flag of each image of ``items`` and the batch test (named ``batch``)."""
        res = screen_scores(self.calibration, self.image_keys(items), [it.name for it in items], alpha, batch,
                            self.reference_split, self.calibration_name, self.detector, notes or {})
        res.notes[:0] = self.notes
        return res


def screen_run(run_dir: str | Path, new: list[str], out_dir: str | Path, alpha: float = 0.05,
               reference_split: str = "train", calibration_split: str = "val",
               extractors: tuple[str, ...] = ("encoder", "texture"), detector: str = "ocsvm", k: int = 5,
               tile_size: int = 128, tiles_per_image: int = 32, shifts: list[str] | None = None,
               seed: int = 0, session=None, sources: list[tuple[str, list[ImageItem]]] | None = None
               ) -> list[ScreeningResult]:
    """Screen each ``new`` source (and each shifted copy ``source@shift`` in ``shifts``) against a run.

    ``session``: a :class:`matseg_nb.qc.session.QCSession` of ``run_dir`` (model and features shared with
    other QC calls); ``sources``: further (name, images) batches already in memory.
    Writes ``out_dir/qc.json`` {"screening": [ScreeningResult.to_json(), ...], ...}. Returns the results."""
    from matseg_nb.qc.folder import QCFolder
    from matseg_nb.qc.session import QCSession
    from matseg_nb.qc.sources import ImageSet, shifted_set

    if not new and not sources:
        raise UserError("--new: expected at least one image file, folder or dataset ref, found none")
    screener = RunScreener(session or QCSession.open(run_dir), reference_split, calibration_split, tuple(extractors),
                           detector, k, tile_size, tiles_per_image, seed)
    train_dtype = _file_dtype(screener.session.ds, reference_split)
    batches: list[tuple[str, list[ImageItem], dict[str, str]]] = [(n, its, {}) for n, its in sources or []]
    for ref in new:
        items, notes = load_new_images(ref, screener.channels, screener.session.ds, train_dtype)
        batches.append((ref, items, notes))
        for spec in shifts or []:
            sh = shifted_set(ImageSet(ref, items, True), spec, seed)
            batches.append((f"{ref}@{spec}", sh.items, {}))
    results = [screener.screen(items, name, alpha, notes) for name, items, notes in batches]
    meta, cal_name = screener.session.meta, screener.calibration_name
    QCFolder(Path(out_dir)).write_screening(
        results, run_dir=str(run_dir), dataset=meta.get("dataset"), alpha=alpha, reference_split=reference_split,
        calibration_split=cal_name, detector=detector, extractors=list(extractors))
    return results
