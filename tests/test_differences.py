"""Find the differences: the shown run's disagreement events in a sortable table, previous/next taking the camera
to each (issue 22), driven through the real widget on the synthetic sample."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui

from napari_prunuclei.gui.differences import DIFFERENCE_COLUMNS  # noqa: E402
from napari_prunuclei.runtime.request import Tiling  # noqa: E402


def _run(qtbot, w):
    assert w.start_run() is not None, w.status.value
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    assert w.status.value.startswith(("done", "warning")), w.status.value


def _centre(viewer) -> np.ndarray:
    return np.asarray(viewer.scene.camera.center, float)[-2:]


def _world(w, event) -> np.ndarray:
    layer = w.state.owned()[("pruned", "disagreement")]
    return np.asarray(layer.data_to_world(event.centroid), float)[-2:]


def _rows(w) -> list:
    """The events in the table's order (row by row)."""
    return [w._difference_row_event(row) for row in range(w.diff_table.rowCount())]


def test_next_previous_sort_and_refill_follow_the_shown_run(qtbot, viewer_widget):
    from qtpy.QtCore import QPoint, Qt

    viewer, w = viewer_widget
    table = w.diff_table
    assert table.rowCount() == 0 and not w.next_diff_btn.enabled and w.step_difference(1) is None
    _run(qtbot, w)
    events = w.result.events
    n = len(events)
    assert n >= 3 and table.rowCount() == n and w.next_diff_btn.enabled
    assert [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())] == list(DIFFERENCE_COLUMNS)
    assert _rows(w) == events  # reading order until the user sorts
    assert f"{n} disagreement events" in w.diff_summary.value
    layer = w.state.owned()[("pruned", "disagreement")]
    layer.scale = (0.5, 0.5)  # a layer in µm: the camera goes through the layer's transform, not raw pixels
    layer.translate = (7, 11)
    # next, next, previous
    w.next_diff_btn.changed.emit(True)
    first = events[0]
    assert table.currentRow() == 0 and np.allclose(_centre(viewer), _world(w, first))
    assert not np.allclose(_world(w, first), first.centroid)
    ids = (", ".join(f"#{i}" for i in first.b_ids), ", ".join(f"#{i}" for i in first.a_ids))
    assert w.status.value.startswith(f"{first.kind} 1 of {n}: ")
    assert all(part in w.status.value for part in ids if part)
    zoom = viewer.scene.camera.zoom
    assert zoom > 1  # zoomed in to the event
    second = w.step_difference(1)
    assert second is events[1] and table.currentRow() == 1 and np.allclose(_centre(viewer), _world(w, second))
    assert w.status.value.startswith(f"{second.kind} 2 of {n}: ")
    w.prev_diff_btn.changed.emit(True)
    assert table.currentRow() == 0 and np.allclose(_centre(viewer), _world(w, first))
    assert w.step_difference(-1) is events[-1]  # round the end
    # a click on a row goes there
    viewer.window.show()
    w.tabs.setCurrentIndex(list(w.pages).index("Differences"))
    qtbot.waitExposed(table)
    rect = table.visualItemRect(table.item(2, 1))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert table.currentRow() == 2
    assert np.allclose(_centre(viewer), _world(w, events[2])) and f"3 of {n}" in w.status.value
    # sort by area, largest first, with clicks on its header
    header = table.horizontalHeader()
    col = DIFFERENCE_COLUMNS.index("area px")
    for _ in range(2):
        if header.sortIndicatorSection() == col and header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder:
            break
        middle = QPoint(header.sectionViewportPosition(col) + header.sectionSize(col) // 2, header.height() // 2)
        qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=middle)
    areas = [e.area for e in _rows(w)]
    assert header.sortIndicatorSection() == col and areas == sorted(areas, reverse=True)
    assert [int(table.item(r, col).text()) for r in range(n)] == areas  # numbers, not text order
    table.setCurrentCell(0, 0)
    assert w.step_difference(1) is _rows(w)[1]  # next follows the table's order
    # a threshold edit re-runs the watershed: the list is the new run's
    before = w.result
    w.min_size.value = w.min_size.value + 60
    qtbot.waitUntil(lambda: not w.busy and w.result is not before, timeout=30_000)
    assert table.rowCount() == len(w.result.events) and sorted(_rows(w), key=id) == sorted(w.result.events, key=id)
    assert table.currentRow() == -1
    # clear: nothing shown, nothing listed
    w.clear()
    assert table.rowCount() == 0 and not w.next_diff_btn.enabled and w.diff_summary.value == "no run shown"
    assert w.step_difference(1) is None


def test_a_region_side_by_side_goes_to_the_event_on_the_slide(qtbot, viewer_widget):
    """A region of a "slide": events are in the region's frame, the camera and the position column in the
    image's; side by side (one camera for both cells) centres the same point."""
    viewer, w = viewer_widget
    w.tiling = Tiling(tile=128, halo=64, whole_max_pixels=260 * 260)
    w.region.value = True
    viewer.scene.camera.center = (260, 260)
    viewer.scene.camera.zoom = max(viewer.canvas.size) / 250
    w.side_by_side.value = True
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)  # the toggle shows over turns
    _run(qtbot, w)
    r0, _, c0, _ = w.result.request.region
    assert (r0, c0) != (0, 0) and viewer.canvas.grid.enabled
    events = w.result.events
    assert events and w.diff_table.rowCount() == len(events)
    e = w.step_difference(1)
    assert np.allclose(_centre(viewer), (e.centroid[0] + r0, e.centroid[1] + c0))
    assert w.diff_table.item(0, 4).text() == f"{e.centroid[0] + r0:.0f}, {e.centroid[1] + c0:.0f}"
    w.scheme.value = "dense"  # one model alone: nothing to list
    w.region.value = False
    _run(qtbot, w)
    assert w.diff_table.rowCount() == 0 and "nothing to compare" in w.diff_summary.value


