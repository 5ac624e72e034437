"""--channel NAME|INDEX: one channel of a multi-channel file (multi-page TIFF, RGB, AFM) segmented by a
1-channel model, read by the data layer's readers; without it, one line naming the file and its channels."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image
from test_segment_batch import _run

from matseg_nb.cli import main
from matseg_nb.segment import SegmentFolder


def _seg(run, inputs, out, *extra: str) -> int:
    return main(["segment", str(run), *map(str, inputs), "--out", str(out), "--no-qc", "--tile", "64",
                 "--overlap", "16", *extra])


def _pages(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((2, 64, 80)) * 60000).astype(np.uint16)


def test_multi_page_tiff_one_line_without_channel_and_the_picked_page_with_it(tmp_path):
    run = _run(tmp_path)
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, _pages(0))
    tifffile.imwrite(tmp_path / "page1.tif", _pages(0)[1])
    assert _seg(run, [stack], tmp_path / "none") == 1
    (rec,) = SegmentFolder(tmp_path / "none").images()
    assert rec.status_line == ("not segmented: expected 1 channel(s) like the model's training images, found 2 "
                               "(page0, page1) in stack.tif; pick one with --channel NAME|INDEX")
    assert _seg(run, [tmp_path / "page1.tif"], tmp_path / "single") == 0
    single = SegmentFolder(tmp_path / "single")
    expected = single.mask_array(single.images()[0])
    for pick in ("page1", "1"):
        out = tmp_path / f"pick-{pick}"
        assert _seg(run, [stack], out, "--channel", pick) == 0
        (rec,) = SegmentFolder(out).images()
        assert rec.segmented and rec.channel == "page1"
        assert np.array_equal(SegmentFolder(out).mask_array(rec), expected)  # the page, not a mix of pages
    assert _seg(run, [stack], tmp_path / "bad", "--channel", "5") == 1
    (rec,) = SegmentFolder(tmp_path / "bad").images()
    assert rec.status_line == f"not segmented: {stack}: expected channel index 0..1 (page0, page1), found 5"


def test_rgb_channel_by_name(tmp_path):
    run = _run(tmp_path)
    rgb = (np.random.default_rng(2).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    Image.fromarray(rgb[..., 1]).save(tmp_path / "green.png")
    assert _seg(run, [tmp_path / "colour.png"], tmp_path / "rgb", "--channel", "green") == 0
    assert _seg(run, [tmp_path / "green.png"], tmp_path / "grey") == 0
    a, b = SegmentFolder(tmp_path / "rgb"), SegmentFolder(tmp_path / "grey")
    assert np.array_equal(a.mask_array(a.images()[0]), b.mask_array(b.images()[0]))
    assert a.images()[0].channel == "green"


def test_afm_channel_by_name_and_a_missing_one_named(tmp_path, monkeypatch):
    pytest.importorskip("AFMReader")
    from igor2 import binarywave

    rng = np.random.default_rng(3)
    height = rng.random((64, 64)) * 10e-9  # metres
    phase = rng.random((64, 64)) * 90.0
    scan = {"wave": {"labels": [[], [], [b"", b"HeightTrace", b"Phase"]], "wData": np.stack([height, phase], -1),
                     "note": b"Version: 1\rSlowScanSize: 4e-06\rFastScanSize: 4e-06\r"}}
    monkeypatch.setattr(binarywave, "load", lambda path: scan)
    ibw = tmp_path / "scan.ibw"
    ibw.write_bytes(b"IBW stand-in")
    run = _run(tmp_path)
    assert _seg(run, [ibw], tmp_path / "phase", "--channel", "Phase") == 0
    (rec,) = SegmentFolder(tmp_path / "phase").images()
    assert rec.segmented and rec.channel == "Phase" and rec.pixel_size_um == pytest.approx(4.0 / 64)
    assert _seg(run, [ibw], tmp_path / "amp", "--channel", "Amplitude") == 1
    (rec,) = SegmentFolder(tmp_path / "amp").images()
    assert rec.status_line == f"not segmented: {ibw}: expected channel Amplitude, found HeightTrace, Phase"
    assert _seg(run, [ibw], tmp_path / "default") == 0  # the reader's default: the height channel
    assert SegmentFolder(tmp_path / "default").images()[0].channel == "Height"
