"""A run as a BioImage Model Zoo package (bioimage.io model spec 0.5, written with ``bioimageio.spec``) and its
check with ``bioimageio.core``'s own test.

The package folder holds ``rdf.yaml``; weights as ``pytorch_state_dict`` (``weights_state_dict.pt`` +
``architecture.py``, :mod:`matseg_nb.export.architecture`), ``torchscript`` (``model.pt``) and ``onnx``
(``model.onnx``); ``test_input.npy`` / ``test_output.npy`` from a real test image; ``cover.png``;
``documentation.md`` (model card); attachments ``qc_calibration.npz`` / ``.json`` (QC) and ``job.json``.
The preprocessing is described in spec terms in ``inputs[0].preprocessing`` (not in the graphs)."""

from __future__ import annotations

import getpass
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json_object

STATE_DICT = "weights_state_dict.pt"
ARCHITECTURE = "architecture.py"
TEST_SIDE_PX = 256
#: weight formats bioimageio.core tests at export (all three the package holds)
WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")


# ------------------------------------------------------------------------------------------ preprocessing
def _percentile_steps(channels: int) -> tuple[list, str]:
    from bioimageio.spec.model.v0_5 import AxisId, ClipDescr, ClipKwargs, ScaleRangeDescr, ScaleRangeKwargs

    return ([ScaleRangeDescr(kwargs=ScaleRangeKwargs(axes=[AxisId("y"), AxisId("x")], min_percentile=0.5,
                                                     max_percentile=99.5, eps=1e-6)),
             ClipDescr(kwargs=ClipKwargs(min=0.0, max=1.0))],
            "per image and channel, the 0.5th..99.5th percentiles of the intensities are mapped to 0..1 and "
            "clipped (spec `scale_range` + `clip`, equal to matseg_nb.data.normalize_image 'percentile')")


#: base normalization mode -> (spec steps, words); modes the spec cannot express are refused
PREPROCESSING: dict[str, Callable[[int], tuple[list, str]]] = {
    "percentile": _percentile_steps,
    "none": lambda channels: ([], "none (the model takes the native intensities)"),
}


def spec_preprocessing(mode: str, channels: int) -> tuple[list, str]:
    """(bioimage.io preprocessing steps, words) of a ``data.normalize_image`` mode, its input standardization
    (``<base>+<weights>``, e.g. MicroNet's mean/std) included as spec ``fixed_zero_mean_unit_variance``."""
    from matseg_nb.micronet import input_standardization

    base, _, weights = mode.partition("+")
    if base not in PREPROCESSING:
        raise UserError(f"normalization: expected one of {', '.join(PREPROCESSING)} for a bioimage.io package "
                        f"(the spec has no file-dtype scaling), found {mode!r}")
    steps, words = PREPROCESSING[base](channels)
    if weights:
        from bioimageio.spec.model.v0_5 import (
            AxisId,
            FixedZeroMeanUnitVarianceAlongAxisKwargs,
            FixedZeroMeanUnitVarianceDescr,
        )

        mean, std = input_standardization(weights, channels)
        steps.append(FixedZeroMeanUnitVarianceDescr(kwargs=FixedZeroMeanUnitVarianceAlongAxisKwargs(
            mean=list(mean), std=list(std), axis=AxisId("channel"))))
        words += (f"; then per channel (x - mean) / std with the {weights} encoder weights' mean "
                  f"{[round(m, 4) for m in mean]} and std {[round(s, 4) for s in std]} (spec "
                  "`fixed_zero_mean_unit_variance`)")
    return steps, words


