"""The benchmark cases run at small sizes and their two sides agree (outputs only; no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_metrics_case_agrees_with_torchmetrics():
    from benchmarks import metrics_bench

    (row,) = metrics_bench.run(quick=True)
    assert row["max_abs_diff"] < 1e-6 and row["ratio"] > 0


def test_qc_case_features_identical(tmp_path):
    from benchmarks import qc_prdc

    (row,) = qc_prdc.run(sizes=(1500,), queries=200)
    assert row["max_abs_diff"] == 0.0
    assert row["ours_peak_rss_mb"] > row["data_rss_mb"] > 0


@pytest.mark.parametrize("a_kind", ["box", "lines"])
def test_heatmap_case_equal_to_captum_and_literal(a_kind):
    from benchmarks import heatmap

    rows = heatmap.bench_model("unet", size=96, window=16, strides=(16,), n_sub=2, ppe=2, rounds=1, ours_rows=1,
                               time_incremental=True, a_kind=a_kind)
    by = {r["variant"].split(" s16 ", 1)[1]: r for r in rows}
    assert all(r["a_kind"] == a_kind for r in rows)
    assert set(by) == {"vs captum", "vs captum ppe=1", "vs captum channels_last", "vs literal",
                       "incremental encoder on vs captum", "no shortcuts vs captum", "region vs captum"}
    row = by["vs captum"]
    assert row["ours_sample_locations"] == 6  # one whole grid row
    assert all(v > 0 for v in row["fixed_s"].values()) and all(v > 0 for v in row["per_location_s"].values())
    h_max = by["vs captum"]["h_max"]
    assert h_max > 1e-3
    for r in rows:
        assert r["max_abs_diff"] <= 1e-4 * h_max + 1e-6, r
    assert by["vs captum"]["incremental"]
    assert by["vs captum"]["box_decoder"] == (a_kind == "box")  # A's box spans the image with lines


def test_train_throughput_cpu_fallback_writes_its_rows(tmp_path):
    import json

    from benchmarks import train_throughput

    assert train_throughput.main(["--device", "cpu", "--pairs", "resnet50:Unet", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("train_throughput_cpu_*.json")
    result = json.loads(path.read_text())
    assert result["cpu_fallback"] and len(result["results"]) == 1
    row = result["results"][0]
    assert row["images_per_s"] > 0 and 0.0 <= row["data_wait_share"] <= 1.0
