"""``documentation.md`` of a bioimage.io package: the model card of one run (training data, architecture and
settings, test metrics with intervals and per-class IoU, QC calibration, known limits, citations)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

#: the paper whose framework matseg-nb implements
PAPER_CITATION = ("Lu, M., Tripathi, P. K., Shteyn, M., Ganguly, D., French, R. H., Chaudhary, V., Wu, Y. "
                  "Context determines optimal architecture in materials segmentation.")
PAPER_URL = "https://github.com/cwru-sdle/materials-data-segmentation-benchmark"


def _fmt(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.{digits}f}"


def _interval(values: list[float]) -> str:
    """"0.812 (95% t-interval 0.74-0.88, n = 4 test images)" or the declined form."""
    from matseg_nb.compare.stats import insufficient, t_interval

    mean, lo, hi, n = t_interval(np.asarray(values, dtype=float))
    if n == 0:
        return "n/a"
    if math.isnan(lo):
        return f"{mean:.3f} (no interval: {insufficient(n)} test image{'s' * (n != 1)})"
    return f"{mean:.3f} (95% t-interval {lo:.3f} to {hi:.3f}, n = {n} test images)"


def metrics_section(run) -> tuple[list[str], list[str]]:
    """(markdown lines of the test metrics, known-limit lines for classes not learned)."""
    from matseg_nb.compare.classes import UNLEARNED_IOU, unlearned_text

    metrics = run.metrics()
    rows = run.per_image_rows()
    lines = ["## Validation", "",
             "Scored on the run's held-out **test** split, each whole image predicted with tiling as in training's "
             "evaluation. Intervals are Student-t over test images (they cover image-to-image variation, not "
             "seed-to-seed variation or images unlike the training set).", ""]
    limits: list[str] = []
    if metrics is None or not rows:
        return [*lines, "No test metrics in the run folder.", ""], limits
    foreground = [v["iou"] for v in run.per_image_foreground().values() if v.get("iou") is not None]
    lines += [f"- mean IoU over the foreground classes (class id >= 1), per test image: {_interval(foreground)}",
              f"- dataset-level IoU (pixels pooled over test images): {_fmt(metrics.iou)}", "",
              "| class | IoU per test image (mean, 95% interval) | share of test pixels |", "|---|---|---|"]
    by_class: dict[tuple[int, str], list[float]] = {}
    share: dict[int, list[float]] = {}
    for r in rows:
        key = (int(r["class_id"]), str(r["class_name"]))
        if r.get("iou") is not None and not math.isnan(r["iou"]):
            by_class.setdefault(key, []).append(float(r["iou"]))
        if r.get("gt_fraction") is not None:
            share.setdefault(key[0], []).append(float(r["gt_fraction"]))
    for (cid, name), values in sorted(by_class.items()):
        frac = float(np.mean(share[cid])) if share.get(cid) else float("nan")
        lines.append(f"| {name} | {_interval(values)} | {'n/a' if math.isnan(frac) else f'{100 * frac:.2g}%'} |")
        if max(values) <= UNLEARNED_IOU:
            limits.append(unlearned_text(name, max(values), 1, len(values), frac).replace("by any model", "by this model"))
    return [*lines, ""], limits


def qc_section(qc: dict[str, Any] | None, qc_note: str) -> list[str]:
    lines = ["## QC calibration", ""]
    if not qc:
        return [*lines, f"Not included: {qc_note}. `matseg segment` with this package runs without QC.", ""]
    return [*lines,
            f"Attachments `qc_calibration.npz` and `qc_calibration.json` hold the crop features "
            f"({', '.join(qc['extractors'])}; {qc['tiles_per_image']} crops of {qc['tile_size']} px per image) of "
            f"{qc['n_reference_images']} reference images ({qc['reference_split']} split) and "
            f"{qc['n_calibration_images']} calibration images ({qc['calibration_split']} split), and the "
            f"calibration crops' typicality keys ({qc['detector']} detector, k = {qc['k']}).",
            "",
            "`matseg segment PACKAGE IMAGES` rebuilds the screening from them (the same as `matseg segment RUN` "
            "and `matseg qc RUN --new`): each new image gets a conformal p-value from its crops' typicality "
            "against the calibration crops (small: less like the training images than the calibration images "
            "are). At p <= alpha (default 0.05) the image is flagged: it is unlike the images this model was "
            "tested on, so its mask and measurements are not backed by the test metrics above. A batch of images "
            "also gets a rank-sum test against the calibration images. Other tools (deepImageJ, ilastik, napari) "
            "ignore these files: they run the model without QC.", *[f"- note: {n}" for n in qc.get("notes") or []], ""]


def training_section(meta: dict[str, Any], source: dict[str, Any], dataset_title: str) -> list[str]:
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    splits = meta.get("split_sizes") or {}
    weights = meta.get("encoder_weights_report") or {}
    doi = f" doi:{source['doi']}" if source.get("doi") else ""
    lines = ["## Training data", "",
             f"- dataset: `{meta.get('dataset')}`{f' ({dataset_title})' if dataset_title else ''}; "
             f"material: {meta.get('material') or 'n/a'}; modality: {meta.get('modality') or 'n/a'}",
             f"- splits (images): {', '.join(f'{k} {v}' for k, v in splits.items()) or 'n/a'}",
             f"- source: {source.get('url') or 'n/a'}; licence: {source.get('licence') or 'unknown'}",
             f"- citation: {source.get('citation') or 'n/a'}{doi}", "",
             "## Architecture and training", "",
             f"- {meta.get('decoder')} decoder, {meta.get('encoder')} encoder (segmentation_models_pytorch), "
             f"{meta.get('in_channels') or 1} input channel(s), {len(meta.get('classes') or [])} classes",
             f"- encoder weights at the start: {meta.get('encoder_weights')} ({weights.get('note') or weights.get('mode') or ''})",
             f"- seed {meta.get('seed')}, precision {meta.get('precision')}, device {meta.get('device_name') or meta.get('device')}",
             "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | `{json.dumps(v)}` |" for k, v in sorted(training.items())]
    return [*lines, ""]


def model_card(run, meta: dict[str, Any], preprocessing_words: str, qc: dict[str, Any] | None, qc_note: str,
               source: dict[str, Any], dataset_title: str, test_image: str, multiple: int) -> str:
    """The markdown text of ``documentation.md``."""
    classes = [c.get("name") for c in sorted(meta.get("classes") or [], key=lambda c: c["id"])]
    metric_lines, unlearned = metrics_section(run)
    limits = [*unlearned,
              f"Input height and width must be multiples of {multiple} px; large images must be tiled by the caller "
              "(`matseg segment` tiles with overlap and blending; the package holds no tiling).",
              "The percentile normalization is per image (or per tile when a tool tiles): tiles with very "
              "different content get different scaling.",
              f"Trained on {(meta.get('split_sizes') or {}).get('train', 'few')} images of one dataset: images "
              "from another instrument, magnification or preparation can fail silently; screen them with QC.",
              "QC is not part of the bioimage.io standard: only `matseg segment` uses the calibration data."]
    dataset = meta.get("dataset_slug") or Path(str(meta.get("dataset"))).name
    lines = [f"# {meta.get('decoder')} + {meta.get('encoder')} on {dataset}", "",
             f"Semantic segmentation of {meta.get('material') or 'micrographs'} into {len(classes)} classes: "
             f"{', '.join(f'`{c}`' for c in classes)}. Exported by `matseg export` from run `{run.job_id}`.", "",
             "## Use", "",
             "Input `image`: float32 (batch, channel, y, x) in the image's native intensities. Output `logits`: "
             "float32 (batch, class, y, x); the class of a pixel is the argmax over the class axis, in the order "
             "above.", "", f"Preprocessing: {preprocessing_words}", "",
             f"Test tensors: `test_input.npy` / `test_output.npy` are {test_image}.", "",
             *training_section(meta, source, dataset_title), *metric_lines, *qc_section(qc, qc_note),
             "## Known limits", "", *[f"- {x}" for x in limits], "",
             "## Citation", "", f"- Framework: {PAPER_CITATION} {PAPER_URL}",
             f"- Data: {source.get('citation') or meta.get('dataset')}", ""]
    return "\n".join(lines)
