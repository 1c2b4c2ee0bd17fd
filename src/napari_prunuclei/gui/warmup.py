"""Costs napari pays the first time it draws something, paid while the dock opens instead of during work."""

from __future__ import annotations

__all__ = ["import_for_labels", "stop_warm_up", "warm_up", "warm_canvas_text"]

#: every character the canvas text of side by side uses (the cell names: models, CRs, schemes)
GLYPHS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ·|:-()"
#: characters drawn per paint (vispy makes a glyph in about 4 ms here: all in one paint stalled 270 ms)
GLYPHS_PER_PAINT = 4
#: the time given to one paint before the next warm-up step (ms)
PAINT_MS = 100


#: modules napari imports the first time a labels layer is made (its features table): a job's worker imports
#: them (:func:`import_for_labels`), so the first run's layers do not (pandas alone took 0.5 s of the GUI thread)
LABELS_IMPORTS = ("pandas",)


def import_for_labels() -> None:
    """Import what napari's first labels layer needs (call it in a worker thread; nothing to do once imported)."""
    import importlib

    for name in LABELS_IMPORTS:
        importlib.import_module(name)


def warm_up(viewer) -> None:
    """napari's first-draw costs paid after the dock is made, a little a turn: the canvas text's glyphs (the cell
    names of side by side), a few a paint. (The first labels layer's imports happen in the first job's worker.)"""
    from qtpy.QtCore import QTimer

    QTimer.singleShot(PAINT_MS, lambda: warm_canvas_text(viewer))


#: the canvas text overlays being warmed up (by ``id``), and how each is given back
_WARMING: dict = {}


def stop_warm_up(viewer) -> None:
    """Give the canvas text overlay back now (hidden, empty, its colour and size) if its warm-up still runs: a
    run's cell names are about to be shown, and must not take the warm-up's state for the user's."""
    restore = _WARMING.get(id(viewer.canvas.overlays.text))
    if restore is not None:
        restore()


def warm_canvas_text(viewer) -> None:
    """Draw the viewer's canvas text overlay, transparent, :data:`GLYPHS_PER_PAINT` characters a paint: vispy
    makes each character's glyph the first time it is drawn, which stalled the first side-by-side toggle of a
    session 430 ms (the cell names). The overlay is hidden, emptied and given its colour and size back after the
    last paint, or at once by :func:`stop_warm_up`; a text set otherwise meanwhile is left as it is (only the
    colour is given back)."""
    from qtpy.QtCore import QTimer

    overlay = viewer.canvas.overlays.text
    key = id(overlay)
    if overlay.visible or overlay.text or key in _WARMING:
        return
    before = (overlay.color, overlay.font_size, getattr(overlay, "box", False))
    # the first paint also builds the text's shaders: one character only
    chunks = [GLYPHS[:1]] + [GLYPHS[i:i + GLYPHS_PER_PAINT] for i in range(1, len(GLYPHS), GLYPHS_PER_PAINT)]
    overlay.color, overlay.font_size = (0, 0, 0, 0), 9
    if before[2]:
        overlay.box = False  # (its dark box showed in the canvas's corner while the glyphs were drawn)

    def restore() -> None:
        _WARMING.pop(key, None)
        overlay.visible, overlay.text = False, ""
        overlay.color, overlay.font_size = before[:2]
        if before[2]:
            overlay.box = True

    def draw(i: int) -> None:
        if _WARMING.get(key) is not restore:  # stopped (stop_warm_up)
            return
        if i and overlay.text != chunks[i - 1]:  # another text was set meanwhile: it is left as it is
            _WARMING.pop(key, None)
            overlay.color = before[0]
            if before[2]:
                overlay.box = True
            return
        if i == len(chunks):
            restore()
            return
        overlay.text, overlay.visible = chunks[i], True
        QTimer.singleShot(PAINT_MS, lambda: draw(i + 1))  # after its paint

    _WARMING[key] = restore
    draw(0)
