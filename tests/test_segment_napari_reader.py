"""The napari reader of a segment output folder (pure function; no display needed)."""

from __future__ import annotations

from test_segment_batch import _run, _seg, _tif16

from matseg_nb.widgets.segment_reader import napari_get_reader


def test_reader_gives_image_and_labels_layers(tmp_path):
    run = _run(tmp_path)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    _tif16(imgs / "a.tif", 0)
    (imgs / "broken.tif").write_bytes(b"II*\x00garbage")
    out = tmp_path / "out"
    _seg(str(run), str(imgs), "--out", str(out))
    assert napari_get_reader(str(imgs)) is None
    layers = napari_get_reader(str(out))(str(out))
    kinds = [(kw["name"], kind) for _, kw, kind in layers]
    assert kinds == [("a overlay", "image"), ("a classes", "labels")]
    labels, kw, _ = layers[1]
    assert labels.shape == (96, 96) and set(kw["colormap"]) >= {0, 1}
    assert kw["metadata"]["class_names"] == {0: "matrix", 1: "precipitate"}


def test_manifest_points_at_the_reader():
    from importlib import import_module
    from pathlib import Path

    import npe2

    import matseg_nb

    manifest = npe2.PluginManifest.from_file(Path(matseg_nb.__file__).with_name("napari.yaml"))
    (command,) = manifest.contributions.commands
    module, attr = command.python_name.split(":")
    assert getattr(import_module(module), attr) is napari_get_reader
    assert manifest.contributions.readers[0].accepts_directories
