"""The dock's warm-up of napari's first-time costs (gui/warmup.py)."""

import pytest

pytestmark = pytest.mark.gui


def _wait(qtbot, w, timeout=60_000):
    qtbot.waitUntil(lambda: not w.busy, timeout=timeout)


def test_the_canvas_text_warm_up_leaves_the_overlay_as_it_was(qtbot, viewer_widget):
    """The dock draws the canvas text, transparent, a few characters a paint, so the first side-by-side toggle
    does not make the glyphs (430 ms); afterwards the overlay is hidden, empty and in its own colour again, and
    the cell names of side by side show as before."""
    from napari_prunuclei.gui.warmup import GLYPHS

    viewer, w = viewer_widget
    overlay = viewer.canvas.overlays.text
    texts = []
    overlay.events.text.connect(lambda e: texts.append(overlay.text))
    qtbot.waitUntil(lambda: "".join(t for t in texts if t) == GLYPHS and not overlay.visible, timeout=30_000)
    assert overlay.text == "" and overlay.color is None
    assert w.start_run() is not None
    _wait(qtbot, w)
    w.side_by_side.value = True
    _wait(qtbot, w)
    assert overlay.visible and overlay.text.startswith("left: B") and overlay.color is None


def test_side_by_side_during_the_warm_up_leaves_no_stray_text(qtbot, viewer_widget):
    """Reviewer: side by side turned on while the glyphs were being drawn saved the warm-up's text as the user's,
    and turning it off showed a chunk of letters on the canvas."""
    from napari_prunuclei.gui.warmup import GLYPHS_PER_PAINT, warm_canvas_text

    viewer, w = viewer_widget
    overlay = viewer.canvas.overlays.text
    assert w.start_run() is not None
    _wait(qtbot, w)
    qtbot.waitUntil(lambda: not overlay.visible, timeout=30_000)  # the dock's own warm-up done
    warm_canvas_text(viewer)  # a warm-up under way, as when a run ends before the dock's is done
    qtbot.waitUntil(lambda: len(overlay.text) == GLYPHS_PER_PAINT, timeout=30_000)
    w.side_by_side.value = True
    _wait(qtbot, w)
    assert overlay.text.startswith("left: B") and overlay.font_size == 9 and overlay.color is None
    w.side_by_side.value = False
    _wait(qtbot, w)
    qtbot.wait(300)  # (a warm-up step that was due comes and goes)
    assert not overlay.visible and overlay.text == "" and overlay.color is None


def test_the_dock_opens_without_importing_pandas_or_matplotlib_on_the_gui_thread(make_napari_viewer):
    """The dock's opening stalled the viewer 1.4 s: napari's first labels layer (importing pandas, 0.5 s) and the
    charts (importing matplotlib, 0.6 s) were made as it opened. Neither is made nor imported by the opening now:
    the first job's worker imports pandas, the charts are made in a thread when first shown."""
    import subprocess
    import sys

    code = """
import sys, numpy as np, napari
v = napari.Viewer(show=False)
v.add_image(np.zeros((64, 64, 3), np.uint8), name="tile", rgb=True)
had = {m for m in ("pandas", "matplotlib") if m in sys.modules}
from napari_prunuclei.gui.widget import PruneCompareWidget
w = PruneCompareWidget(v)
v.window.add_dock_widget(w)
print(sorted({m for m in ("pandas", "matplotlib") if m in sys.modules} - had), [l.name for l in v.layers])
v.close()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[] ['tile']"


def test_a_job_worker_imports_what_the_first_labels_layer_needs(qtbot, viewer_widget, monkeypatch):
    import threading

    from napari_prunuclei.gui import runs

    viewer, w = viewer_widget
    on_main = []
    monkeypatch.setattr(runs, "import_for_labels",
                        lambda: on_main.append(threading.current_thread() is threading.main_thread()))
    assert w.start_run() is not None
    _wait(qtbot, w)
    assert on_main == [False]  # once, in the job's worker


def test_the_glyphs_are_drawn_a_few_a_paint_and_every_one_is_drawn(qtbot, make_napari_viewer):
    """All the cell names' characters in one paint stalled the dock's opening 270 ms."""
    from napari_prunuclei.gui.warmup import GLYPHS, GLYPHS_PER_PAINT, warm_canvas_text

    viewer = make_napari_viewer()
    overlay = viewer.canvas.overlays.text
    texts, boxed = [], []
    overlay.events.text.connect(lambda e: (texts.append(overlay.text), boxed.append(overlay.box)))
    box = overlay.box
    warm_canvas_text(viewer)
    qtbot.waitUntil(lambda: "".join(t for t in texts if t) == GLYPHS and not overlay.visible, timeout=30_000)
    drawn = [t for t in texts if t]
    assert "".join(drawn) == GLYPHS and max(map(len, drawn)) <= GLYPHS_PER_PAINT
    assert overlay.text == "" and overlay.color is None and overlay.box == box
    assert not any(boxed[:-1])  # reviewer: the overlay's dark box showed in the canvas corner meanwhile


def test_a_text_set_during_the_glyphs_warm_up_is_left_alone(qtbot, make_napari_viewer):
    from napari_prunuclei.gui.warmup import PAINT_MS, warm_canvas_text

    viewer = make_napari_viewer()
    overlay = viewer.canvas.overlays.text
    warm_canvas_text(viewer)
    overlay.text = "left: B · dense | right: A · CR20"  # a text set meanwhile, not through stop_warm_up
    qtbot.waitUntil(lambda: overlay.color is None, timeout=30_000)
    qtbot.wait(3 * PAINT_MS)
    assert overlay.visible and overlay.text.startswith("left: B") and overlay.color is None
