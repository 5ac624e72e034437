"""``export_run(run_dir, fmt, out)``: one run folder -> an export folder (model file + ``export.json``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matseg_nb.data.resolve import sha256_of
from matseg_nb.errors import UserError
from matseg_nb.export import graph
from matseg_nb.export.traceable import traceable
from matseg_nb.jsonio import read_json

#: format -> (model file name, writer(model, example, path), runner(path, x) -> logits)
FORMATS: dict[str, tuple[str, Callable[..., None], Callable[[Path, np.ndarray], np.ndarray]]] = {
    "onnx": ("model.onnx", graph.write_onnx, graph.run_onnx),
    "torchscript": ("model.pt", graph.write_torchscript, graph.run_torchscript),
}
EXPORT_JSON = "export.json"
#: package formats (a folder of files, :mod:`matseg_nb.export.package`) beside the single-file FORMATS
PACKAGE_FORMATS = ("bioimageio",)


def _check_sizes(multiple: int) -> list[tuple[int, int]]:
    """Two different input sizes (px), multiples of ``multiple``: the dynamic H and W are checked on both."""
    return [(2 * multiple, 3 * multiple), (3 * multiple, 2 * multiple)]


def _check_out(out: Path, job_id: str, fmt: str) -> None:
    """UserError when ``out`` already holds an export of another run or format, or a bioimage.io package that
    ``matseg export`` did not write (never overwritten)."""
    previous = out / EXPORT_JSON
    if previous.is_file():
        old = read_json(previous)
        old = old if isinstance(old, dict) else {}
        if old.get("job_id") != job_id or old.get("format") != fmt:
            raise UserError(f"{out}: expected an empty folder or an export of {job_id} as {fmt}, found an export "
                            f"of {old.get('job_id')} as {old.get('format')} (not overwritten)")
    elif (out / "rdf.yaml").is_file():
        raise UserError(f"{out}: expected an empty folder or an export of {job_id} as {fmt}, found a bioimage.io "
                        "package without export.json (not overwritten)")


def export_run(run_dir: str | os.PathLike, fmt: str, out: str | os.PathLike, authors: list[str] | None = None,
               licence: str = "CC-BY-4.0", qc: bool = True) -> dict[str, Any]:
    """Export the run's model as ``fmt`` into ``out``; returns the export.json contents.

    Single files (FORMATS) are checked against torch on random inputs of two sizes (max abs diff <=
    ``graph.MAX_ABS_DIFF``); a bioimage.io package (``bioimageio``) by bioimageio.core's own test of each of
    its weight formats (``authors``, ``licence``: its rdf.yaml fields; ``qc``: carry the QC calibration data).
    UserError: run not complete, unknown format, ``out`` already holding a different export."""
    from matseg_nb.atomic import atomic_write_text
    from matseg_nb.models import load_run_model, pad_multiple
    from matseg_nb.runs import Run

    if fmt not in FORMATS and fmt not in PACKAGE_FORMATS:
        raise UserError(f"--format: expected one of {', '.join([*PACKAGE_FORMATS, *FORMATS])}, found {fmt!r}")
    run = Run(Path(run_dir))
    if not run.is_complete:
        raise UserError(f"{run.path}: expected a complete run folder (COMPLETE marker), found "
                        f"{run.error_line() or 'an incomplete or missing run'}")
    out = Path(out)
    _check_out(out, run.job_id, fmt)
    model, meta = load_run_model(run.path, "cpu")
    multiple = int(getattr(model, "input_multiple", pad_multiple(model)))
    in_channels = int(meta.get("in_channels") or 1)
    if fmt in PACKAGE_FORMATS:
        return _export_package(run, model, meta, multiple, out, authors, licence, qc)
    out.mkdir(parents=True, exist_ok=True)
    name, write, runner = FORMATS[fmt]
    sizes = _check_sizes(multiple)
    example = torch.rand(1, in_channels, *sizes[0], generator=torch.Generator().manual_seed(0))
    tmp = out / f".{name}.tmp"
    write(traceable(model), example, tmp)
    diffs = []
    for h, w in sizes:
        x = torch.rand(1, in_channels, h, w, generator=torch.Generator().manual_seed(h * w))
        with torch.no_grad():
            ref = model(x).numpy()
        got = runner(tmp, x.numpy())
        diffs.append(float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf"))
    if max(diffs) > graph.MAX_ABS_DIFF:
        tmp.unlink()
        raise UserError(f"{run.path}: expected the {fmt} export to match torch within {graph.MAX_ABS_DIFF}, found "
                        f"max abs diff {max(diffs):.3g} on inputs {sizes}")
    os.replace(tmp, out / name)
    classes = [str(c.get("name", c.get("id"))) for c in sorted(meta.get("classes") or [], key=lambda c: c["id"])]
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    info = {"format": fmt, "model_file": name, "sha256": sha256_of(out / name), "job_id": run.job_id,
            "dataset": run.dataset, "encoder": meta.get("encoder"), "decoder": meta.get("decoder"),
            "classes": classes, "in_channels": in_channels, "pad_multiple": multiple,
            "input_scale": float(training.get("input_scale") or 1.0),
            "onnx_opset": graph.ONNX_OPSET if fmt == "onnx" else None,
            "input": "float32 (N, C, H, W), H and W multiples of pad_multiple px, normalized as 'preprocessing' says",
            "output": "float32 (N, K, H, W) logits; class = argmax over K",
            "preprocessing": {"function": "matseg_nb.data.normalize_image",
                              "mode": str(meta.get("normalization") or "percentile"),
                              "in_graph": False,
                              "note": "per-image percentile scaling to [0, 1], applied before the model; "
                                      "the input_scale resampling IS inside the graph"},
            "check": {"max_abs_diff": max(diffs), "tolerance": graph.MAX_ABS_DIFF, "input_sizes_px": sizes},
            "not_included": ["tiling of large images (matseg segment does it)", "QC calibration"],
            "job": meta}
    atomic_write_text(out / EXPORT_JSON, json.dumps(info, indent=2, default=str))
    atomic_write_text(out / "preprocessing.json", json.dumps(info["preprocessing"], indent=2))
    from matseg_nb.provenance import write_crate

    write_crate(out, [run.path / "job.json", *sorted(p for p in (run.path / "model").glob("*") if p.is_file())],
                [out / n for n in (name, EXPORT_JSON, "preprocessing.json")], name=f"matseg export of {run.job_id}",
                description=f"{fmt} export of run {run.job_id} (matseg export)")
    return info


def _export_package(run, model, meta: dict[str, Any], multiple: int, out: Path, authors: list[str] | None,
                    licence: str, qc: bool) -> dict[str, Any]:
    """The bioimage.io package of ``run`` in ``out`` plus export.json and the RO-Crate."""
    from matseg_nb.atomic import atomic_write_text
    from matseg_nb.export.package import write_package
    from matseg_nb.provenance import write_crate

    fields = write_package(run, model, meta, multiple, out, authors, licence, qc)
    classes = [str(c.get("name", c.get("id"))) for c in sorted(meta.get("classes") or [], key=lambda c: c["id"])]
    info = {"format": "bioimageio", "sha256": sha256_of(out / "rdf.yaml"), "job_id": run.job_id,
            "dataset": run.dataset, "encoder": meta.get("encoder"), "decoder": meta.get("decoder"),
            "classes": classes, "in_channels": int(meta.get("in_channels") or 1), "pad_multiple": multiple,
            "onnx_opset": graph.ONNX_OPSET,
            "preprocessing": {"function": "matseg_nb.data.normalize_image",
                              "mode": str(meta.get("normalization") or "percentile"), "in_graph": False,
                              "in_rdf": True, "note": fields["preprocessing_words"]},
            "check": {**fields["bioimageio_test"], "architecture_max_abs_diff": fields["architecture_max_abs_diff"]},
            "not_included": ["tiling of large images (matseg segment does it)"],
            **{k: fields[k] for k in ("model_file", "test_tensor", "qc_calibration", "qc_note")}, "job": meta}
    atomic_write_text(out / EXPORT_JSON, json.dumps(info, indent=2, default=str))
    files = sorted(p for p in out.iterdir() if p.is_file() and p.name != "ro-crate-metadata.json")
    write_crate(out, [run.path / "job.json", *sorted(p for p in (run.path / "model").glob("*") if p.is_file())],
                files, name=f"matseg export of {run.job_id}",
                description=f"bioimage.io package of run {run.job_id} (matseg export)")
    return info
