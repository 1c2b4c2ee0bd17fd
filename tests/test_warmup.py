"""The dock's warm-up of napari's first-time costs (gui/warmup.py)."""

import pytest

pytestmark = pytest.mark.gui


def _wait(qtbot, w, timeout=60_000):
    qtbot.waitUntil(lambda: not w.busy, timeout=timeout)


def test_the_canvas_text_warm_up_leaves_the_overlay_as_it_was(qtbot, viewer_widget):
    """The dock draws the canvas text once, transparent, so the first side-by-side toggle does not make the
    glyphs (430 ms); afterwards the overlay is hidden, empty and in its own colour again, and the cell names
    of side by side show as before."""
    viewer, w = viewer_widget
    overlay = viewer.canvas.overlays.text
    qtbot.waitUntil(lambda: not overlay.visible, timeout=5_000)
    assert overlay.text == "" and overlay.color is None
    assert w.start_run() is not None
    _wait(qtbot, w)
    w.side_by_side.value = True
    _wait(qtbot, w)
    assert overlay.visible and overlay.text.startswith("left: B") and overlay.color is None
