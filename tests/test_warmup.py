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


def test_the_labels_warm_up_draws_once_unseen_and_leaves_nothing(qtbot, make_napari_viewer):
    """With no labels layer open, the dock draws one tiny transparent labels layer (the session's first labels
    draw, 270-310 ms, then happens while the dock opens, not in the first run) and removes it: the user's
    layers, selection and the widget's ground-truth choices are as before."""
    import numpy as np

    from napari_prunuclei.gui.warmup import WARM_LABELS_NAME
    from napari_prunuclei.gui.widget import PruneCompareWidget

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((64, 64, 3), np.uint8), name="tile", rgb=True)
    viewer.layers.selection.active = image
    w = PruneCompareWidget(viewer)
    viewer.window.add_dock_widget(w)
    warm = viewer.layers[WARM_LABELS_NAME]
    assert warm.opacity == 0.0 and warm.visible
    assert viewer.layers.selection.active is image and set(viewer.layers.selection) == {image}
    qtbot.waitUntil(lambda: WARM_LABELS_NAME not in viewer.layers, timeout=5_000)
    assert [layer.name for layer in viewer.layers] == ["tile"]
    assert viewer.layers.selection.active is image
    assert all(getattr(c, "name", None) != WARM_LABELS_NAME for c in w.truth.choices)


def test_the_labels_warm_up_is_skipped_when_a_labels_layer_is_open(viewer_widget):
    from napari_prunuclei.gui.warmup import WARM_LABELS_NAME

    viewer, _ = viewer_widget
    assert WARM_LABELS_NAME not in viewer.layers
