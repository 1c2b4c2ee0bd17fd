"""Matplotlib charts in the dock: metric against CR, and per-layer sparsity.

The figure is drawn with matplotlib's Agg renderer, which may run in a worker
thread (drawing with constrained layout takes a few hundred ms on a slow CPU);
the GUI thread only swaps the finished picture in (:meth:`ChartsCanvas.refresh`).
matplotlib is imported and the figure made in a thread when the charts are first shown
or needed (0.6 s on the GUI thread as the dock opened before: its opening stalled the viewer 1.4 s).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel

from napari_prunuclei.base.constants import PRUNED_SCHEMES, SCHEME_COLORS, SCHEME_LABELS

__all__ = ["ChartsCanvas", "plot_sweep", "plot_sparsity", "CURVES", "FONT_PT"]

#: the figure's size in inches and its resolution in the dock
FIGSIZE, DPI = (4, 5.6), 80
#: the characters of a chart's title line at that width (longer titles wrap)
TITLE_WIDTH = 48
#: a marker per scheme, and the factor between neighbouring schemes' x (log axis) at one CR
SCHEME_MARKERS = {"layerwise": "o", "networkwide": "s", "channel-layerwise": "^", "channel-networkwide": "v"}
DODGE = 1.06
#: the charts' print (title, axis labels, ticks and legend; points) in the dock and, large, in the chart window
FONT_PT = {False: (9, 8, 7), True: (12, 11, 10)}
#: which curves the sweep chart draws (the Charts tab's choice: where pairs score within a few hundredths of
#: dense, the four "vs truth" curves crowd the "vs dense" ones at the dock's size; pathologist, session 38)
CURVES = ("vs dense and vs truth", "vs dense only", "vs truth only")


def plot_sweep(ax, rows: list, metric: str = "aji", where: str = "this image", curves: str = CURVES[0],
               large: bool = False) -> None:
    """``metric`` against CR of the sweep rows (``ImageSweepRow``) on ``ax``, titled with ``where`` (not rendered);
    ``curves``: one of :data:`CURVES`; ``large``: the chart window's print (the dock's is small)."""
    title_pt, label_pt, tick_pt = FONT_PT[large]
    vs_dense, vs_truth = curves != CURVES[2], curves != CURVES[1]
    ax.clear()
    present = [s for s in PRUNED_SCHEMES if any(r.scheme == s for r in rows)]  # (centred on the CR's tick)
    for k, scheme in enumerate(present):
        sub = sorted((r for r in rows if r.scheme == scheme), key=lambda r: r.cr)
        color, label, marker = SCHEME_COLORS[scheme], SCHEME_LABELS[scheme], SCHEME_MARKERS[scheme]
        # each scheme a little to the side of the CR and in a marker of its own: two schemes' equal values at one
        # CR lay exactly over each other (channel layer-wise vs truth hid under channel network-wide, session 37)
        x = [r.cr * DODGE ** (k - (len(present) - 1) / 2) for r in sub]
        if vs_dense:
            ax.plot(x, [getattr(r.vs_dense, metric) for r in sub], marker + "-", ms=4, color=color,
                    label=f"{label} vs dense")
        if vs_truth and sub[0].vs_truth is not None:  # (hollow markers, dashed)
            ax.plot(x, [getattr(r.vs_truth, metric) for r in sub], marker + "--", ms=4, mfc="none", color=color,
                    label=f"{label} vs truth")
        for xi, r in zip(x, sub):
            if vs_dense and not r.fine_tuned:
                ax.plot(xi, getattr(r.vs_dense, metric), "x", color="k", ms=5)
    baseline = next((r.dense_vs_truth for r in rows if r.dense_vs_truth is not None), None)
    if vs_truth and baseline is not None:  # what the pairs' "vs truth" curves are to be read against
        ax.axhline(getattr(baseline, metric), color="k", lw=1, ls=":", label="dense vs truth")
    ax.set_xscale("log")
    crs = sorted({r.cr for r in rows if r.scheme in PRUNED_SCHEMES})
    if crs:  # a tick at every CR swept, named as the CR box names it (log ticks named 10 and 100 only)
        from matplotlib.ticker import NullLocator

        ax.set_xticks(crs, [f"{c:g}" for c in crs])
        ax.xaxis.set_minor_locator(NullLocator())
    one_shot = any(not r.fine_tuned for r in rows)  # the x marks' key only where there are some
    ax.set_xlabel("compression ratio" + (" (x: one-shot)" if one_shot else ""), fontsize=label_pt)
    ax.set_ylabel(metric.upper(), fontsize=label_pt)
    none = vs_truth and not vs_dense and baseline is None  # (a sweep without a ground truth has no such curve)
    ax.set_title(f"CR sweep on {where}" + (": no ground truth, no 'vs truth' curve" if none else ""),
                 fontsize=title_pt)
    ax.tick_params(labelsize=tick_pt)
    # below the axes, never over the curves (constrained layout makes room for it; 4 columns squeezed the window's
    # axes to nothing: a legend wider than its axes)
    ax.legend(fontsize=tick_pt, loc="upper center", bbox_to_anchor=(0.5, -0.12 if large else -0.22),
              ncol=2, frameon=False)


def plot_sparsity(ax, report: dict[str, list[dict]], title: str, large: bool = False) -> None:
    """Each layer's share of pruned weights (``report``: branch -> rows with ``sparsity``) on ``ax``; ``large``: the
    chart window's print."""
    title_pt, label_pt, tick_pt = FONT_PT[large]
    ax.clear()
    # distance dashed over semantic: layer-wise pruning gives both the same values (one line hid the other)
    # (semantic wide and pale beneath, distance thin on top)
    for branch, color, style, ms, lw in (("semantic", "tab:red", "o-", 7, 4), ("distance", "tab:green", "s--", 3, 1.5)):
        rows = report[branch]
        ax.plot(range(len(rows)), [100 * r["sparsity"] for r in rows], style, ms=ms, lw=lw, color=color,
                alpha=0.55 if branch == "semantic" else 1.0, label=branch)
    ax.set_ylim(0, 100)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # (layers are counted: no 2.5)
    ax.set_ylabel("% pruned", fontsize=label_pt)
    ax.set_xlabel("layer (input to output)", fontsize=label_pt)
    ax.set_title(f"sparsity per layer: {title}", fontsize=title_pt)
    ax.tick_params(labelsize=tick_pt)
    ax.legend(fontsize=tick_pt, loc="best")  # where it covers fewest points (it hid the 98 % ones, session 37)


