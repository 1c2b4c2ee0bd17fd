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
    assert ax.get_title() == "CR sweep on this image"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "10", "100"]  # every CR swept, named (session 34)
    narrow = [ImageSweepRow(s, cr, True, Agreement(0.9, 0.8, 0.9, 10, 10), None) for s in PRUNED_SCHEMES
              for cr in (16, 20, 32)]  # reviewer: log minor labels (3x10^1 ...) collided with 32 here
    charts.show_sweep(narrow)
    charts.figure.canvas.draw()
    assert [t.get_text() for t in charts.ax_sweep.get_xticklabels()] == ["16", "20", "32"]
    assert not any(t.get_text() for t in charts.ax_sweep.get_xticklabels(minor=True))
    charts.show_sweep(rows)
    charts.show_sweep(rows, where="'tile A.tif', rows 0-10, columns 5-20")  # a report's charts.png travels alone
    assert charts.ax_sweep.get_title() == "CR sweep on 'tile A.tif', rows 0-10, columns 5-20"
    charts.clear_sweep("set aside: the image changed")  # pathologist, session 38: empty 0-1 axes read as broken
    assert not len(charts.ax_sweep.get_xticks()) and not len(charts.ax_sweep.get_yticks())
    charts.show_sweep(rows)  # a sweep shown again has its ticks back
    assert [t.get_text() for t in charts.ax_sweep.get_xticklabels()] == ["2", "10", "100"]
    assert len(charts.ax_sweep.get_yticks())


def test_two_schemes_with_equal_values_at_a_cr_stay_apart(qtbot):
    """Session 37: channel layer-wise's "vs truth" curve lay exactly under channel network-wide's (equal values
    at each CR), so one scheme seemed to have no curve; each scheme is drawn a little to the side, in its marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_prunuclei.gui.plots import plot_sweep
    from napari_prunuclei.nuclei.agreement import Agreement
    from napari_prunuclei.study.session_models import ImageSweepRow

    same = Agreement(0.7, 0.6, 0.8, 10, 10)
    rows = [ImageSweepRow(s, cr, True, same, same) for s in ("channel-layerwise", "channel-networkwide")
            for cr in (2, 4, 8)]
    fig, ax = plt.subplots()
    plot_sweep(ax, rows)
    lines = {line.get_label(): line for line in ax.get_lines()}
    a, b = lines["channel layer-wise vs truth"], lines["channel network-wide vs truth"]
    assert list(a.get_ydata()) == list(b.get_ydata())  # the same values ...
    assert all(xa < xb for xa, xb in zip(a.get_xdata(), b.get_xdata()))  # ... side by side, not over each other
    assert all(abs(x / cr - 1) < 0.1 for x, cr in zip(a.get_xdata(), (2, 4, 8)))  # near their CR's tick
    assert a.get_marker() != b.get_marker() and a.get_markerfacecolor() == "none"  # vs truth: hollow
    plt.close(fig)


def test_the_charts_label_is_as_large_as_its_picture(qtbot):
    """Reviewer: a 448 px figure in a 400 px label lost its title and the top of the AJI axis."""
    from napari_prunuclei.gui.plots import ChartsCanvas

    c = ChartsCanvas()
    qtbot.addWidget(c)
    assert c.pixmap().isNull()  # nothing made before the charts are shown (the dock opens faster)
    c.show()
    qtbot.waitUntil(lambda: not c.pixmap().isNull())  # made in a thread when first shown
    pix = c.pixmap()
    assert c.minimumHeight() >= pix.height() and c.minimumWidth() >= pix.width()


def test_the_figure_is_made_off_the_gui_thread_and_a_clear_meanwhile_is_kept(qtbot):
    """The dock's opening stalled the viewer 1.4 s, 0.6 s of it importing matplotlib and drawing the charts."""
    import threading

    from napari_prunuclei.gui import plots

    made_on = []
    original = plots.ChartsCanvas._make

    def spy(self):
        made_on.append(threading.current_thread() is threading.main_thread())
        original(self)

    plots.ChartsCanvas._make = spy
    try:
        c = plots.ChartsCanvas()
        qtbot.addWidget(c)
        c.show()
        c.clear_sweep("press 'CR sweep' for this image")  # (the widget does this as it opens)
        qtbot.waitUntil(lambda: not c.pixmap().isNull())
    finally:
        plots.ChartsCanvas._make = original
    assert made_on == [False]
    assert c.ax_sweep.get_title() == "CR sweep: press 'CR sweep' for this image"


