"""Scale bars: a 1-2-5 length near a fifth of the width, its label, drawn at the right pixel length,
and nothing drawn when the pixel size is unknown."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from matseg_nb.figures import add_scale_bar, format_length, round_length_um


@pytest.mark.parametrize(("width_um", "expected"), [(51.2, 10.0), (100.0, 20.0), (30.0, 5.0), (0.256, 0.05),
                                                     (4000.0, 1000.0), (7.0, 1.0)])
def test_round_length_cases(width_um, expected):
    assert round_length_um(width_um) == pytest.approx(expected)


def test_round_length_is_1_2_5_and_near_a_fifth_for_any_width():
    for width in np.geomspace(1e-3, 1e5, 400):
        length = round_length_um(float(width))
        mantissa = length / 10 ** math.floor(math.log10(length) + 1e-9)
        assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-6, (width, length)
        assert 0.2 / math.sqrt(2.5) - 1e-9 <= length / width <= 0.2 * math.sqrt(2.5) + 1e-9
    with pytest.raises(ValueError, match="positive finite"):
        round_length_um(0.0)


def test_format_length_units():
    assert format_length(0.5) == "500 nm" and format_length(2000.0) == "2 mm" and format_length(20.0) == "20 µm"
    assert format_length(1.0) == "1 µm" and format_length(0.002) == "2 nm"


def _render(pixel_size_um):
    fig = Figure(figsize=(2.56, 2.56), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(np.zeros((256, 256)), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    drawn = add_scale_bar(ax, pixel_size_um)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return drawn, np.asarray(canvas.buffer_rgba())[..., :3]


def test_bar_is_drawn_at_the_pixel_length_of_its_label():
    drawn, rgb = _render(0.1)  # 256 px x 0.1 µm = 25.6 µm -> 5 µm = 50 px
    assert drawn == (pytest.approx(5.0), "5 µm")
    white = (rgb.min(axis=-1) > 200)[128:]  # lower half: the bar and its label
    longest = max(_longest_run(row) for row in white)
    assert abs(longest - 50) <= 2
    cols = np.nonzero(white.any(axis=0))[0]
    assert cols.min() > 128  # lower right


def test_unknown_pixel_size_draws_nothing():
    for size in (None, 0.0, float("nan")):
        drawn, rgb = _render(size)
        assert drawn is None and rgb.max() < 10  # the black image only


def _longest_run(row: np.ndarray) -> int:
    best = run = 0
    for v in row:
        run = run + 1 if v else 0
        best = max(best, run)
    return best
