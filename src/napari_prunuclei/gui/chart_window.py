"""The dock's two charts, larger, in a window of their own: zoom and pan (matplotlib's toolbar) and, under the
pointer, the point's scheme, CR and value.

The dock's charts are a fixed picture about 320 px wide, where a sweep's "vs truth" curves crowd near dense's
line (pathologist, session 38). The window draws what the dock shows (the same functions, the same rows),
follows it after each new picture, and closes with the dock.
"""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_prunuclei.gui.plots import ChartsCanvas, plot_sparsity, plot_sweep

__all__ = ["ChartWindow", "open_chart_window", "point_text"]

#: the window's figure (inches at 100 dpi) and its font sizes (title, labels, ticks and legend)
FIGSIZE, TITLE_PT, LABEL_PT, TICK_PT = (12, 5.5), 12, 11, 10
#: how near (px) the pointer must be to a point for its values to show
PICK_PX = 8


def point_text(ax, line, index: int, sweep_axes: bool) -> str:
    """What a point says under the pointer: its curve's name, the CR (the nearest swept CR: the schemes are
    drawn a little to the side of it) or the layer, and its value as the axes' y label names it."""
    x, y = line.get_xdata()[index], line.get_ydata()[index]
    name = line.get_label()
    if name == "dense vs truth":  # (a line across the axes: its value only)
        return f"{name}: {ax.get_ylabel()} {y:.3f}"
    if sweep_axes:
        crs = [c for c in ax.get_xticks() if c > 0]
        cr = min(crs, key=lambda c: abs(math.log(c) - math.log(x))) if crs else x
        return f"{name}\nCR {cr:g}: {ax.get_ylabel()} {y:.3f}"
    return f"{name}\nlayer {int(x)}: {y:.1f} % pruned"


class ChartWindow(QWidget):
    """A window drawing ``charts``' sweep and sparsity again at a readable size (GUI thread)."""

    def __init__(self, charts: ChartsCanvas, parent: QWidget | None = None) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
        from matplotlib.figure import Figure

        super().__init__(parent, Qt.WindowType.Window)  # its own window, closed with the dock (its parent)
        self.setWindowTitle("napari-prunuclei: charts")
        self.charts = charts
        self.figure = Figure(figsize=FIGSIZE, dpi=100, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.ax_sweep, self.ax_sparsity = self.figure.subplots(1, 2)
        self.toolbar = NavigationToolbar2QT(self.canvas, self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas, 1)
        self.tip = None  # the annotation of the point under the pointer
        self.tip_of: tuple | None = None  # (line, index) it names
        self.drawn: dict | None = None  # the dock's snapshot drawn here
        self.canvas.mpl_connect("motion_notify_event", self.hover)
        charts.on_refresh.append(self.follow)
        self.destroyed.connect(lambda *_: charts.on_refresh.remove(self.follow) if self.follow in
                               charts.on_refresh else None)

    def follow(self) -> None:
        """The dock drew a new picture: drawn again here if the window is open."""
        if self.isVisible():
            self.update_from_dock()

    def update_from_dock(self) -> bool:
        """Draw what the dock shows, if it changed since last drawn; whether it drew."""
        shot = self.charts.snapshot()
        if self.drawn is not None and all(shot[k] is self.drawn[k] or shot[k] == self.drawn[k] for k in shot):
            return False
        self.drawn = shot
        self.tip = self.tip_of = None  # (cleared with its axes)
        for ax, data, title, plot in ((self.ax_sweep, shot["sweep"], shot["sweep_title"], self._plot_sweep),
                                      (self.ax_sparsity, shot["sparsity"], shot["sparsity_title"], plot_sparsity)):
            if data is None:  # nothing drawn there in the dock: its title, no ticks
                ax.clear()
                ax.set_title(title)
                ax.set_xticks([]), ax.set_yticks([])
            else:
                plot(ax, *data)
            self._larger(ax)
        self.toolbar.update()  # (zoom history belongs to the old curves)
        self.canvas.draw_idle()
        return True

    def _plot_sweep(self, ax, rows, metric, where) -> None:
        plot_sweep(ax, rows, metric, where, self.drawn["curves"])

    @staticmethod
    def _larger(ax) -> None:
        """The dock's small print at the window's size."""
        ax.title.set_fontsize(TITLE_PT)
        ax.xaxis.label.set_fontsize(LABEL_PT)
        ax.yaxis.label.set_fontsize(LABEL_PT)
        ax.tick_params(labelsize=TICK_PT)
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_fontsize(TICK_PT)

    def hover(self, event) -> None:
        """Name the point under the pointer (its curve, CR or layer, and value), or none."""
        ax = event.inaxes
        hit, best = None, PICK_PX  # the nearest point (not a curve's segment) within PICK_PX of the pointer
        for line in ax.get_lines() if ax is not None else ():
            if line.get_label().startswith("_"):  # (the one-shot crosses: their curve's point names them)
                continue
            xy = line.get_transform().transform(line.get_xydata())
            distance = np.hypot(xy[:, 0] - event.x, xy[:, 1] - event.y)
            if len(distance) and distance.min() <= best:
                hit, best = (line, int(distance.argmin())), distance.min()
        if hit == self.tip_of:
            return
        if self.tip is not None:
            self.tip.remove()
        self.tip, self.tip_of = None, hit
        if hit is not None:
            line, index = hit
            text = point_text(ax, line, index, ax is self.ax_sweep)
            self.tip = ax.annotate(text, (line.get_xdata()[index], line.get_ydata()[index]), xytext=(10, 10),
                                   textcoords="offset points", fontsize=TICK_PT,
                                   bbox={"boxstyle": "round", "fc": "lightyellow", "alpha": 0.95})
        self.canvas.draw_idle()


def open_chart_window(charts: ChartsCanvas, parent: QWidget, window: ChartWindow | None) -> ChartWindow:
    """Show the charts' window (made on first use, ``window`` after), drawn as the dock's charts are now."""
    if window is None:
        window = ChartWindow(charts, parent)
        window.resize(1200, 620)
    window.show()
    window.raise_()
    window.activateWindow()
    window.update_from_dock()
    return window
