"""The dock widget: pick a model A (a pruned one), run it beside a model B (dense by default, or any
zoo model), on the whole image or the visible region of a slide; compare, export, report.

A thin shell: it gathers parameters into a :class:`~._compute.CompareRequest`, runs
jobs (:func:`_compute.run`, the threshold re-run, the export, the CR sweep) in napari
``thread_worker``s, shows their :class:`~napari_prunuclei.base.progress.Progress` in one bar,
and hands results to the :class:`~._state.ComparisonState`, which owns the layers.
"""

import threading
import weakref
from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    TextEdit,
    create_widget,
)
from napari.viewer import Viewer

from napari_prunuclei.base.constants import SCHEME_LABELS
from napari_prunuclei.gui.camera import camera_of, cell_size
from napari_prunuclei.gui.differences import DifferenceActions
from napari_prunuclei.gui.exports import ExportActions
from napari_prunuclei.gui.ground_truth import GroundTruthChoice
from napari_prunuclei.gui.legend import LegendActions
from napari_prunuclei.gui.runs import RunActions
from napari_prunuclei.gui.shown import PUT_PIXEL_SIZE, ShownRun
from napari_prunuclei.gui.state import ComparisonState
from napari_prunuclei.gui.tooltips import EXPORT_WHAT, TOOLTIPS
from napari_prunuclei.gui.warmup import warm_up
from napari_prunuclei.io.guards import ImageError
from napari_prunuclei.models.devices import available_devices
from napari_prunuclei.nuclei.watershed import WatershedParams
from napari_prunuclei.runtime.pairs import ModelSpec
from napari_prunuclei.runtime.request import SegmentRequest, Tiling
from napari_prunuclei.study import session as compute
from napari_prunuclei.study import session_models as compute_models
from napari_prunuclei.study import session_report as compute_report

#: the reference choice that runs the chosen model alone
ALONE = "none (chosen model alone)"
NO_TRUTH = "(no ground truth)"  # the ground-truth box's empty choice


def scheme_label(scheme: str) -> str:
    """How a scheme is written for people (schemes the registry names but constants do not: as named)."""
    return SCHEME_LABELS.get(scheme, scheme)


#: scheme choices as shown -> scheme names, from the model registry (pruned schemes, then dense)
SCHEMES = {scheme_label(s): s for s in compute_models.zoo_models()}
#: keyboard shortcuts in the viewer: key -> (widget -> callback of the viewer)
SHORTCUTS = {
    "Control-Shift-R": lambda w: lambda viewer: w.start_run(),
    "Control-Shift-G": lambda w: lambda viewer: setattr(w.side_by_side, "value", not w.side_by_side.value),
}