# ------------------------------------------------------------------------------------------ test data
def test_image(dataset_ref: str, multiple: int) -> tuple[np.ndarray, str, dict[str, Any], str]:
    """(a centre crop (C, S, S') of the dataset's first test image, native intensities; its description;
    the manifest's source (licence, citation, doi); the dataset title). Sides: multiples of ``multiple`` px,
    about :data:`TEST_SIDE_PX`. UserError when the dataset or its test image cannot be read."""
    from matseg_nb.data import open_dataset

    ds = open_dataset(dataset_ref)
    samples = ds.samples("test") or ds.samples("val") or ds.samples()
    if not samples:
        raise UserError(f"dataset {dataset_ref}: expected a test image for the package's test tensors, found none")
    sample = samples[0]
    img = ds.load_image(sample)
    sides = []
    for n in img.shape[1:]:
        side = min(max(multiple, math.ceil(TEST_SIDE_PX / multiple) * multiple), n // multiple * multiple)
        if side < multiple:
            raise UserError(f"{sample.image}: expected an image of at least {multiple} px per side, found {img.shape[1:]}")
        sides.append(side)
    top, left = (img.shape[1] - sides[0]) // 2, (img.shape[2] - sides[1]) // 2
    crop = img[:, top:top + sides[0], left:left + sides[1]]
    source = ds.manifest.source.model_dump() if hasattr(ds.manifest, "source") else {}
    what = (f"the {sides[0]} x {sides[1]} px centre crop of test image `{Path(str(sample.image)).name}` of "
            f"`{dataset_ref}` ({sample.split} split), input in native intensities, output the model's logits")
    return np.ascontiguousarray(crop, dtype=np.float32), what, source, str(getattr(ds, "title", "") or "")


def write_cover(image_chw: np.ndarray, logits: np.ndarray, path: Path) -> None:
    """cover.png (2:1): the normalized test image beside its predicted classes (default segment palette)."""
    from PIL import Image

    from matseg_nb.data import normalize_image
    from matseg_nb.segment.folder import PALETTE

    grey = normalize_image(image_chw, "percentile")
    grey = grey[:3].transpose(1, 2, 0) if grey.shape[0] >= 3 else np.repeat(grey[:1].transpose(1, 2, 0), 3, 2)
    grey8 = (grey * 255).astype(np.uint8)
    classes = logits.argmax(0)
    colours = np.asarray([PALETTE[i % len(PALETTE)] for i in range(int(classes.max()) + 1)], dtype=np.float32)
    overlay = (0.5 * grey8 + 0.5 * colours[classes]).astype(np.uint8)
    Image.fromarray(np.concatenate([grey8, overlay], axis=1)).save(path)


# ------------------------------------------------------------------------------------------ bioimageio
def _identifier(name: str) -> str:
    """A spec identifier (letters, digits, underscore) from a class or channel name."""
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in str(name)).strip("_") or "c"
    return out if not out[0].isdigit() else f"c{out}"