def test_every_column_of_the_differences_table_fits_a_dock_at_1366_px(qtbot, viewer_widget):
    """Reviewer at 1366x768: the position column was cut. With the table as wide as the dock shows it there
    (about 400 px) and a split into eight pieces listed, every column fits with the last one's text whole (long
    id lists are elided, in full in the cell's tooltip); each header's tooltip says it in full."""
    from qtpy.QtWidgets import QApplication

    from napari_prunuclei.gui.differences import COLUMN_TIPS
    from napari_prunuclei.nuclei.agreement import DisagreementEvent

    viewer, w = viewer_widget
    _run(qtbot, w)
    e = w.result.events[0]  # a split into many pieces, far from the origin: the widest cells a real tile gives
    w.result.events.append(DisagreementEvent("split", tuple(range(1201, 1209)), (1187,), (987.4, 991.6), e.bbox,
                                             12345, e.mask))
    w._fill_differences()
    table = w.diff_table
    QApplication.processEvents()
    header = table.horizontalHeader()
    last = table.columnCount() - 1
    used = sum(header.sectionSize(c) for c in range(last)) + header.sectionSizeHint(last)
    room = 400 - table.verticalScrollBar().sizeHint().width() - 2 * table.frameWidth()
    assert used <= room, (used, room, [header.sectionSize(c) for c in range(last + 1)])
    assert [table.horizontalHeaderItem(c).toolTip() for c in range(last + 1)] == list(COLUMN_TIPS)


def test_another_image_or_model_chosen_greys_the_differences_and_stops_their_navigation(qtbot, viewer_widget):
    """Tile B chosen after tile A's run: tile A's events are greyed, said to be the last run's, and previous/next
    neither move the camera to them on tile B's tissue nor replace the stale warning; choosing tile A again (or
    running) gives them back."""
    from napari_prunuclei.nuclei.synthetic import synthetic_tissue

    viewer, w = viewer_widget
    _run(qtbot, w)
    assert w.diff_table.rowCount() >= 1 and w.diff_table.isEnabled() and w.next_diff_btn.enabled
    first = viewer.layers["synthetic H&E"]
    w.image.value = viewer.add_image(synthetic_tissue(512, seed=99)[0], name="tile B", rgb=True)
    assert not w.diff_table.isEnabled() and not w.next_diff_btn.enabled and not w.prev_diff_btn.enabled
    assert "last run's disagreements" in w.diff_summary.value and "tile B" in w.diff_summary.value
    said, centre = w.status.value, _centre(viewer)
    assert "⚠ the results shown are the last run's" in said  # (after the ground truth unchosen, said first)
    assert w.step_difference(1) is None and w.go_to_difference(0) is None
    assert w.status.value == said and np.allclose(_centre(viewer), centre)
    w.image.value = first  # the run's image again: its events are live
    assert w.diff_table.isEnabled() and w.next_diff_btn.enabled and "last run's" not in w.diff_summary.value
    w.scheme.value = "dense" if w.result.request.spec.scheme != "dense" else "layer-wise"  # another model A
    assert not w.diff_table.isEnabled() and "model A" in w.diff_summary.value


def test_the_stale_warning_wraps_inside_the_dock(qtbot, viewer_widget):
    """Second tester: after the switch to tile B the long stale warning made the tab's content wider than the
    dock (its row asked for the one-line width of the message), clipping 'next disagreement' and the table's
    last column. It wraps within the page's width instead."""
    from qtpy.QtWidgets import QApplication

    from napari_prunuclei.nuclei.synthetic import synthetic_tissue

    viewer, w = viewer_widget
    _run(qtbot, w)
    area = w.pages["Differences"].root_native_widget
    w.image.value = viewer.add_image(synthetic_tissue(256, seed=98)[0], name="TCGA-AC-A2FO-01A-01-TS1", rgb=True)
    QApplication.processEvents()
    assert "last run's disagreements" in w.diff_summary.value
    row = w.diff_summary.native.parentWidget()  # the label's row in the page
    assert row.minimumSizeHint().width() <= area.minimumWidth(), (row.minimumSizeHint().width(), area.minimumWidth())


def test_events_under_the_other_models_minimum_size_are_said_to_be_its_threshold(qtbot, viewer_widget):
    """Pathologist, session 39: B's 10-px objects were counted as nuclei A missed, A dropping anything under its
    20 px; the summary says how many missed events are a difference of thresholds."""
    viewer, w = viewer_widget
    w.scheme.value, w.cr.value = "network-wide", "20"
    _run(qtbot, w)
    assert "minimum nucleus size" not in w.diff_summary.value  # the same minimum as dense: nothing to say
    w.min_size.value = 200  # A drops every object under 200 px of this image
    qtbot.waitUntil(lambda: not w.busy and w.result.pruned.info.watershed.min_size == 200, timeout=30_000)
    small = sum(e.kind == "missed" and e.area < 200 for e in w.result.events)
    assert small > 0
    assert (f"{small} of the missed are B nuclei under A's minimum nucleus size (200 px of this image), which A "
            "drops by its threshold: a difference of thresholds, not of maps.") in w.diff_summary.value
