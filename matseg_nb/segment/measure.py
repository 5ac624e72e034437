"""Microstructure numbers from one label mask (class ids), with units.

Per class: ``area_fraction`` (% of the image's pixels). Per foreground class (id >= 1), over its
8-connected objects (``skimage.measure.label``, ``regionprops_table``):

* ``count``: objects that do not touch the image border; ``border_count``: those that do (counted apart);
* ``number_density``: ``count`` / image area (1/µm², or 1/px² without a pixel size);
* ``eqd_median``, ``eqd_q1``, ``eqd_q3``: equivalent diameter sqrt(4 A / pi) of the interior objects
  (regionprops' ``equivalent_diameter_area``), median and quartiles, in µm / nm / px. Objects cut by the
  border are left out (their true size is unknown); None when no interior object exists.

The length unit is µm when the pixel size is known (nm when asked for), else px; every
:class:`~matseg_nb.segment.folder.Quantity` carries its unit.
"""

from __future__ import annotations

import numpy as np

from matseg_nb.segment.folder import Quantity

#: factor from µm to each length unit
LENGTH_UNITS = {"µm": 1.0, "nm": 1000.0}

QUANTITIES = ("area_fraction", "count", "border_count", "number_density", "eqd_median", "eqd_q1", "eqd_q3")


def length_unit_for(pixel_sizes_um: list[float | None]) -> str:
    """``nm`` when the known pixel sizes are below 5 nm (median), ``µm`` when known, ``px`` when none is."""
    known = [p for p in pixel_sizes_um if p]
    if not known:
        return "px"
    return "nm" if float(np.median(known)) < 0.005 else "µm"


def object_areas(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(areas in px of the objects not touching the border, areas of those touching it) of a (H, W) bool mask,
    each in label order: 8-connected objects (``skimage.measure.label``), areas as pixel counts per label
    (``np.bincount``, regionprops' ``area`` without its per-object Python loop), an object touches the border
    when one of its pixels lies in the first or last row or column (regionprops' bbox at the edge)."""
    from skimage.measure import label

    lab = label(binary, connectivity=2)
    n = int(lab.max())
    if n == 0:
        return np.zeros(0), np.zeros(0)
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:].astype(np.float64)
    on_edge = np.zeros(n + 1, bool)
    on_edge[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = True
    border = on_edge[1:]
    return area[~border], area[border]


def measure_mask(mask: np.ndarray, class_names: list[str], pixel_size_um: float | None = None,
                 length_unit: str | None = None) -> list[Quantity]:
    """The quantities of a (H, W) class-id mask (see the module docstring). ``length_unit``: ``µm`` or
    ``nm`` (default µm) when ``pixel_size_um`` is given; ignored (px) without one."""
    mask = np.asarray(mask)
    h, w = mask.shape
    n_px = float(h * w)
    unit = (length_unit if length_unit in LENGTH_UNITS else "µm") if pixel_size_um else "px"
    scale = pixel_size_um * LENGTH_UNITS[unit] if pixel_size_um else 1.0  # px -> unit
    area_unit = "µm²" if pixel_size_um else "px²"
    area_total = n_px * (pixel_size_um**2 if pixel_size_um else 1.0)
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=len(class_names))
    out: list[Quantity] = []
    for cid, name in enumerate(class_names):
        out.append(Quantity(name, "area_fraction", 100.0 * float(counts[cid]) / n_px, "%"))
        if cid == 0:
            continue
        inner, border = object_areas(mask == cid)
        eqd = np.sqrt(4.0 * inner / np.pi) * scale
        q1, med, q3 = (float(v) for v in np.percentile(eqd, [25, 50, 75])) if eqd.size else (None, None, None)
        out += [Quantity(name, "count", float(inner.size), "1"),
                Quantity(name, "border_count", float(border.size), "1"),
                Quantity(name, "number_density", inner.size / area_total, f"1/{area_unit}"),
                Quantity(name, "eqd_median", med, unit),
                Quantity(name, "eqd_q1", q1, unit),
                Quantity(name, "eqd_q3", q3, unit)]
    return out
