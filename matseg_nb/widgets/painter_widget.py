"""ipycanvas brush/eraser over an image, a view of :class:`matseg_nb.explain.PainterModel`.

Works in JupyterLab and Voilà. Layer 0 of a ``MultiCanvas`` shows the image, layer 1 the mask A
(semi-transparent); mouse events go to the painter model (canvas pixels = image pixels; the
canvas is scaled for display with CSS only). Controls: brush/eraser toggle, brush size, undo,
clear, save (PNG + JSON next to it, see :mod:`matseg_nb.explain.annotation`).

>>> w = PainterWidget(image_chw, save_path="A.png", image_path="img.tif"); w.widget  # display
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as ipw
import numpy as np
from ipycanvas import MultiCanvas

from matseg_nb.explain.painter import PainterModel

OVERLAY_RGBA = (255, 40, 40, 140)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) float -> (H, W, 3) uint8 stretched to its 0.5/99.5 percentiles."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[0] if img.shape[0] != 3 else np.moveaxis(img, 0, -1)
    lo, hi = np.percentile(img, [0.5, 99.5])
    img = np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return (255 * img).astype(np.uint8)


class PainterWidget:
    """Brush/eraser canvas over ``image`` (C, H, W) editing a :class:`PainterModel`."""

    def __init__(self, image: np.ndarray, save_path: str | Path = "annotation.png",
                 image_path: str | Path | None = None, model: PainterModel | None = None,
                 display_width: int = 640, brush: int = 6):
        rgb = to_rgb_uint8(image)
        h, w = rgb.shape[:2]
        self.model = model or PainterModel((h, w), image_path=image_path)
        self.canvas = MultiCanvas(2, width=w, height=h)
        scale = min(1.0, display_width / w) if w > display_width else max(1.0, min(4.0, display_width / w))
        self.canvas.layout.width = f"{int(w * scale)}px"
        self.canvas.layout.height = f"{int(h * scale)}px"
        self.canvas[0].put_image_data(rgb, 0, 0)
        self.mode = ipw.ToggleButtons(options=["brush", "eraser"], value="brush", description="tool")
        self.size = ipw.IntSlider(value=brush, min=1, max=64, description="brush px")
        self.undo_button = ipw.Button(description="undo", icon="undo")
        self.clear_button = ipw.Button(description="clear", icon="trash")
        self.save_path = ipw.Text(value=str(save_path), description="save to")
        self.save_button = ipw.Button(description="save", icon="save", button_style="success")
        self.status = ipw.HTML("")
        self._down = False
        top = self.canvas[-1]
        top.on_mouse_down(self.on_mouse_down)
        top.on_mouse_move(self.on_mouse_move)
        top.on_mouse_up(self.on_mouse_up)
        top.on_mouse_out(self.on_mouse_up)
        self.undo_button.on_click(lambda _b: self.undo())
        self.clear_button.on_click(lambda _b: self.clear())
        self.save_button.on_click(lambda _b: self.save())
        controls = ipw.HBox([self.mode, self.size, self.undo_button, self.clear_button])
        self.widget = ipw.VBox([controls, self.canvas, ipw.HBox([self.save_path, self.save_button]), self.status])

    # --- mouse -> model ---------------------------------------------------------------
    def on_mouse_down(self, x: float, y: float) -> None:
        self._down = True
        self.model.begin_stroke(x, y, radius=self.size.value, erase=self.mode.value == "eraser")
        self._dab(x, y)

    def on_mouse_move(self, x: float, y: float) -> None:
        if self._down:
            self.model.extend_stroke(x, y)
            self._dab(x, y)

    def on_mouse_up(self, x: float, y: float) -> None:
        if self._down:
            self._down = False
            self.model.end_stroke()
            self.redraw()

    # --- buttons ------------------------------------------------------------------------
    def undo(self) -> None:
        self.model.undo()
        self.redraw()

    def clear(self) -> None:
        self.model.clear()
        self.redraw()

    def save(self) -> Path | None:
        try:
            path = self.model.save(self.save_path.value)
        except Exception as err:  # noqa: BLE001 - shown to the user in the widget
            self.status.value = f"<span style='color:#b00'>save failed: {err}</span>"
            return None
        self.status.value = f"saved {int(self.model.mask.sum())} px to <code>{path}</code>"
        return path

    # --- drawing ------------------------------------------------------------------------
    def _dab(self, x: float, y: float) -> None:
        """Cheap incremental feedback during a stroke (full redraw on mouse up)."""
        if self.mode.value == "brush":
            layer = self.canvas[1]
            layer.fill_style = "rgba({}, {}, {}, {})".format(*OVERLAY_RGBA[:3], OVERLAY_RGBA[3] / 255)
            layer.fill_circle(x, y, self.size.value)

    def overlay_rgba(self) -> np.ndarray:
        """(H, W, 4) uint8 overlay of the model's mask."""
        out = np.zeros(self.model.shape + (4,), dtype=np.uint8)
        out[self.model.mask] = OVERLAY_RGBA
        return out

    def redraw(self) -> None:
        layer = self.canvas[1]
        layer.clear()
        layer.put_image_data(self.overlay_rgba(), 0, 0)


def explain_painter(ctx) -> PainterWidget:
    """A :class:`PainterWidget` over the explain stage's crop of the loop ``ctx`` (``matseg_nb.pipeline.DemoContext``,
    ``pipeline.explain_input``);
    **save** writes ``<loop>/explain/A.png``, to pass as ``stage_explain(ctx, mask=...)``."""
    from matseg_nb.errors import UserError
    from matseg_nb.pipeline import explain_input

    inp = explain_input(ctx)
    if inp is None:
        raise UserError(f"{ctx.layout.sweep}: expected a complete run to explain, found none")
    return PainterWidget(inp["image"], save_path=ctx.layout.explain / "A.png", image_path=inp["sample"].image)
