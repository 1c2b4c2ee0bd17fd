"""The dock's two charts, larger, in a window of their own: zoom and pan (matplotlib's toolbar) and, under the
pointer, the point's scheme, CR and value.

The dock's charts are a fixed picture about 320 px wide, where a sweep's "vs truth" curves crowd near dense's
line (pathologist, session 38). The window draws what the dock shows (the same functions, the same rows),
follows it while it is open (each chart drawn again only when the dock's changed: a zoom survives a run that
changes the other), and closes with the dock.
"""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_prunuclei.gui.plots import FONT_PT, ChartsCanvas, plot_sparsity, plot_sweep

__all__ = ["ChartWindow", "nearest_cr", "open_chart_window", "point_text"]

#: the window's figure (inches at 100 dpi)
FIGSIZE = (12, 5.5)
#: how near (logical px) the pointer must be to a point for its values to show
PICK_PX = 8
#: which parts of the dock's snapshot each chart is drawn from
PARTS = {"sweep": ("sweep", "sweep_title", "curves"), "sparsity": ("sparsity", "sparsity_title")}


def nearest_cr(ax, x: float) -> float:
    """The swept CR (a tick of the sweep's axes) nearest ``x`` on the log axis (``x`` itself without ticks)."""
    crs = [c for c in ax.get_xticks() if c > 0]
    return min(crs, key=lambda c: abs(math.log(c) - math.log(x))) if crs and x > 0 else x


def point_text(ax, line, index: int, sweep_axes: bool, y: float | None = None) -> str:
    """What a point says under the pointer: its curve's name, the CR (the nearest swept CR: the schemes are
    drawn a little to the side of it) or the layer, and its value as the axes' y label names it (``y``: of a
    line across the axes, which has no points)."""
    name = line.get_label()
    if y is not None:
        return f"{name}: {ax.get_ylabel()} {y:.3f}"
    x, y = line.get_xdata()[index], line.get_ydata()[index]
    if sweep_axes:
        return f"{name}\nCR {nearest_cr(ax, x):g}: {ax.get_ylabel()} {y:.3f}"
    same = [other.get_label() for other in ax.get_lines() if other is not line and not other.get_label().startswith("_")
            and index < len(other.get_ydata()) and round(other.get_ydata()[index], 1) == round(y, 1)]  # (as shown)
    return f"{' and '.join([name, *same])}\nlayer {int(x)}: {y:.1f} % pruned"


class ChartWindow(QWidget):
    """A window drawing ``charts``' sweep and sparsity again at a readable size (GUI thread)."""

    def __init__(self, charts: ChartsCanvas, parent: QWidget | None = None) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
        from matplotlib.figure import Figure

        super().__init__(parent, Qt.WindowType.Window)  # its own window, over napari's, closed with the dock
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
        self.drawn: dict = {}  # the dock's snapshot drawn here
        self.canvas.mpl_connect("motion_notify_event", self.hover)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Shown: it follows the dock's charts (and is drawn as they are now, whole: a zoom of before it was
        closed is not kept) until hidden or closed."""
        super().showEvent(event)
        if self.follow not in self.charts.on_refresh:
            self.charts.on_refresh.append(self.follow)
        self.follow()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Closed: opened again, it is drawn whole (minimised and restored, it keeps its zoom: review, 39)."""
        self.drawn = {}
        super().closeEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Hidden or closed: the dock no longer calls it (no Python slot on Qt's destroyed signal)."""
        if self.follow in self.charts.on_refresh:
            self.charts.on_refresh.remove(self.follow)
        super().hideEvent(event)

    def follow(self) -> bool:
        """Draw each chart the dock shows differently from here; whether any was drawn."""
        shot = self.charts.snapshot()
        changed = [part for part, keys in PARTS.items()
                   if not self.drawn or any(not (shot[k] is self.drawn[k] or shot[k] == self.drawn[k]) for k in keys)]
        if not changed:
            return False
        self.drawn = shot
        if self.tip is not None and self.tip.axes is not None:
            self.tip.remove()
        self.tip = self.tip_of = None
        for part in changed:
            ax = self.ax_sweep if part == "sweep" else self.ax_sparsity
            data = shot[part]
            if data is None:  # nothing drawn there in the dock: its title, no ticks
                ax.clear()
                ax.set_title(shot[f"{part}_title"], fontsize=FONT_PT[True][0])
                ax.set_xticks([]), ax.set_yticks([])
            elif part == "sweep":
                plot_sweep(ax, *data, curves=shot["curves"], large=True)
                ax.fmt_xdata = lambda x, ax=ax: f"CR {nearest_cr(ax, x):g}"  # (the ticks' labels gave none; the
                # schemes' points lie a little to the side of their CR: read as it, not "CR 3.67": session 39)
            else:
                plot_sparsity(ax, *data, large=True)
        if "sweep" in changed:
            self.toolbar.update()  # (the zoom history belongs to the old curves)
        self.canvas.draw_idle()
        return True

    def nearest(self, ax, event) -> tuple | None:
        """(line, index, y of a line across the axes or None) of the point nearest the pointer within PICK_PX."""
        best, hit = PICK_PX * self.canvas.device_pixel_ratio, None  # (Qt's events are in physical pixels)
        for line in ax.get_lines():
            if line.get_label().startswith("_"):  # (the one-shot crosses: their curve's point names them)
                continue
            xy = line.get_transform().transform(line.get_xydata())
            if line.get_transform() is not ax.transData:  # a line across the axes (dense vs truth): its height only
                d = abs(xy[0, 1] - event.y)
                if d <= best:
                    best, hit = d, (line, 0, float(line.get_ydata()[0]))
                continue
            distance = np.hypot(xy[:, 0] - event.x, xy[:, 1] - event.y)
            if np.isfinite(distance).any() and np.nanmin(distance) <= best:
                best, hit = np.nanmin(distance), (line, int(np.nanargmin(distance)), None)
        return hit

    def hover(self, event) -> None:
        """Name the point under the pointer (its curve, CR or layer, and value), or none."""
        ax = event.inaxes
        hit = self.nearest(ax, event) if ax is not None else None
        key = None if hit is None else hit[:2]
        if key == self.tip_of:
            return
        if self.tip is not None:
            self.tip.remove()
        self.tip, self.tip_of = None, key
        if hit is not None:
            line, index, across = hit
            xy = (event.xdata, across) if across is not None else (line.get_xdata()[index], line.get_ydata()[index])
            # the tip leans away from the nearer edges (inside the axes), and takes no room in the layout (it
            # squeezed the axes, the point moved from under the pointer and the tip flickered: review, session 39)
            fx, fy = ax.transAxes.inverted().transform(ax.transData.transform(xy))
            right, top = fx > 0.5, fy > 0.5
            self.tip = ax.annotate(point_text(ax, line, index, ax is self.ax_sweep, across), xy,
                                   xytext=(-12 if right else 12, -12 if top else 12), textcoords="offset points",
                                   ha="right" if right else "left", va="top" if top else "bottom",
                                   multialignment="left", fontsize=FONT_PT[True][2], annotation_clip=False,
                                   bbox={"boxstyle": "round", "fc": "lightyellow", "alpha": 0.95})
            self.tip.set_in_layout(False)
        self.canvas.draw_idle()


def open_chart_window(charts: ChartsCanvas, parent: QWidget, window: ChartWindow | None) -> ChartWindow:
    """Show the charts' window (made on first use, ``window`` after), drawn as the dock's charts are now."""
    if window is None:
        window = ChartWindow(charts, parent)
        window.resize(1200, 620)
    window.show()
    window.raise_()
    window.activateWindow()
    return window
