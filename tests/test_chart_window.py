"""The charts' window: the dock's charts drawn larger, following the dock, naming the point under the pointer."""

import pytest
from qtpy.QtWidgets import QWidget

pytestmark = [pytest.mark.gui, pytest.mark.filterwarnings("error::UserWarning")]  # (constrained layout's warnings)


@pytest.fixture
def charts(qtbot):
    """The dock's charts; any window opened on them closed, and its pending draw done, before they go."""
    from napari_prunuclei.gui.plots import ChartsCanvas

    canvas = ChartsCanvas()
    yield canvas
    for window in canvas.findChildren(QWidget):
        window.close()
    qtbot.wait(50)


def _rows(dense_vs_truth=None):
    from napari_prunuclei.base.constants import PRUNED_SCHEMES
    from napari_prunuclei.nuclei.agreement import Agreement
    from napari_prunuclei.study.session_models import ImageSweepRow

    truth = Agreement(0.6, 0.5, 0.8, 10, 10)
    return [ImageSweepRow(s, cr, True, Agreement(1 - cr / 200 - k / 100, 0.8, 0.9, 10, 10), truth,
                          dense_vs_truth=dense_vs_truth) for k, s in enumerate(PRUNED_SCHEMES) for cr in (2, 10, 100)]


def _hover(window, ax, x, y):
    """A pointer move over data point (x, y) of ``ax``."""
    from matplotlib.backend_bases import MouseEvent

    window.canvas.draw()
    px, py = ax.transData.transform((x, y))
    window.hover(MouseEvent("motion_notify_event", window.canvas, px, py))


def test_the_window_draws_and_follows_the_docks_charts(charts):
    from napari_prunuclei.gui.chart_window import open_chart_window
    from napari_prunuclei.gui.plots import CURVES
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
    window.canvas.draw()  # the axes keep most of the window (a wide legend once squeezed them to nothing)
    assert window.ax_sweep.get_position().width > 0.35 and window.ax_sparsity.get_position().width > 0.35
    charts.set_curves(CURVES[1])  # vs dense only: the window too
    assert {ln.get_label() for ln in window.ax_sweep.lines} == {ln.get_label() for ln in charts.ax_sweep.lines}
    assert not any("vs truth" in ln.get_label() for ln in window.ax_sweep.lines)
    assert not window.follow()  # nothing new: not drawn again
    charts.show_sparsity({"semantic": [{"sparsity": 0.5}] * 3, "distance": [{"sparsity": 0.25}] * 3}, "net CR4")
    charts.refresh()
    assert window.ax_sparsity.get_title() == "sparsity per layer: net CR4"
    charts.clear_sweep("set aside: the image changed")
    assert "set aside" in window.ax_sweep.get_title() and not window.ax_sweep.lines
    charts.show_sweep(rows)
    charts.refresh()
    window.ax_sweep.set_xlim(5, 20)  # zoomed in, then closed
    window.close()
    charts.clear_sweep("set aside")
    charts.refresh()  # a closed window is not drawn
    assert window.ax_sweep.lines
    again = open_chart_window(charts, parent, window)  # opened again: the same window, drawn as the dock now
    assert again is window and not window.ax_sweep.lines
    charts.show_sweep(rows)
    charts.refresh()
    window.ax_sweep.set_xlim(5, 20)
    window.close()
    open_chart_window(charts, parent, window)  # the same sweep, opened again: drawn whole (pathologist, 39)
    assert window.ax_sweep.get_xlim() != (5, 20) and len(window.ax_sweep.lines) == len(charts.ax_sweep.lines)


