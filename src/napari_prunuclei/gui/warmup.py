"""Costs napari pays the first time it draws something, paid while the dock opens instead of during work."""

from __future__ import annotations

__all__ = ["warm_canvas_text"]

#: every character the canvas text of side by side uses (the cell names: models, CRs, schemes)
GLYPHS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ·|:-()"


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
