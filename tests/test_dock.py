"""The dock napari opens from its Plugins menu (gui/dock.py)."""

import pytest

pytestmark = pytest.mark.gui


def test_the_plugins_menu_dock_opens_before_torch_is_imported():
    """Reviewer: opening the dock froze the viewer 1.3-1.5 s: the widget's modules (torch, the models' code) were
    imported on the GUI thread. The dock is on screen at once; the code comes in a thread, then the widget."""
    import subprocess
    import sys

    code = """
import sys, time, numpy as np, napari
from qtpy.QtWidgets import QApplication
v = napari.Viewer(show=False)
v.add_image(np.zeros((64, 64, 3), np.uint8), name="tile", rgb=True)
_, shell = v.window.add_plugin_dock_widget("napari-prunuclei", "Pruned vs dense nuclei")
at_once = ("torch" in sys.modules, shell.widget is None)
end = time.time() + 120
while shell.widget is None and shell.error is None and time.time() < end:
    QApplication.processEvents()
    time.sleep(0.01)
print(at_once, type(shell.widget).__name__, shell.error, [c.name for c in shell.widget.image.choices])
v.close()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "(False, True) PruneCompareWidget None ['tile']"


def test_a_failed_import_is_said_in_the_dock(qtbot, make_napari_viewer, monkeypatch):
    import builtins

    from napari_prunuclei.gui import dock

    real = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "napari_prunuclei.gui.widget":
            raise ImportError("no torch here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    shell = dock.PruneCompareDock(make_napari_viewer())
    qtbot.addWidget(shell)
    qtbot.waitUntil(lambda: shell.error is not None, timeout=10_000)
    qtbot.waitUntil(lambda: "could not load its code: ImportError: no torch here" in shell.note.text(), timeout=10_000)
    assert shell.widget is None


def test_closing_the_dock_takes_its_layers_and_a_new_dock_starts_clean(qtbot, make_napari_viewer):
    """Reviewer: a dock closed and opened again left the last run's layers; the next run mixed with them."""
    from napari_prunuclei.gui.samples import synthetic_sample

    viewer = make_napari_viewer()
    for data, meta, kind in synthetic_sample():
        getattr(viewer, f"add_{kind}")(data, **meta)
    mine = list(viewer.layers)
    dock, shell = viewer.window.add_plugin_dock_widget("napari-prunuclei", "Pruned vs dense nuclei")
    qtbot.waitUntil(lambda: shell.widget is not None, timeout=60_000)
    w = shell.widget
    w.image.value = viewer.layers["synthetic H&E"]
    assert w.start_run() is not None
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    assert len(viewer.layers) > len(mine)
    w.chart_window_btn.clicked()
    assert w.chart_window.isVisible()
    viewer.window.remove_dock_widget(dock)  # the dock's close button
    assert list(viewer.layers) == mine and w.result is None
    assert not w.chart_window.isVisible()  # the charts' window closes with its dock (review, session 39)
    assert not any("Shift+R" in str(k) or "Shift+G" in str(k) for k in viewer.keymap)  # its shortcuts gone
    # opened again (its code already in): the widget fills the dock, no stretch above it (pathologist, session 34:
    # the tabs started half-way down)
    dock, shell = viewer.window.add_plugin_dock_widget("napari-prunuclei", "Pruned vs dense nuclei")
    qtbot.waitUntil(lambda: shell.widget is not None, timeout=60_000)
    layout = shell.layout()
    assert not any(layout.itemAt(i).spacerItem() is not None for i in range(layout.count()))


def test_a_dock_closed_while_its_code_loads_makes_no_widget(qtbot, make_napari_viewer, monkeypatch):
    """Hostile pass: a dock closed before the import ended still made a widget (with the viewer's events)."""
    import threading

    from napari_prunuclei.gui import dock

    gate = threading.Event()
    real = dock.PruneCompareDock._import
    monkeypatch.setattr(dock.PruneCompareDock, "_import", lambda self: (gate.wait(30), real(self)))
    viewer = make_napari_viewer()
    widget, shell = viewer.window.add_plugin_dock_widget("napari-prunuclei", "Pruned vs dense nuclei")
    viewer.window.remove_dock_widget(widget)  # closed while loading
    gate.set()
    qtbot.waitUntil(lambda: not shell._timer.isActive(), timeout=30_000)
    assert shell.widget is None