class ChartsCanvas(QLabel):
    """Two charts: the CR sweep on the current image and the chosen model's layer sparsity.

    ``show_sweep``/``show_sparsity`` plot and render off-screen (any thread, one at a
    time); ``refresh`` (GUI thread) shows the latest rendering. The figure is made in a
    thread when the canvas is first shown or needed; anything that needs it waits for it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._started = False
        self._made = threading.Event()
        self._rgba: np.ndarray | None = None
        self._figure = self._axes = None
        self._sweep_title = "press 'CR sweep'"  # (what the sweep's axes say until a sweep is shown)
        self.curves = CURVES[0]
        self._shown: tuple | None = None  # the sweep on the axes (rows, metric, where): drawn again by set_curves
        self._sparsity: tuple | None = None  # the sparsity on its axes (report, title)
        self.on_refresh: list = []  # called (GUI thread) after each new picture is shown: the chart window follows
        self.setMinimumSize(*(int(round(v * DPI)) for v in FIGSIZE))  # the whole picture (the page scrolls)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """The Charts tab shown: the figure is made in a thread, and shown when made."""
        super().showEvent(event)
        if not self._start():
            return
        from qtpy.QtCore import QTimer

        def poll() -> None:
            if self._made.is_set():
                self._made_shown()
            else:
                QTimer.singleShot(50, poll)

        poll()

    def _start(self) -> bool:
        """Start making the figure in a thread (once); True if this call started it."""
        with self._start_lock:
            if self._started:
                return False
            self._started = True
        threading.Thread(target=self._make, name="prunuclei charts", daemon=True).start()
        return True

    def _make(self) -> None:
        """(a thread) import matplotlib, make the figure and draw it once (nothing else uses it until made)."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")  # room for the legend below
            FigureCanvasAgg(figure)
            axes = figure.subplots(2, 1)
            axes[0].set_title(f"CR sweep: {self._sweep_title}", fontsize=9)
            axes[1].set_title("layer sparsity: run a model", fontsize=9)
            for ax in axes:  # (no 0-1 ticks on charts with nothing drawn yet)
                ax.set_xticks([]), ax.set_yticks([])
            with self._lock:
                self._figure, self._axes = figure, axes
                self._render()
        finally:
            self._made.set()

    def _made_shown(self, *_) -> None:
        ax = self._axes[0] if self._axes is not None else None
        if ax is not None and not ax.lines and ax.get_title() != f"CR sweep: {self._sweep_title}":
            self.clear_sweep(self._sweep_title)  # (cleared while the figure was being made)
        try:
            self.refresh()
        except RuntimeError:  # the dock was closed before the figure was made
            pass

    def _wait(self) -> None:
        self._start()
        self._made.wait()
        if self._figure is None:
            raise RuntimeError("the charts' figure could not be made (matplotlib)")

    @property
    def figure(self):
        """The matplotlib figure (waits until it is made)."""
        self._wait()
        return self._figure

    @property
    def ax_sweep(self):
        """The CR sweep's axes."""
        self._wait()
        return self._axes[0]

    @property
    def ax_sparsity(self):
        """The layer sparsity's axes."""
        self._wait()
        return self._axes[1]

    def _render(self) -> None:
        self._figure.canvas.draw()
        self._rgba = np.asarray(self._figure.canvas.buffer_rgba()).copy()

    def refresh(self) -> None:
        """Show the latest rendering (GUI thread; about a millisecond)."""
        with self._lock:
            rgba = self._rgba
        if rgba is None:
            return
        h, w, _ = rgba.shape
        img = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self.setPixmap(QPixmap.fromImage(img.copy()))
        for listener in list(self.on_refresh):
            try:  # (the chart window is an extra: it never stops the dock's showing of a result)
                listener()
            except Exception as e:  # noqa: BLE001
                import warnings

                warnings.warn(f"the chart window could not follow the dock: {e}", stacklevel=2)

    def save(self, path: Path, sweep: bool = True, dpi: int = 100, rows: list | None = None, where: str = "",
             shown: tuple[list, str] | None = None) -> None:
        """Write both charts to ``path`` (a report's charts.png). ``sweep=False`` (the sweep shown belongs to
        another image or settings) or no sweep: its axes are drawn empty, titled as not in this report.
        ``rows``: a sweep kept aside that is this report's (not the one shown): drawn for the file alone, the axes
        then given back (``shown``: the rows and title on them, None: empty, as titled now); nothing re-rendered."""
        ax = self.ax_sweep
        if rows is not None:
            with self._lock:
                title = ax.get_title()
                plot_sweep(ax, rows, where=where)
                try:
                    self._figure.savefig(path, dpi=dpi)
                finally:
                    if shown is not None:
                        plot_sweep(ax, shown[0], where=shown[1], curves=self.curves)
                    else:
                        ax.clear()
                        ax.set_title(title, fontsize=9)
                        ax.set_xticks([]), ax.set_yticks([])
            return
        with self._lock:
            title = ax.get_title()
            hidden = []
            if not sweep or not ax.lines:
                hidden = [a for a in (*ax.lines, ax.get_legend()) if a is not None and a.get_visible()]
                for artist in hidden:
                    artist.set_visible(False)
                ax.set_title("CR sweep: not run on this report's image and settings", fontsize=9)
            both = not hidden and self._shown is not None and self.curves != CURVES[0]
            if both:  # a report draws every curve, whichever the dock shows
                plot_sweep(ax, *self._shown)
            try:
                self._figure.savefig(path, dpi=dpi)
            finally:
                for artist in hidden:
                    artist.set_visible(True)
                if both:
                    plot_sweep(ax, *self._shown, self.curves)
                ax.set_title(title, fontsize=9)

    def show_sweep(self, rows: list, metric: str = "aji", where: str = "this image", only_if=None) -> bool:
        """Plot ``metric`` against CR of the widget's sweep rows (``ImageSweepRow``), off-screen; ``where``:
        the image (and region) they are of, in the title (the report's charts.png travels alone). ``only_if``:
        asked with the figure held (a worker's drawing never lands after the GUI thread's); whether it drew."""
        ax = self.ax_sweep
        with self._lock:
            if only_if is not None and not only_if():
                return False
            plot_sweep(ax, rows, metric, where, self.curves)
            self._shown = (rows, metric, where)
            self._render()
        return True

    def set_curves(self, curves: str) -> None:
        """Which curves the sweep chart draws (:data:`CURVES`); the sweep shown drawn again so (GUI thread)."""
        self.curves = curves
        if self._shown is not None and self._made.is_set():
            with self._lock:
                plot_sweep(self.ax_sweep, *self._shown, curves)
                self._render()
            self.refresh()

    def clear_sweep(self, why: str = "press 'CR sweep'") -> None:
        """Empty the sweep's axes (its image, ground truth or region changed), then show it (GUI thread)."""
        if not self._made.is_set():  # the figure is still being made: it takes this title (never waits here)
            self._sweep_title = why
            return
        import textwrap

        ax = self.ax_sweep
        with self._lock:
            self._shown = None
            ax.clear()  # (wrapped: a pathologist read a set-aside reason clipped at both ends, session 37)
            ax.set_title(textwrap.fill(f"CR sweep: {why}", TITLE_WIDTH), fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])  # no empty 0-1 axes, which read as a broken chart (session 38)
            self._render()
        self.refresh()

    def show_sparsity(self, report: dict[str, list[dict]], title: str) -> None:
        """Plot each layer's share of pruned weights of the chosen model (``report``: branch -> rows), off-screen."""
        ax = self.ax_sparsity
        with self._lock:
            plot_sparsity(ax, report, title)
            self._sparsity = (report, title)
            self._render()

    def snapshot(self) -> dict:
        """What the charts show now, to be drawn again elsewhere (the chart window): ``sweep`` (rows, metric,
        where) or None and ``sweep_title`` (the empty axes' title), ``curves``, ``sparsity`` (report, title) or
        None and ``sparsity_title``."""
        self._wait()
        with self._lock:
            return {"sweep": self._shown, "sweep_title": self._axes[0].get_title(), "curves": self.curves,
                    "sparsity": self._sparsity, "sparsity_title": self._axes[1].get_title()}
