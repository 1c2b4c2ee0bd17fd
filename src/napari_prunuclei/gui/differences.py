"""Find the differences: the shown run's disagreement events in a sortable table, and previous/next buttons that
take the camera to each one and say what it is (``split 3 of 12: B #41 -> A #88, #90, #91``)."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import Container, Label, PushButton

from napari_prunuclei.base.constants import DISAGREEMENT_KINDS
from napari_prunuclei.gui.camera import camera_of, cell_size
from napari_prunuclei.gui.tooltips import DIFFERENCES_TIP
from napari_prunuclei.nuclei.agreement import DisagreementEvent, event_text

__all__ = ["COLUMN_TIPS", "DIFFERENCE_COLUMNS", "DifferenceActions"]

#: the table's columns
#: short headers, so every column fits the dock at 1366 px (each header's tooltip says it in full)
DIFFERENCE_COLUMNS = ("kind", "A ids", "B ids", "area px", "row, col")
#: the widest a column grows (a split into many pieces lists many ids): five columns fit a 400 px table
MAX_COLUMN_PX = 80
COLUMN_TIPS = ("missed, extra, split or merged", "the ids of model A's nuclei in it (A's instances layer)",
               "the ids of model B's nuclei in it",
               "the area of the union of its unmatched nuclei, image px (a nucleus matched elsewhere is not "
               "counted)",
               "its centre in the image: row, column (px)")
#: an event is shown at least this many of its pixels across (and at four times its size)
MIN_SPAN_PX = 128
_KIND_ORDER = {kind: k for k, kind in enumerate(DISAGREEMENT_KINDS.values())}


def _ids(values: tuple[int, ...]) -> str:
    return ", ".join(f"#{i}" for i in values) if values else "none"


class DifferenceActions:
    """Methods of :class:`~napari_prunuclei.gui.widget.PruneCompareWidget`: the Differences tab (the table of
    the shown run's disagreement events, previous/next), refilled whenever the shown run changes."""

    def _build_differences(self) -> None:
        """The tab's widgets: ``prev_diff_btn``, ``next_diff_btn``, ``diff_summary``, ``diff_table`` (Qt)."""
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QSizePolicy, QTableWidget

        self.prev_diff_btn = PushButton(text="◀ previous disagreement")
        self.next_diff_btn = PushButton(text="next disagreement ▶")
        self.diff_buttons = Container(widgets=[self.prev_diff_btn, self.next_diff_btn], layout="horizontal",
                                      labels=False)
        self.diff_buttons.margins = (0, 0, 0, 0)
        self.diff_summary = Label(value="no run shown")
        self.diff_summary.native.setWordWrap(True)
        # wrapped to the page's width: a long message (the stale warning) made the page wider than the dock
        self.diff_summary.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        table = QTableWidget(0, len(DIFFERENCE_COLUMNS))
        table.setHorizontalHeaderLabels(list(DIFFERENCE_COLUMNS))
        for c, tip in enumerate(COLUMN_TIPS):
            table.horizontalHeaderItem(c).setToolTip(tip)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.horizontalHeader().setMaximumSectionSize(MAX_COLUMN_PX)  # long id lists elided; the cell's tooltip
        table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # reading order until a click
        table.setToolTip(DIFFERENCES_TIP)
        table.setMinimumHeight(260)
        self.diff_table = table
        self._events: list[DisagreementEvent] = []
        self._differences_stale = False  # the controls name another image or model than the shown run's
        self.prev_diff_btn.changed.connect(lambda *_: self.step_difference(-1))
        self.next_diff_btn.changed.connect(lambda *_: self.step_difference(1))
        table.cellClicked.connect(lambda row, _col: self.go_to_difference(row))
        table.currentCellChanged.connect(lambda row, _c, before, _b: row != before and self.go_to_difference(row))
        self._fill_differences()

    def _fill_differences(self) -> None:
        """The shown run's events in the table, in reading order (or the user's sort); empty without one."""
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QTableWidgetItem

        class Item(QTableWidgetItem):
            def __lt__(self, other) -> bool:  # sort by the cell's key (numbers, ids), not its text
                return self.data(Qt.ItemDataRole.UserRole) < other.data(Qt.ItemDataRole.UserRole)

        r = self.result
        events = list((r.events if r is not None else None) or [])
        off = r.request.offset if r is not None else (0, 0)
        table = self.diff_table
        table.blockSignals(True)
        table.setSortingEnabled(False)
        table.clearContents()
        table.setRowCount(len(events))
        for k, e in enumerate(events):
            row, col = e.centroid[0] + off[0], e.centroid[1] + off[1]
            cells = [(e.kind, (_KIND_ORDER.get(e.kind, 9), k)), (_ids(e.a_ids), (e.a_ids, k)),
                     (_ids(e.b_ids), (e.b_ids, k)), (str(e.area), (e.area, k)), (f"{row:.0f}, {col:.0f}", (row, col))]
            for c, (text, key) in enumerate(cells):
                item = Item(text)
                item.setToolTip(text)  # in full where the column elides it
                item.setData(Qt.ItemDataRole.UserRole, key)
                item.setData(Qt.ItemDataRole.UserRole + 1, k)  # the event, wherever a sort puts its row
                table.setItem(k, c, item)
        table.setSortingEnabled(True)  # sorts by the header's indicator: none until the user clicks a header
        table.setCurrentCell(-1, -1)
        table.blockSignals(False)
        self._events = events
        self.mark_differences([])  # the shown run's own events (a stale run is marked again after showing it)

    def mark_differences(self, changed: list[str]) -> None:
        """Grey the tab and stop its navigation while the controls name another image or model than the shown
        run's (``changed``: what they now say, in words; empty: the events belong to the controls again)."""
        stale = bool(changed)
        self._differences_stale = stale
        self.diff_table.setEnabled(not stale)
        self.prev_diff_btn.enabled = self.next_diff_btn.enabled = bool(self._events) and not stale
        summary = self._differences_summary(self._events)
        r = self.result
        if stale and r is not None:
            summary = (f"⚠ these are the last run's disagreements ({r.request.image_name}, {r.request.spec.label}); "
                       f"the controls now say {', '.join(changed)}: press Run to update. {summary}")
        self.diff_summary.value = summary

    def _differences_summary(self, events: list[DisagreementEvent]) -> str:
        r = self.result
        if r is None:
            return "no run shown"
        if r.pruned is None or r.dense is None:
            return "one model alone: nothing to compare (choose a model B and press Run)"
        if r.events is None:
            return ("slide: no pixel-wise comparison over a whole slide (zoom in, tick 'visible region only' and "
                    "press Run)")
        if not events:
            return f"{r.pruned.info.model} (A) and {r.dense.info.model} (B) agree on every nucleus"
        counts = ", ".join(f"{kind} {sum(e.kind == kind for e in events)}" for kind in DISAGREEMENT_KINDS.values())
        return (f"{len(events)} disagreement events of A ({r.pruned.info.model}) with B ({r.dense.info.model}): "
                f"{counts}.{_under_min_size(r, events)} Click a row or use previous/next; click a header to sort.")

    def _difference_row_event(self, row: int) -> DisagreementEvent | None:
        from qtpy.QtCore import Qt

        item = self.diff_table.item(row, 0) if 0 <= row < self.diff_table.rowCount() else None
        return None if item is None else self._events[int(item.data(Qt.ItemDataRole.UserRole + 1))]

    def step_difference(self, step: int) -> DisagreementEvent | None:
        """The next (``step`` 1) or previous (-1) row of the table, in its current order (wrapping round)."""
        if self._differences_stale:  # another image or model is chosen: its tissue is not where these events are
            return None
        self._finish_showing()  # the camera goes to layers that exist
        table = self.diff_table
        n = table.rowCount()
        if n == 0:
            self.status.value = f"no disagreement to go to: {self.diff_summary.value}"
            return None
        row = table.currentRow()
        row = (0 if step > 0 else n - 1) if row < 0 else (row + step) % n
        table.blockSignals(True)
        try:
            table.setCurrentCell(row, 0)
        finally:
            table.blockSignals(False)
        return self.go_to_difference(row)

    def go_to_difference(self, row: int) -> DisagreementEvent | None:
        """Centre the camera on the event in ``row`` of the table, zoomed to show it with its surroundings (the
        layer's transform: a region's offset, a scale), and say in the status line what it is; nothing while the
        events are another image's or model's than the controls name."""
        if self._differences_stale:
            return None
        self._finish_showing()  # the camera goes to layers that exist
        event = self._difference_row_event(row)
        if event is None:
            return None
        owned = self.state.owned()
        layer = owned.get(("pruned", "disagreement"), owned.get(("pruned", "instances")))
        off = self.result.request.offset if self.result is not None else (0, 0)

        def world(p) -> np.ndarray:
            if layer is None:  # the user deleted the layers: the image's pixels
                return np.add(p, off).astype(float)
            return np.asarray(layer.data_to_world(np.asarray(p, float)), float)[-2:]

        r0, c0, r1, c1 = event.bbox
        extent = np.abs(world((r1 - 0.5, c1 - 0.5)) - world((r0 - 0.5, c0 - 0.5))).max()
        pixel = np.abs(world((1, 1)) - world((0, 0))).max()
        span = max(4 * extent, MIN_SPAN_PX * pixel)
        size = cell_size(self.viewer)  # side by side: one cell of the grid
        camera = camera_of(self.viewer)
        camera.center = tuple(world(event.centroid))
        camera.zoom = float(max(size.min(), 1) / span)
        n = self.diff_table.rowCount()
        self.status.value = f"{event.kind} {row + 1} of {n}: {event_text(event)}"
        return event


def _under_min_size(result, events: list[DisagreementEvent]) -> str:
    """" k of the missed are B nuclei under A's minimum nucleus size ..." where the two models' minimum sizes
    differ: those events are their thresholds' difference, not their maps' (a pathologist counted 10-px objects
    of dense as nuclei A missed, session 39)."""
    said = []
    for kind, who, other, seg, theirs in (("missed", "B", "A", result.pruned, result.dense),
                                          ("extra", "A", "B", result.dense, result.pruned)):
        least = seg.info.watershed.min_size  # (px of this image, as the event areas)
        n = sum(e.kind == kind and e.area < least for e in events)
        if n and least > theirs.info.watershed.min_size:
            said.append(f"{n} of the {kind} are {who} nuclei under {other}'s minimum nucleus size ({least:g} px of "
                        f"this image), which {other} drops by its threshold: a difference of thresholds, not of maps")
    return "".join(f" {s}." for s in said)
