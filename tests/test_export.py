"""``matseg export``: ONNX and TorchScript exports of a tiny run match torch; bad input is one line; segment
reads the export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from matseg_nb.errors import UserError
from tests._model_helpers import tiny_smp
from tests._sweep_helpers import write_fake_run


def _run(tmp_path: Path, input_scale: float = 1.0) -> Path:
    run = write_fake_run(tmp_path / "sweep", "nasa-super1__tiny__Unet__s0",
                         extra_job={"classes": [{"id": 0, "name": "matrix"}, {"id": 1, "name": "phase"}],
                                    "in_channels": 1, "normalization": "percentile",
                                    "training": {"input_scale": input_scale}})
    model = tiny_smp("Unet")
    model.save_pretrained(str(run / "model"))
    return run


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_export_matches_torch_at_two_sizes(tmp_path, fmt, scale):
    from matseg_nb.export import FORMATS, export_run
    from matseg_nb.models import load_run_model

    run = _run(tmp_path, scale)
    info = export_run(run, fmt, tmp_path / "out")
    assert info["check"]["max_abs_diff"] <= 1e-4
    assert json.loads((tmp_path / "out" / "preprocessing.json").read_text())["in_graph"] is False
    model, _ = load_run_model(run)
    m = info["pad_multiple"]
    x = torch.rand(1, 1, 4 * m, 2 * m)  # a size the check did not use
    with torch.no_grad():
        ref = model(x).numpy()
    got = FORMATS[fmt][2](tmp_path / "out" / info["model_file"], x.numpy())
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4


def test_bad_input_is_one_line(tmp_path):
    from matseg_nb.export import export_run

    run = _run(tmp_path)
    with pytest.raises(UserError, match="expected one of bioimageio, onnx, torchscript"):
        export_run(run, "keras", tmp_path / "o")
    failed = write_fake_run(tmp_path / "sweep", "failed_job", status="failed")
    with pytest.raises(UserError, match="expected a complete run folder"):
        export_run(failed, "onnx", tmp_path / "o")
    incomplete = write_fake_run(tmp_path / "sweep", "running_job", status="incomplete")
    with pytest.raises(UserError, match="expected a complete run folder"):
        export_run(incomplete, "bioimageio", tmp_path / "o")
    export_run(run, "onnx", tmp_path / "o")
    before = (tmp_path / "o" / "model.onnx").read_bytes()
    with pytest.raises(UserError, match="not overwritten"):
        export_run(run, "torchscript", tmp_path / "o")
    assert (tmp_path / "o" / "model.onnx").read_bytes() == before


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_segment_resolves_export_like_run(tmp_path, fmt):
    from matseg_nb.export import export_run
    from matseg_nb.segment.model import resolve_model

    run = _run(tmp_path)
    export_run(run, fmt, tmp_path / "out")
    from_run, from_export = resolve_model(run), resolve_model(tmp_path / "out")
    assert from_export.source == f"export-{fmt}"
    assert from_export.class_names == from_run.class_names == ["matrix", "phase"]
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        a, b = from_run.model(x).argmax(1), from_export.model(x).argmax(1)
    assert torch.equal(a, b)


def test_ro_crate_lists_inputs_and_outputs_with_checksums(tmp_path):
    import hashlib

    from rocrate.rocrate import ROCrate

    from matseg_nb.export import export_run
    from matseg_nb.provenance import read_crate_inputs

    run = _run(tmp_path)
    export_run(run, "onnx", tmp_path / "out")
    inputs = read_crate_inputs(tmp_path / "out")
    job_sum = hashlib.sha256((run / "job.json").read_bytes()).hexdigest()
    weights = run / "model" / "model.safetensors"
    assert inputs[(run / "job.json").resolve().as_uri()] == job_sum
    assert inputs[weights.resolve().as_uri()] == hashlib.sha256(weights.read_bytes()).hexdigest()
    crate = ROCrate(str(tmp_path / "out"))
    onnx_sum = hashlib.sha256((tmp_path / "out" / "model.onnx").read_bytes()).hexdigest()
    assert crate.get("model.onnx")["sha256"] == onnx_sum
    versions = {e.get("name"): e.get("version") for e in crate.get_entities()
                if "SoftwareApplication" in str(e.type)}
    assert versions.get("torch") == torch.__version__ or torch.__version__.startswith(str(versions.get("torch")))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_matseg_segment_with_export_gives_run_masks(tmp_path, fmt):
    import tifffile

    from matseg_nb.cli import main
    from matseg_nb.export import export_run
    from matseg_nb.segment import SegmentFolder

    run = _run(tmp_path)
    export_run(run, fmt, tmp_path / "pkg")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    tifffile.imwrite(imgs / "a.tif", (np.random.default_rng(0).random((90, 110)) * 60000).astype(np.uint16))
    masks = []
    for model, out in ((run, "from_run"), (tmp_path / "pkg", "from_pkg")):
        assert main(["segment", str(model), str(imgs), "--out", str(tmp_path / out), "--no-qc",
                     "--tile", "64", "--overlap", "16", "--pixel-size", "0.02"]) == 0
        folder = SegmentFolder.open(tmp_path / out)
        masks.append(folder.mask_array(next(iter(folder.images()))))
    assert masks[0].shape == (90, 110)
    assert np.array_equal(masks[0], masks[1])


def test_segment_refuses_a_foreign_or_tampered_package_in_one_line(tmp_path):
    import yaml

    from matseg_nb.segment.model import resolve_model

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "rdf.yaml").write_text("type: model\nname: someone else's\n")
    with pytest.raises(UserError, match="expected a package written by matseg export"):
        resolve_model(foreign)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "weights_state_dict.pt").write_bytes(b"not the exported weights")
    rdf = {"type": "model", "config": {"matseg": {"job_id": "x", "input_scale": 1.0}},
           "weights": {"pytorch_state_dict": {"source": "weights_state_dict.pt", "sha256": "0" * 64}}}
    (pkg / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(UserError, match="weights_state_dict.pt: expected the state dict with sha256 0000"):
        resolve_model(pkg)
