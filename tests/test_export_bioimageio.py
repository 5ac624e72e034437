"""``matseg export --format bioimageio``: a package of a tiny run passes bioimageio.core's own test offline, holds
what the model card promises, segments like the run folder (QC included), and runs in a fresh environment with
only bioimageio.core and onnxruntime; a different package in the output folder is refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from matseg_nb.errors import UserError

#: hosts the export may try to reach: only the cited paper's URL, whose existence bioimageio.spec checks
#: (a warning when offline); no weights, data or schema are ever downloaded
ALLOWED_LOOKUPS = {"github.com"}


def _blobs(seed: int, size: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random((size, size)), 6)
    smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-9)
    return (smooth * 200 + 20).astype(np.uint8)


def _tiny_run(root: Path, job_id: str = "blobs__tiny", seed: int = 0) -> Path:
    from _sweep_helpers import write_fake_run

    from matseg_nb.models import build_model, save_model

    data = root / "data"
    for split, seeds in (("train", range(4)), ("val", range(10, 13)), ("test", range(20, 22))):
        for sub in ("images", "masks"):
            (data / sub / split).mkdir(parents=True, exist_ok=True)
        for s in seeds:
            img = _blobs(s)
            Image.fromarray(img).save(data / "images" / split / f"b{s}.png")
            Image.fromarray((img > 120).astype(np.uint8)).save(data / "masks" / split / f"b{s}.png")
    run = write_fake_run(root / "sweep", job_id, dataset=str(data), extra_job={
        "classes": [{"id": 0, "name": "matrix"}, {"id": 1, "name": "blob"}], "in_channels": 1,
        "normalization": "percentile", "training": {"input_scale": 0.5}})
    import torch

    torch.manual_seed(seed)
    model, _ = build_model("tu-test_resnet", "Unet", 1, 2, "none")
    save_model(model, run / "model")
    return run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(run, package folder, export.json, host names looked up) of one export with the network blocked."""
    root = tmp_path_factory.mktemp("bioimageio")
    run = _tiny_run(root)
    lookups: list[str] = []
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host in ("localhost", "127.0.0.1", "::1", None):
            return real(host, *args, **kwargs)
        lookups.append(str(host))
        raise socket.gaierror(f"network blocked in tests: {host}")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket, "getaddrinfo", guarded)
    mp.setenv("BIOIMAGEIO_CACHE_PATH", str(root / "bioimageio-cache"))
    try:
        from matseg_nb.export import export_run

        info = export_run(run, "bioimageio", root / "pkg", authors=["Test Author"])
    finally:
        mp.undo()
    return run, root / "pkg", info, lookups


def test_bioimageio_core_test_passes_offline_for_every_weight_format(exported):
    from bioimageio.spec import ValidationContext, load_model_description

    run, pkg, info, lookups = exported
    assert info["check"]["status"] == "passed"
    assert info["check"]["formats"] == {"pytorch_state_dict": "passed", "torchscript": "passed", "onnx": "passed"}
    assert set(lookups) <= ALLOWED_LOOKUPS, lookups
    with ValidationContext(perform_io_checks=True):
        descr = load_model_description(pkg / "rdf.yaml")
    assert descr.format_version.startswith("0.5")
    assert {w for w, e in descr.weights if e is not None} == {"pytorch_state_dict", "torchscript", "onnx"}
    assert [p.id for p in descr.inputs[0].preprocessing if p.id != "ensure_dtype"] == ["scale_range", "clip"]
    assert descr.inputs[0].preprocessing[1].kwargs.min_percentile == 0.5
    assert descr.weights.pytorch_state_dict.architecture.callable == "MatsegNet"


def test_package_holds_real_test_tensors_cover_card_and_qc(exported):
    run, pkg, info, _ = exported
    files = {p.name for p in pkg.iterdir()}
    assert {"rdf.yaml", "weights_state_dict.pt", "architecture.py", "model.pt", "model.onnx", "test_input.npy",
            "test_output.npy", "cover.png", "documentation.md", "qc_calibration.npz", "qc_calibration.json",
            "job.json", "export.json", "ro-crate-metadata.json"} <= files
    x, y = np.load(pkg / "test_input.npy"), np.load(pkg / "test_output.npy")
    test_image = np.asarray(Image.open(run.parent.parent / "data" / "images" / "test" / "b20.png"), np.float32)
    assert x.shape == (1, 1, 128, 128) and np.array_equal(x[0, 0], test_image)  # the real test image, native units
    assert y.shape == (1, 2, 128, 128)
    w, h = Image.open(pkg / "cover.png").size
    assert (w, h) == (256, 128)
    card = (pkg / "documentation.md").read_text()
    for needed in ("## Training data", "## Architecture and training", "## Validation", "| phase |", "no interval",
                   "## QC calibration", "qc_calibration.npz", "## Known limits", "Context determines optimal "
                   "architecture in materials segmentation", "input_scale"):
        assert needed in card, needed
    qc = json.loads((pkg / "qc_calibration.json").read_text())
    assert qc["n_reference_images"] == 4 and qc["n_calibration_images"] == 3 and qc["calibration_split"] == "val"
    assert info["qc_calibration"] == ["qc_calibration.npz", "qc_calibration.json"]


