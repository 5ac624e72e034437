"""Manifest schema, lookup, file resolution (cache -> mirror -> download), checksums."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from _data_helpers import data_env, listed_pairs, sha256, snapshot, write_manifest, write_tiff  # noqa: F401

import matseg_nb.data.resolve as resolve
from matseg_nb.data import load_manifest, manifest_path, open_dataset
from matseg_nb.data.schema import schema_text
from matseg_nb.errors import UserError

PAPER = {
    "l-pbf": ("Optical", "Hard"), "fractography": ("SEM", "Hard"), "afm-crystallites": ("AFM", "Moderate"),
    "al-mg-si-sc": ("XCT", "Very Hard"), "al-pitting": ("XCT", "Very Hard"),
    "contact-corrosion": ("SEM", "Easy"), "carbon": ("SEM", "Moderate"),
}


def test_exported_schema_is_fresh(repo_root):
    committed = (repo_root / "data_manifests" / "schema.json").read_text()
    assert committed == schema_text(), "run: matseg data schema (or python -m matseg_nb.data.schema)"


def test_shipped_manifests_match_schema(repo_root):
    import jsonschema

    schema = json.loads((repo_root / "data_manifests" / "schema.json").read_text())
    for path in sorted((repo_root / "data_manifests").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_manifests_are_bring_your_own(name, data_env, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    m = load_manifest(name)
    assert (m.modality, m.difficulty) == PAPER[name]
    assert m.availability == "bring-your-own" and m.layout and m.source.citation
    with pytest.raises(UserError) as err:
        open_dataset(name)
    text = str(err.value)
    assert name in text and f"byo/{name}" in text and "images/" in text


def test_paper_volume_and_stack_settings():
    assert load_manifest("al-mg-si-sc").volume is not None and load_manifest("al-pitting").volume is not None
    afm = load_manifest("afm-crystallites")
    assert afm.channels.kind == "stack" and afm.channels.names == ["height", "phase", "amplitude"]


def test_manifest_path_forms(tmp_path, data_env, monkeypatch):  # noqa: F811
    assert manifest_path("nasa-super1").name == "nasa-super1.yaml"
    extra = write_manifest(tmp_path / "mine" / "custom-set.yaml", name="custom-set")
    monkeypatch.setenv("MATSEG_MANIFESTS", str(tmp_path / "mine"))
    assert manifest_path("custom-set") == extra.resolve()
    assert manifest_path("custom-set.yaml", base_dir=tmp_path / "mine") == extra.resolve()
    monkeypatch.chdir(tmp_path)
    assert manifest_path("mine/custom-set.yaml", base_dir=tmp_path / "elsewhere") == extra.resolve()
    (tmp_path / "plain" / "images").mkdir(parents=True)
    (tmp_path / "plain" / "masks").mkdir()
    assert manifest_path(str(tmp_path / "plain")) == (tmp_path / "plain").resolve()
    for bad in ("no-such-dataset", str(tmp_path / "nothing.yaml"), str(tmp_path / "mine")):
        with pytest.raises(UserError, match="expected"):
            manifest_path(bad)
    with pytest.raises(UserError, match="no-such-dataset"):
        manifest_path("no-such-dataset")


def test_manifest_validation_errors_name_the_field(tmp_path):
    bad = write_manifest(tmp_path / "bad.yaml", modality="Xray", classes=[{"id": 0, "name": "bg"}, {"id": 2, "name": "x"}])
    with pytest.raises(UserError) as err:
        load_manifest(str(bad))
    lines = err.value.problems
    assert any("modality" in line and "Xray" in line for line in lines)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="broken.yaml: expected valid YAML"):
        load_manifest(str(broken))
    rgb = write_manifest(tmp_path / "rgb.yaml", mask={"kind": "rgb"})
    with pytest.raises(UserError, match="colours"):
        load_manifest(str(rgb))


def _listed(tmp_path, **extra):
    upstream = tmp_path / "mirror" / "fake-upstream"
    pairs = listed_pairs(upstream, {"train": ["a", "b"], "val": ["c"], "test": ["d"]})
    path = write_manifest(tmp_path / "fake.yaml", pairs=pairs, **extra)
    return path, upstream, pairs


def test_mirror_resolution_and_verification_cache(tmp_path, data_env, monkeypatch):  # noqa: F811
    path, upstream, _ = _listed(tmp_path)
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(tmp_path / "mirror"))
    before = snapshot(upstream)
    ds = open_dataset(str(path))
    assert [len(ds.samples(s)) for s in ("train", "val", "test")] == [2, 1, 1]
    assert ds.samples("train")[0].image.is_relative_to(upstream)
    memo = json.loads((data_env / "sha256-verified.json").read_text())
    assert len(memo) == 8
    # second open: checksums come from the (path, size, mtime) memo, not recomputed
    monkeypatch.setattr(resolve, "sha256_of", lambda p: pytest.fail(f"recomputed {p}"))
    open_dataset(str(path))
    assert snapshot(upstream) == before  # input files never modified


def test_cache_is_searched_before_the_mirror(tmp_path, data_env, monkeypatch):  # noqa: F811
    path, upstream, _ = _listed(tmp_path)
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(tmp_path / "mirror"))
    shutil.copytree(upstream, data_env / "fake-upstream")
    ds = open_dataset(str(path))
    assert all(s.image.is_relative_to(data_env) for s in ds.samples())


def test_checksum_mismatch_names_the_file(tmp_path, data_env, monkeypatch):  # noqa: F811
    path, upstream, _ = _listed(tmp_path)
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(tmp_path / "mirror"))
    open_dataset(str(path))  # verified once (memo written) ...
    target = upstream / "val" / "c.tif"
    write_tiff(target, np.full((16, 16), 7, np.uint8))  # ... then the file changes: size/mtime differ
    with pytest.raises(UserError) as err:
        open_dataset(str(path))
    assert len(err.value.problems) == 1
    assert "c.tif: sha256 mismatch" in err.value.problems[0]


def test_checksum_mismatch_on_a_real_mirror_copy(nasa_root, tmp_path, data_env, monkeypatch):  # noqa: F811
    mirror = tmp_path / "mirror"
    dst = mirror / "nasa-pmm" / "benchmark_segmentation_data" / "Super1"
    shutil.copytree(nasa_root / "Super1", dst)
    victim = dst / "test" / "spot2_0d_4.tif"
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(mirror))
    with pytest.raises(UserError, match=r"spot2_0d_4.tif: sha256 mismatch, expected [0-9a-f]{64}, found"):
        open_dataset("nasa-super1")


def test_offline_missing_files_one_error_with_where_to_put(tmp_path, data_env, monkeypatch):  # noqa: F811
    path, upstream, _ = _listed(tmp_path)
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(tmp_path / "other-mirror"))
    with pytest.raises(UserError) as err:
        open_dataset(str(path))
    text = str(err.value)
    assert "8 file(s) not found" in text and "train/a.tif" in text and "fake-upstream" in text
    assert "MATSEG_OFFLINE" in text


def test_download_goes_to_cache_with_sha256(tmp_path, data_env, monkeypatch):  # noqa: F811
    import pooch

    path, upstream, _ = _listed(tmp_path)
    monkeypatch.delenv("MATSEG_OFFLINE")
    calls = []

    def fake_retrieve(url, known_hash, fname, path, **kw):
        calls.append((url, known_hash))
        rel = url.split("/root-x/", 1)[1].replace("%23", "#")
        target = path / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(upstream / rel, target)
        return str(target)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    src = {"url": "https://example.invalid/repo", "mirror_subdir": "fake-upstream", "licence": "MIT",
           "root": "root-x", "commit": "a" * 40, "raw_url": "https://example.invalid/{commit}/{root}/{path}"}
    path = write_manifest(tmp_path / "dl.yaml", source=src, pairs=yaml.safe_load(path.read_text())["pairs"])
    ds = open_dataset(str(path))
    assert len(calls) == 8 and all(h.startswith("sha256:") and "/" + "a" * 40 + "/" in u for u, h in calls)
    assert all(s.image.is_relative_to(data_env / "fake-upstream") for s in ds.samples())


def test_unknown_checksum_files_are_missing_not_fatal(tmp_path, data_env, monkeypatch):  # noqa: F811
    upstream = tmp_path / "mirror" / "fake-upstream"
    pairs = listed_pairs(upstream, {"train": ["a", "b"], "val": ["c"], "test": ["d"]})
    pairs.append({"split": "train", "image": {"path": "train/gone.tif", "sha256": None, "note": "absent"},
                  "mask": {"path": "train_annot/a.tif", "sha256": sha256(upstream / "train_annot" / "a.tif")}})
    path = write_manifest(tmp_path / "fake.yaml", pairs=pairs)
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(tmp_path / "mirror"))
    ds = open_dataset(str(path))
    assert ds.missing == ["train/gone.tif"] and len(ds.samples("train")) == 2


def test_seeded_manifest_split_keeps_groups_together(tmp_path, data_env, monkeypatch):  # noqa: F811
    upstream = tmp_path / "mirror" / "fake-upstream"
    stems = [f"m{g}_tile{t}" for g in range(8) for t in range(3)]
    pairs = listed_pairs(upstream, {"all": stems})
    for p in pairs:
        del p["split"]
    path = write_manifest(tmp_path / "seeded.yaml", pairs=pairs, split={"kind": "seeded", "seed": 3})
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(tmp_path / "mirror"))
    ds = open_dataset(str(path))
    split_of = {}
    for s in ds.samples():
        assert split_of.setdefault(s.group, s.split) == s.split
    assert len(split_of) == 8 and all(len(ds.samples(x)) > 0 for x in ("train", "val", "test"))
    again = open_dataset(str(path))
    assert [(s.image, s.split) for s in again.samples()] == [(s.image, s.split) for s in ds.samples()]


def test_network_down_stops_after_first_failure(tmp_path, data_env, monkeypatch):  # noqa: F811
    import pooch
    import requests

    path, upstream, _ = _listed(tmp_path)
    monkeypatch.delenv("MATSEG_OFFLINE")
    calls = []

    def unreachable(url, **kw):
        calls.append(url)
        raise requests.ConnectionError("Failed to resolve 'example.invalid'")

    monkeypatch.setattr(pooch, "retrieve", unreachable)
    with pytest.raises(UserError) as err:
        open_dataset(str(path))
    assert len(calls) == 1
    assert any(line.startswith("download failed: train/a.tif: ConnectionError") for line in err.value.problems)


def test_paper_manifests_open_with_files_in_the_expected_layout(tmp_path, data_env, monkeypatch):  # noqa: F811
    from _data_helpers import blob_mask, write_png

    g = np.random.default_rng(0)
    xct = tmp_path / "byo" / "al-pitting"
    for v in range(4):
        write_tiff(xct / "images" / f"wire{v}.tif", (g.random((5, 12, 12)) * 60000).astype(np.uint16), photometric="minisblack")
        write_tiff(xct / "masks" / f"wire{v}.tif", np.stack([blob_mask(12, 12) * 255] * 5), photometric="minisblack")
    afm = tmp_path / "byo" / "afm-crystallites"
    for i in range(3):
        write_tiff(afm / "images" / f"scan{i}.tif", g.normal(0, 1, (3, 16, 16)).astype(np.float32), photometric="minisblack")
        write_png(afm / "masks" / f"scan{i}.png", blob_mask(16, 16))
    monkeypatch.setenv("MATSEG_DATA_MIRROR", str(tmp_path))
    ds = open_dataset("al-pitting")
    assert len(ds.samples()) == 20 and {s.group for s in ds.samples()} == {f"wire{v}" for v in range(4)}
    img, mask = ds.load_pair(ds.samples()[0])
    assert img.shape == (1, 12, 12) and img.max() > 255 and set(np.unique(mask).tolist()) == {0, 1}
    afm_ds = open_dataset("afm-crystallites")
    assert afm_ds.in_channels == 3 and afm_ds.channel_names == ["height", "phase", "amplitude"]
    assert afm_ds.load_image(afm_ds.samples()[0]).shape == (3, 16, 16) and afm_ds.check() == []
