"""The answer per dataset that opens the report: recommended architecture, how sure, the QC answer in
words, and a Figure-2-style panel (input D, prediction Z over it, QC signal Q against its calibration
distribution, heatmap H inside A).

Built from the loop's typed outputs: the sweep (``matseg_nb.runs``), the comparison's ``best_table.csv``
(best vs runner-up with the 95 % interval and the paired test), ``qc/qc.json`` + ``qc/scores.csv`` and
``explain/explain.json`` + ``heatmap.npy``. Whatever is missing is named in ``missing``; nothing is guessed.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matseg_nb.jsonio import JsonRecord, finite_float
from matseg_nb.qc.folder import QCFolder
from matseg_nb.qc.results import ValidationRun
from matseg_nb.runs import RunFileError, Sweep


def sig(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits ("-" when missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


@dataclass
class DatasetAnswer(JsonRecord):
    """What the report says first about one dataset (``to_dict``/``from_dict``: :class:`matseg_nb.jsonio.JsonRecord`).
    IoU values are fractions in [0, 1]."""

    dataset: str
    recommended: str | None = None
    recommended_iou: float | None = None
    interval: tuple[float, float] | None = None
    runner_up: str | None = None
    runner_up_iou: float | None = None
    evidence: str = "insufficient evidence"
    evidence_detail: str = ""
    selected_on: str = "validation"
    scored_on: str = "test"
    decide: str = ""
    unlearned: str = ""
    qc_verdict: str | None = None
    qc_words: str = "QC did not run for this dataset."
    explain_words: str = "No explanation was computed for this dataset."
    panel_png: str | None = None
    missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph: the recommendation, how sure, the QC answer."""
        if self.recommended is None:
            head = f"{self.dataset}: no architecture can be recommended ({self.evidence_detail or self.evidence})."
        else:
            ci = f", 95 % CI [{sig(self.interval[0])}, {sig(self.interval[1])}]" if self.interval else ""
            oof = self.scored_on.startswith("out-of-fold")
            head = (f"{self.dataset}: {self.recommended}, chosen on {self.selected_on} ({'out-of-fold' if oof else 'test'} "
                    f"IoU {sig(self.recommended_iou)}{ci}); runner-up {self.runner_up or '-'} ({sig(self.runner_up_iou)}); "
                    f"{self.evidence}.")
            if not oof:  # the holdout protocol says so (e.g. the demo: CV does not fit its CPU budget)
                head += (" Holdout protocol: scored on the fixed test split only; k-fold CV over all annotated "
                         "images (evaluation.folds, pool all) would score every image.")
            if self.decide:
                head += f" What would decide: {self.decide}."
            if self.unlearned:
                head += f" {self.unlearned}"
        return f"{head} {self.qc_words}"


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


