"""The dock widget: pick a pruned model, run it beside the dense one, compare, export.

A thin shell: it gathers parameters into a :class:`RunRequest`, runs
:func:`_compute.run` in a napari ``thread_worker`` and shows the result layers.
"""



import threading
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
from napari.utils.notifications import show_error, show_info
from napari.viewer import Viewer

from ..devices import available_devices
from ..io import ImageError, check_lazy_rgb
from ..models.zoo import default_watershed, zoo_crs
from ..postprocess import WatershedParams
from . import _compute as compute

SCHEMES = {"network-wide": "networkwide", "layer-wise": "layerwise", "dense": "dense"}


class PruneCompareWidget(Container):
    """Compare a pruned nuclei model with the dense one on an H&E image."""

    def __init__(self, viewer: Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        ws = default_watershed()
        try:
            crs = zoo_crs() or [2, 4, 5, 8, 10, 16, 20, 32, 50, 100]
        except Exception:  # noqa: BLE001 - no registry: one-shot values still work
            crs = [2, 4, 5, 8, 10, 16, 20, 32, 50, 100]
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
        self.export_btn = PushButton(text="Export pruned instances")
        self.sweep_btn = PushButton(text="CR sweep on this image (both schemes)")
        self.extend([
            self.image, self.scheme, self.cr, self.cr_other, self.fine_tuned, self.device, self.fg, self.marker,
            self.min_size, self.compare, self.truth, self.run_btn, self.cancel_btn, self.progress,
            self.side_by_side, self.status, self.numbers, self.export_path, self.export_btn, self.sweep_btn,
        ])
        from ._plots import ChartsCanvas

        self.charts = ChartsCanvas()
        self.native.layout().addWidget(self.charts)
        self.sweep_rows: list[dict] | None = None
        self.result: compute.RunResult | None = None
        self.worker = None
        self._cancel = threading.Event()
        self._layers: list[str] = []
        self._pending: list = []
        self._showing = False
        self._grid_before: tuple | None = None
        self._returned = False
        self.cr.changed.connect(lambda v: setattr(self.cr_other, "visible", v == "other"))
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
            w.changed.connect(self._on_params)
        self.truth.changed.connect(self._on_truth)

    # ---- parameters -------------------------------------------------
    def _on_scheme(self, value: str) -> None:
        dense = SCHEMES[value] == "dense"
        for w in (self.cr, self.fine_tuned):
            w.enabled = not dense

    def _model_defaults(self, *_) -> None:
        """Set the thresholds to the chosen model's defaults (its own if tuned for it, else the card's)."""
        scheme = SCHEMES[self.scheme.value]
        cr = float(self.cr_other.value) if self.cr.value == "other" else float(self.cr.value)
        fine_tuned = bool(self.fine_tuned.value) and self.cr.value != "other"
        ws = default_watershed(scheme, cr, fine_tuned)
        self._quiet = True  # no watershed re-run on the previous result
        try:
            self.fg.value, self.marker.value, self.min_size.value = ws.fg_threshold, ws.marker_threshold, ws.min_size
        finally:
            self._quiet = False

    def params(self) -> WatershedParams:
        return WatershedParams(float(self.fg.value), float(self.marker.value), int(self.min_size.value))

    def request(self) -> compute.RunRequest:
        layer = self.image.value
        if layer is None:
            raise ImageError("no image layer: open an H&E image (File > Open) or a sample first")
        if layer.__class__.__name__ != "Image":
            raise ImageError(f"layer '{layer.name}' is a {layer.__class__.__name__} layer, not an RGB image")
        cr = float(self.cr_other.value) if self.cr.value == "other" else float(self.cr.value)
        return compute.RunRequest(
            image_name=layer.name, scheme=SCHEMES[self.scheme.value], cr=cr,
            fine_tuned=bool(self.fine_tuned.value), device=self.device.value, params=self.params(),
            compare_dense=bool(self.compare.value),
        )

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

    def _start(self, generator, on_result, message: str, after=None):
        """Run ``generator`` (yielding Progress) in a napari thread worker.

        ``after(result)``, if given, also runs in the worker (e.g. drawing a chart).
        """
        from napari.qt.threading import thread_worker

        self._cancel.clear()
        self.status.value = message
        self.progress.value = 0
        self.run_btn.enabled = self.sweep_btn.enabled = False
        self.cancel_btn.enabled = True
        def job():
            result = yield from generator
            if after is not None and result is not None:
                after(result)
            return result

        worker = thread_worker(job)()
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
        gen = compute.run(rgb, req, cancelled=self._cancel.is_set, truth=truth)
        return self._start(gen, self._on_result, f"running {req.model_label()}...", after=self._draw_sparsity)

    def _draw_sparsity(self, result: compute.RunResult) -> None:
        self.charts.refresh()

    def start_sweep(self, *_):
        """Metric against CR for both schemes on the current image, in a worker."""
        inputs = self._inputs()
        if inputs is None:
            return None
        req, rgb, truth = inputs
        if compute.is_slide(rgb.shape):
            self._error("the CR sweep runs on images up to 2048x2048: crop a region of this slide first")
            return None
        crs = [float(c) for c in self.cr.choices if c != "other"]
        gen = compute.sweep_image(rgb, crs, req.device, req.params, truth, self._cancel.is_set)
        return self._start(gen, self._on_sweep, "CR sweep...", after=self.charts.show_sweep)

    def _on_sweep(self, rows: list[dict] | None) -> None:
        if rows is None:
            self.status.value = "cancelled"
            return
        self.sweep_rows = rows
        self.charts.refresh()
        self.status.value = "CR sweep done"

    def _checked_rgb(self):
        """The image as RGB uint8; a slide above 2048x2048 stays lazy (read tile by tile later)."""
        from ..io import as_rgb_uint8

        layer = self.image.value
        data = layer.data[0] if layer.multiscale else layer.data
        if compute.is_slide(data.shape):
            return check_lazy_rgb(data, f"layer '{layer.name}'")
        return as_rgb_uint8(np.asarray(data), name=f"layer '{layer.name}'")

    def cancel(self, *_) -> None:
        self._cancel.set()
        if self.worker is not None:
            self.worker.quit()
        self.status.value = "cancelling..."

    def _on_progress(self, p: compute.Progress) -> None:
        if self._cancel.is_set():
            return
        self.progress.max = p.total
        self.progress.value = p.done
        self.status.value = p.message

    def _on_result(self, result: compute.RunResult | None) -> None:
        if result is None:  # cancelled
            self.status.value = "cancelled"
            return
        self.result = result
        self._show(result)
        self.charts.refresh()
        self.status.value = f"done: {result.pruned.label}"

    def _on_error(self, e: Exception) -> None:
        self._error(f"{type(e).__name__}: {e}")

    def _on_finished(self) -> None:
        self.run_btn.enabled = self.sweep_btn.enabled = True
        self.cancel_btn.enabled = False
        if self._cancel.is_set() and not self._returned:
            self.status.value = "cancelled"
        self.worker = None

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
        return np.asarray(truth.data)

    def _on_truth(self, *_) -> None:
        if self.result is not None:
            t = self._truth_array(self.result.pruned.labels.shape)
            self.result.numbers = compute.compute_numbers(self.result.pruned, self.result.dense, t)
            self._show_numbers()

    def _on_params(self, *_) -> None:
        """Re-run only the watershed on the cached branch outputs."""
        if self.result is None or self._quiet:
            return
        try:
            self.result = compute.rewatershed(self.result, self.params(),
                                              self._truth_array(self.result.pruned.labels.shape))
        except ValueError as e:
            self._error(str(e))
            return
        self._show(self.result)

    # ---- layers -----------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a run is going or its layers are still being added."""
        return self.worker is not None or self._showing

    def _show(self, result: compute.RunResult) -> None:
        """Add or update the result layers one per event-loop turn, so the GUI never stalls long."""
        self._showing = True
        image = result.request.image_name
        self._pending = list(compute.layer_specs(result, image))
        # a re-run with another model on the same image renames and updates the previous layers
        previous = {_role(n, image): n for n in self._layers if n in self.viewer.layers}
        for name, *_ in self._pending:
            old = previous.get(_role(name, image))
            if old is not None and old != name and name not in self.viewer.layers:
                self.viewer.layers[old].name = name
        self._layers = [spec[0] for spec in self._pending]
        self._show_next()

    def _show_next(self) -> None:
        from qtpy.QtCore import QTimer

        if not self._pending:
            self._arrange()
            self._show_numbers()
            self._showing = False
            return
        name, data, kwargs, kind = self._pending.pop(0)
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
            layer.metadata = kwargs.get("metadata", {})
        else:
            add = self.viewer.add_image if kind == "image" else self.viewer.add_labels
            layer = add(data, name=name, **kwargs)
            if name.endswith("disagreement with dense"):
                _color_disagreement(layer)
        QTimer.singleShot(0, self._show_next)

    def _show_numbers(self) -> None:
        if self.result is None:
            return
        self.numbers.value = compute.format_numbers(self.result)

    def _arrange(self, *_) -> None:
        """Side by side in napari's grid mode (one camera): dense in the left cell, pruned in the right.

        Each cell needs its own copy of the image underneath, so the dense cell gets a
        view of the image (and of the disagreement layer) named ``... (dense view)``;
        they go away when the toggle is turned off. Other layers keep their place after
        the two groups (a visible one, e.g. ground truth, gets a cell of its own).
        """
        if self.result is None:
            return
        layers = self.viewer.layers
        grid = self.viewer.canvas.grid
        on = bool(self.side_by_side.value) and self.result.dense is not None
        image_name = self.result.request.image_name
        dense = [n for n in self._layers if " · dense · " in n and n in layers]
        pruned = [n for n in self._layers if " · dense · " not in n and n in layers]
        disagreement = [n for n in pruned if n.endswith("disagreement with dense")]
        mirrors = {f"{image_name} · (dense view)": image_name}
        mirrors.update({f"{n} (dense view)": n for n in disagreement})
        if not on or image_name not in layers:
            for m in mirrors:
                if m in layers:
                    layers.remove(m)
            if self._grid_before is not None:
                grid.enabled, grid.stride, grid.shape = self._grid_before
                self._grid_before = None
            return
        for m, src_name in mirrors.items():
            src = layers[src_name]
            if m in layers:
                layers[m].data = src.data
            elif src_name == image_name:
                self.viewer.add_image(src.data, name=m, rgb=src.rgb)
            else:
                _color_disagreement(self.viewer.add_labels(src.data, name=m, opacity=src.opacity))
        left = [f"{image_name} · (dense view)", *dense, *(f"{n} (dense view)" for n in disagreement)]
        right = [image_name, *[n for n in pruned if n not in disagreement], *disagreement]
        stride = max(len(left), len(right))
        order = left + [None] * (stride - len(left)) + right
        # move the two groups to the bottom of the layer list, in order (index 0 is the bottom)
        for dest, name in enumerate(order):
            if name is None:
                continue
            i = layers.index(name)
            if i != dest:
                layers.move(i, dest)
        if self._grid_before is None:
            self._grid_before = (grid.enabled, grid.stride, grid.shape)
        grid.stride = stride
        grid.shape = (1, -1)
        grid.enabled = True
        self.viewer.reset_view()

    # ---- export -----------------------------------------------------
    def export(self, *_) -> Path | None:
        if self.result is None:
            self._error("nothing to export: run a model first")
            return None
        from ..export import export_labels

        path = Path(self.export_path.value)
        layer = self.image.value
        rgb = np.asarray(layer.data) if layer is not None and not layer.multiscale else None
        try:
            out = export_labels(path, self.result.pruned.labels, rgb)
        except (OSError, ValueError) as e:
            self._error(f"export failed, nothing written: {e}")
            return None
        self.status.value = f"exported {self.result.pruned.labels.max()} nuclei to {out}"
        show_info(self.status.value)
        return out


def _role(name: str, image: str) -> tuple[str, bool, str] | None:
    """(image, dense or not, output) of a result layer name ``image · model · output``."""
    if not name.startswith(f"{image} · "):
        return None
    return image, " · dense · " in name, name.rsplit(" · ", 1)[-1]


def _color_disagreement(layer) -> None:
    from napari.utils.colormaps import DirectLabelColormap

    layer.colormap = DirectLabelColormap(color_dict=compute.DISAGREEMENT_COLORS)
