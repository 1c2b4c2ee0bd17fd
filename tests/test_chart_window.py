"""The charts' window: the dock's charts drawn larger, following the dock, naming the point under the pointer."""

import pytest

pytestmark = pytest.mark.gui


def _rows():
    from napari_prunuclei.base.constants import PRUNED_SCHEMES
    from napari_prunuclei.nuclei.agreement import Agreement
    from napari_prunuclei.study.session_models import ImageSweepRow

    truth = Agreement(0.6, 0.5, 0.8, 10, 10)
    return [ImageSweepRow(s, cr, True, Agreement(1 - cr / 200 - k / 100, 0.8, 0.9, 10, 10), truth)
            for k, s in enumerate(PRUNED_SCHEMES) for cr in (2, 10, 100)]


def _hover(window, ax, x, y):
    """A pointer move over data point (x, y) of ``ax``."""
    from matplotlib.backend_bases import MouseEvent

    window.canvas.draw()
    px, py = ax.transData.transform((x, y))
    window.hover(MouseEvent("motion_notify_event", window.canvas, px, py))


def test_the_window_draws_and_follows_the_docks_charts(qtbot):
    from napari_prunuclei.gui.chart_window import open_chart_window
    from napari_prunuclei.gui.plots import CURVES, ChartsCanvas

    charts = ChartsCanvas()
    parent = charts  # (any widget: the window closes with it)
    window = open_chart_window(charts, parent, None)
    assert window.isVisible() and window.isWindow()
    assert window.ax_sweep.get_title() == "CR sweep: press 'CR sweep'" and not window.ax_sweep.lines
    assert not len(window.ax_sweep.get_xticks())  # empty, as the dock's
    rows = _rows()
    charts.show_sweep(rows, where="'tile A'")
    charts.refresh()  # (the GUI thread shows the dock's new picture: the window follows)
    assert window.ax_sweep.get_title() == "CR sweep on 'tile A'"
    assert len(window.ax_sweep.lines) == len(charts.ax_sweep.lines)
    assert [t.get_text() for t in window.ax_sweep.get_xticklabels()] == ["2", "10", "100"]
    assert window.ax_sweep.title.get_fontsize() > charts.ax_sweep.title.get_fontsize()  # larger than the dock's
    charts.set_curves(CURVES[1])  # vs dense only: the window too
    assert {ln.get_label() for ln in window.ax_sweep.lines} == {ln.get_label() for ln in charts.ax_sweep.lines}
    assert not any("vs truth" in ln.get_label() for ln in window.ax_sweep.lines)
    assert not window.update_from_dock()  # nothing new: not drawn again
    charts.show_sparsity({"semantic": [{"sparsity": 0.5}] * 3, "distance": [{"sparsity": 0.25}] * 3}, "net CR4")
    charts.refresh()
    assert window.ax_sparsity.get_title() == "sparsity per layer: net CR4"
    charts.clear_sweep("set aside: the image changed")
    assert "set aside" in window.ax_sweep.get_title() and not window.ax_sweep.lines
    window.close()
    charts.show_sweep(rows)
    charts.refresh()  # a closed window is not drawn
    assert not window.ax_sweep.lines
    again = open_chart_window(charts, parent, window)  # opened again: the same window, drawn as the dock now
    assert again is window and len(window.ax_sweep.lines) == len(charts.ax_sweep.lines)


def test_the_point_under_the_pointer_names_its_scheme_cr_and_value(qtbot):
    from napari_prunuclei.gui.chart_window import open_chart_window
    from napari_prunuclei.gui.plots import ChartsCanvas

    charts = ChartsCanvas()
    charts.show_sweep(_rows())
    charts.show_sparsity({"semantic": [{"sparsity": 0.5}, {"sparsity": 0.9}],
                          "distance": [{"sparsity": 0.25}, {"sparsity": 0.75}]}, "net CR4")
    window = open_chart_window(charts, charts, None)
    ax = window.ax_sweep
    line = next(ln for ln in ax.lines if ln.get_label() == "network-wide vs dense")
    x, y = line.get_xdata()[1], line.get_ydata()[1]  # CR 10, drawn a little to its side
    assert x != 10
    _hover(window, ax, x, y)
    assert window.tip is not None
    assert window.tip.get_text() == f"network-wide vs dense\nCR 10: AJI {y:.3f}"
    _hover(window, ax, 1000, 0.0)  # nowhere near a point: no tip
    assert window.tip is None
    _hover(window, window.ax_sparsity, 1, 75.0)
    assert window.tip.get_text() == "distance\nlayer 1: 75.0 % pruned"
