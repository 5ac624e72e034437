"""The ipycanvas painter widget is wired to the painter model (mouse events simulated via the handlers)."""

from __future__ import annotations

import numpy as np
from _explain_helpers import rand_image

from matseg_nb.explain import load_annotation


def _widget(tmp_path):
    from matseg_nb.widgets.painter_widget import PainterWidget

    return PainterWidget(rand_image(1, 40, 60), save_path=tmp_path / "A.png", brush=3)


def test_mouse_events_paint_erase_undo_clear_save(tmp_path):
    w = _widget(tmp_path)
    top = w.canvas[-1]
    # through ipycanvas' own dispatchers, as the browser would trigger them
    top._mouse_down_callbacks(10.0, 20.0)
    top._mouse_move_callbacks(30.0, 20.0)
    top._mouse_up_callbacks(30.0, 20.0)
    assert w.model.mask[20, 10:31].all() and not w.model.mask[5, 5]
    w.mode.value = "eraser"
    w.size.value = 2
    w.on_mouse_down(20.0, 20.0)
    w.on_mouse_up(20.0, 20.0)
    assert not w.model.mask[20, 20] and w.model.mask[20, 10]
    w.undo_button.click()
    assert w.model.mask[20, 20]
    overlay = w.overlay_rgba()
    assert overlay.shape == (40, 60, 4) and overlay[20, 20, 3] > 0 and overlay[5, 5, 3] == 0
    saved = w.save()
    assert saved is not None and "saved" in w.status.value
    np.testing.assert_array_equal(load_annotation(saved, (40, 60)), w.model.mask)
    w.clear_button.click()
    assert not w.model.mask.any()


def test_moves_without_button_do_nothing(tmp_path):
    w = _widget(tmp_path)
    w.on_mouse_move(10.0, 10.0)
    w.on_mouse_up(10.0, 10.0)
    assert not w.model.mask.any()
    assert w.canvas.width == 60 and w.canvas.height == 40
