"""Matplotlib charts in the dock: metric against CR, and per-layer sparsity."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

COLORS = {"layerwise": "tab:orange", "networkwide": "tab:blue"}
LABELS = {"layerwise": "layer-wise", "networkwide": "network-wide"}


class ChartsCanvas(FigureCanvasQTAgg):
    """Two charts: the CR sweep on the current image and the chosen model's layer sparsity."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(4, 4.6), dpi=80, layout="constrained")
        super().__init__(self.figure)
        self.ax_sweep, self.ax_sparsity = self.figure.subplots(2, 1)
        self.setMinimumHeight(330)
        self._blank()

    def _blank(self) -> None:
        self.ax_sweep.set_title("CR sweep: press 'CR sweep'", fontsize=9)
        self.ax_sparsity.set_title("layer sparsity: run a model", fontsize=9)
        self.draw_idle()

    def show_sweep(self, rows: list[dict], metric: str = "aji") -> None:
        ax = self.ax_sweep
        ax.clear()
        for scheme in ("layerwise", "networkwide"):
            sub = sorted((r for r in rows if r["scheme"] == scheme), key=lambda r: r["cr"])
            if not sub:
                continue
            ax.plot([r["cr"] for r in sub], [r[f"{metric}_vs_dense"] for r in sub], "o-", ms=3,
                    color=COLORS[scheme], label=f"{LABELS[scheme]} vs dense")
            if f"{metric}_vs_truth" in sub[0]:
                ax.plot([r["cr"] for r in sub], [r[f"{metric}_vs_truth"] for r in sub], "s--", ms=3,
                        color=COLORS[scheme], label=f"{LABELS[scheme]} vs truth")
            for r in sub:
                if not r["fine_tuned"]:
                    ax.plot(r["cr"], r[f"{metric}_vs_dense"], "x", color="k", ms=5)
        ax.set_xscale("log")
        ax.set_xlabel("compression ratio (x: one-shot)", fontsize=8)
        ax.set_ylabel(metric.upper(), fontsize=8)
        ax.set_title("CR sweep on this image", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
        self.draw_idle()

    def show_sparsity(self, report: dict[str, list[dict]], title: str) -> None:
        ax = self.ax_sparsity
        ax.clear()
        for branch, color in (("semantic", "tab:red"), ("distance", "tab:green")):
            rows = report[branch]
            ax.plot(range(len(rows)), [100 * r["sparsity"] for r in rows], "o-", ms=3, color=color, label=branch)
        ax.set_ylim(0, 100)
        ax.set_ylabel("% pruned", fontsize=8)
        ax.set_xlabel("layer (input to output)", fontsize=8)
        ax.set_title(f"sparsity per layer: {title}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
        self.draw_idle()
