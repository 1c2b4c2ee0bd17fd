"""The dock napari opens from its Plugins menu: on screen at once, the widget made when its code is imported.

The widget's modules import torch and the models' code (1.3-2 s): imported on the GUI thread as napari opened the
dock, they froze the viewer that long. They are imported in a thread here; the widget is made on the GUI thread
when they are in."""

import threading

from napari.viewer import Viewer
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

__all__ = ["PruneCompareDock", "POLL_MS"]

#: how often the dock looks whether the import has ended (ms)
POLL_MS = 50


class PruneCompareDock(QWidget):
    """A placeholder that holds the :class:`~napari_prunuclei.gui.widget.PruneCompareWidget` (``.widget``) once
    its modules are imported; ``note`` says it is loading, or why the import failed."""

    def __init__(self, viewer: Viewer) -> None:  # (a class, not a string: napari gives the viewer by it)
        super().__init__()
        self.viewer = viewer
        self.widget = None
        self.error: str | None = None
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)  # the dock's height, whole
        self.note = QLabel("Loading the models' code (torch)...")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        self._docked = self._closed = False
        self._done = threading.Event()
        threading.Thread(target=self._import, name="prunuclei import", daemon=True).start()
        self._timer = QTimer(self)  # owned by the dock: gone with it
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._timer.start()

    def _import(self) -> None:
        try:
            import napari_prunuclei.gui.widget  # noqa: F401 - its modules, imported off the GUI thread
        except Exception as e:  # noqa: BLE001 - said in the dock rather than raised in a thread
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self._done.set()

    def _poll(self) -> None:
        if not self._done.is_set():
            return
        self._timer.stop()
        if self._closed:  # the dock was closed before the code was in: no widget made
            return
        if self.error is not None:
            self.note.setText(f"napari-prunuclei could not load its code: {self.error}")
            return
        from napari_prunuclei.gui.widget import PruneCompareWidget

        self.widget = PruneCompareWidget(self.viewer)
        layout = self.layout()
        for i in reversed(range(layout.count())):  # napari's stretch under a dock of no vertical policy took half
            if layout.itemAt(i).spacerItem() is not None:  # of it when the dock was opened again (pathologist)
                layout.removeItem(layout.itemAt(i))
        layout.addWidget(self.widget.native, 1)  # the whole dock (it sat centred, moving as the status grew)
        self.note.hide()

    def reset_choices(self, *_) -> None:
        """napari calls this when layers are added, removed, reordered or renamed: the widget's layer boxes."""
        if self.widget is not None:
            self.widget.reset_choices()

    def event(self, event) -> bool:
        """Closed (napari takes the dock's widget out of its dock): the run's layers and scratch stores go with it,
        and a job still running is cancelled, so a dock opened again never finds another widget's layers."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif getattr(self, "_docked", False):
                self._closed = True
                if self.widget is not None:
                    from napari_prunuclei.gui.widget import SHORTCUTS

                    self.widget.cancel()
                    self.widget.clear()
                    if self.widget.chart_window is not None:  # (it outlived the dock: review, session 39)
                        self.widget.chart_window.close()
                    for key in SHORTCUTS:  # the closed widget's shortcuts (Ctrl+Shift+R ran it, unseen)
                        self.viewer.bind_key(key, None, overwrite=True)
        return super().event(event)
