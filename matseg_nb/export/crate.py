"""``ro-crate-metadata.json`` of an export folder (the ``rocrate`` package): inputs with sha256, software
versions, outputs."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

#: packages whose installed versions the crate records
SOFTWARE = ("matseg-nb", "torch", "segmentation-models-pytorch", "onnx", "onnxruntime", "rocrate")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def write_crate(out: Path, run_dir: Path, outputs: list[str]) -> Path:
    """Write ``out/ro-crate-metadata.json``: the run's job.json and model weights (inputs, sha256, read in
    place; not copied), the ``outputs`` (files in ``out``) with sha256, and :data:`SOFTWARE` versions."""
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    crate = ROCrate()
    crate.name = f"matseg export of {run_dir.name}"
    inputs = [run_dir / "job.json", *sorted((run_dir / "model").glob("*"))]
    in_entities = [crate.add(ContextEntity(crate, f"#input-{p.relative_to(run_dir)}", properties={
        "@type": "CreativeWork", "url": p.resolve().as_uri(), "name": f"{run_dir.name}/{p.relative_to(run_dir)}", "sha256": _sha256(p),
        "contentSize": p.stat().st_size})) for p in inputs if p.is_file()]
    out_entities = [crate.add_file(out / name, name, properties={"sha256": _sha256(out / name),
                                                                    "contentSize": (out / name).stat().st_size})
                    for name in outputs]
    software = [crate.add(ContextEntity(crate, f"#software-{name}", properties={
        "@type": "SoftwareApplication", "name": name, "softwareVersion": _version(name)})) for name in SOFTWARE]
    action = crate.add(ContextEntity(crate, "#export", properties={"@type": "CreateAction", "name": "matseg export"}))
    action["object"], action["result"], action["instrument"] = in_entities, out_entities, software
    crate.metadata.write(out)
    return out / "ro-crate-metadata.json"
