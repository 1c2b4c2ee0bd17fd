"""Runs of the widget in napari workers: the comparison, the CR sweep, the watershed re-run; progress, cancel,
results and errors."""

from __future__ import annotations

import gc

import numpy as np
from napari.utils.notifications import show_error, show_warning

from napari_prunuclei.base.progress import Cancelled, Progress
from napari_prunuclei.gui.shown import STALE
from napari_prunuclei.gui.tooltips import DEBOUNCE_MS
from napari_prunuclei.gui.warmup import import_for_labels
from napari_prunuclei.io.guards import ImageError
from napari_prunuclei.io.images import as_rgb_uint8, check_lazy_rgb
from napari_prunuclei.io.measure import one_line
from napari_prunuclei.study import session as compute
from napari_prunuclei.study import session_models as compute_models
from napari_prunuclei.study import session_report as compute_report


class RunActions:
    """Methods of :class:`~napari_prunuclei.gui.widget.PruneCompareWidget`: runs, progress, cancel, results."""

    # ---- running ----------------------------------------------------
    def _inputs(self):
        """The request, the checked RGB array and the ground truth; None after showing an error."""
        try:
            req = self.request()
            rgb = self._checked_rgb(req.region)
            self._check_truth(self.image.value)  # never another open image's nuclei
        except (ImageError, ValueError) as e:
            self._error(str(e))
            return None
        return req, rgb, self._truth_array(rgb.shape[:2], req.region)

    def _start(self, job, on_result, message: str, after=None, keeps_run: bool = False):
        """Run ``job`` (a generator yielding Progress) in a napari thread worker.

        ``after(result)``, if given, also runs in the worker (e.g. drawing a chart off-screen);
        ``on_result`` runs on the GUI thread. A cancelled job returns None. ``keeps_run``: the job leaves the run
        shown as it is (a sweep, a timing): its progress says when the controls name another run.
        """
        from napari.qt.threading import thread_worker

        if self.worker is not None:  # e.g. Ctrl+Shift+R while a job runs: one job at a time
            self.status.value = f"busy: {self.status.value}"
            return None
        self._cancel.clear()
        self._job_keeps_run = keeps_run
        self._finish_showing()
        self._clear_notifications()
        if not self._gc_frozen:
            # napari's own objects (about half a million) go to the permanent generation for the job: a full
            # collection, set off by the job's allocations, then scans only the job's objects. Otherwise it
            # scans napari's too, holding the GIL for about 200 ms and stalling the GUI thread (9000 x 9000
            # export: 262/325 ms stalls, 63 ms with this). Given back in _on_finished.
            gc.freeze()
            self._gc_frozen = True
        self.status.value = message
        self.progress.value = 0
        self.run_btn.enabled = self.sweep_btn.enabled = self.export_btn.enabled = self.time_btn.enabled = False
        self.cancel_btn.enabled = True

        def work():
            import_for_labels()  # napari's first labels layer's imports, here rather than on the GUI thread
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
        self._carry_pixel_size(req)
        truth_name = self.truth.value.name if truth is not None else None
        job = compute.run(rgb, req, cancelled=self._cancel.is_set, truth=truth, scratch=self.scratch)
        return self._start(job, lambda result: self._on_result(result, truth_name), f"running {req.spec.label}...",
                           after=self._draw_sparsity)

    def _draw_sparsity(self, result: compute.ComparisonResult) -> None:
        """In the worker: plot and render the chosen model's per-layer sparsity off-screen."""
        if result.sparsity is not None:
            self.charts.show_sparsity(result.sparsity, result.chosen.info.model)

    def start_sweep(self, *_):
        """Metric and seconds against CR for every zoo model on the current image, in a worker."""
        inputs = self._inputs()
        if inputs is None:
            return None
        req, rgb, truth = inputs
        if self.tiling.is_tiled(rgb.shape):
            self._error("the CR sweep runs on images up to 2048x2048: crop a region of this slide first")
            return None
        key = self._sweep_key()
        of = (req.image_name, req.region, self.truth.value.name if truth is not None else None)  # what it is of
        name = one_line(req.image_name)
        name = name if len(name) <= 40 else name[:39] + "…"
        where = f"'{name}'\n" + compute_report.region_text(req.region)  # ("whole image" said too)
        n = len(compute_models.zoo_pairs())

        def live() -> bool:  # its image, truth and region still chosen (else a kept sweep may be on the chart)
            return self._sweep_live

        def so_far(rows) -> None:  # in the worker: each pair drawn as it comes (the chart was empty for 147 s)
            self._sweep_partial = (rows, f"{where}, running: {len(rows)} of {n} pairs")  # (drawn when live again)
            if self.charts.show_sweep(rows, where=self._sweep_partial[1], only_if=live):
                self._sweep_drawn = True  # shown on the GUI thread at the next progress

        def last(rows) -> None:  # in the worker: the whole sweep, where it is still live
            self._sweep_final = self.charts.show_sweep(rows, where=where, only_if=live)

        # every registered scheme and zoo CR, unstructured and channel, on this image (and this region)
        job = compute_models.sweep_image(rgb, None, req.segment.device, truth, self._cancel.is_set,
                                         pixel_size=req.pixel_size, on_rows=so_far)
        if self.worker is None:  # (else _start refuses: another job, maybe a sweep, runs)
            self._sweep_running, self._sweep_running_where, self._sweep_live = key, where, True
            self._sweep_final, self._sweep_partial = False, None
        worker = self._start(job, lambda rows: self._on_sweep(rows, key, of, where), "CR sweep...", after=last,
                             keeps_run=True)
        if worker is not None:  # (a pathologist read "press 'CR sweep'" over the chart of a sweep at 84 %)
            self.charts.clear_sweep(f"running on {where}...")
            worker.errored.connect(lambda *_: self._sweep_ended())
        return worker

    def _sweep_ended(self) -> None:
        """A sweep cancelled, failed or of another image now: the chart shows the sweep kept for this image again,
        or asks for one."""
        self._sweep_running, self._sweep_drawn, self._sweep_live = None, False, False
        if self.sweep_rows is not None:
            self.charts.show_sweep(self.sweep_rows, where=self._sweep_where)
            self.charts.refresh()
        else:
            self.charts.clear_sweep("press 'CR sweep' for this image")

    def start_timing(self, *_):
        """Time A's and B's networks and watershed on the shown run's image (median of 3 interleaved runs after a
        warm-up), in a worker; the timing joins the shown run's numbers (dropped with it)."""
        from napari_prunuclei.study import timing

        r = self.result
        if r is None or r.pruned is None or r.dense is None:  # (it named a choice already made: pathologist, 39)
            self._error("timing compares the shown run's model A with its model B: press Run first" if r is None else
                        "timing compares model A with model B: the run shown has one model; choose a model B "
                        "other than A and press Run")
            return None
        rgb = None if r.tiled else self._region_rgb(r)
        if rgb is None:
            self._error("timing runs on images up to 2048x2048 (or the visible region of a slide) that are still open")
            return None
        rgb = as_rgb_uint8(rgb, name=f"layer '{r.request.image_name}'")
        job = timing.time_pair(rgb, compute.model_requests(r.request), repeat=3, cancelled=self._cancel.is_set)

        def done(t) -> None:
            if t is None:
                self.status.value = "timing cancelled"
            elif self.result is not r:
                self.status.value = "timing done, but another result is shown now: not kept"
            else:
                r.timing = t
                self._show_numbers()
                self.status.value = f"timed A vs B: {compute_report.speed_text(r)}"
                self._mark_stale(force=True, said=self.status.value)  # the numbers greyed again if stale

        return self._start(job, done, "timing A and B (warm-up, then 3 interleaved runs each)...", keeps_run=True)

    def _on_sweep(self, rows: list[compute_models.ImageSweepRow] | None, key: tuple | None = None,
                  of: tuple | None = None, where: str = "this image") -> None:
        if rows is None:
            judged = compute_models.verdict(self.result) if self.result is not None else None
            self.status.value = "CR sweep cancelled" + (f". The run shown: {judged}" if judged else "")
            self._sweep_ended()
            self._mark_stale(force=True, said=self.status.value)
            return
        if key is not None and key != self._sweep_key():  # the image, truth or region changed meanwhile
            if self.sweep_rows is None:  # (a sweep kept for what is chosen now stays, and its reason)
                self.sweep_dropped = self._sweep_change(key)
            self._kept_sweep = (key, rows, of, where)  # shown when they are chosen again; in its run's report
            self.status.value = ("CR sweep done, but the image, ground truth or region changed meanwhile: set aside "
                                 "(shown when they are chosen again)")
            self._sweep_ended()  # the chart: the sweep kept for what is chosen now, or none (a reviewer saw it empty)
            return
        self._sweep_running, self._sweep_drawn, self._sweep_live = None, False, False
        self.sweep_rows, self.sweep_key, self.sweep_of, self._sweep_where = rows, key, of, where
        self.sweep_dropped, self._kept_sweep = None, None
        if not self._sweep_final:  # (not live when it ended in the worker, chosen again since)
            self.charts.show_sweep(rows, where=where)
        self.charts.refresh()
        judged = compute_models.verdict(self.result) if self.result is not None else None
        edited = self.result is not None and compute_models.edited_thresholds(self.result) is not None
        own = " (each pair at its own thresholds)" if edited else ""
        self.status.value = (f"CR sweep done: {len(rows)} pairs on the chart{own}"  # the run's verdict kept (a
                             + (f". The run shown: {judged}" if judged else ""))  # pathologist saw it replaced)
        self._mark_stale(force=True, said=self.status.value)  # still say when the controls name another run

    def _checked_rgb(self, region=None):
        """The image (or its ``region``) as RGB uint8; a slide above 2048x2048 stays lazy (read tile by
        tile later)."""
        layer = self.image.value
        data = layer.data[0] if layer.multiscale else layer.data
        if region is not None:
            r0, r1, c0, c1 = region
            return as_rgb_uint8(np.asarray(data[r0:r1, c0:c1]), name=f"layer '{layer.name}' (region)")
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
        # a sweep or timing keeps the run shown: its progress still says when the controls name another (greyed)
        stale = self._job_keeps_run and self.result is not None and self._stale
        self.status.value = f"{p.message} ({STALE})" if stale else p.message
        if self._sweep_drawn:  # a sweep's rows so far, drawn off-screen in the worker
            self._sweep_drawn = False
            self.charts.refresh()

    def _on_result(self, result: compute.ComparisonResult | None, truth_name: str | None = None,
                   edited: bool = False) -> None:
        if result is None:  # cancelled
            self.status.value = "cancelled: nothing shown changed" if self.result is not None else "cancelled"
            self._mark_stale(said=self.status.value)  # and, when the controls name another run, that
            return
        self._shown_truth = truth_name
        result.truth_name = truth_name  # the report and exports name it
        truth = next((layer for layer in self._truth_choices() if layer.name == truth_name), None)
        self.state.set_truth(truth if truth_name is not None else None)  # before the layers: side by side draws it
        shown = self.result
        waiting = self._params_pending or (self._params_timer is not None and self._params_timer.isActive())
        if waiting and (shown is None or shown.request.spec != result.request.spec):
            self._params_pending = False  # an edit of another model's thresholds: not applied to this one
            if self._params_timer is not None:
                self._params_timer.stop()
            waiting = False
        self._show(result)
        self._show_scale_bar()
        if not waiting:  # else the boxes hold a later edit, applied when this job is done (the latest edit wins)
            self._set_thresholds(self.shown_thresholds(result))  # the boxes: the shown run's model A
        self.charts.refresh()
        self.tabs.setCurrentIndex(list(self.pages).index("Numbers"))  # what the run found
        ref = f" vs {result.dense.info.model}" if result.pruned is not None and result.dense is not None else ""
        said = compute_models.verdict(result, edit=False)  # (the edit said in full below)
        self.status.value = f"done: {said}" if said else f"done: {result.chosen.info.model}{ref}"
        warning = compute_models.run_warning(result)
        if warning:
            self.status.value = f"warning: {warning}"
            show_warning(warning)
        box = compute_models.edited_thresholds(result)  # None: model A ran with its own thresholds
        if box is not None:
            own = compute_models.own_thresholds(result.request.spec)
            self.status.value += (f" (A ran with edited thresholds: fg {box.fg_threshold:g}, marker "
                                  f"{box.marker_threshold:g}, min size {box.min_size:g}; "
                                  f"{compute_models.whose_own(result.request.spec)}: fg "
                                  f"{own.fg_threshold:g}, marker {own.marker_threshold:g}, min size {own.min_size:g})")
        covering = self.covering_layers()
        if self.run_image_hidden():  # its results over another tile's tissue (pathologist, session 38)
            covering, note = [], (f"'{result.request.image_name}', the image this run was computed on, is hidden: "
                                  "the results lie over other layers. Show it to see the results on their own image.")
        if covering:  # e.g. a second tile opened after the first, napari's default: both shown
            names = ", ".join(f"'{n}'" for n in covering)
            note = (f"{names} {'is' if len(covering) == 1 else 'are'} shown over '{result.request.image_name}', the "
                    f"image this run was computed on: the results and that image are not what you see together. "
                    f"Hide {'it' if len(covering) == 1 else 'them'} to see the results on their own image.")
        if covering or self.run_image_hidden():
            self._cover_note = f". Note: {note}"  # (taken back when nothing covers it: see legend.py)
            self.status.value = f"{str(self.status.value).rstrip('. ')}{self._cover_note}"
            show_warning(note)
        said = self.status.value
        self.name_thresholds()  # the boxes are this run's now
        self._mark_stale(force=True)  # the controls may still name another image or model than the run shown
        if edited and self.status.value != said:  # stale: say what the edit did, then what the controls say
            n = result.chosen.n_nuclei
            self.status.value = (f"thresholds applied to the run shown ({result.request.image_name}, "
                                 f"{result.chosen.info.model}): {n} nuclei. {self.status.value}")
        if self._showing:  # its layers are still being made over the next turns: 'done' once they are (shown.py)
            drawing = (f"drawing the layers of {result.chosen.info.model} on "
                       f"'{one_line(result.request.image_name)[:80]}'...")
            self._said_when_shown = (drawing, self.status.value)
            self.status.value = drawing

    def _on_error(self, e: Exception) -> None:
        self._error(f"{type(e).__name__}: {e}")

    def _controls_ready(self) -> None:
        """Run, sweep, export and time usable again: the job is over and the result's layers are made."""
        self.run_btn.enabled = self.sweep_btn.enabled = self.export_btn.enabled = True
        r = self.result  # timing compares A with B: only for a shown run of both
        self.time_btn.enabled = r is not None and r.pruned is not None and r.dense is not None

    def _on_finished(self) -> None:
        if not self._showing:  # else when the result's layers are made (shown.py): busy until then
            self._controls_ready()
        self.cancel_btn.enabled = False
        if self._gc_frozen and not self._showing:  # else when the result's layers are made (shown.py)
            gc.unfreeze()
            self._gc_frozen = False
        if self._cancel.is_set() and not self._returned:
            self.status.value = "cancelled"
        self.worker = None
        if self._params_pending:
            self._params_pending = False
            self._rerun_watershed()
        elif not self._showing and self._stale_unchecked:  # controls changed during a job that shows nothing
            self._mark_stale(said=str(self.status.value))  # (after what the job's end said: cancelled, an error)

    def _error(self, msg: str) -> None:
        self.status.value = f"error: {msg}"
        show_error(msg)
        self._mark_stale(said=self.status.value)  # still say when the results shown are another run's (session 35)

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
        # the edit re-scores against the truth the shown run used (whatever the controls now name: another image
        # and its truth may be chosen meanwhile), on the shown run's image
        shown_truth = self._shown_truth
        layer = next((t for t in self._truth_choices() if t.name == shown_truth), None) if shown_truth else None
        truth = (self._truth_array(r.chosen.labels.shape, r.request.region, layer, self.state.image_layer())
                 if layer is not None else None)
        params, rgb = self.params(), self._region_rgb(r)

        def job():
            yield Progress(0, 1, "watershed with the new thresholds...")
            new = compute.rerun_watershed(r, params, truth, rgb)
            yield Progress(1, 1, "watershed done")
            return new

        return self._start(job(), lambda result: self._on_result(result, shown_truth if truth is not None else None,
                                                                 edited=True),
                           "watershed with the new thresholds...")

    # ---- layers -----------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a job runs, a threshold re-run waits, or result layers are still being added."""
        timer = self._params_timer is not None and self._params_timer.isActive()
        return self.worker is not None or self._showing or timer or self._params_pending