def test_segment_with_package_gives_the_run_s_masks_and_qc(exported, tmp_path):
    from matseg_nb.cli import main
    from matseg_nb.segment import SegmentFolder

    run, pkg, _, _ = exported
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(_blobs(77, 150)).save(imgs / "typical.png")
    Image.fromarray((np.random.default_rng(5).random((150, 150)) * 255).astype(np.uint8)).save(imgs / "noise.png")
    folders = []
    for model, out in ((run, "from_run"), (pkg, "from_pkg")):
        assert main(["segment", str(model), str(imgs), "--out", str(tmp_path / out), "--tile", "64",
                     "--overlap", "16"]) == 0
        folders.append(SegmentFolder.open(tmp_path / out))
    a, b = ({r.name: r for r in f.images()} for f in folders)
    assert set(a) == set(b) == {"typical", "noise"}
    for name in a:
        assert np.array_equal(folders[0].mask_array(a[name]), folders[1].mask_array(b[name]))
        assert a[name].qc_p_value is not None and a[name].qc_p_value == pytest.approx(b[name].qc_p_value, abs=1e-12)
        assert a[name].qc_flag == b[name].qc_flag
    assert b["noise"].qc_flag is True  # white noise is unlike the blob images
    assert folders[1].batch_qc()["batch_p_value"] == pytest.approx(folders[0].batch_qc()["batch_p_value"], abs=1e-12)


def _distributions(roots: list[str]) -> dict:
    """The installed distributions ``roots`` need (Requires-Dist without extras, markers evaluated)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in found:
            continue
        found[name] = metadata.distribution(req.name)
        todo += [Requirement(r) for r in found[name].requires or []]
    return found


def _fresh_venv(path: Path, roots: list[str]) -> Path:
    """A new venv (no pip) whose site-packages holds only ``roots`` and their dependencies, linked from this
    environment's installed files (offline; the same wheels pip would install)."""
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = next((path / "lib").glob("python3*/site-packages"))
    for dist in _distributions(roots).values():
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "bin")}:
            src = Path(dist.locate_file(top))
            if src.exists() and not (site / top).exists():
                (site / top).symlink_to(src)
    return path / "bin" / "python"


def test_fresh_environment_with_only_bioimageio_core_and_onnxruntime_predicts_the_test_tensor(exported, tmp_path):
    _, pkg, _, _ = exported
    python = _fresh_venv(tmp_path / "venv", ["bioimageio.core", "onnxruntime"])
    script = textwrap.dedent(f"""
        import importlib.util, json
        import numpy as np
        assert importlib.util.find_spec("matseg_nb") is None and importlib.util.find_spec("torch") is None
        from bioimageio.core import create_prediction_pipeline, load_model_description, predict, test_model
        from bioimageio.spec.model.v0_5 import TensorId
        rdf = {str(pkg / "rdf.yaml")!r}
        summary = test_model(rdf, weight_format="onnx")
        pipeline = create_prediction_pipeline(load_model_description(rdf), weight_format="onnx")
        x = np.load({str(pkg / "test_input.npy")!r})
        out = predict(model=pipeline, inputs={{TensorId("image"): x}}).members[TensorId("logits")].data.values
        diff = float(np.abs(out - np.load({str(pkg / "test_output.npy")!r})).max())
        print(json.dumps({{"status": summary.status, "max_abs_diff": diff}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(BIOIMAGEIO_CACHE_PATH=str(tmp_path / "cache"), PYTHONNOUSERSITE="1")
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, env=env, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "passed"
    assert result["max_abs_diff"] <= 1e-4


def test_output_folder_holding_another_package_is_refused_not_overwritten(exported, tmp_path):
    from matseg_nb.export import export_run

    run, pkg, _, _ = exported
    other = _tiny_run(tmp_path / "other", job_id="blobs__other", seed=1)
    before = {p.name: p.read_bytes() for p in pkg.iterdir() if p.is_file()}
    with pytest.raises(UserError, match="found an export of blobs__tiny as bioimageio \\(not overwritten\\)"):
        export_run(other, "bioimageio", pkg)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "rdf.yaml").write_text("type: model\nname: someone else's\n")
    with pytest.raises(UserError, match="bioimage.io package without export.json \\(not overwritten\\)"):
        export_run(run, "bioimageio", foreign)
    assert (foreign / "rdf.yaml").read_text() == "type: model\nname: someone else's\n"
    assert {p.name: p.read_bytes() for p in pkg.iterdir() if p.is_file()} == before


def test_normalization_the_spec_cannot_express_is_one_line():
    from matseg_nb.export.package import spec_preprocessing

    with pytest.raises(UserError, match="expected one of percentile, none for a bioimage.io package"):
        spec_preprocessing("dtype", 1)