def _descr(src: Path, meta: dict[str, Any], classes: list[str], channels: list[str], multiple: int,
           steps: list, arch_kwargs: dict[str, Any], opset: int, source: dict[str, Any], config: dict[str, Any],
           authors: list[str], licence: str, attachments: list[str]):
    import bioimageio.spec.model.v0_5 as v

    size = v.ParameterizedSize(min=multiple, step=multiple)
    inp = v.InputTensorDescr(
        id=v.TensorId("image"), description="micrograph, native intensities",
        axes=[v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier(_identifier(c)) for c in channels]),
              v.SpaceInputAxis(id=v.AxisId("y"), size=size), v.SpaceInputAxis(id=v.AxisId("x"), size=size)],
        test_tensor=v.FileDescr(source=src / "test_input.npy"), preprocessing=steps)
    ref = {"tensor_id": v.TensorId("image")}
    out = v.OutputTensorDescr(
        id=v.TensorId("logits"), description="class logits; class = argmax over the channel axis",
        axes=[v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier(_identifier(c)) for c in classes]),
              v.SpaceOutputAxis(id=v.AxisId("y"), size=v.SizeReference(axis_id=v.AxisId("y"), **ref)),
              v.SpaceOutputAxis(id=v.AxisId("x"), size=v.SizeReference(axis_id=v.AxisId("x"), **ref))],
        test_tensor=v.FileDescr(source=src / "test_output.npy"))
    torch_version = v.Version(torch.__version__.split("+")[0])
    weights = v.WeightsDescr(
        pytorch_state_dict=v.PytorchStateDictWeightsDescr(
            source=src / STATE_DICT, pytorch_version=torch_version,
            architecture=v.ArchitectureFromFileDescr(source=src / ARCHITECTURE, callable=v.Identifier("MatsegNet"),
                                                     kwargs=arch_kwargs),
            dependencies=v.FileDescr(source=src / "environment.yaml")),
        torchscript=v.TorchscriptWeightsDescr(source=src / "model.pt", pytorch_version=torch_version,
                                              parent="pytorch_state_dict"),
        onnx=v.OnnxWeightsDescr(source=src / "model.onnx", opset_version=opset, parent="pytorch_state_dict"))
    from matseg_nb.export.model_card import PAPER_CITATION, PAPER_URL

    # the data's DOI when the manifest has one (no network at validation); else the framework paper by URL
    # (bioimage.io requires a citation; validation then tries whether the URL is reachable, a warning offline)
    cite = ([v.CiteEntry(text=source.get("citation") or str(meta.get("dataset")), doi=v.Doi(source["doi"]))]
            if source.get("doi") else [v.CiteEntry(text=PAPER_CITATION, url=v.HttpUrl(PAPER_URL))])
    dataset = meta.get("dataset_slug") or Path(str(meta.get("dataset"))).name
    name = " ".join(f"{dataset} {meta.get('decoder')} {meta.get('encoder')} segmentation".split())
    name = "".join(c if c.isalnum() or c in " _-()" else "-" for c in name)[:120]
    tags = ["segmentation", "semantic-segmentation", "materials-science", "matseg-nb", "pytorch", "onnx",
            *([str(meta["modality"]).lower()] if meta.get("modality") else [])]
    return v.ModelDescr(
        name=name, description=f"{meta.get('decoder')}+{meta.get('encoder')} trained by matseg-nb on "
                               f"{meta.get('dataset')} ({', '.join(classes)})",
        authors=[v.Author(name=a) for a in authors], cite=cite, license=v.LicenseId(licence), tags=tags,
        documentation=v.FileDescr(source=src / "documentation.md"), covers=[v.FileDescr(source=src / "cover.png")],
        attachments=[v.FileDescr(source=src / a) for a in attachments], inputs=[inp], outputs=[out],
        weights=weights, config=v.Config(**{"matseg": config}))


def bioimageio_test(rdf: Path) -> dict[str, Any]:
    """``bioimageio.core.test_model`` on each weight format: {status, formats: {format: status}, failed: [lines],
    bioimageio_core, bioimageio_spec}."""
    import bioimageio.core
    import bioimageio.spec

    formats, failed = {}, []
    for fmt in WEIGHT_FORMATS:
        summary = bioimageio.core.test_model(rdf, weight_format=fmt)
        formats[fmt] = summary.status
        for d in summary.details:
            if d.status == "failed":
                errors = "; ".join(str(e.msg) for e in d.errors)[:300]
                failed.append(f"{fmt}: {d.name}: {errors}")
    status = "passed" if all(s == "passed" for s in formats.values()) else "failed"
    return {"status": status, "formats": formats, "failed": failed,
            "bioimageio_core": bioimageio.core.__version__, "bioimageio_spec": bioimageio.spec.__version__}


