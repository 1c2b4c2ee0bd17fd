"""The dock widget: pick a pruned model, run it beside the dense one, compare, export.

A thin shell: it gathers parameters into a :class:`~._compute.CompareRequest`, runs
jobs (:func:`_compute.run`, the threshold re-run, the export, the CR sweep) in napari
``thread_worker``s, shows their :class:`~napari_prunuclei.progress.Progress` in one bar,
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
from napari.utils.notifications import show_error, show_info, show_warning
from napari.viewer import Viewer

from ..constants import DEFAULT_CRS, EXPORT_EXTENSIONS, SCHEME_LABELS
from ..devices import available_devices
from ..io import ImageError, as_rgb_uint8, check_lazy_rgb
from ..models.zoo import zoo_crs
from ..pipeline import ModelSpec, SegmentRequest, Tiling, load_pair
from ..postprocess import WatershedParams
from ..progress import Cancelled, Progress
from . import _compute as compute
from ._state import ComparisonState

#: scheme choices as shown -> scheme names
SCHEMES = {SCHEME_LABELS[s]: s for s in ("networkwide", "layerwise", "dense")}
#: keyboard shortcuts in the viewer: key -> (widget -> callback of the viewer)
SHORTCUTS = {
    "Control-Shift-R": lambda w: lambda viewer: w.start_run(),
    "Control-Shift-G": lambda w: lambda viewer: setattr(w.side_by_side, "value", not w.side_by_side.value),
}
#: what the Export button can write
EXPORT_WHAT = ("chosen model", "dense", "disagreement")
#: a threshold edit waits this long for the next one before the watershed re-runs
DEBOUNCE_MS = 300
TOOLTIPS = {
    "image": "The H&E image to segment (RGB, 8 bits). Slides above 2048 x 2048 run tile by tile.",
    "scheme": "Unstructured magnitude pruning: layer-wise keeps the same fraction of every layer, network-wide "
              "ranks all weights together. Dense: the unpruned model.",
    "cr": "Compression ratio: prunable weights of the dense model / weights kept. 'other' prunes any CR one-shot.",
    "cr_other": "Any compression ratio, made now by one-shot magnitude pruning (not fine-tuned).",
    "fine_tuned": "Fine-tuned after pruning (the zoo's models); untick for the same CR pruned one-shot.",
    "model_note": "The zoo's measured accuracy of this pair on the MoNuSeg test split (prunuclei sweep).",
    "device": "Where the networks run.",
    "fg": "Foreground threshold: a pixel is nucleus where the semantic probability exceeds it.",
    "marker": "Marker threshold: watershed seeds are the parts of the distance map above it.",
    "min_size": "Nuclei (and markers) smaller than this many pixels are dropped.",
    "defaults_btn": "Set the thresholds back to the chosen model's own (tuned on held-back training images).",
    "compare": "Also run the dense model (with its own thresholds) and compare.",
    "truth": "A labels layer of ground-truth nuclei (instance ids) to score both models against. Empty? Open "
             "a label image (.tif or 16-bit .png of ids) with File > Open: it opens as a Labels layer.",
    "run_btn": "Run the chosen model (and dense) in the background (Ctrl+Shift+R).",
    "cancel_btn": "Stop the running job; nothing is shown or written.",
    "progress": "Steps (tiles and branches) done.",
    "side_by_side": "napari grid mode, one camera: dense on the left, the pruned model on the right "
                    "(Ctrl+Shift+G).",
    "numbers": "Nuclei counts, agreement with dense and ground truth, weights pruned, timings and thresholds.",
    "export_path": "Where to export: .tif (ids), .png (16-bit), .geojson (QuPath), .csv (measurements).",
    "export_what": "Which result to export: the chosen model's nuclei, dense's, or the disagreement map.",
    "overwrite": "Unticked, an existing file is never replaced.",
    "export_btn": "Export (in the background; slides block by block), with the run's provenance in the file.",
    "sweep_btn": "Every zoo CR of both schemes on this image: agreement with dense against CR.",
}


class PruneCompareWidget(Container):
    """Compare a pruned nuclei model with the dense one on an H&E image."""

    def __init__(self, viewer: Viewer) -> None:
        super().__init__(labels=True, scrollable=True)  # fits short screens: the dock scrolls
        self.viewer = viewer
        ws = WatershedParams()
        try:
            crs = zoo_crs() or list(DEFAULT_CRS)
        except Exception:  # noqa: BLE001 - no registry: one-shot values still work
            crs = list(DEFAULT_CRS)
        self.image = create_widget(annotation="napari.layers.Image", label="H&E image")
        self.scheme = ComboBox(choices=list(SCHEMES), value="network-wide", label="pruning")
        self.cr = ComboBox(choices=[*(f"{c:g}" for c in crs), "other"], value="20" if 20 in crs else f"{crs[0]:g}",
                           label="compression ratio")
        self.cr_other = FloatSpinBox(value=12, min=1, max=10000, step=0.5, label="other CR (one-shot)",
                                     visible=False)
        self.fine_tuned = CheckBox(value=True, text="fine-tuned (else one-shot)")
        self.device = ComboBox(choices=available_devices(), value=available_devices()[-1], label="device")
        self.fg = FloatSpinBox(value=ws.fg_threshold, min=0.05, max=0.95, step=0.05, label="foreground thr.")
        self.marker = FloatSpinBox(value=ws.marker_threshold, min=0.05, max=0.95, step=0.05, label="marker thr.")
        self.min_size = SpinBox(value=ws.min_size, min=0, max=5000, label="min nucleus px")
        self.compare = CheckBox(value=True, text="compare with dense")
        self.truth = create_widget(annotation="napari.layers.Labels", label="ground truth",
                                   options={"nullable": True})
        self.run_btn = PushButton(text="Run")
        self.cancel_btn = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, max=1, label="progress")
        self.side_by_side = CheckBox(value=False, text="side by side (dense left, pruned right)")
        self.status = Label(value="")
        self.numbers = TextEdit(value="", label="numbers")
        self.numbers.read_only = True
        self.export_path = FileEdit(mode="w", label="export to", filter="*.tif *.png *.geojson *.csv",
                                    value=str(Path.home() / "nuclei.tif"))
        self.export_what = ComboBox(choices=list(EXPORT_WHAT), value="chosen model", label="export")
        self.overwrite = CheckBox(value=False, text="overwrite an existing file")
        self.export_btn = PushButton(text="Export")
        self.sweep_btn = PushButton(text="CR sweep on this image (both schemes)")
        self.model_note = Label(value="", label="known accuracy")
        self.defaults_btn = PushButton(text="Restore the model's thresholds")
        self.extend([
            self.image, self.scheme, self.cr, self.cr_other, self.fine_tuned, self.model_note, self.device, self.fg,
            self.marker, self.min_size, self.defaults_btn, self.compare, self.truth, self.run_btn, self.cancel_btn,
            self.progress, self.side_by_side, self.status, self.numbers, self.export_what, self.export_path,
            self.overwrite, self.export_btn, self.sweep_btn,
        ])
        for w, tip in TOOLTIPS.items():
            getattr(self, w).tooltip = tip
        from ._plots import ChartsCanvas

        self.charts = ChartsCanvas()
        self.native.layout().addWidget(self.charts)
        self.native.setMinimumWidth(480)  # the numbers and the accuracy note stay readable
        self.sweep_rows: list[compute.ImageSweepRow] | None = None
        self.state = ComparisonState(viewer)
        self.scratch = compute.Scratch()
        weakref.finalize(self, self.scratch.cleanup)  # when the widget goes, and at interpreter exit
        viewer.layers.events.removed.connect(self._on_layer_removed)  # closing a viewer removes every layer
        self.tiling = Tiling()  # the pipeline's tiling policy (tests make it smaller)
        for key, action in SHORTCUTS.items():
            viewer.bind_key(key, action(self), overwrite=True)
        self.worker = None
        self._cancel = threading.Event()
        self._showing = False
        self._returned = False
        self._params_timer = None
        self._params_pending = False
        self.cr.changed.connect(self._on_cr)
        self.defaults_btn.changed.connect(self._model_defaults)
        self.scheme.changed.connect(self._on_scheme)
        self._quiet = False
        for w in (self.scheme, self.cr, self.cr_other, self.fine_tuned):
            w.changed.connect(self._model_defaults)
        self._model_defaults()
        self.run_btn.changed.connect(self.start_run)
        self.cancel_btn.changed.connect(self.cancel)
        self.side_by_side.changed.connect(self._arrange)
        self.export_btn.changed.connect(self.export)
        self.sweep_btn.changed.connect(self.start_sweep)
        for w in (self.fg, self.marker, self.min_size):
            w.changed.connect(self._on_params_edited)
        self.truth.changed.connect(self._on_truth)

    @property
    def result(self) -> compute.ComparisonResult | None:
        return self.state.result

    # ---- parameters -------------------------------------------------
    def _on_scheme(self, value: str) -> None:
        dense = SCHEMES[value] == "dense"
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
        self.fine_tuned.enabled = not other and SCHEMES[self.scheme.value] != "dense"

    def spec(self) -> ModelSpec:
        """The chosen model; "other" CR is made by one-shot pruning."""
        other = self.cr.value == "other"
        cr = float(self.cr_other.value) if other else float(self.cr.value)
        return ModelSpec(SCHEMES[self.scheme.value], cr, bool(self.fine_tuned.value) and not other)

    def _model_defaults(self, *_) -> None:
        """Set the thresholds to the chosen model's own (tuned for the pair where the zoo has them) and say
        what is known of its accuracy."""
        try:
            spec = self.spec()
            note, warn = compute.model_note(spec)
            ws = load_pair(spec).params
        except Exception:  # noqa: BLE001 - shown when the user presses Run
            return
        self.model_note.value = ("⚠ " if warn else "") + note
        self.model_note.native.setWordWrap(True)
        self.model_note.native.setStyleSheet("color: #ffb000;" if warn else "")
        self._quiet = True  # no watershed re-run on the previous result
        try:
            self.fg.value, self.marker.value, self.min_size.value = ws.fg_threshold, ws.marker_threshold, ws.min_size
        finally:
            self._quiet = False

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
        own = load_pair(spec).params
        seg = SegmentRequest(scheme=spec.scheme, cr=spec.cr, fine_tuned=spec.fine_tuned,
                             params=None if params == own else params, device=self.device.value, tiling=self.tiling)
        return compute.CompareRequest(image_name=layer.name, segment=seg, compare_dense=bool(self.compare.value))

    # ---- running ----------------------------------------------------
    def _inputs(self):
        """The request, the checked RGB array and the ground truth; None after showing an error."""
        try:
            req = self.request()
            rgb = self._checked_rgb()
        except (ImageError, ValueError) as e:
            self._error(str(e))
            return None
        return req, rgb, self._truth_array(rgb.shape[:2])

    def _start(self, job, on_result, message: str, after=None):
        """Run ``job`` (a generator yielding Progress) in a napari thread worker.

        ``after(result)``, if given, also runs in the worker (e.g. drawing a chart off-screen);
        ``on_result`` runs on the GUI thread. A cancelled job returns None.
        """
        from napari.qt.threading import thread_worker

        self._cancel.clear()
        self.status.value = message
        self.progress.value = 0
        self.run_btn.enabled = self.sweep_btn.enabled = self.export_btn.enabled = False
        self.cancel_btn.enabled = True

        def work():
            try:
                result = yield from job
            except Cancelled:
                return None
            if after is not None and result is not None:
                after(result)
            return result

        worker = thread_worker(work)()
        worker.yielded.connect(self._on_progress)
        self._returned = False

        def returned(result) -> None:
            self._returned = True
            on_result(result)

        worker.returned.connect(returned)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()
        return worker

    def start_run(self, *_):
        """Start a run in a worker thread; returns the worker (None if the input is wrong)."""
        inputs = self._inputs()
        if inputs is None:
            return None
        req, rgb, truth = inputs
        job = compute.run(rgb, req, cancelled=self._cancel.is_set, truth=truth, scratch=self.scratch)
        return self._start(job, self._on_result, f"running {req.spec.label}...", after=self._draw_sparsity)

    def _draw_sparsity(self, result: compute.ComparisonResult) -> None:
        """In the worker: plot and render the chosen model's per-layer sparsity off-screen."""
        if result.sparsity is not None:
            self.charts.show_sparsity(result.sparsity, result.chosen.info.model)

    def start_sweep(self, *_):
        """Metric against CR for both schemes on the current image, in a worker."""
        inputs = self._inputs()
        if inputs is None:
            return None
        req, rgb, truth = inputs
        if self.tiling.is_tiled(rgb.shape):
            self._error("the CR sweep runs on images up to 2048x2048: crop a region of this slide first")
            return None
        crs = [float(c) for c in self.cr.choices if c != "other"]
        job = compute.sweep_image(rgb, crs, req.segment.device, truth, self._cancel.is_set)
        return self._start(job, self._on_sweep, "CR sweep...", after=self.charts.show_sweep)

    def _on_sweep(self, rows: list[compute.ImageSweepRow] | None) -> None:
        if rows is None:
            self.status.value = "cancelled"
            return
        self.sweep_rows = rows
        self.charts.refresh()
        self.status.value = "CR sweep done"

    def _checked_rgb(self):
        """The image as RGB uint8; a slide above 2048x2048 stays lazy (read tile by tile later)."""
        layer = self.image.value
        data = layer.data[0] if layer.multiscale else layer.data
        if self.tiling.is_tiled(data.shape):
            return check_lazy_rgb(data, f"layer '{layer.name}'")
        return as_rgb_uint8(np.asarray(data), name=f"layer '{layer.name}'")

    def cancel(self, *_) -> None:
        """Ask the running job to stop: it raises Cancelled at its next step (one cancel path)."""
        self._cancel.set()
        self.status.value = "cancelling..."

    def _on_progress(self, p: Progress) -> None:
        """The napari side of the progress protocol: the dock's bar and status line."""
        if self._cancel.is_set():
            return
        self.progress.max = p.total
        self.progress.value = p.done
        self.status.value = p.message

    def _on_result(self, result: compute.ComparisonResult | None) -> None:
        if result is None:  # cancelled
            self.status.value = "cancelled"
            return
        self._show(result)
        self.charts.refresh()
        self.status.value = f"done: {result.chosen.info.model}"
        warning = compute.run_warning(result)
        if warning:
            self.status.value = f"warning: {warning}"
            show_warning(warning)

    def _on_error(self, e: Exception) -> None:
        self._error(f"{type(e).__name__}: {e}")

    def _on_finished(self) -> None:
        self.run_btn.enabled = self.sweep_btn.enabled = self.export_btn.enabled = True
        self.cancel_btn.enabled = False
        if self._cancel.is_set() and not self._returned:
            self.status.value = "cancelled"
        self.worker = None
        if self._params_pending:
            self._params_pending = False
            self._rerun_watershed()

    def _error(self, msg: str) -> None:
        self.status.value = f"error: {msg}"
        show_error(msg)

    def _truth_array(self, shape) -> np.ndarray | None:
        truth = self.truth.value
        if truth is None:
            return None
        if tuple(truth.data.shape) != tuple(shape):
            self._error(f"ground truth '{truth.name}' has shape {truth.data.shape}, the image {tuple(shape)}")
            return None
        if self.tiling.is_tiled(shape):
            return None  # slides: counts only, no pixel-wise comparison
        return np.asarray(truth.data)

    def _on_truth(self, *_) -> None:
        r = self.result
        if r is None:
            return
        truth = self._truth_array(r.chosen.labels.shape)
        if r.tiled:
            return
        r.numbers = compute.compute_numbers(r.pruned, r.dense, truth)
        self._show_numbers()

    def _on_params_edited(self, *_) -> None:
        """A threshold changed: re-run the watershed after DEBOUNCE_MS without further edits."""
        if self.result is None or self._quiet:
            return
        from qtpy.QtCore import QTimer

        if self._params_timer is None:
            self._params_timer = QTimer(self.native)  # owned by the dock: destroyed with it, before Qt ends
            self._params_timer.setSingleShot(True)
            self._params_timer.setInterval(DEBOUNCE_MS)
            self._params_timer.timeout.connect(self._rerun_watershed)
        self._params_timer.start()

    def _rerun_watershed(self):
        """Only the watershed of the chosen model again, in a worker, on the cached maps."""
        r = self.result
        if r is None:
            return None
        if self.worker is not None:  # after the running job
            self._params_pending = True
            return None
        if r.tiled:
            self._error("this slide ran tile by tile without keeping the maps: press Run to apply new thresholds")
            return None
        params, truth = self.params(), self._truth_array(r.chosen.labels.shape)
        layer = self.state.image_layer()
        rgb = np.asarray(layer.data) if layer is not None and not layer.multiscale else None

        def job():
            yield Progress(0, 1, "watershed with the new thresholds...")
            new = compute.rerun_watershed(r, params, truth, rgb)
            yield Progress(1, 1, "watershed done")
            return new

        return self._start(job(), self._on_result, "watershed with the new thresholds...")

    # ---- layers -----------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a job runs, a threshold re-run waits, or result layers are still being added."""
        timer = self._params_timer is not None and self._params_timer.isActive()
        return self.worker is not None or self._showing or timer or self._params_pending

    def _show(self, result: compute.ComparisonResult | None) -> None:
        """Hand the result to the comparison state, in one event-loop turn (napari's OpenGL canvas
        crashed under Mesa when it painted between the removal and the addition of layers)."""
        self._showing = True
        try:
            self.state.apply(result, bool(self.side_by_side.value))
            self._show_numbers()
        finally:
            self._showing = False

    def _show_numbers(self) -> None:
        self.numbers.value = "" if self.result is None else compute.format_numbers(self.result)

    def _arrange(self, *_) -> None:
        """Side by side on or off: the dense cell's views are added or removed, the grid set."""
        if not self._showing:
            self.state.set_side_by_side(bool(self.side_by_side.value))

    def _on_layer_removed(self, *_) -> None:
        """The viewer is empty (closed, or every layer deleted): nothing shows this run any more, so its
        scratch stores go (a Qt ``destroyed`` hook crashed the interpreter at exit)."""
        if len(self.viewer.layers) == 0 and (self.state.result is not None or self.scratch.root is not None):
            self.clear()

    def clear(self) -> None:
        """Remove every layer this widget made and its scratch stores."""
        self.state.clear()
        self.scratch.cleanup()
        self.numbers.value = ""

    # ---- export -----------------------------------------------------
    def export(self, *_):
        """Write the chosen result in a worker (streamed for slides), with its provenance; returns the worker."""
        r = self.result
        if r is None:
            self._error("nothing to export: run a model first")
            return None
        from ..export import iter_export

        image = r.request.image_name
        what = self.export_what.value
        if what == "disagreement":
            if r.disagreement is None:
                self._error("no disagreement map: run a pruned model with 'compare with dense' on an image "
                            "up to 2048 x 2048")
                return None
            labels, prov = r.disagreement, {**compute.disagreement_metadata(r)["prunuclei"],
                                            "models": [s.info.model for s in (r.dense, r.pruned)]}
            n = sum(r.numbers.disagreement.values())
        else:
            seg = r.dense if what == "dense" else r.chosen
            if seg is None:
                self._error("no dense run: tick 'compare with dense' and press Run")
                return None
            labels, prov, n = seg.labels, compute.layer_metadata(seg, image)["prunuclei"], seg.n_nuclei
        path = Path(self.export_path.value)
        layer = self.state.image_layer()
        rgb = None
        if layer is not None and getattr(layer, "rgb", False):
            rgb = layer.data[0] if layer.multiscale else layer.data
            if tuple(rgb.shape[:2]) != tuple(labels.shape):
                rgb = None
        if path.suffix.lower() not in EXPORT_EXTENSIONS:
            self._error(f"export failed, nothing written: {path.name!r} needs one of the extensions "
                        f"{', '.join(EXPORT_EXTENSIONS)}")
            return None
        if not path.parent.is_dir():
            self._error(f"export failed, nothing written: folder {path.parent} does not exist")
            return None
        if path.exists() and not self.overwrite.value:
            self._error(f"export failed, nothing written: {path} exists; tick 'overwrite' or choose another name")
            return None
        job = iter_export(path, labels, rgb, cancelled=self._cancel.is_set, provenance=prov,
                          overwrite=bool(self.overwrite.value))

        def done(out) -> None:
            if out is None:
                self.status.value = "export cancelled, nothing written"
                return
            self.status.value = f"exported {n} {'regions' if what == 'disagreement' else 'nuclei'} to {out}"
            show_info(self.status.value)

        return self._start(job, done, f"exporting to {path.name}...")

