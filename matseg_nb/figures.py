"""Figures the package writes: :func:`figure_png` (the one matplotlib figure -> PNG bytes conversion,
:func:`save_figure` writes them atomically) and scale bars on image axes: a round length (1, 2 or 5 x 10^n) near a fifth of the image width,
drawn with its label (``50 µm``, ``500 nm``) by matplotlib's ``AnchoredSizeBar``.

The pixel size comes from the dataset (manifest ``pixel_size_um`` or the file's calibration, see
:meth:`matseg_nb.data.Dataset.pixel_size_um_of`); without one nothing is drawn, so an
uncalibrated figure never shows an invented length.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

TARGET_FRACTION = 0.2  # bar length / image width aimed at
_MANTISSAS = (1.0, 2.0, 5.0)
_UNITS = ((1e3, "mm"), (1.0, "µm"), (1e-3, "nm"), (1e-6, "pm"))


def round_length_um(width_um: float, target: float = TARGET_FRACTION) -> float:
    """The 1-2-5 x 10^n length (µm) closest, on a log scale, to ``target`` x ``width_um``.

    The chosen length is within a factor sqrt(2.5) of the target, i.e. 13-32 % of the width for the
    default 20 % (15-25 % whenever a 1-2-5 length falls there)."""
    if not (width_um > 0 and math.isfinite(width_um)):
        raise ValueError(f"expected a positive finite image width in µm, found {width_um}")
    aim = target * width_um
    exponent = math.floor(math.log10(aim))
    candidates = [m * 10.0 ** e for e in (exponent - 1, exponent, exponent + 1) for m in _MANTISSAS]
    return min(candidates, key=lambda length: abs(math.log(length / aim)))


def format_length(length_um: float) -> str:
    """``length_um`` in the unit that keeps the number in 1..999: 0.5 -> '500 nm', 2000 -> '2 mm'."""
    for factor, unit in _UNITS:
        if length_um >= factor * (1 - 1e-9):
            return f"{length_um / factor:.3g} {unit}"
    return f"{length_um / _UNITS[-1][0]:.3g} {_UNITS[-1][1]}"


def add_scale_bar(ax, pixel_size_um: float | None, width_px: int | None = None, *,
                  location: str = "lower right", color: str = "white") -> tuple[float, str] | None:
    """Draw a scale bar on ``ax`` (an image shown with ``imshow`` in pixel coordinates).

    ``pixel_size_um``: edge of one pixel in µm; None or non-positive = unknown: nothing is drawn and
    None returned. ``width_px``: image width, default the first image's on ``ax``. Returns
    (bar length in µm, label) when drawn."""
    if pixel_size_um is None or not (pixel_size_um > 0 and math.isfinite(pixel_size_um)):
        return None
    if width_px is None:
        if not ax.images:
            return None
        width_px = int(ax.images[0].get_array().shape[1])
    length_um = round_length_um(width_px * pixel_size_um)
    label = format_length(length_um)
    from matplotlib import font_manager
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    bar = AnchoredSizeBar(ax.transData, length_um / pixel_size_um, label, location, pad=0.3, color=color,
                          frameon=True, size_vertical=max(1.0, width_px / 150),
                          fontproperties=font_manager.FontProperties(size=8))
    bar.patch.set(facecolor="black", edgecolor="none", alpha=0.5)  # readable on bright or noisy images
    bar.set_gid("scale-bar")
    ax.add_artist(bar)
    return length_um, label


def figure_png(fig, dpi: float | None = None, tight: bool = False, close: bool = True) -> bytes:
    """The matplotlib figure ``fig`` as PNG bytes (``dpi`` default: the figure's; ``tight``: crop to the
    drawn extent); ``close`` frees the figure (pyplot keeps every open figure otherwise)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **({"dpi": dpi} if dpi is not None else {}),
                **({"bbox_inches": "tight"} if tight else {}))
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | os.PathLike, dpi: float | None = None, tight: bool = False) -> Path:
    """Write :func:`figure_png` of ``fig`` to ``path`` atomically (``matseg_nb.atomic``); returns the path."""
    from matseg_nb.atomic import atomic_write_bytes

    return atomic_write_bytes(path, figure_png(fig, dpi, tight))
