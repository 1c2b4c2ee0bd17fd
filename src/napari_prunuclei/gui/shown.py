"""What the canvas shows against what the controls say: the shown run owns its thresholds and ground truth, its
sweep belongs to its image, changed controls mark it stale."""

from __future__ import annotations

import time
from html import escape

from napari_prunuclei.gui.camera import camera_of
from napari_prunuclei.gui.state import PAINT, raw
from napari_prunuclei.nuclei.watershed import WatershedParams
from napari_prunuclei.runtime.pairs import ModelSpec
from napari_prunuclei.study import session as compute
from napari_prunuclei.study.session_models import verdict, whose_own

#: the metadata key of the plugin's own result layers (their provenance): never offered as an input
OWN_METADATA = "prunuclei"
#: the metadata key of an image layer whose pixel size the plugin put there (from the pixel size box)
PUT_PIXEL_SIZE = "prunuclei_pixel_size_put"
#: the status's warning while the controls name another run than the one shown
STALE = "⚠ the results shown are the last run's"
AGAIN = "The controls describe the run on the canvas again"  # (said with the run's verdict)
#: GUI-thread time one event-loop turn may spend on a result's layers before the next turn (a napari layer made
#: hidden costs 80-180 ms on this project's CPU, its first slice as much again: one of those per turn; cheap
#: in-place updates run together)
STEP_BUDGET_S = 0.02
#: show a result's layers over several event-loop turns, the canvas held until the first PAINT step or the end
#: (off: in one turn, a stall of about 1 s on a 1000x1000 tile). Every action that reads or changes the layers
#: first finishes the showing (:meth:`ShownRun._finish_showing`), and the widget is busy until it is done
STEPWISE = True


