"""Asylum ``.ibw`` through AFMReader's real ``load_ibw``: igor2 has no writer (its ``save`` raises
NotImplementedError), so the binary-wave parse is replaced by the structure igor2 returns; the rest
(channel lookup, nm scaling, pixel size) is AFMReader's and ours."""

from __future__ import annotations

import numpy as np
import pytest

from matseg_nb.data.formats import read_file
from matseg_nb.errors import UserError

pytest.importorskip("AFMReader")


@pytest.fixture
def fake_ibw(tmp_path, monkeypatch):
    from igor2 import binarywave

    with pytest.raises(NotImplementedError):  # why there is no writer-built .ibw
        binarywave.save(str(tmp_path / "x.ibw"))
    height = np.linspace(0, 10e-9, 6 * 8).reshape(8, 6)  # metres, stored (x, y)
    phase = np.full((8, 6), 30.0)
    scan = {"wave": {"labels": [[], [], [b"", b"HeightTrace", b"Phase"]],
                     "wData": np.stack([height, phase], axis=-1),
                     "note": b"Version: 1\rSlowScanSize: 4e-08\rFastScanSize: 4e-08\r"}}
    monkeypatch.setattr(binarywave, "load", lambda path: scan)
    path = tmp_path / "scan.ibw"
    path.write_bytes(b"IBW stand-in")
    return path, height


def test_default_height_falls_back_to_the_files_height_channel(fake_ibw):
    path, height = fake_ibw
    d = read_file(path)
    assert d.channel_names == ["Height"] and d.array.shape == (1, 6, 8)
    assert np.allclose(d.array[0], np.flipud(height.T * 1e9), atol=1e-4)  # nm, AFMReader's orientation
    assert d.pixel_unit == "nm" and d.pixel_size == pytest.approx(40.0 / 8) and "Asylum" in d.instrument
    assert read_file(path, ["HeightTrace", "Phase"]).array.shape == (2, 6, 8)


def test_missing_channel_is_one_line_listing_the_files_channels(fake_ibw):
    path, _ = fake_ibw
    with pytest.raises(UserError) as err:
        read_file(path, ["Amplitude"])
    assert err.value.problems == [f"{path}: expected channel Amplitude, found HeightTrace, Phase"]