def test_a_report_says_the_sweep_was_not_run(qtbot, tmp_path):
    """A report's charts.png showed an empty sweep asking to press a button."""
    from napari_prunuclei.gui.plots import ChartsCanvas

    c = ChartsCanvas()
    qtbot.addWidget(c)
    seen = []
    c.figure.savefig = lambda path, dpi: seen.append(c.ax_sweep.get_title())  # what the picture's title says
    c.save(tmp_path / "charts.png")
    assert seen == ["CR sweep: not run on this report's image and settings"]
    assert c.ax_sweep.get_title() == "CR sweep: press 'CR sweep'"  # the dock's own title given back


def test_a_report_never_draws_another_images_sweep(qtbot, tmp_path):
    """Reviewer: a report of image A drew image B's sweep in charts.png, titled "CR sweep on this image"."""
    from napari_prunuclei.base.constants import PRUNED_SCHEMES
    from napari_prunuclei.gui.plots import ChartsCanvas
    from napari_prunuclei.nuclei.agreement import Agreement
    from napari_prunuclei.study.session_models import ImageSweepRow

    c = ChartsCanvas()
    qtbot.addWidget(c)
    c.show_sweep([ImageSweepRow(PRUNED_SCHEMES[0], cr, True, Agreement(0.9, 0.8, 0.9, 10, 10), None)
                  for cr in (2, 10)])
    seen = []
    c.figure.savefig = lambda path, dpi: seen.append(
        (c.ax_sweep.get_title(), any(line.get_visible() for line in c.ax_sweep.lines)))
    c.save(tmp_path / "charts.png", sweep=False)
    c.save(tmp_path / "charts.png", sweep=True)
    assert seen == [("CR sweep: not run on this report's image and settings", False), ("CR sweep on this image", True)]
    assert all(line.get_visible() for line in c.ax_sweep.lines)  # the dock's chart as it was


def test_the_curves_choice_draws_the_sweep_again_and_a_report_keeps_both(qtbot, tmp_path):
    """Pathologist, session 38: at the dock's size the four "vs truth" curves crowded the "vs dense" ones; the
    Charts tab chooses which are drawn, the sweep shown is drawn again at once, and a report's chart has both."""
    from napari_prunuclei.base.constants import PRUNED_SCHEMES
    from napari_prunuclei.gui.plots import CURVES, ChartsCanvas
    from napari_prunuclei.nuclei.agreement import Agreement
    from napari_prunuclei.study.session_models import ImageSweepRow

    charts = ChartsCanvas()
    rows = [ImageSweepRow(s, cr, True, Agreement(0.9, 0.8, 0.9, 10, 10), Agreement(0.6, 0.5, 0.8, 10, 10),
                          dense_vs_truth=Agreement(0.62, 0.5, 0.8, 10, 10)) for s in PRUNED_SCHEMES for cr in (2, 4)]
    charts.show_sweep(rows)

    def labels():
        return [t.get_text() for t in charts.ax_sweep.get_legend().get_texts()]

    assert len(labels()) == 2 * len(PRUNED_SCHEMES) + 1  # and dense vs truth
    charts.set_curves(CURVES[1])
    assert labels() and all(t.endswith("vs dense") for t in labels())
    saved = []
    charts.figure.savefig = lambda *a, **k: saved.append(list(labels()))  # what the report's charts.png holds
    charts.save(tmp_path / "charts.png")
    assert len(saved[0]) == 2 * len(PRUNED_SCHEMES) + 1 and all(t.endswith("vs dense") for t in labels())
    charts.set_curves(CURVES[2])
    assert all(t.endswith("vs truth") for t in labels())
    charts.show_sweep([ImageSweepRow("layerwise", 2, True, Agreement(0.9, 0.8, 0.9, 10, 10), None)])
    assert "no ground truth" in charts.ax_sweep.get_title()  # nothing drawn, and why
    charts.clear_sweep("set aside")
    charts.set_curves(CURVES[0])  # nothing shown: nothing drawn again
    assert not charts.ax_sweep.lines
