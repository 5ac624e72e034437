"""Pure painter model (no widgets): strokes in, mask A out; undo, clear, save.

A stroke is a list of (x, y) points in image pixels (x = column, y = row), a brush radius (px)
and an erase flag. Segments between consecutive points are filled with discs of that radius, so
fast mouse moves leave no gaps. Views (ipycanvas, napari) translate events into these calls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matseg_nb.explain.annotation import save_annotation


class PainterModel:
    """Mask (H, W) bool edited by brush/eraser strokes with an undo stack."""

    def __init__(self, shape: tuple[int, int], image_path: str | Path | None = None, max_undo: int = 50):
        self.shape = (int(shape[0]), int(shape[1]))
        self.image_path = image_path
        self.mask = np.zeros(self.shape, dtype=bool)
        self.max_undo = max_undo
        self._undo: list[np.ndarray] = []
        self._stroke: tuple[float, bool] | None = None
        self._last: tuple[float, float] | None = None
        self.listeners: list = []  # callables(model) notified after every change

    # --- strokes -----------------------------------------------------------------------
    def begin_stroke(self, x: float, y: float, radius: float = 5.0, erase: bool = False) -> None:
        """Start a stroke at (x, y) px; the previous mask is pushed on the undo stack."""
        self._push()
        self._stroke = (float(radius), bool(erase))
        self._last = (float(x), float(y))
        self._disc(x, y)
        self._notify()

    def extend_stroke(self, x: float, y: float) -> None:
        """Continue the current stroke to (x, y) px (ignored when no stroke is active)."""
        if self._stroke is None or self._last is None:
            return
        x0, y0 = self._last
        radius = self._stroke[0]
        n = max(1, int(np.ceil(np.hypot(x - x0, y - y0) / max(radius / 2.0, 0.5))))
        for t in np.linspace(0.0, 1.0, n + 1)[1:]:
            self._disc(x0 + t * (x - x0), y0 + t * (y - y0))
        self._last = (float(x), float(y))
        self._notify()

    def end_stroke(self) -> None:
        self._stroke = None
        self._last = None

    def stroke(self, points, radius: float = 5.0, erase: bool = False) -> np.ndarray:
        """Apply a whole stroke (list of (x, y) px) and return the mask."""
        points = list(points)
        if not points:
            return self.mask
        self.begin_stroke(points[0][0], points[0][1], radius, erase)
        for x, y in points[1:]:
            self.extend_stroke(x, y)
        self.end_stroke()
        return self.mask

    # --- history -----------------------------------------------------------------------
    def undo(self) -> bool:
        """Restore the mask before the last stroke or clear; False when nothing to undo."""
        if not self._undo:
            return False
        self.mask = self._undo.pop()
        self._notify()
        return True

    def clear(self) -> None:
        """Empty the mask (undoable)."""
        self._push()
        self.mask = np.zeros(self.shape, dtype=bool)
        self._notify()

    def set_mask(self, mask: np.ndarray) -> None:
        """Replace the mask (undoable), e.g. with a loaded annotation."""
        m = np.asarray(mask) > 0
        if m.shape != self.shape:
            raise ValueError(f"mask shape {m.shape} != painter shape {self.shape}")
        self._push()
        self.mask = m.copy()
        self._notify()

    def save(self, png: str | Path, tool: str = "painter", notes: str = "") -> Path:
        """Save the mask as PNG + JSON (see :mod:`.annotation`)."""
        return save_annotation(self.mask, png, self.image_path, tool=tool, notes=notes)

    # --- internals ---------------------------------------------------------------------
    def _push(self) -> None:
        self._undo.append(self.mask.copy())
        del self._undo[: -self.max_undo]

    def _disc(self, x: float, y: float) -> None:
        radius, erase = self._stroke if self._stroke else (5.0, False)
        h, w = self.shape
        r = max(float(radius), 0.5)
        y0, y1 = max(0, int(np.floor(y - r))), min(h, int(np.ceil(y + r)) + 1)
        x0, x1 = max(0, int(np.floor(x - r))), min(w, int(np.ceil(x + r)) + 1)
        if y0 >= y1 or x0 >= x1:
            return
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disc = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        self.mask[y0:y1, x0:x1][disc] = not erase

    def _notify(self) -> None:
        for fn in list(self.listeners):
            fn(self)
