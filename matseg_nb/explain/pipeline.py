"""``explain_image``: heatmap + faithfulness + figure for one image of a trained run."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from matseg_nb.atomic import atomic_write_bytes, atomic_write_json
from matseg_nb.errors import UserError
from matseg_nb.explain.annotation import load_annotation, load_annotation_meta
from matseg_nb.explain.faithfulness import DEFAULT_FRACTIONS, faithfulness
from matseg_nb.explain.figures import explanation_figure
from matseg_nb.explain.forward import ProbFn
from matseg_nb.explain.heatmap import heatmap


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _heat_png(hmap: np.ndarray) -> bytes:
    from PIL import Image

    hi = float(hmap.max()) if hmap.size and hmap.max() > 0 else 1.0
    return _bytes_of(Image.fromarray((255 * np.clip(hmap / hi, 0, 1)).astype(np.uint8)))


def _bytes_of(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def load_model_input(image_path: str | Path, meta: dict) -> np.ndarray:
    """Read ``image_path`` as (C, H, W) float32 normalized like the run's training data."""
    from matseg_nb.data import normalize_image, read_image

    norm = meta.get("normalization") or "percentile"
    mode = norm.get("mode", "percentile") if isinstance(norm, dict) else str(norm)
    img = normalize_image(read_image(image_path), mode=mode)
    want = meta.get("in_channels")
    if want and img.shape[0] != int(want):
        if img.shape[0] == 1:
            img = np.repeat(img, int(want), axis=0)
        else:
            raise UserError(f"{image_path}: expected {want} channel(s) like the run's data, found {img.shape[0]}")
    return img


def explain_image(run_dir, image_path, mask_png, out_dir, kernel: str = "blur", window: int = 16,
                  stride: int = 4, kernel_params: dict | None = None, region_dilation: int | None = None,
                  device: str = "cpu", max_batch: int | None = None, k_main: float = 0.1,
                  fractions=DEFAULT_FRACTIONS, model=None, image: np.ndarray | None = None, meta: dict | None = None) -> dict:
    """Write ``heatmap.npy`` (H, W), ``heatmap_grid.npy``, ``heatmap.png``, ``faithfulness.json``,
    ``explanation.png`` and ``explain.json`` under ``out_dir``; returns the summary dict.

    ``region_dilation`` (px) restricts locations to a dilation of A; ``fractions`` / ``k_main``: the
    deletion curve's pixel fractions (see :func:`faithfulness`). ``model``/``image``/``meta``
    skip loading from the run folder (tests, notebooks holding them already).
    """
    out = Path(out_dir)
    if model is None:
        from matseg_nb.models import load_run_model

        model, meta = load_run_model(run_dir, device=device)
    meta = meta or {}
    img = image if image is not None else load_model_input(image_path, meta)
    a = load_annotation(mask_png, img.shape)
    region = None
    if region_dilation:
        from scipy import ndimage

        region = ndimage.binary_dilation(a, iterations=int(region_dilation))
    fn = ProbFn(model, device=device)
    res = heatmap(fn, img, a, kernel=kernel, window=window, stride=stride, region=region,
                  kernel_params=kernel_params, max_batch=max_batch)
    faith = faithfulness(fn, img, a, res.map, fractions=fractions, k_main=k_main, max_batch=max_batch or 8,
                         block=window)
    atomic_write_bytes(out / "heatmap.npy", _npy_bytes(res.map))
    atomic_write_bytes(out / "heatmap_grid.npy", _npy_bytes(res.grid))
    atomic_write_bytes(out / "heatmap.png", _heat_png(res.map))
    atomic_write_json(out / "faithfulness.json", faith)
    import matplotlib.pyplot as plt

    fig = explanation_figure(img, a, res.map, faith, title=f"{Path(str(image_path)).name}: {kernel}, "
                             f"window {window}, stride {stride}")
    atomic_write_bytes(out / "explanation.png", _png_bytes(fig))
    plt.close(fig)
    summary = {
        "run_dir": str(run_dir), "image": str(image_path), "mask": str(mask_png),
        "mask_meta": load_annotation_meta(mask_png), "heatmap": res.meta(),
        "region_dilation": region_dilation, "outputs": {
            "heatmap_npy": "heatmap.npy", "heatmap_grid_npy": "heatmap_grid.npy", "heatmap_png": "heatmap.png",
            "faithfulness": "faithfulness.json", "figure": "explanation.png"},
        "faithfulness": {k: faith[k] for k in ("k_main", "ratio_top_random", "ratio_top_bottom",
                                               "ratio_top_random_blocks", "auc_ratio_top_random",
                                               "top_beats_random", "auc")},
    }
    atomic_write_json(out / "explain.json", summary)
    return summary


def explain_with_gt_boundary(run_dir, out_dir, split: str = "test", index: int = 0, width: int = 3,
                             **kwargs) -> dict:
    """Demo route: A = class boundaries of the ground truth of image ``index`` of ``split`` of the
    run's dataset (``job.json`` ``dataset``), saved as ``A_gt_boundary.png`` (tool ``gt-boundary``),
    then :func:`explain_image` with ``kwargs``. The summary says that A came from the ground truth."""
    import json

    from matseg_nb.data import open_dataset
    from matseg_nb.explain.annotation import save_boundary_annotation

    job = Path(run_dir) / "job.json"
    if not job.is_file():
        raise UserError(f"{job}: expected the run's job.json (it names the dataset), found no such file")
    ds = open_dataset(json.loads(job.read_text())["dataset"])
    samples = [s for s in ds.samples(split) if s.mask is not None]
    if not 0 <= index < len(samples):
        raise UserError(f"index: expected 0..{len(samples) - 1} for split {split!r}, found {index}")
    sample = samples[index]
    png = save_boundary_annotation(ds.load_mask(sample), Path(out_dir) / "A_gt_boundary.png", sample.image, width)
    summary = explain_image(run_dir, sample.image, png, out_dir, **kwargs)
    summary["mask_source"] = f"ground-truth class boundaries ({width} px), not an expert drawing"
    atomic_write_json(Path(out_dir) / "explain.json", summary)
    return summary