def write_package(run, model: nn.Module, meta: dict[str, Any], multiple: int, out: Path,
                  authors: list[str] | None = None, licence: str = "CC-BY-4.0", qc: bool = True) -> dict[str, Any]:
    """Write the package of ``run`` (its ``model`` from ``load_run_model``) into ``out`` (files replaced one by
    one once all are written and bioimageio.core's test passed). Returns the export.json fields it adds."""
    from bioimageio.spec import save_bioimageio_package_as_folder

    from matseg_nb.data import normalize_image
    from matseg_nb.export import graph
    from matseg_nb.export.architecture import MatsegNet
    from matseg_nb.export.model_card import PAPER_CITATION, model_card
    from matseg_nb.export.qc_pack import QC_JSON, QC_NPZ, write_qc_calibration
    from matseg_nb.export.traceable import traceable
    from matseg_nb.models.tiling import ScaledInputModel

    classes = [str(c.get("name", c.get("id"))) for c in sorted(meta.get("classes") or [], key=lambda c: c["id"])]
    in_channels = int(meta.get("in_channels") or 1)
    mode = str(meta.get("normalization") or "percentile")
    steps, words = spec_preprocessing(mode, in_channels)
    crop, test_what, source, title = test_image(str(run.dataset), multiple)
    inner = model.inner if isinstance(model, ScaledInputModel) else model
    factor = round(1 / model.input_scale) if isinstance(model, ScaledInputModel) else 1
    smp_config = read_json_object(run.path / "model" / "config.json")
    if smp_config is None:
        raise UserError(f"{run.path / 'model' / 'config.json'}: expected the model's smp configuration, found no "
                        "such file")
    arch_kwargs = {"smp_config": smp_config, "factor": factor}
    net = MatsegNet(**arch_kwargs)
    net.net.load_state_dict(inner.state_dict())
    net.eval()
    x = torch.from_numpy(normalize_image(crop, mode))[None]
    with torch.no_grad():
        logits = model(x).numpy()
        diff = float(np.abs(net(x).numpy() - logits).max())
    if diff > graph.MAX_ABS_DIFF:
        raise UserError(f"{run.path}: expected the package architecture to reproduce the run's model within "
                        f"{graph.MAX_ABS_DIFF}, found max abs diff {diff:.3g}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        src = tmp / "src"
        src.mkdir()
        torch.save(net.state_dict(), src / STATE_DICT)
        shutil.copyfile(Path(__file__).with_name("architecture.py"), src / ARCHITECTURE)
        (src / "environment.yaml").write_text(
            "name: matseg-package\nchannels: [conda-forge, nodefaults]\ndependencies:\n"
            f"  - pytorch>={torch.__version__.split('+')[0]}\n  - segmentation-models-pytorch\n  - timm\n")
        graph.write_torchscript(traceable(model), x, src / "model.pt")
        graph.write_onnx(traceable(model), x, src / "model.onnx")
        np.save(src / "test_input.npy", crop[None])
        np.save(src / "test_output.npy", logits.astype(np.float32))
        write_cover(crop, logits[0], src / "cover.png")
        (src / "job.json").write_text(json.dumps(meta, indent=2, default=str))
        attachments, qc_info, qc_note = ["job.json"], None, "not requested (--no-qc)"
        if qc:
            try:
                qc_info = write_qc_calibration(run.path, src)
                attachments += [QC_NPZ, QC_JSON]
            except UserError as err:
                qc_note = f"the run's QC could not be fitted: {err.problems[0]}"
        config = {"job_id": run.job_id, "dataset": run.dataset, "classes": classes, "in_channels": in_channels,
                  "normalization": mode, "pad_multiple": multiple, "input_scale": 1.0 / factor,
                  "preprocessing": "rdf.yaml inputs[0].preprocessing (spec terms; not in the graphs)",
                  "qc_calibration": [QC_NPZ, QC_JSON] if qc_info else None, "qc_note": None if qc_info else qc_note,
                  "framework_citation": PAPER_CITATION}
        (src / "documentation.md").write_text(model_card(run, meta, words, qc_info, qc_note, source, title, test_what,
                                                         multiple))
        channels = list(meta.get("channel_names") or (["gray"] if in_channels == 1 else
                                                      [f"channel{i}" for i in range(in_channels)]))
        descr = _descr(src, meta, classes, channels, multiple, steps, arch_kwargs, graph.ONNX_OPSET, source, config,
                       authors or [getpass.getuser()], licence, attachments)
        pkg = save_bioimageio_package_as_folder(descr, output_path=tmp / "pkg")
        check = bioimageio_test(Path(pkg) / "rdf.yaml")
        if check["status"] != "passed":
            raise UserError(f"{run.path}: expected bioimageio.core's test of the package to pass, found "
                            f"{'; '.join(check['failed'][:3]) or check['formats']}")
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(Path(pkg).iterdir()):
            f.replace(out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"model_file": "rdf.yaml", "test_tensor": test_what, "preprocessing_words": words,
            "bioimageio_test": check, "qc_calibration": config["qc_calibration"], "qc_note": config["qc_note"],
            "architecture_max_abs_diff": diff}
