"""SegmentFolder round trip and model resolution (run folder, sweep + --dataset)."""

from __future__ import annotations

import numpy as np
import pytest
from _segment_helpers import tiny_model_run

from matseg_nb.errors import UserError
from matseg_nb.segment import ImageRecord, Quantity, SegmentFolder, SummaryRow, resolve_model
from matseg_nb.segment.folder import BiasRow, default_classes


def test_segment_folder_round_trip(tmp_path):
    f = SegmentFolder(tmp_path / "out")
    f.write_meta({"inputs": ["b", "a"], "model": {"source": "run", "why": "test"},
                  "pixel_size": {"um": 0.5, "source": "--pixel-size", "note": ""}})
    f.write_classes(default_classes(["matrix", "precipitate"]))
    mask = np.zeros((5, 7), np.int64)
    mask[1:3, 2:5] = 1
    rel = f.write_mask("a", mask)
    rec = ImageRecord("a", "/x/a.tif", "k1", "segmented", mask=rel, qc_p_value=0.2, qc_flag=False,
                      measurements=[Quantity("precipitate", "area_fraction", 17.1, "%")])
    f.write_record(rec)
    f.write_record(ImageRecord("b", "/x/b.tif", "k2", reason="unreadable: bad"))
    f.write_tables(f.images(), [SummaryRow("precipitate", "area_fraction", "%", 17.1, None, None, 1)],
                   [BiasRow("precipitate", "area_fraction", "pp", -0.4, 0.3, 4)])
    g = SegmentFolder.open(tmp_path / "out")
    recs = g.images()
    assert [r.name for r in recs] == ["b", "a"]  # input order
    assert recs[0].status_line == "not segmented: unreadable: bad"
    assert recs[1].quantity("precipitate", "area_fraction").value == 17.1
    assert np.array_equal(g.mask_array(recs[1]), mask)
    assert [c.name for c in g.classes()] == ["matrix", "precipitate"] and g.classes()[1].color != (0, 0, 0)
    assert g.pixel_size()["um"] == 0.5 and g.model_info()["why"] == "test" and not g.is_complete()
    header = (tmp_path / "out" / "segments.csv").read_text().splitlines()[0]
    assert "precipitate/area_fraction [%]" in header
    with pytest.raises(UserError, match="segment output folder"):
        SegmentFolder.open(tmp_path)


def _real_run(sweep, job_id, dataset="nasa-super1", val_iou=0.5):
    return tiny_model_run(sweep, job_id, dataset, [{"id": 0, "name": "matrix"}, {"id": 1, "name": "precipitate"}],
                          val_iou=val_iou)


def test_resolve_run_and_sweep(tmp_path):
    sweep = tmp_path / "loop" / "sweep"
    a = _real_run(sweep, "nasa-super1__a", val_iou=0.4)
    _real_run(sweep, "nasa-super1__b", val_iou=0.7)
    m = resolve_model(a)
    assert m.source == "run" and m.class_names == ["matrix", "precipitate"] and m.in_channels == 1
    s = resolve_model(tmp_path / "loop", "nasa-super1")
    assert s.run_dir.name == "nasa-super1__b" and "validation IoU 0.700" in s.why
    with pytest.raises(UserError, match="--dataset nasa-ebc1: expected a dataset the sweep"):
        resolve_model(tmp_path / "loop", "nasa-ebc1")
    with pytest.raises(UserError, match="MODEL"):
        resolve_model(tmp_path / "nothing")
