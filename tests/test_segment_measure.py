"""Measurements on synthetic masks with known answers, and the batch summary / bias arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from matseg_nb.segment.folder import ImageRecord, Quantity
from matseg_nb.segment.measure import measure_mask
from matseg_nb.segment.summary import batch_summary, mean_interval, measurement_bias

NAMES = ["matrix", "particle", "pore"]


def _disc(mask, cy, cx, r, cid=1):
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = cid


def _q(qs, cls, name):
    return next(q for q in qs if q.class_name == cls and q.name == name)


@pytest.mark.parametrize("r", [4, 7.5, 12, 20])
def test_disc_equivalent_diameter_within_one_px(r):
    m = np.zeros((128, 128), np.uint8)
    _disc(m, 64, 64, r)
    qs = measure_mask(m, NAMES)
    assert _q(qs, "particle", "count").value == 1
    assert abs(_q(qs, "particle", "eqd_median").value - 2 * r) <= 1.0


def test_exact_area_fractions_and_units_in_px():
    m = np.zeros((10, 20), np.uint8)
    m[:, :5] = 1  # 50 px = 25 %
    m[0, 19] = 2  # 1 px = 0.5 %
    qs = measure_mask(m, NAMES)
    assert _q(qs, "matrix", "area_fraction").value == pytest.approx(74.5)
    assert _q(qs, "particle", "area_fraction").value == pytest.approx(25.0)
    assert _q(qs, "pore", "area_fraction").value == pytest.approx(0.5)
    assert _q(qs, "particle", "eqd_median").unit == "px" and _q(qs, "particle", "number_density").unit == "1/px²"


def test_border_objects_counted_apart_and_excluded_from_sizes():
    m = np.zeros((100, 100), np.uint8)
    _disc(m, 50, 50, 5)  # interior, d ~ 10
    _disc(m, 0, 30, 20)  # cut by the top edge: big
    m[60:100, 95:100] = 1  # touches the right and bottom edges
    qs = measure_mask(m, NAMES)
    assert _q(qs, "particle", "count").value == 1 and _q(qs, "particle", "border_count").value == 2
    assert abs(_q(qs, "particle", "eqd_median").value - 10) <= 1
    assert _q(qs, "particle", "number_density").value == pytest.approx(1 / 10000)
    assert _q(qs, "pore", "eqd_median").value is None and _q(qs, "pore", "count").value == 0


def test_micrometre_and_nanometre_conversion():
    m = np.zeros((100, 100), np.uint8)
    _disc(m, 50, 50, 10)
    px = measure_mask(m, NAMES)
    um = measure_mask(m, NAMES, pixel_size_um=0.5)
    nm = measure_mask(m, NAMES, pixel_size_um=0.002, length_unit="nm")
    d = _q(px, "particle", "eqd_median").value
    assert _q(um, "particle", "eqd_median").value == pytest.approx(d * 0.5) and _q(um, "particle", "eqd_median").unit == "µm"
    assert _q(nm, "particle", "eqd_median").value == pytest.approx(d * 2.0) and _q(nm, "particle", "eqd_median").unit == "nm"
    assert _q(um, "particle", "number_density").value == pytest.approx(1 / (100 * 100 * 0.25))
    assert _q(um, "particle", "number_density").unit == "1/µm²"
    assert _q(um, "particle", "area_fraction").value == _q(px, "particle", "area_fraction").value


def test_bias_is_prediction_minus_truth_in_pp():
    truth = np.zeros((100, 100), np.uint8)
    truth[:, :20] = 1  # 20 %
    pairs = {}
    for i, extra in enumerate([1, 3]):  # predictions 1 and 3 columns wider: +1 pp, +3 pp
        pred = truth.copy()
        pred[:, 20 : 20 + extra] = 1
        pairs[f"t{i}"] = (pred, truth, None)
    rows = {r.key: r for r in measurement_bias(pairs, NAMES)}
    af = rows["particle/area_fraction"]
    assert af.unit == "pp" and af.n == 2 and af.bias == pytest.approx(2.0) and af.spread == pytest.approx(np.sqrt(2))
    assert rows["matrix/area_fraction"].bias == pytest.approx(-2.0)


def test_batch_summary_leaves_flagged_images_out_and_t_interval():
    recs = []
    for i, (v, flag) in enumerate([(10.0, False), (12.0, False), (14.0, False), (90.0, True)]):
        recs.append(ImageRecord(f"i{i}", "", status="segmented", qc_flag=flag,
                                measurements=[Quantity("particle", "area_fraction", v, "%")]))
    recs.append(ImageRecord("bad", "", reason="unreadable"))
    (row,) = batch_summary(recs)
    assert row.mean == pytest.approx(12.0) and row.n == 3 and row.flagged == {"i3": 90.0}
    half = 4.302652729911275 * 2.0 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert row.lo == pytest.approx(12 - half) and row.hi == pytest.approx(12 + half)
    assert mean_interval([5.0]) == (5.0, None, None)


def test_class_never_predicted_where_present_is_named_not_learned():
    from matseg_nb.segment.summary import not_learned

    truth = np.zeros((20, 20), np.uint8)
    truth[2:5, 2:5], truth[10:12, 10:12] = 1, 2
    pred = truth.copy()
    pred[pred == 2] = 0  # class 2 ("pore") never predicted
    assert not_learned({"a": (pred, truth, None), "b": (pred, truth, None)}, NAMES) == [
        {"class_name": "pore", "n_images": 2}]
    assert not_learned({"a": (truth, truth, None)}, NAMES) == []


def test_object_areas_equal_regionprops_area_and_border_bbox():
    """The bincount areas and edge-pixel border test equal regionprops' area and bbox-at-the-edge."""
    from skimage.measure import label, regionprops_table

    from matseg_nb.segment.measure import object_areas

    for seed in range(12):
        b = np.random.default_rng(seed).random((97, 131)) > 0.3 + seed / 30
        t = regionprops_table(label(b, connectivity=2), properties=("area", "bbox"))
        border = (t["bbox-0"] == 0) | (t["bbox-1"] == 0) | (t["bbox-2"] == 97) | (t["bbox-3"] == 131)
        inner, edge = object_areas(b)
        assert np.array_equal(inner, t["area"][~border]) and np.array_equal(edge, t["area"][border])