class PruneCompareWidget(ShownRun, LegendActions, GroundTruthChoice, RunActions, ExportActions, DifferenceActions,
                         Container):
    """Compare a pruned nuclei model with the dense one on an H&E image."""

    def __init__(self, viewer: Viewer) -> None:
        super().__init__(labels=False)
        self.viewer = viewer
        ws = WatershedParams()
        self.zoo = compute_models.zoo_models()
        self.schemes = {scheme_label(s): s for s in self.zoo}
        first = next(iter(self.schemes))
        scheme0 = "network-wide" if "network-wide" in self.schemes else first
        self.image = create_widget(annotation="napari.layers.Image", label="H&E image")
        self.image.choices = self._image_choices  # the user's images, never the plugin's own result layers
        self.scheme = ComboBox(choices=list(self.schemes), value=scheme0, label="model A: pruning")
        self.cr = ComboBox(choices=self._cr_choices(scheme0), label="compression ratio")
        crs = self._cr_choices(scheme0)
        self.cr.value = "20" if "20" in crs else crs[0]
        self.cr_other = FloatSpinBox(value=12, min=1, max=10000, step=0.5, label="other CR (one-shot)",
                                     visible=False)
        self.fine_tuned = CheckBox(value=True, text="fine-tuned (else one-shot)")
        self.model_note = Label(value="", label="known accuracy")
        self.reference = ComboBox(choices=self._reference_choices(), value="dense", label="model B: compare with")
        self.device = ComboBox(choices=available_devices(), value=available_devices()[-1], label="device")
        self.region = CheckBox(value=False, text="visible region only (slides: zoom in first)")
        self.pixel_size = FloatSpinBox(value=0, min=0, max=2, step=0.01, label="pixel size (µm, 0 = unknown)")
        self.pixel_size.native.setDecimals(4)
        self.truth = create_widget(annotation="napari.layers.Labels", label="ground truth",
                                   options={"nullable": True})
        # (magicgui's own "-----" read as a broken entry; items are matched by their text: no layer is called so)
        self.truth.null_string = NO_TRUTH
        self.truth.native.clear()  # (else the new empty choice is added after the layers: last, in a dock re-opened)
        self.truth.choices = self._truth_choices  # the user's label layers, never the plugin's own results
        self.fg = FloatSpinBox(value=ws.fg_threshold, min=0.05, max=0.95, step=0.05, label="foreground thr.")
        self.marker = FloatSpinBox(value=ws.marker_threshold, min=0.05, max=0.95, step=0.05, label="marker thr.")
        self.min_size = SpinBox(value=ws.min_size, min=0, max=5000, label="min nucleus px (at 40x)")
        self.defaults_btn = PushButton(text="Restore model A's thresholds")
        self.thresholds_of = Label(value="", label="")  # whose thresholds the boxes hold (name_thresholds)
        self.time_btn = PushButton(text="time A vs B (median of 3)")
        self.numbers = TextEdit(value="", label="")
        self.numbers.read_only = True
        self.numbers_text = ""
        self._numbers_html, self._numbers_banner = "", ""
        self.sweep_btn = PushButton(text="CR sweep (every zoo model, this image)")  # "press 'CR sweep'"
        from napari_prunuclei.gui.plots import CURVES

        self.curves = ComboBox(choices=list(CURVES), value=CURVES[0], label="curves")
        self.chart_window_btn, self.chart_window = PushButton(text="Open the charts in a window (zoom, values)"), None
        self.export_what = ComboBox(choices=list(EXPORT_WHAT), value=EXPORT_WHAT[0], label="export")
        self.export_path = FileEdit(mode="w", label="export to", filter="*.tif *.png *.geojson *.csv",
                                    value=str(Path.home() / "nuclei.tif"))
        self.overwrite = CheckBox(value=False, text="overwrite an existing file")
        self.export_btn = PushButton(text="Export")
        self.report_path = FileEdit(mode="d", label="report folder", value=str(Path.home() / "prunuclei_report"))
        self.report_btn = PushButton(text="Write report")
        self.run_btn = PushButton(text="Run")
        self.cancel_btn = PushButton(text="Cancel", enabled=False)
        self.side_by_side = CheckBox(value=False, text="side by side")
        self.fill_nuclei = CheckBox(value=False, text="fill nuclei")
        self.legend = Label(value="")
        self.progress = ProgressBar(value=0, max=1, label="progress")
        self.status = Label(value="")
        self.state = ComparisonState(viewer)
        self._build_differences()  # the Differences tab's table and buttons
        for w, tip in TOOLTIPS.items():
            getattr(self, w).tooltip = tip
        for box in (self.export_path, self.report_path):  # a file box's own line and button (a pathologist saw none)
            box.line_edit.tooltip = box.choose_btn.tooltip = box.tooltip
        from napari_prunuclei.gui.plots import ChartsCanvas

        self.charts = ChartsCanvas()
        self._build_tabs()
        self.sweep_rows: list[compute_models.ImageSweepRow] | None = None
        self.state.on_legend = self._draw_legend
        warm_up(viewer)  # the cell names' glyphs, a few a paint after this turn
        self.scratch = compute.Scratch()
        weakref.finalize(self, self.scratch.cleanup)  # when the widget goes, and at interpreter exit
        viewer.layers.events.removed.connect(self._on_layer_removed)  # closing a viewer removes every layer
        for event in (viewer.layers.events.inserted, viewer.layers.events.moved, viewer.layers.events.renamed):
            event.connect(self._draw_legend)  # (a tile opened over the run's image, a layer renamed: named as now)
        viewer.layers.events.connect(self._on_layer_event)  # a layer hidden: the legend's warning follows
        self.tiling = Tiling()  # the pipeline's tiling policy (tests make it smaller)
        for key, action in SHORTCUTS.items():
            viewer.bind_key(key, action(self), overwrite=True)
        self.worker = None
        self._gc_frozen = False
        self._cancel = threading.Event()
        self._showing = False
        self._said_when_shown: tuple[str, str] | None = None  # (status while drawing, status once drawn)
        self._sweep_drawn = False  # a running sweep's rows so far drawn off-screen, not yet shown
        self._sweep_running: tuple | None = None  # the running sweep's image, truth and region (a _sweep_key)
        self._sweep_running_where, self._sweep_final = "", False  # its chart's title; drawn whole in the worker
        self._sweep_live = False  # what it is of is still chosen: the worker draws its rows as they come
        self._sweep_partial: tuple | None = None  # its rows so far and their chart title
        self._placing = False  # layers being put on their image's grid (their own events then ignored)
        self._cover_note, self._job_keeps_run = "", False  # the status's note of a layer over the run's image; a job's
        self._stale = False  # the controls name another run than the one shown (its numbers greyed)
        self._stale_unchecked = False  # a control changed while busy: compared when the job or showing ends
        self._stepping = self._finish_now = False  # inside a step of showing a result; finish it in that step
        self._steps = None  # the layers of a result still being shown, one per event-loop turn
        self._returned = False
        self._params_timer = None
        self._step_timer = None
        self._params_pending = False
        self.cr.changed.connect(self._on_cr)
        self.defaults_btn.changed.connect(self._restore_thresholds)
        self.scheme.changed.connect(self._on_scheme)
        self._quiet = False
        for w in (self.scheme, self.cr, self.cr_other, self.fine_tuned):
            w.changed.connect(self._model_defaults)
        for w in (self.scheme, self.cr, self.cr_other, self.fine_tuned, self.fg, self.marker, self.min_size):
            w.changed.connect(self.name_thresholds)  # whose the boxes are, once they follow the model
        self._model_defaults()
        self.name_thresholds()
        self.run_btn.changed.connect(self.start_run)
        self.cancel_btn.changed.connect(self.cancel)
        self.side_by_side.changed.connect(self._arrange)
        self.fill_nuclei.changed.connect(lambda on: (self._finish_showing(), self.state.set_fill(on)))
        self.export_btn.changed.connect(self.export)
        self.report_btn.changed.connect(self.write_report)
        self.sweep_btn.changed.connect(self.start_sweep)
        self.curves.changed.connect(self.charts.set_curves)
        self.chart_window_btn.changed.connect(self.open_chart_window)
        self.time_btn.changed.connect(self.start_timing)
        for w in (self.fg, self.marker, self.min_size):
            w.changed.connect(self._on_params_edited)
        self.truth.changed.connect(self._on_truth)
        self.image.changed.connect(self._on_image)
        for w in (self.reference, self.pixel_size, self.device, self.region):
            w.changed.connect(self._mark_stale)
        self.region.changed.connect(self._forget_sweep)
        self.sweep_key: tuple | None = None
        self.sweep_of: tuple | None = None  # (image, region, ground truth) the sweep rows are of
        self.sweep_dropped: str | None = None  # why the last CR sweep was dropped (the report says it)
        self._sweep_where, self._kept_sweep = "this image", None  # its chart's title; the last one dropped
        self._truths_chosen: dict[str, str] = {}  # image layer name -> the ground truth chosen for it
        self._shown_truth: str | None = None  # the ground truth the shown numbers were scored against
        self._on_image()

    def _build_tabs(self) -> None:
        """Tabs (model, numbers and thresholds, charts, export and report), each scrolling on its own,
        over a bar that always shows Run, Cancel, side by side, the progress and the status."""
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QSizePolicy, QTabWidget

        def page(widgets, extra=None):
            c = Container(widgets=widgets, labels=True, scrollable=True)
            if extra is not None:
                c.native.layout().addWidget(extra, 1)  # a Qt widget below the magicgui ones, taking the rest
            else:
                c.native.layout().addStretch(1)
            return c

        self.pages = {
            "Model": page([self.image, self.scheme, self.cr, self.cr_other, self.fine_tuned, self.model_note,
                           self.reference, self.device, self.region, self.pixel_size, self.truth]),
            "Numbers": page([self.thresholds_of, self.fg, self.marker, self.min_size, self.defaults_btn, self.time_btn],
                            self.numbers.native),
            "Differences": page([self.diff_buttons, self.diff_summary], self.diff_table),
            "Charts": page([self.sweep_btn, self.curves, self.chart_window_btn], self.charts),
            "Export": page([self.export_what, self.export_path, self.overwrite, self.export_btn, self.report_path,
                            self.report_btn]),
        }
        self.tabs = QTabWidget()
        for name, c in self.pages.items():
            area = c.root_native_widget  # the page's scroll area
            area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            # a scroll area does not grow to its content's minimum width (the dock was clipped at the right)
            area.setMinimumWidth(c.native.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width())
            self.tabs.addTab(area, name)
        self.tabs.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        buttons = Container(widgets=[self.run_btn, self.cancel_btn, self.side_by_side, self.fill_nuclei],
                            layout="horizontal", labels=False)
        buttons.margins = (0, 0, 0, 0)
        self.extend([buttons, self.progress, self.status, self.legend])
        self.legend.native.setWordWrap(True)
        self.native.layout().insertWidget(0, self.tabs, 1)
        self.status.native.setWordWrap(True)
        self.status.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.status.native.setMinimumHeight(2 * self.status.native.fontMetrics().height() + 4)
        for label in (self.model_note, self.thresholds_of):
            label.native.setWordWrap(True)
        self.model_note.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.numbers.native.setMinimumHeight(260)
        self.charts.setMinimumWidth(360)
        # the dock is as wide as its widest row (the numbers and the accuracy note stay readable): the
        # minimum goes on the tab widget, which the dock sizes to (a scroll area hides its content's)
        self.tabs.setMinimumWidth(440)

    def open_chart_window(self, *_) -> None:
        """The charts larger in a window of their own, following the dock's (zoom, the values under the pointer)."""
        try:  # (an error in a Qt slot aborts napari where no hook catches it: a pathologist lost a session, 39)
            from napari_prunuclei.gui.chart_window import open_chart_window

            self.chart_window = open_chart_window(self.charts, self.native, self.chart_window)
        except Exception as e:  # noqa: BLE001 - said, the dock goes on
            self._error(f"the charts' window could not open: {type(e).__name__}: {e}")

    def reset_choices(self, *_) -> None:
        """napari calls this when layers come and go: the layer boxes live in the tabs' pages."""
        super().reset_choices()
        for page in getattr(self, "pages", {}).values():
            page.reset_choices()
        self._regrid_truths()

    def _reference_choices(self) -> list[str]:
        """dense, none, then every fine-tuned zoo pair (e.g. to set layer-wise against network-wide)."""
        self._references = {"dense": ModelSpec()}
        for scheme, crs in self.zoo.items():
            if scheme != "dense":
                for cr in crs:
                    self._references[f"{scheme_label(scheme)} CR{cr:g}"] = ModelSpec(scheme, cr)
        return ["dense", ALONE, *list(self._references)[1:]]

    def reference_spec(self) -> ModelSpec | None:
        value = self.reference.value
        return None if value == ALONE else self._references.get(value, ModelSpec())

    def _on_image(self, *_) -> None:
        """A new image: its file's pixel size, if any; another image's ground truth unchosen; the sweep forgotten."""
        layer = self.image.value
        said = self._truth_on_image(layer)  # another image's unchosen, this one's chosen
        self._forget_sweep()
        self._mark_stale()
        self._draw_legend()  # (what it names depends on whether the chosen image is the run's)
        if said:  # with what the controls say of the run shown now, not older notices (pathologist, session 35)
            self.status.value = (said + self._controls_said()).rstrip()
        meta = getattr(layer, "metadata", {}) if layer is not None else {}
        px = meta.get("pixel_size_um") or meta.get(PUT_PIXEL_SIZE)  # the file's, or the one a run put on the layer
        if px:
            self.pixel_size.value = float(px)
            self._px_from_image = self.pixel_size.value if meta.get("pixel_size_um") else None  # (as the box holds
            # it, rounded: the file's 0.22709... read as typed, and was put on the next image: session 39)
        elif getattr(self, "_px_from_image", None) == self.pixel_size.value:
            self.pixel_size.value = 0  # the previous image's size does not hold for this one
            self._px_from_image = None
        elif layer is not None and self.pixel_size.value and self._put_pixel_size(layer, float(self.pixel_size.value)):
            said = (self.status.value or "").rstrip(". ")
            self.status.value = (f"{said + '. ' if said else ''}Pixel size {self.pixel_size.value:g} µm (as typed) "
                                 f"is used for '{layer.name}' too: change it if this image's differs.")

    @property
    def result(self) -> compute.ComparisonResult | None:
        return self.state.result


    # ---- parameters -------------------------------------------------
    def _on_scheme(self, value: str) -> None:
        dense = self.schemes[value] == "dense"
        if not dense:  # this scheme's zoo CRs (kept where the scheme has the same one)
            before = self.cr.value
            choices = self._cr_choices(value)
            if list(self.cr.choices) != choices:  # (magicgui appends new choices after the kept ones: CRs out of
                self.cr.choices = choices[:1]  # order, 'other' in the middle; a pathologist, session 35)
                self.cr.choices = choices
                self.cr.value = before if before in choices else choices[0]
        self.cr.enabled = not dense
        self.fine_tuned.enabled = not dense and self.cr.value != "other"

    def _on_cr(self, value: str) -> None:
        """"other" CR is made by one-shot pruning: the fine-tuned box says so and cannot be ticked."""
        other = value == "other"
        self.cr_other.visible = other
        if other:
            self.fine_tuned.value = False
        elif not self.fine_tuned.enabled:
            self.fine_tuned.value = True
        self.fine_tuned.enabled = not other and self.schemes[self.scheme.value] != "dense"

    def spec(self) -> ModelSpec:
        """The chosen model; "other" CR is made by one-shot pruning."""
        other = self.cr.value == "other"
        cr = float(self.cr_other.value) if other else float(self.cr.value)
        return ModelSpec(self.schemes[self.scheme.value], cr, bool(self.fine_tuned.value) and not other)

    def _model_defaults(self, *_) -> None:
        """Set the thresholds to the chosen model's own (tuned for the pair where the zoo has them) and say
        what is known of its accuracy."""
        try:
            spec = self.spec()
            note, warn = compute_models.model_note(spec)
        except Exception:  # noqa: BLE001 - shown when the user presses Run
            return
        self.model_note.value = ("⚠ " if warn else "") + note
        self.model_note.native.setWordWrap(True)
        self.model_note.native.setStyleSheet("color: #ffb000;" if warn else "")
        if self.result is None:  # nothing shown: the boxes preview the chosen model's own thresholds
            self._set_thresholds(self._own_params(spec))
        else:  # the boxes belong to the run on the canvas (its model A): only say the controls changed
            self._mark_stale()


    def params(self) -> WatershedParams:
        return WatershedParams(float(self.fg.value), float(self.marker.value), int(self.min_size.value))

    def request(self) -> compute.CompareRequest:
        layer = self.image.value
        if layer is None:
            raise ImageError("no image layer: open an H&E image (File > Open) or a sample first")
        from napari.layers import Image

        if not isinstance(layer, Image):
            raise ImageError(f"layer '{layer.name}' is a {type(layer).__name__} layer, not an RGB image")
        spec = self.spec()
        params = self.params()
        own = self._own_params(spec)
        px = float(self.pixel_size.value) or None
        shown = self.result
        if shown is not None and shown.request.spec != spec:
            params = own  # the boxes are the shown run's model's: another model runs with its own thresholds
        seg = SegmentRequest(scheme=spec.scheme, cr=spec.cr, fine_tuned=spec.fine_tuned,
                             params=None if params == own else params, device=self.device.value, tiling=self.tiling,
                             pixel_size=px)  # the models see the tissue at their own pixel size
        ref = self.reference_spec()
        return compute.CompareRequest(image_name=layer.name, segment=seg, compare_dense=ref is not None,
                                      reference=ref, region=self._region(layer), pixel_size=px)

    def _region(self, layer) -> tuple[int, int, int, int] | None:
        """The part of ``layer`` in view (rows, columns of its full-resolution data) when "visible region
        only" is ticked; refuses one larger than 2048 x 2048 px."""
        if not self.region.value:
            return None
        data = layer.data[0] if layer.multiscale else layer.data
        h, w = data.shape[:2]
        camera = camera_of(self.viewer)
        center = np.asarray(camera.center[-2:], float)
        half = cell_size(self.viewer) / camera.zoom / 2  # one cell's view (side by side: half the canvas)
        corners = [layer.world_to_data(center - half)[-2:], layer.world_to_data(center + half)[-2:]]
        (r0, c0), (r1, c1) = np.floor(np.min(corners, 0)), np.ceil(np.max(corners, 0))
        r0, r1 = int(max(0, r0)), int(min(h, r1))
        c0, c1 = int(max(0, c0)), int(min(w, c1))
        if r1 - r0 < 32 or c1 - c0 < 32:
            raise ImageError("the visible region holds (almost) none of the image: pan to it, or untick "
                             "'visible region only'")
        limit = self.tiling.whole_max_pixels  # the region runs whole: maps, disagreement, thresholds
        if (r1 - r0) * (c1 - c0) > limit:
            side = int(limit**0.5)
            raise ImageError(f"the visible region is {c1 - c0} x {r1 - r0} px: zoom in to at most {side} x {side} px "
                             "(or untick 'visible region only')")
        return r0, r1, c0, c1


    def _region_rgb(self, r: compute.ComparisonResult) -> np.ndarray | None:
        """The run's image (its region, for a region run) in memory; None for slides and lost layers."""
        layer = self.state.image_layer()
        if layer is None:
            return None
        if r.request.region is not None:
            r0, r1, c0, c1 = r.request.region
            data = layer.data[0] if layer.multiscale else layer.data
            return np.asarray(data[r0:r1, c0:c1])
        return None if layer.multiscale else np.asarray(layer.data)

    def _show_numbers(self) -> None:
        """The numbers as a table (model rows x metrics) with the comparison lines below it."""
        r = self.result
        self.numbers.native.setStyleSheet("")  # the shown run's own numbers: not stale
        self.numbers_text = "" if r is None else compute_report.format_numbers(r)
        self._numbers_html, self._numbers_banner = "", ""  # (the banner: _mark_stale's, over the greyed numbers)
        if r is None:
            self.numbers.value = ""
        else:
            self._numbers_html = compute_report.numbers_html(r) + self._known_accuracy_html(r)
            self.numbers.native.setHtml(self._numbers_html)

    def _on_layer_removed(self, *_) -> None:
        """The viewer is empty (closed, or every layer deleted): nothing shows this run any more, so its
        scratch stores go (a Qt ``destroyed`` hook crashed the interpreter at exit)."""
        if len(self.viewer.layers) == 0 and (self.state.result is not None or self.scratch.root is not None):
            self.clear()

    def clear(self) -> None:
        """Remove every layer this widget made and its scratch stores."""
        self._abandon_showing()
        self.state.clear()
        self._fill_differences()
        self.scratch.cleanup()
        self.numbers.value = ""
        self.numbers_text, self._numbers_html, self._numbers_banner = "", "", ""
        self.name_thresholds()


