"""Accuracy-vs-latency plot: encoder labels never overlap, the latency axis is log only across decades."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from matseg_nb.compare.plots import LOG_AXIS_RATIO, accuracy_vs_latency, accuracy_vs_latency_figure


def _cells(latencies: list[float], ious: list[float]) -> pd.DataFrame:
    """One dataset, a grid of 2 encoders x decoders; points may coincide (the overlapping case)."""
    rows = []
    for k, (lat, iou) in enumerate(zip(latencies, ious, strict=True)):
        rows.append({"dataset": "ds", "encoder": f"encoder_{k % 2}", "decoder": f"Decoder{k // 2}", "n_seeds": 1,
                     "latency_ms_per_image": lat, "iou_img_mean": iou, "iou_ci_lo": iou - 0.05,
                     "iou_ci_hi": iou + 0.05})
    return pd.DataFrame(rows)


def _label_boxes(fig):
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in ax.texts]


def test_labels_of_coinciding_points_do_not_overlap():
    cells = _cells([10.0, 10.0, 10.5, 10.2, 11.0, 10.0], [0.50, 0.50, 0.51, 0.50, 0.49, 0.505])
    fig = accuracy_vs_latency_figure(cells)
    boxes = _label_boxes(fig)
    assert len(boxes) == 6
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
    legend = fig.axes[0].get_legend().get_window_extent(fig.canvas.get_renderer())
    assert not any(legend.overlaps(b) for b in boxes)
    plt.close(fig)


@pytest.mark.parametrize(("latencies", "log"), [([2.0, 30.0, 5.0, 8.0], True), ([20.0, 30.0, 25.0, 39.0], False),
                                                 ([1.0, LOG_AXIS_RATIO, 3.0, 4.0], True)])
def test_latency_axis_is_log_only_when_it_spans_a_decade(latencies, log):
    fig = accuracy_vs_latency_figure(_cells(latencies, [0.4, 0.5, 0.6, 0.7]))
    assert (fig.axes[0].get_xscale() == "log") is log
    plt.close(fig)


def test_png_is_written(tmp_path):
    path = accuracy_vs_latency(_cells([5.0, 50.0], [0.3, 0.6]), tmp_path / "lat.png")
    assert path.stat().st_size > 5_000
