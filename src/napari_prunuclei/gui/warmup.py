"""Costs napari pays the first time it draws something, paid while the dock opens instead of during work."""

from __future__ import annotations

__all__ = ["WARM_LABELS_NAME", "warm_canvas_text", "warm_labels"]

#: every character the canvas text of side by side uses (the cell names: models, CRs, schemes)
GLYPHS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ·|:-()"

#: the name of the transparent labels layer drawn once while the dock opens
WARM_LABELS_NAME = "prunuclei warm-up (removed at once)"


def warm_canvas_text(viewer) -> None:
    """Draw the viewer's canvas text overlay once, transparent: vispy makes each character's glyph the first time
    it is drawn, which stalled the first side-by-side toggle of a session 430 ms (the cell names). The overlay is
    hidden, emptied and given its colour back after the first paint; a text of the user's is left alone."""
    from qtpy.QtCore import QTimer

    overlay = viewer.canvas.overlays.text
    if overlay.visible or overlay.text:
        return
    before = (overlay.color, overlay.font_size)
    overlay.color, overlay.font_size = (0, 0, 0, 0), 9
    overlay.text, overlay.visible = GLYPHS, True

    def restore() -> None:
        if overlay.text == GLYPHS:  # (a run's cell names set meanwhile keep theirs)
            overlay.visible, overlay.text = False, ""
        overlay.color, overlay.font_size = before

    QTimer.singleShot(300, restore)  # after the first paint


def warm_labels(viewer) -> None:
    """Draw one tiny, transparent labels layer drawn as the widget draws nuclei (outlines, a direct colormap), then
    remove it: the first labels layer drawn in a session (shaders and colour textures made) stalled the first
    run 270-310 ms when no labels layer was open. Nothing is done when a labels layer is open already; the
    user's selection is given back."""
    import numpy as np
    from napari.layers import Labels
    from napari.utils.colormaps import DirectLabelColormap
    from qtpy.QtCore import QTimer

    if any(isinstance(layer, Labels) for layer in viewer.layers):
        return
    selected, active = set(viewer.layers.selection), viewer.layers.selection.active
    layer = viewer.add_labels(np.eye(4, dtype=np.int32), name=WARM_LABELS_NAME, opacity=0.0,
                              colormap=DirectLabelColormap(color_dict={0: "transparent", None: "cyan"}))
    layer.contour = 1
    viewer.layers.selection.clear()
    viewer.layers.selection.update(selected)
    viewer.layers.selection.active = active

    def remove() -> None:
        if layer in viewer.layers:
            viewer.layers.remove(layer)

    QTimer.singleShot(300, remove)  # after the first paint