class ShownRun:
    """Methods of :class:`~napari_prunuclei.gui.widget.PruneCompareWidget`: the shown run and the controls."""

    # ---- showing a result ---------------------------------------------
    def _show(self, result: compute.ComparisonResult | None) -> None:
        """Hand the result to the comparison state: its layers in one turn (with :data:`STEPWISE`: over
        event-loop turns, the canvas held until the first PAINT step or the end), then the numbers and the
        Differences list."""
        self._finish_showing()
        self._start_showing(self.state.show(result, bool(self.side_by_side.value)))
        self._show_numbers()
        self._fill_differences()

    def _start_showing(self, steps, hold: bool = True) -> None:
        """Run ``steps`` (a :meth:`ComparisonState.show` generator) over event-loop turns (:data:`STEPWISE`);
        ``hold``: the canvas does not paint until a PAINT step or the last step (else each turn paints what it
        made, spreading the textures' upload over the turns)."""
        self._showing = True
        self._steps = steps
        # busy until the layers are all made, a side-by-side toggle too (a pathologist saw Run enabled for 6 s)
        self.run_btn.enabled = self.sweep_btn.enabled = self.export_btn.enabled = self.time_btn.enabled = False
        if not STEPWISE or (hold and not self._hold_canvas(True)):
            self._finish_showing()
        else:
            self._step()

    def _arrange(self, *_) -> None:
        """Side by side on or off: the dense cell's views are added or removed, the grid set (a result still
        being shown is finished first, and takes the new choice with it)."""
        import gc

        gc.freeze()  # napari collects garbage at each layer removed: of the job's objects only, not napari's
        try:
            if self._steps is not None:
                self._finish_showing()
            elif self.state.result is not None:  # the same run, re-arranged over event-loop turns
                self._gc_frozen = True  # unfrozen when the layers are made (_end_showing)
                # the canvas is held meanwhile: say why (a pathologist saw it black for 4 s); said back once drawn
                if self.worker is None:  # (during a job the status is the job's progress: kept)
                    drawing = "drawing side by side..." if self.side_by_side.value else "drawing one view..."
                    self._said_when_shown = (drawing, str(self.status.value))
                    self.status.value = drawing
                self._start_showing(self.state.show(self.state.result, bool(self.side_by_side.value)))
            else:
                self.state.set_side_by_side(bool(self.side_by_side.value))
        finally:
            if not self._gc_frozen:
                gc.unfreeze()

    def _hold_canvas(self, on: bool) -> bool:
        """Stop (or let) the viewer's OpenGL canvas paint; False where none is found."""
        from qtpy.QtWidgets import QOpenGLWidget

        found = self.native.window().findChildren(QOpenGLWidget)
        for c in found:
            c.setUpdatesEnabled(not on)  # enabled again: Qt repaints it
        return bool(found)

    def _step(self) -> None:
        """Layers of the result being shown for up to STEP_BUDGET_S, then the next turn."""
        if self._steps is None or self._stepping:  # (re-entered from an event loop napari runs inside a step)
            return
        t0 = time.perf_counter()
        self._stepping = True
        try:
            while True:
                paint = next(self._steps) is PAINT and not self._finish_now
                if paint:  # the canvas paints what is made so far before the next step
                    self._hold_canvas(False)
                if paint or time.perf_counter() - t0 > STEP_BUDGET_S and not self._finish_now:
                    break
        except StopIteration:
            self._end_showing()
            return
        except BaseException as e:
            said, self._said_when_shown = self._said_when_shown, None
            self._end_showing()
            if said is not None:  # never 'done' over layers that failed to be made
                self.status.value = f"error: the result's layers could not all be made ({type(e).__name__}: {e})"
            raise
        finally:
            self._stepping = False
        if self._step_timer is None:
            from qtpy.QtCore import QTimer

            self._step_timer = QTimer(self.native)  # owned by the dock: destroyed with it
            self._step_timer.setSingleShot(True)
            self._step_timer.setInterval(1)  # not 0: Qt's zero timers stalled under processEvents() loops
            self._step_timer.timeout.connect(self._step)
        self._step_timer.start()

    def _finish_showing(self) -> None:
        """The rest of the result being shown, now (called from inside a step: the step runs to the end)."""
        if self._stepping:
            self._finish_now = True
            return
        if self._steps is not None:
            try:
                for _ in self._steps:
                    pass
            finally:
                self._end_showing()

    def _abandon_showing(self) -> None:
        """Stop showing a result half-way (its layers are about to be removed): its status never says 'done'."""
        said, self._said_when_shown = self._said_when_shown, None
        if said is not None and said[0] in str(self.status.value):
            self.status.value = str(self.status.value).replace(said[0], "results cleared")
        if self._stepping:  # a generator cannot be closed from inside itself: that step finishes it
            self._finish_now = True
            return
        if self._steps is not None:
            self._steps.close()
            self._end_showing()

    def _end_showing(self) -> None:
        self._steps = None
        self._finish_now = False
        self._hold_canvas(False)
        self._showing = False
        if self.worker is None:  # the job ended before its layers were all made: usable now (first: never left
            self._controls_ready()  # greyed by an error below)
        if self._gc_frozen and self.worker is None:  # kept frozen while the layers were made, as during the job
            import gc

            gc.unfreeze()
            self._gc_frozen = False
        if self.state.side_by_side != bool(self.side_by_side.value):  # toggled meanwhile
            self.state.set_side_by_side(bool(self.side_by_side.value))
        said, self._said_when_shown = self._said_when_shown, None
        status = str(self.status.value)
        if said is not None and said[0] in status:  # the run's status, now that its layers are made (what was
            self.status.value = status.replace(said[0], said[1])  # added to it meanwhile kept)
        if self.worker is None and self._stale_unchecked:  # controls changed while the layers were made
            self._mark_stale(said=str(self.status.value))

    def _users_layers(self, kind: type) -> list:
        """The viewer's layers of ``kind`` that are not the plugin's own results: neither this widget's (side by
        side views included) nor any layer marked as a result (``prunuclei`` in its metadata, as every result
        layer and export carries)."""
        state = getattr(self, "state", None)
        mine = list(state.owned().values()) if state is not None else []
        return [layer for layer in self.viewer.layers if isinstance(layer, kind) and layer not in mine
                and OWN_METADATA not in layer.metadata]

    def _image_choices(self, *_) -> list:
        """The image box's choices: the user's image layers, never the plugin's own maps or side by side views."""
        from napari.layers import Image

        return self._users_layers(Image)

    def _cr_choices(self, scheme_label_: str) -> list[str]:
        """The CR box's choices for a scheme: the zoo's CRs, then "other" (a one-shot pruning)."""
        crs = self.zoo.get(self.schemes.get(scheme_label_, ""), [])
        return [*(f"{c:g}" for c in crs), "other"]

    def _sweep_key(self) -> tuple:
        """What a CR sweep belongs to: the image, the ground truth and the region choice."""
        layer, truth = self.image.value, self.truth.value
        return (id(raw(layer)), getattr(layer, "name", None), id(raw(truth)) if truth is not None else None,
                bool(self.region.value))

    def _sweep_change(self, key: tuple) -> str:
        """What changed since the sweep of ``key`` (a :meth:`_sweep_key`), in words."""
        now = self._sweep_key()
        if key[:2] != now[:2]:
            return f"the image changed from '{key[1]}' to '{now[1]}'"
        if key[2] != now[2]:
            truth = self.truth.value
            to = f"'{truth.name}'" if truth is not None else "no ground truth"
            return f"the ground truth changed (to {to})"
        return f"'visible region only' was turned {'on' if now[3] else 'off'}"

    def _forget_sweep(self, *_) -> None:
        """The sweep no longer belongs to the image, truth or region chosen: dropped, and the report says why; kept
        aside, and shown again when they are chosen again (a pathologist lost a 70 s sweep to a ground truth
        unchosen and chosen again, session 35)."""
        key = self._sweep_key()
        running, was_live = self._sweep_running, self._sweep_live
        self._sweep_live = running is not None and running == key  # first: the worker stops drawing (under the lock)
        if running is not None and running != key and self.sweep_rows is None and self._kept_sweep is None:
            # a running sweep's rows so far are of what is no longer chosen (it stops drawing: see start_sweep)
            self.charts.clear_sweep(f"the sweep running on {self._sweep_running_where} is not shown: "
                                    f"{self._sweep_change(running)}")
        if self.sweep_rows is not None and self.sweep_key != key:
            # (swapped with the one kept aside: two sweeps, each of its own choice, both kept)
            aside, self._kept_sweep = self._kept_sweep, (self.sweep_key, self.sweep_rows, self.sweep_of,
                                                         self._sweep_where)
            self.sweep_dropped = self._sweep_change(self.sweep_key)
            self.sweep_rows = self.sweep_key = self.sweep_of = None
            if aside is not None and aside[0] == key:
                self.sweep_key, self.sweep_rows, self.sweep_of, self._sweep_where = aside
                self.sweep_dropped = None
                self.charts.show_sweep(self.sweep_rows, where=self._sweep_where)
                self.charts.refresh()
            else:
                self.charts.clear_sweep(f"set aside: {self.sweep_dropped}; shown again on going back, or "
                                        "press 'CR sweep'")  # (why, not only what; and that it is kept: session 38)
        elif self.sweep_rows is None and self._kept_sweep is not None and self._kept_sweep[0] == key:
            self.sweep_key, self.sweep_rows, self.sweep_of, self._sweep_where = self._kept_sweep
            self._kept_sweep, self.sweep_dropped = None, None
            self.charts.show_sweep(self.sweep_rows, where=self._sweep_where)
            self.charts.refresh()
        if self._sweep_live and not was_live and self._sweep_partial is not None:  # chosen again: its rows so far
            rows, title = self._sweep_partial  # at once (they waited for the next pair, session 37)
            self.charts.show_sweep(rows, where=title)
            self.charts.refresh()

    def _mark_stale(self, *_, force: bool = False, said: str = "") -> None:
        """Say, without touching what is shown, when the controls no longer describe the run on the canvas;
        ``said``: what the status just said (kept before the warning)."""
        r = self.result
        # force: a run's own result, just shown; a sweep or timing leaves the run shown: judged at once
        if r is None or (not force and (self._showing or (self.busy and not (self.worker and self._job_keeps_run)))):
            self._stale_unchecked = r is not None  # compared when the layers are made (_end_showing)
            return
        self._stale_unchecked = False
        req, diffs = r.request, []
        layer = self.image.value
        if layer is None or layer.name != req.image_name:
            diffs.append(f"image '{getattr(layer, 'name', None)}'")
        try:
            spec = self.spec()
        except (ValueError, TypeError):
            spec = None
        if spec != req.spec:
            diffs.append(f"model A {spec.label if spec else '?'}")
        if self.reference_spec() != ((req.reference or ModelSpec()) if req.compare_dense else None):
            diffs.append(f"model B {self.reference.value}")
        self.mark_differences(list(diffs))  # the disagreement events: of the run's image and models A and B
        truth = self.truth.value
        slide = self.tiling.is_tiled(tuple(r.chosen.labels.shape[:2]))  # a slide's run uses no ground truth
        if (truth.name if truth is not None else None) != self._shown_truth and not slide:
            diffs.append(f"ground truth '{truth.name}'" if truth is not None else "no ground truth")
        if (float(self.pixel_size.value) or None) != req.pixel_size:
            diffs.append(f"pixel size {self.pixel_size.value:g}")
        if bool(self.region.value) != (req.region is not None):
            diffs.append(f"'visible region only' {'on' if self.region.value else 'off'}")
        # the numbers are greyed while they describe another setting than the controls, under a line saying so
        # (the grey alone read as a theme's; the table's numbers looked current: pathologist pass, session 37)
        self.numbers.native.setStyleSheet("color: #8a8a8a;" if diffs else "")
        banner = (f'<p style="color:#e0a000">⚠ these numbers are the last run\'s ({escape(req.image_name)}, '
                  f"{escape(req.spec.label)}); the controls now say {escape(', '.join(diffs))}: press Run</p>"
                  if diffs else "")
        if banner != self._numbers_banner:
            self._numbers_banner = banner
            self.numbers.native.setHtml(banner + self._numbers_html)
        self._stale = bool(diffs)
        status = str(self.status.value)
        said = (said[:said.find(STALE)] if STALE in said else said).rstrip(". ")  # what the caller just said
        if not diffs and STALE in status:
            judged = verdict(r, edit="edited thresholds" not in said)  # what "done" said (kept on going back)
            self.status.value = (f"{said + '. ' if said else ''}{AGAIN}"  # (the verdict names the model)
                                 + (f": {judged}" if judged else f" ({req.spec.label})"))
        if diffs:
            self.status.value = (f"{said + '. ' if said else ''}{STALE} ({req.image_name}, {req.spec.label}); the "
                                 f"controls now say {', '.join(diffs)}: press Run to update.")

    def _carry_pixel_size(self, req: compute.CompareRequest) -> None:
        """A run with a pixel size puts it on the image layer when it has none yet, so the results, the image
        and napari's scale bar are in µm; a ground truth of the image's shape is drawn on the image's grid."""
        if self.image.value is not None:
            self._put_pixel_size(self.image.value, req.pixel_size)
        self._align_truth()

    def _put_pixel_size(self, layer, px: float | None) -> bool:
        """Give ``layer`` the pixel size ``px`` (napari scale, µm) when it has none, or one the plugin put there
        before; the camera keeps the same place in view where the rest of the world was in pixels."""
        one = all(abs(float(v) - 1.0) <= 1e-12 for v in layer.scale[-2:])
        ours = layer.metadata.get(PUT_PIXEL_SIZE)
        if not px or not (one or ours) or (ours and abs(float(ours) - px) <= 1e-12):
            return False
        mine = list(self.state.owned().values())  # the plugin's layers follow the image's grid
        pixels = all(all(abs(float(v) - 1.0) <= 1e-12 for v in other.scale[-2:])
                     for other in self.viewer.layers if other is not layer and other not in mine)
        factor = px / float(layer.scale[-1])
        if pixels:  # the same place in view, now in µm (moved first: the run's layers follow the new scale at
            camera = camera_of(self.viewer)  # once, keeping the view they find; after, they gave back the old one)
            camera.center = tuple(c * factor for c in camera.center[-2:])
            camera.zoom = camera.zoom / factor
        layer.scale = (*layer.scale[:-2], px, px)
        layer.units = (*layer.units[:-2], "um", "um")
        layer.metadata[PUT_PIXEL_SIZE] = px
        return True

    def _show_scale_bar(self) -> None:
        """napari's scale bar in µm while the shown run's image carries a pixel size."""
        layer = self.state.image_layer()
        known = layer is not None and any(abs(float(v) - 1.0) > 1e-12 for v in layer.scale[-2:])
        bar = self.viewer.canvas.overlays.scale_bar  # (viewer.scale_bar: deprecated since napari 0.9)
        if known and not bar.visible:  # the scale bar reads the layers' units (µm: set with the pixel size)
            if str(bar.position) in ("bottom_right", "CanvasPosition.BOTTOM_RIGHT"):
                bar.position = "bottom_left"  # napari's notifications pop up bottom right, over the bar
            bar.visible = True

    def _clear_notifications(self) -> None:
        """A new job starts: the last job's pop-up notices go (they spoke of another run)."""
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        for widget in app.allWidgets() if app is not None else []:
            if type(widget).__name__ == "NapariQtNotification" and widget.isVisible():
                widget.close()

    def _known_accuracy_html(self, result: compute.ComparisonResult) -> str:
        """What the zoo's sweep measured of each model shown (A and B), for the Numbers tab."""
        from html import escape

        from napari_prunuclei.study.session_models import model_note

        lines = []
        for tag, seg, spec in (("A", result.pruned, result.request.spec),
                               ("B", result.dense, result.request.reference or ModelSpec())):
            if seg is None:
                continue
            if result.pruned is None:  # one model alone: the chosen one
                tag, spec = "", result.request.spec
            try:
                note, warn = model_note(spec)
            except Exception:  # noqa: BLE001 - a model outside the registry: nothing known
                continue
            who = f"{tag} ({escape(seg.info.model)})" if tag else escape(seg.info.model)
            lines.append(f"{'⚠ ' if warn else ''}known accuracy of {who}: {escape(note)}")
        return "<p><small>" + "<br>".join(lines) + "</small></p>" if lines else ""

    def _canvas_writer(self, path, r: compute.ComparisonResult):
        """What canvas.png needs, taken from the layers now (GUI thread); returns a function that writes it at the
        image's (or region's) resolution, composed from the run's data (side by side: both cells), and returns its
        caption: call it in a worker. A slide run tile by tile: a screenshot of the canvas, taken now."""
        from napari_prunuclei.io.images import as_rgb_uint8
        from napari_prunuclei.study import report_canvas

        rgb = None if r.tiled else self._region_rgb(r)
        if rgb is None:
            self.viewer.screenshot(str(path), canvas_only=True)
            return lambda: "a screenshot of the canvas (a slide run tile by tile is not drawn at full resolution)"
        side = bool(self.side_by_side.value) and self.state.side_by_side
        owned = self.state.owned()
        visible = {role: layer.visible for role, layer in owned.items()}
        # the ground truth as the canvas shows it: the user's layer (or, side by side, its views in the cells)
        t = self.state.truth_layer
        views = [owned.get(("view", f"{m} truth")) for m in ("dense", "pruned")]
        shown = t is not None and t in self.viewer.layers and (t.visible or any(v is not None and v.visible
                                                                                for v in views))
        truth = self._truth_array(r.chosen.labels.shape, r.request.region, t, self.state.image_layer()) if shown \
            else None

        def write() -> str:
            report_canvas.write_canvas(path, as_rgb_uint8(rgb, name=r.request.image_name), r, side, visible, truth)
            return report_canvas.canvas_caption(r, side, truth is not None)

        return write

    @staticmethod
    def _own_params(spec: ModelSpec) -> WatershedParams:
        """A model's own thresholds, from the registry (no weights loaded)."""
        from napari_prunuclei.study.session_models import own_thresholds

        return own_thresholds(spec)

    def _set_thresholds(self, ws: WatershedParams) -> None:
        self._quiet = True  # no watershed re-run
        try:
            self.fg.value, self.marker.value, self.min_size.value = ws.fg_threshold, ws.marker_threshold, ws.min_size
        finally:
            self._quiet = False

    def name_thresholds(self, *_) -> None:
        """Say above the threshold boxes whose they are: the shown run's model A (an edit re-runs its watershed),
        else the chosen model's; "edited" where they differ from that model's own."""
        r = self.result
        try:
            chosen = self.spec()
        except (ValueError, TypeError):
            chosen = None
        spec = r.request.spec if r is not None else chosen
        if spec is None:
            return
        whose = "the shown run" if r is not None else "the chosen model A (nothing run yet)"
        own = whose_own(spec) + ("" if whose_own(spec) == "its own" else ": a one-shot model has none tuned")
        edited = ", edited" if self.params() != self._own_params(spec) else f" ({own})"
        text = f"thresholds of {whose}: {spec.label}{edited}"
        if r is not None and chosen is not None and chosen != spec:
            text += f". The chosen {chosen.label} is not run yet: Run uses {whose_own(chosen)} thresholds."
        self.thresholds_of.value = text

    def shown_thresholds(self, result: compute.ComparisonResult) -> WatershedParams:
        """Model A's thresholds in the run shown (on the models' grid, as the boxes show them)."""
        return result.request.segment.params or self._own_params(result.request.spec)

    def _restore_thresholds(self, *_) -> None:
        """Model A's own thresholds: the shown run's model, else the chosen one; re-runs its watershed."""
        r = self.result
        own = self._own_params(r.request.spec if r is not None else self.spec())
        if r is None:
            self._set_thresholds(own)
            return
        self.fg.value, self.marker.value, self.min_size.value = own.fg_threshold, own.marker_threshold, own.min_size
