"""QC image sources take their file suffixes from data.formats: a folder of electron-microscopy files is screened."""

from __future__ import annotations

import numpy as np
import pytest
from _data_helpers import write_emd, write_png

from matseg_nb.data.formats.base import SUPPORTED_SUFFIXES
from matseg_nb.errors import UserError
from matseg_nb.qc.screening import load_new_images
from matseg_nb.qc.sources import IMAGE_EXT, resolve_source


def test_folder_with_emd_and_png_is_read_whole(tmp_path):
    rng = np.random.default_rng(0)
    write_emd(tmp_path / "new" / "haadf.emd", {"HAADF": rng.integers(0, 4000, (48, 48)).astype(np.uint16)}, pixel_nm=2.0)
    write_png(tmp_path / "new" / "optical.png", rng.integers(0, 255, (48, 48)).astype(np.uint8))
    assert IMAGE_EXT == SUPPORTED_SUFFIXES and ".emd" in IMAGE_EXT and ".dm3" in IMAGE_EXT
    assert sorted(it.name for it in resolve_source(str(tmp_path / "new")).items) == ["haadf", "optical"]
    items, notes = load_new_images(str(tmp_path / "new"), channels=1)
    assert sorted(it.name for it in items) == ["haadf", "optical"] and notes == {}


def test_folder_of_other_files_names_the_suffixes(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match=r"expected image files \(.*\.dm3.*\.emd"):
        load_new_images(str(tmp_path), channels=1)
