"""Matplotlib charts in the dock: metric against CR, and per-layer sparsity.

The figure is drawn with matplotlib's Agg renderer, which may run in a worker
thread (drawing with constrained layout takes a few hundred ms on a slow CPU);
the GUI thread only swaps the finished picture in (:meth:`ChartsCanvas.refresh`).
"""

from __future__ import annotations

import threading

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel

from napari_prunuclei.base.constants import PRUNED_SCHEMES, SCHEME_COLORS, SCHEME_LABELS


class ChartsCanvas(QLabel):
    """Two charts: the CR sweep on the current image and the chosen model's layer sparsity.

    ``show_sweep``/``show_sparsity`` plot and render off-screen (any thread, one at a
    time); ``refresh`` (GUI thread) shows the latest rendering.
    """

    def __init__(self) -> None:
        super().__init__()
        self.figure = Figure(figsize=(4, 5.6), dpi=80, layout="constrained")  # room for the legend below
        self._agg = FigureCanvasAgg(self.figure)
        self.ax_sweep, self.ax_sparsity = self.figure.subplots(2, 1)
        self._lock = threading.Lock()
        self._rgba: np.ndarray | None = None
        w, h = (int(round(v * self.figure.dpi)) for v in self.figure.get_size_inches())
        self.setMinimumSize(w, h)  # the whole picture: a shorter label cut its top and bottom off (the page scrolls)
        self.ax_sweep.set_title("CR sweep: press 'CR sweep'", fontsize=9)
        self.ax_sparsity.set_title("layer sparsity: run a model", fontsize=9)
        self._render()
        self.refresh()

    def _render(self) -> None:
        self._agg.draw()
        self._rgba = np.asarray(self._agg.buffer_rgba()).copy()

    def refresh(self) -> None:
        """Show the latest rendering (GUI thread; about a millisecond)."""
        with self._lock:
            rgba = self._rgba
        if rgba is None:
            return
        h, w, _ = rgba.shape
        img = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self.setPixmap(QPixmap.fromImage(img.copy()))

    def show_sweep(self, rows: list, metric: str = "aji") -> None:
        """Plot ``metric`` against CR of the widget's sweep rows (``ImageSweepRow``), off-screen."""
        with self._lock:
            ax = self.ax_sweep
            ax.clear()
            for scheme in PRUNED_SCHEMES:
                sub = sorted((r for r in rows if r.scheme == scheme), key=lambda r: r.cr)
                if not sub:
                    continue
                color, label = SCHEME_COLORS[scheme], SCHEME_LABELS[scheme]
                ax.plot([r.cr for r in sub], [getattr(r.vs_dense, metric) for r in sub], "o-", ms=3,
                        color=color, label=f"{label} vs dense")
                if sub[0].vs_truth is not None:
                    ax.plot([r.cr for r in sub], [getattr(r.vs_truth, metric) for r in sub], "s--", ms=3,
                            color=color, label=f"{label} vs truth")
                for r in sub:
                    if not r.fine_tuned:
                        ax.plot(r.cr, getattr(r.vs_dense, metric), "x", color="k", ms=5)
            ax.set_xscale("log")
            ax.set_xlabel("compression ratio (x: one-shot)", fontsize=8)
            ax.set_ylabel(metric.upper(), fontsize=8)
            ax.set_title("CR sweep on this image", fontsize=9)
            ax.tick_params(labelsize=7)
            # below the axes, never over the curves (constrained layout makes room for it)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
            self._render()

    def clear_sweep(self, why: str = "press 'CR sweep'") -> None:
        """Empty the sweep's axes (its image, ground truth or region changed), then show it (GUI thread)."""
        with self._lock:
            self.ax_sweep.clear()
            self.ax_sweep.set_title(f"CR sweep: {why}", fontsize=9)
            self._render()
        self.refresh()

    def show_sparsity(self, report: dict[str, list[dict]], title: str) -> None:
        with self._lock:
            ax = self.ax_sparsity
            ax.clear()
            for branch, color in (("semantic", "tab:red"), ("distance", "tab:green")):
                rows = report[branch]
                ax.plot(range(len(rows)), [100 * r["sparsity"] for r in rows], "o-", ms=3, color=color,
                        label=branch)
            ax.set_ylim(0, 100)
            ax.set_ylabel("% pruned", fontsize=8)
            ax.set_xlabel("layer (input to output)", fontsize=8)
            ax.set_title(f"sparsity per layer: {title}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=7)
            self._render()
