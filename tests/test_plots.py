"""The dock's charts: the CR sweep's legend stays off the curves."""

import pytest

pytestmark = pytest.mark.gui


def test_the_sweep_legend_lies_outside_the_axes(qtbot):
    from napari_prunuclei.base.constants import PRUNED_SCHEMES
    from napari_prunuclei.gui.plots import ChartsCanvas
    from napari_prunuclei.nuclei.agreement import Agreement
    from napari_prunuclei.study.session_models import ImageSweepRow

    charts = ChartsCanvas()
    rows = [ImageSweepRow(s, cr, cr != 100, Agreement(1 - cr / 200, 0.8, 0.9, 10, 10), Agreement(0.6, 0.5, 0.8, 10, 10))
            for s in PRUNED_SCHEMES for cr in (2, 10, 100)]
    charts.show_sweep(rows)
    charts.refresh()
    ax = charts.ax_sweep
    legend = ax.get_legend()
    assert len(legend.get_texts()) == 2 * len(PRUNED_SCHEMES)  # vs dense and vs truth, each scheme
    renderer = charts.figure.canvas.get_renderer()
    box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert not box.overlaps(area)
    fig = charts.figure.bbox
    assert fig.x0 <= box.x0 and box.x1 <= fig.x1 and fig.y0 <= box.y0  # whole, inside the figure
    assert not box.overlaps(charts.ax_sparsity.get_window_extent(renderer))


def test_the_charts_label_is_as_large_as_its_picture(qtbot):
    """Reviewer: a 448 px figure in a 400 px label lost its title and the top of the AJI axis."""
    from napari_prunuclei.gui.plots import ChartsCanvas

    c = ChartsCanvas()
    qtbot.addWidget(c)
    pix = c.pixmap()
    assert c.minimumHeight() >= pix.height() and c.minimumWidth() >= pix.width()