_float = finite_float  # the package's one lenient number parser


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path`` (``jsonio.read_json``); None when absent, unreadable or not an object."""
    from matseg_nb.jsonio import read_json

    data = read_json(path)
    return data if isinstance(data, dict) else None


def _slug(ref: Any) -> str:
    return Path(str(ref)).name


def _comparison(answer: DatasetAnswer, row: dict[str, str] | None) -> None:
    if row is None:
        answer.missing.append("comparison (compare/best_table.csv) for this dataset")
        answer.evidence_detail = "the comparison did not run"
        return
    if not row.get("arch"):
        answer.evidence_detail = row.get("status") or "no complete architecture"
        return
    answer.recommended = row["arch"]
    answer.selected_on = (row.get("selected_on") or "validation").strip()
    answer.scored_on = (row.get("scored_on") or "test").strip()
    answer.decide = (row.get("power") or "").strip()
    answer.unlearned = (row.get("unlearned") or "").strip()
    where = f"{row.get('n_images') or '?'} {'out-of-fold' if answer.scored_on.startswith('out-of-fold') else 'test'} images"
    answer.recommended_iou = _float(row.get("iou"))
    lo, hi = _float(row.get("iou_ci_lo")), _float(row.get("iou_ci_hi"))
    answer.interval = (lo, hi) if lo is not None and hi is not None else None
    runner = row.get("runner_up")
    answer.runner_up = runner if runner and runner != "—" else None
    answer.runner_up_iou = _float(row.get("runner_up_iou"))
    verdict = (row.get("verdict") or "").strip()
    p = _float(row.get("p_value"))
    if verdict == "significant":
        answer.evidence = "better than the runner-up"
        answer.evidence_detail = f"paired test on {where}, p = {sig(p, 2)}"
    elif answer.runner_up is None:
        answer.evidence = "insufficient evidence (only one architecture has a result)"
    else:
        answer.evidence = "insufficient evidence: not separable from the runner-up"
        if (answer.runner_up_iou or 0.0) > (answer.recommended_iou or 0.0):
            answer.evidence += " (the runner-up scores higher on test, within noise)"
        if verdict.startswith("insufficient evidence"):
            answer.evidence_detail = f"paired test: {where} are too few for the paired test to reach its level"
        else:
            answer.evidence_detail = f"paired test on {where}{'' if p is None else f', p = {sig(p, 2)}'} ({verdict})"


def qc_words(qc: ValidationRun) -> str:
    """The QC answer in words: the detector validation's verdict and reason when it has one
    (``matseg_nb.qc.results.ValidationResult``), else (AUROC-only QC) the verdict with the lowest AUROC per
    OOD set."""
    val = qc.validation
    if val is not None:
        lead = {"ready": "Ready for new samples of the kinds tested",
                "not ready": "Not ready",
                "insufficient evidence": "The detector is not validated yet"}.get(
                    val.verdict, f"Detector validation {val.verdict}")
        return f"{lead}: {val.reason}."
    thr = qc.readiness_threshold
    worst: tuple[float, str] | None = None
    for level in qc.levels.values():
        for name in level.ood:
            auroc = _float(level.image_metrics(name, qc.primary_detector)[1].get("auroc"))
            if auroc is not None and (worst is None or auroc < worst[0]):
                worst = (auroc, name)
    verdict = qc.verdict
    if worst is None:
        return f"QC verdict {verdict}: no AUROC was recorded, so QC cannot say whether new samples are flagged."
    auroc, name = worst
    if verdict == "ready":
        return (f"Ready for new samples of the kinds tested: QC flags every tested shift (lowest image AUROC "
                f"{sig(auroc, 2)} on {name}, threshold {sig(thr, 2)}).")
    if auroc >= thr:  # every set is flagged, yet the verdict is not "ready": say the verdict, claim nothing else
        return f"QC verdict {verdict} (lowest image AUROC {sig(auroc, 2)} on {name}, threshold {sig(thr, 2)})."
    return (f"Not ready: QC does not reliably flag {name} (image AUROC {sig(auroc, 2)} < {sig(thr, 2)}); "
            f"predictions on such samples would pass unnoticed.")


#: images (held-out plus shifted copies) below which the typicality-IoU correlation is reported without a claim
MIN_CORRELATION_IMAGES = 10


def typicality_iou_words(qc: ValidationRun | None, level: float = 0.05) -> str:
    """What the QC's Spearman rank correlation of image typicality with per-image IoU (held-out and shifted
    images with masks, ``levels.input.spearman_typicality_iou``) means for this model, with its two-sided
    p-value (t approximation, n - 2 degrees of freedom; images are treated as independent, which shifted
    copies of the same images are not, so a "yes" is optimistic). '' when QC recorded none."""
    from scipy.stats import t as student_t

    lv = None if qc is None else qc.levels.get("input")
    entry = (lv.spearman_typicality_iou if lv is not None else None) or {}
    rho, n = _float(entry.get("rho")), int(entry.get("n_images") or 0)
    if not entry:
        return ""
    if n < 4:
        return "Typicality vs mask quality: not measured (fewer than 4 images with masks)."
    if rho is None:
        return (f"Typicality vs mask quality: undefined over {n} images (the typicality or the IoU is the same for "
                "all of them), so QC says nothing about this model's mask quality.")
    p = 0.0 if abs(rho) >= 1 else float(2 * student_t.sf(abs(rho) * math.sqrt((n - 2) / (1 - rho * rho)), n - 2))
    head = (f"Typicality vs mask quality: Spearman rho = {rho:.2f} over {n} images (held-out images and their "
            f"shifted copies; p = {sig(p, 2)}): ")
    if n < MIN_CORRELATION_IMAGES:  # a few copies of one or two images: no claim
        return head + f"too few images (fewer than {MIN_CORRELATION_IMAGES}) to say what it means for this model."
    if p > level:
        return head + ("not distinguishable from no relation, so for this model a low typicality is not shown to "
                       "predict a worse mask.")
    if rho > 0:
        return head + "less typical images get worse masks, so a flagged image's mask deserves a check."
    return head + "less typical images get better masks here, so typicality is no warning of a worse mask."


def models_note(sweep: Sweep) -> str:
    """One sentence on what the sweep's encoders are: the paper's (ImageNet) or stand-ins ('' if no run)."""
    from matseg_nb.models.registry import PAPER_ENCODERS

    encoders, weights = set(), set()
    for run in sweep.complete_runs():
        try:
            job = run.job()
        except RunFileError:
            continue
        encoders.add(str(job.get("encoder")))
        weights.add(str(job.get("encoder_weights", "none")))
    if not encoders:
        return ""
    if encoders <= set(PAPER_ENCODERS) and weights == {"imagenet"}:
        return f"Encoders: {', '.join(sorted(encoders))} with ImageNet weights, as in the paper."
    init = "ImageNet weights" if weights == {"imagenet"} else (
        "random weights (no pretrained weights)" if weights == {"none"} else "weights: " + ", ".join(sorted(weights)))
    return (f"Encoders: {', '.join(sorted(encoders))}, trained from {init}. These are not the paper's encoders "
            f"({', '.join(PAPER_ENCODERS)} with ImageNet weights); where they stand in for them (the CPU demo), "
            "the ranking is the stand-ins' ranking. profiles/paper.json runs the paper's exact pairs on a GPU.")


def screening_words(qc_dir: Path) -> str:
    """`` Screening: <verdict of the held-out batch>.`` from ``<qc_dir>/screening/qc.json`` ('' without it)."""
    results = QCFolder(qc_dir).screening_folder.screening()
    return f" Screening the held-out images as new ones: {results[0].sentence()}." if results else ""


def explain_sentence(ex: dict[str, Any]) -> str:
    """The faithfulness result of ``explain.json`` in one sentence."""
    faith = ex.get("faithfulness") or {}
    if "faithful" in faith and "baselines" in faith:  # matseg_nb.explain.faithfulness.FaithfulnessResult
        from matseg_nb.explain.faithfulness import FaithfulnessResult

        try:
            return FaithfulnessResult.from_json(faith).summary()
        except (KeyError, TypeError, ValueError):
            return str(faith.get("summary") or "The heatmap's faithfulness result cannot be read.")
    ratio = _float(faith.get("ratio_top_random"))
    beats = faith.get("top_beats_random")
    if ratio is None and beats is None:
        return "The heatmap has no faithfulness result."
    k = _float(faith.get("k_main"))
    frac = f"the top {sig(100 * k, 2)} % of pixels" if k is not None else "the top pixels"
    if beats:
        return (f"Faithful: deleting {frac} by the heatmap changes the prediction in A {sig(ratio, 2)} times "
                f"as much as deleting random pixels.")
    return (f"Not shown to be faithful: deleting {frac} by the heatmap changes the prediction in A "
            f"{sig(ratio, 2)} times as much as random pixels (not more than random).")


def _screening_panel(ax, qc_dir: Path, stem: str | None) -> bool:
    """Q panel from ``<qc_dir>/screening/qc.json``: per screened batch (rows) each image's conformal p-value
    (log axis) against the flag level alpha, flagged images in orange, ``stem`` (the panel's image) ringed;
    the title says k of n flagged for the held-out batch. False when there are no screening results."""
    import numpy as np

    results = [r for r in QCFolder(qc_dir).screening_folder.screening()
               if any(i.p_value is not None for i in r.images)]
    if not results:
        return False
    floor = 1.0
    for row, r in enumerate(results):
        ims = [i for i in r.images if i.p_value is not None]
        ps = np.array([i.p_value for i in ims])
        floor = min(floor, float(ps.min()))
        y = row + np.linspace(-0.2, 0.2, len(ims)) if len(ims) > 1 else np.array([float(row)])
        flags = np.array([bool(i.flagged) for i in ims])
        ax.scatter(ps[~flags], y[~flags], s=18, color="#4a7bb7", label="typical" if row == 0 else None, zorder=3)
        ax.scatter(ps[flags], y[flags], s=18, color="#d9822b", label="flagged" if row == 0 else None, zorder=3)
        ringed = [k for k, i in enumerate(ims) if stem and Path(i.name).stem == stem]
        if ringed:
            ax.scatter(ps[ringed], y[ringed], s=70, facecolors="none", edgecolors="k", lw=1.2, zorder=4,
                       label="this image")
    alpha = results[0].alpha
    ax.axvline(alpha, color="#8a1c1c", lw=1, ls="--", label=f"alpha = {alpha:g}")
    ax.set_xscale("log")
    ax.set_xlim(min(floor, alpha) / 2, 1.3)
    ax.set_xticks([0.01, alpha, 1.0] if min(floor, alpha) / 2 < 0.01 else [alpha, 1.0])
    ax.set_xticklabels([f"{t:g}" for t in ax.get_xticks()])
    ax.set_xlabel("image p-value vs validation images", fontsize=7)
    ax.set_yticks(range(len(results)), [f"{r.batch[:26]}\n{r.verdict_words}, {r.n_flagged}/{r.n_screened}"
                                        for r in results])
    ax.set_ylim(len(results) - 0.5, -0.5)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, frameon=False)
    held = results[0]
    ax.set_title(f"Q: {held.n_flagged} of {held.n_screened} held-out images flagged", fontsize=9)
    return True


def _panel(run, qc: ValidationRun | None, qc_dir: Path, ex: dict | None, ex_dir: Path, out_png: Path) -> list[str]:
    """Write the Figure-2-style panel for ``run`` to ``out_png``; returns what could not be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from matseg_nb.figures import add_scale_bar, save_figure

    missing: list[str] = []
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2), dpi=90)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    image = pred = None
    stem = None
    if ex and ex.get("image"):
        stem = Path(ex["image"]).stem
    preds = run.predictions()
    if stem is None or stem not in preds:
        stem = next(iter(preds), None)
    try:
        from matseg_nb.data import open_dataset

        ds = open_dataset(run.job()["dataset"])
        sample = next((s for s in ds.samples("test") if s.image.stem == stem), None) or ds.samples("test")[0]
        stem = sample.image.stem
        image = np.asarray(ds.load_image(sample), dtype=float)[0]  # (C, H, W) -> first channel
    except Exception as err:  # noqa: BLE001 - the panel says what is missing
        missing.append(f"input image ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
    if stem in preds:
        pred = np.asarray(Image.open(preds[stem]))
    else:
        missing.append("predicted mask (no predictions/*.png in the run folder)")
    ax = axes[0]
    label = stem or ""
    ax.set_title(f"D: input\n{label if len(label) <= 28 else label[:27] + '…'}", fontsize=9)
    if image is not None:
        ax.imshow(image, cmap="gray")
        add_scale_bar(ax, ds.pixel_size_um_of(sample))  # matseg_nb.figures: only when calibrated
    ax = axes[1]
    job = run.job()
    ax.set_title(f"Z: prediction of {job.get('encoder', '')}+{job.get('decoder', '')}", fontsize=9)
    if image is not None:
        ax.imshow(image, cmap="gray")
    if pred is not None:
        ax.imshow(np.ma.masked_equal(pred, 0), cmap="autumn", alpha=0.45, interpolation="nearest")
    ax = axes[2]
    ax.set_title("Q: typicality vs calibration", fontsize=9)
    rows = QCFolder(qc_dir).scores() if qc else []
    if qc and _screening_panel(ax, qc_dir, stem):
        pass
    elif rows:
        det = qc.primary_detector
        lv = next(iter(qc.levels), None)
        mine = [r for r in rows if r.detector == det and r.level == lv and r.typicality is not None]
        held = [r.typicality for r in mine if not r.ood]
        ood = [r.typicality for r in mine if r.ood]
        this = next((r.typicality for r in mine if not r.ood and Path(r.image).stem == stem), None)
        if held:
            values = np.asarray(held + ood)
            bins = np.histogram_bin_edges(values, bins=20)
            ax.hist(held, bins=bins, color="#4a7bb7", alpha=0.8, label="held-out (in distribution)")
            if ood:
                ax.hist(ood, bins=bins, color="#d9822b", alpha=0.5, label="shifted / other data")
            if this is not None:
                ax.axvline(this, color="k", lw=2, label="this image")
            ticks = np.quantile(values, [0, 1])
            ax.set_xticks(ticks, [sig(float(t)) for t in ticks])
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
            ax.set_title(f"Q: {det} typicality ({lv} level)", fontsize=9)
        else:
            missing.append("QC scores of the held-out images")
    else:
        missing.append("QC signal (qc/scores.csv)")
    ax = axes[3]
    ax.set_title("H inside A: heatmap", fontsize=9)
    heat = None
    if ex:
        try:
            heat = np.load(ex_dir / "heatmap.npy")
        except (OSError, ValueError):
            heat = None
    if heat is not None:
        ax.imshow(heat, cmap="inferno")
        try:
            a = np.asarray(Image.open(ex.get("mask") or ex_dir / "annotation.png").convert("L")) > 0
            if a.shape == heat.shape:
                ax.contour(a, levels=[0.5], colors="cyan", linewidths=0.8)
        except OSError:
            pass
    elif ex:  # an explanation of this dataset whose heatmap is gone (none computed: the caption says so)
        missing.append("heatmap (explain/heatmap.npy)")
    for ax in axes:
        if not ax.images and not ax.patches and not ax.collections:
            ax.text(0.5, 0.5, "not available", ha="center", va="center", fontsize=9, color="#7a8494",
                    transform=ax.transAxes)
    fig.tight_layout()
    save_figure(fig, out_png)
    return missing


def build_answers(sweep_dir: Path, compare_dir: Path, qc_dir: Path, explain_dir: Path,
                  panel_dir: Path | None = None) -> list[DatasetAnswer]:
    """One :class:`DatasetAnswer` per dataset of the sweep (in the sweep's order); the Figure-2 panels
    are written to ``panel_dir`` as ``figure2-<dataset>.png`` (none when it is None)."""
    sweep = Sweep(sweep_dir)
    compare_dir, qc_dir, explain_dir = Path(compare_dir), Path(qc_dir), Path(explain_dir)
    datasets: list[str] = []
    for job in sweep.jobs():
        try:
            ref = job.run.dataset
        except RunFileError:
            ref = None
        if ref and _slug(ref) not in datasets:
            datasets.append(_slug(ref))
    best_rows = {_slug(r.get("dataset")): r for r in _read_csv(compare_dir / "best_table.csv")}
    compare_ran = (compare_dir / "best_table.csv").exists()
    ex = _read_json(explain_dir / "explain.json")
    ex_run = None
    if ex and ex.get("run_dir"):
        from matseg_nb.runs import Run

        ex_run = Run(Path(ex["run_dir"]))
    answers = []
    for name in datasets:
        answer = DatasetAnswer(name)
        _comparison(answer, best_rows.get(name) if compare_ran else None)
        folder = QCFolder(qc_dir).of_dataset(name)
        qc_here, qc = folder.path, folder.validation()
        qc_ds = name if qc_here != qc_dir else _slug(qc.dataset) if qc and qc.dataset else None
        if qc is None:
            answer.missing.append("QC (qc/qc.json)")
        elif qc_ds == name:
            answer.qc_verdict = qc.verdict
            answer.qc_words = qc_words(qc) + screening_words(qc_here)
        else:
            answer.qc_words = f"QC ran for {qc_ds} only (the sweep's best model), not for this dataset."
        ex_here = ex is not None and ex_run is not None and _slug(ex_run.dataset) == name
        if ex is None:
            answer.missing.append("explanation (explain/explain.json)")
        elif ex_here:
            answer.explain_words = explain_sentence(ex)
        recommended = sweep.best_run(name, answer.recommended) if answer.recommended else None
        run = ex_run if ex_here else (recommended or sweep.best_run(name))
        if run is None:
            run = next((r for r in sweep.complete_runs() if _slug(r.dataset) == name), None)
        if run is not None and panel_dir is not None:
            png = Path(panel_dir) / f"figure2-{name}.png"
            answer.missing += _panel(run, qc if qc_ds == name else None, qc_here, ex if ex_here else None,
                                     explain_dir, png)
            answer.panel_png = str(png)
        elif run is None:
            answer.missing.append("a complete run of this dataset")
        answers.append(answer)
    return answers