def test_the_point_under_the_pointer_names_its_scheme_cr_and_value(charts):
    import numpy as np

    from napari_prunuclei.gui.chart_window import open_chart_window
    from napari_prunuclei.nuclei.agreement import Agreement

    charts.show_sweep(_rows(dense_vs_truth=Agreement(0.65, 0.5, 0.8, 10, 10)))
    charts.show_sparsity({"semantic": [{"sparsity": 0.5}, {"sparsity": 0.9}, {"sparsity": 0.98}],
                          "distance": [{"sparsity": 0.25}, {"sparsity": 0.75}, {"sparsity": 0.98}]}, "net CR4")
    window = open_chart_window(charts, charts, None)
    ax = window.ax_sweep
    line = next(ln for ln in ax.lines if ln.get_label() == "network-wide vs dense")
    x, y = line.get_xdata()[1], line.get_ydata()[1]  # CR 10, drawn a little to its side
    assert x != 10
    _hover(window, ax, x, y)
    assert window.tip is not None
    assert window.tip.get_text() == f"network-wide vs dense\nCR 10: AJI {y:.3f}"
    _hover(window, ax, 5, 0.75)  # inside the axes, far from any point: no tip
    assert window.tip is None
    _hover(window, ax, 30, 0.65)  # on dense's line across the axes, between two CRs
    assert window.tip.get_text() == "dense vs truth: AJI 0.650"
    _hover(window, window.ax_sparsity, 1, 75.0)
    assert window.tip.get_text() == "distance\nlayer 1: 75.0 % pruned"
    # a tip at the charts' top right edge takes no room: the axes and the point stay under the pointer (review,
    # session 39: the layout made room for it, the point moved away and the tip flickered)
    for axes, point in ((ax, (line.get_xdata()[-1], line.get_ydata()[-1])), (window.ax_sparsity, (2, 98.0))):
        window.canvas.draw()
        before = axes.get_position().bounds
        _hover(window, axes, *point)
        assert window.tip is not None
        window.canvas.draw()
        assert axes.get_position().bounds == pytest.approx(before) and not window.tip.get_in_layout()
        tip, figure = window.tip.get_window_extent(), window.figure.bbox  # leaning inwards, whole in the window
        assert figure.x0 <= tip.x0 and tip.x1 <= figure.x1 and figure.y0 <= tip.y0 and tip.y1 <= figure.y1
    assert window.tip.get_text() == "distance and semantic\nlayer 2: 98.0 % pruned"  # equal: both named
    assert "CR 10" in ax.format_coord(10, 0.5)  # the toolbar's readout (its x was empty: pathologist, session 39)
    assert "(CR 10," in ax.format_coord(10.6, 0.5)  # a point drawn to the side of CR 10 reads as CR 10
    # a curve with a missing value still names its other points
    nan = next(ln for ln in ax.lines if ln.get_label() == "layer-wise vs dense")
    nan.set_ydata(np.array([np.nan, *nan.get_ydata()[1:]]))
    _hover(window, ax, nan.get_xdata()[1], nan.get_ydata()[1])
    assert window.tip.get_text().startswith("layer-wise vs dense\nCR 10")


def test_a_run_keeps_the_sweeps_zoom(charts):
    """Review, session 39: a new sparsity chart (each run) drew the sweep again and lost its zoom."""
    from napari_prunuclei.gui.chart_window import open_chart_window

    charts.show_sweep(_rows())
    window = open_chart_window(charts, charts, None)
    window.ax_sweep.set_xlim(5, 20)  # zoomed in
    charts.show_sparsity({"semantic": [{"sparsity": 0.5}], "distance": [{"sparsity": 0.5}]}, "net CR4")
    charts.refresh()
    assert window.ax_sparsity.get_title() == "sparsity per layer: net CR4"
    assert window.ax_sweep.get_xlim() == (5, 20)
    from napari_prunuclei.nuclei.agreement import Agreement

    charts.show_sweep(_rows(dense_vs_truth=Agreement(0.65, 0.5, 0.8, 10, 10)))  # another sweep: drawn whole
    charts.refresh()
    assert window.ax_sweep.get_xlim() != (5, 20)


def test_a_hidden_and_shown_window_keeps_its_zoom(charts, qtbot):
    """Review, session 39: minimised and restored (Qt's hide and show), the window lost its zoom."""
    from qtpy.QtGui import QHideEvent, QShowEvent
    from qtpy.QtWidgets import QApplication

    from napari_prunuclei.gui.chart_window import open_chart_window

    charts.show_sweep(_rows())
    window = open_chart_window(charts, charts, None)
    window.ax_sweep.set_xlim(5, 20)
    QApplication.sendEvent(window, QHideEvent())
    QApplication.sendEvent(window, QShowEvent())
    assert window.ax_sweep.get_xlim() == (5, 20)
