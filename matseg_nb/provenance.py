"""RO-Crate provenance (``ro-crate-metadata.json``) for a result folder: inputs with SHA-256 checksums, the
profile, software versions and outputs, tied together by one ``CreateAction`` (RO-Crate 1.3, via ``rocrate``).

Inputs outside the folder are referenced by ``file://`` URI (never copied); outputs are paths relative to the
folder. :func:`write_crate` writes one; :func:`read_crate_inputs` reads back what a crate lists as inputs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from matseg_nb.data.resolve import sha256_of

CRATE_FILE = "ro-crate-metadata.json"
#: distributions whose versions every crate records (absent ones are skipped)
SOFTWARE = ("matseg-nb", "torch", "segmentation-models-pytorch", "numpy", "scikit-image", "onnxruntime",
            "bioimageio.core", "bioimageio.spec")


def _file_properties(path: Path) -> dict:
    return {"name": path.name, "sha256": sha256_of(path), "contentSize": str(path.stat().st_size)}


def software_versions() -> dict[str, str]:
    """Installed version of each distribution in :data:`SOFTWARE` (absent ones left out)."""
    found = {}
    for dist in SOFTWARE:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_crate(folder: str | os.PathLike, inputs: Iterable[Path], outputs: Iterable[Path] = (),
                profile: Path | None = None, name: str = "", description: str = "") -> Path:
    """Write ``folder/ro-crate-metadata.json`` (atomic) describing how ``outputs`` were made from ``inputs``.

    ``inputs``/``profile``: files anywhere (``file://`` ids, checksummed); ``outputs``: files inside ``folder``
    (relative ids, checksummed); missing files are skipped. Returns the crate file's path."""
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    from matseg_nb.atomic import atomic_write_text

    folder = Path(folder).resolve()
    crate = ROCrate()
    crate.root_dataset["name"] = name or folder.name
    crate.root_dataset["description"] = description or f"matseg-nb results in {folder.name}"
    objects = [crate.add_file(Path(p).resolve().as_uri(), properties=_file_properties(Path(p)))
               for p in inputs if Path(p).is_file()]
    if profile is not None and Path(profile).is_file():
        props = _file_properties(Path(profile)) | {"encodingFormat": "application/yaml", "description": "profile"}
        objects.append(crate.add_file(Path(profile).resolve().as_uri(), properties=props))
    results = []
    for p in outputs:
        p = Path(p).resolve()
        if p.is_file() and p.name != CRATE_FILE:
            results.append(crate.add_file(str(p), dest_path=p.relative_to(folder).as_posix(),
                                          properties=_file_properties(p)))
    instruments = [crate.add(ContextEntity(crate, f"#software-{dist}", properties={
        "@type": "SoftwareApplication", "name": dist, "version": version}))
        for dist, version in software_versions().items()]
    crate.add(ContextEntity(crate, "#run", properties={
        "@type": "CreateAction", "name": name or folder.name, "object": [{"@id": e.id} for e in objects],
        "result": [{"@id": e.id} for e in results], "instrument": [{"@id": e.id} for e in instruments]}))
    path = folder / CRATE_FILE
    atomic_write_text(path, json.dumps(crate.metadata.generate(), indent=2))
    return path


def read_crate_inputs(folder: str | os.PathLike) -> dict[str, str]:
    """Input id (``file://`` URI) -> SHA-256 of the crate in ``folder``, as parsed by ``rocrate``."""
    from rocrate.rocrate import ROCrate

    crate = ROCrate(str(folder))
    action = crate.get("#run")
    objects = (action.get("object") or []) if action is not None else []
    objects = objects if isinstance(objects, list) else [objects]
    return {e.id: e.get("sha256") for e in objects}


def loop_inputs(profile) -> list[Path]:
    """Image and mask files of every dataset of a loaded profile (those that resolve locally)."""
    from matseg_nb.data import open_dataset

    files: list[Path] = []
    for entry in profile.dataset:
        ds = open_dataset(entry.ref, base_dir=profile.base_dir)
        for s in ds.samples():
            files += [p for p in (s.image, s.mask) if p is not None and p not in files]
    return files


def write_loop_crate(ctx) -> Path:
    """``ro-crate-metadata.json`` at the loop root of a demo context (``pipeline.DemoContext``): dataset files,
    the profile, software, and every file under the loop folder (report, compare, QC, run folders)."""
    from matseg_nb.errors import UserError

    out = Path(ctx.out)
    outputs = sorted(p for p in out.rglob("*") if p.is_file() and ".tmp" not in p.name)
    description = "Sweep, comparison, QC, explanations and report of one matseg-nb loop"
    try:
        inputs = loop_inputs(ctx.profile)
    except UserError as exc:  # the report still gets its crate; the crate says why inputs are not listed
        inputs, description = [], f"{description}; dataset files not listed: {exc}"
    return write_crate(out, inputs, outputs, profile=Path(ctx.profile_path), name=f"matseg-nb loop {out.name}",
                       description=description)
