"""RO-Crate provenance: the crate parses with ``rocrate`` and lists inputs with their SHA-256 checksums."""

from __future__ import annotations

import hashlib
import json

from matseg_nb.provenance import CRATE_FILE, read_crate_inputs, write_crate


def test_crate_lists_inputs_with_checksums_and_outputs(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    image, mask = data / "a.png", data / "a_mask.png"
    image.write_bytes(b"image bytes")
    mask.write_bytes(b"mask bytes")
    profile = tmp_path / "profile.yaml"
    profile.write_text("dataset: [x]\n")
    out = tmp_path / "loop"
    (out / "compare").mkdir(parents=True)
    (out / "compare" / "table.csv").write_text("a,b\n1,2\n")
    path = write_crate(out, [image, mask], [out / "compare" / "table.csv"], profile=profile, name="loop")
    assert path == out / CRATE_FILE
    inputs = read_crate_inputs(out)
    expected = {p.resolve().as_uri(): hashlib.sha256(p.read_bytes()).hexdigest() for p in (image, mask, profile)}
    assert inputs == expected
    graph = {e["@id"]: e for e in json.loads(path.read_text())["@graph"]}
    assert graph["compare/table.csv"]["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert graph["#run"]["result"] == [{"@id": "compare/table.csv"}]
    versions = {e["name"]: e["version"] for e in graph.values() if e.get("@type") == "SoftwareApplication"}
    assert "torch" in versions and versions["torch"]


def test_changed_input_changes_its_checksum(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"one")
    write_crate(tmp_path / "o", [image])
    before = read_crate_inputs(tmp_path / "o")
    image.write_bytes(b"two")
    write_crate(tmp_path / "o", [image])
    after = read_crate_inputs(tmp_path / "o")
    assert before.keys() == after.keys() and before != after


def test_loop_crate_lists_the_demo_datasets_and_profile(tmp_path):
    from pathlib import Path

    from matseg_nb.pipeline import DemoContext
    from matseg_nb.provenance import write_loop_crate

    profile = Path(__file__).resolve().parents[1] / "profiles" / "demo-cpu.json"
    (tmp_path / "report.html").write_text("<html></html>")
    write_loop_crate(DemoContext(profile, tmp_path))
    inputs = read_crate_inputs(tmp_path)
    assert profile.as_uri() in inputs
    images = [uri for uri in inputs if "nasa-pmm" in uri]
    assert len(images) >= 10 and all(len(inputs[u]) == 64 for u in images)
    graph = {e["@id"]: e for e in json.loads((tmp_path / CRATE_FILE).read_text())["@graph"]}
    assert graph["#run"]["result"] == [{"@id": "report.html"}]
