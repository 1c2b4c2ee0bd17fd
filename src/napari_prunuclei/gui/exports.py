"""Exports of the widget: nuclei and disagreement as TIFF/PNG/GeoJSON/CSV, and the report folder."""

from pathlib import Path

from napari.utils.notifications import show_info

from napari_prunuclei.base.constants import EXPORT_EXTENSIONS
from napari_prunuclei.base.progress import Progress
from napari_prunuclei.gui.tooltips import EXPORT_WHAT
from napari_prunuclei.study import session_models as compute_models
from napari_prunuclei.study import session_report as compute_report

#: the resolution of a report's charts.png (the dock's figure, 4 x 5.6 in: 600 x 840 px; 400 x 560 was small)
REPORT_DPI = 150


class ExportActions:
    """Methods of :class:`~napari_prunuclei.gui.widget.PruneCompareWidget`: exports and the report."""

    #: the last report's report.md (None until one is written)
    last_report: Path | None = None

    # ---- export -----------------------------------------------------
    def export(self, *_):
        """Write the chosen result in a worker (streamed for slides), with its provenance; returns the worker."""
        self._finish_showing()
        r = self.result
        if r is None:
            self._error("nothing to export: run a model first")
            return None
        from napari_prunuclei.io.export import iter_export

        image = r.request.image_name
        what = self.export_what.value
        if what == "disagreement":
            if r.disagreement is None:
                self._error("no disagreement map: run with a model B ('compare with') on an image up to "
                            "2048 x 2048, or on the visible region of a slide")
                return None
            labels, prov = r.disagreement, {**compute_report.disagreement_metadata(r)["prunuclei"],
                                            "models": [s.info.model for s in (r.dense, r.pruned)],
                                            # each model's record, as a nuclei export has its own (reviewer)
                                            "A": compute_report.layer_metadata(r.pruned, image)["prunuclei"],
                                            "B": compute_report.layer_metadata(r.dense, image)["prunuclei"],
                                            "ground_truth": r.truth_name}
            n = len(r.events or ())
        else:
            if what == EXPORT_WHAT[1]:  # B exists only beside A
                seg = r.dense if r.pruned is not None else None
            else:
                seg = r.chosen
            if seg is None:
                self._error("no model B in this run: choose one in 'model B: compare with' and press Run")
                return None
            labels, prov, n = seg.labels, compute_report.layer_metadata(seg, image)["prunuclei"], seg.n_nuclei
            if seg is r.pruned:
                prov = {**prov, **compute_report.edit_provenance(r)}
        path = Path(self.export_path.value)
        layer = self.state.image_layer()
        rgb = None
        if layer is not None and getattr(layer, "rgb", False):
            rgb = layer.data[0] if layer.multiscale else layer.data
            if r.request.region is not None:
                rgb = self._region_rgb(r)
            if tuple(rgb.shape[:2]) != tuple(labels.shape):
                rgb = None
        prov = {**prov, **compute_report.run_provenance(r)}
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
        common = dict(cancelled=self._cancel.is_set, provenance=prov, overwrite=bool(self.overwrite.value),
                      pixel_size=r.request.pixel_size, offset=r.request.offset)
        if what == "disagreement" and path.suffix.lower() in (".geojson", ".json", ".csv"):  # one per event
            from napari_prunuclei.io.export import iter_export_regions
            from napari_prunuclei.nuclei.agreement import event_regions

            job = iter_export_regions(path, event_regions(r.events or []), **common)
        else:  # nuclei; the disagreement as a label image of kinds
            job = iter_export(path, labels, rgb, **common)

        def done(out) -> None:
            if out is None:
                self.status.value = "export cancelled, nothing written"
                return
            whose = ("" if what == "disagreement" else  # the model by name (the controls may name another)
                     f" of {(r.dense if what == EXPORT_WHAT[1] else r.chosen).info.model} (the run shown)")
            self.status.value = (f"exported {n} {'disagreement events' if what == 'disagreement' else 'nuclei'}"
                                 f"{whose} to {out}")
            self._mark_stale(force=True, said=self.status.value)  # still say when the controls name another run
            show_info(self.status.value)

        return self._start(job, done, f"exporting to {path.name}...")

    # ---- report -----------------------------------------------------
    def write_report(self, *_):
        """A folder with the numbers (Markdown, CSV), the parameters and provenance, the CR sweep rows,
        the charts and the canvas at the image's resolution, written in a worker (the GUI thread only reads the
        layers); returns the worker (``last_report``: report.md's path once written)."""
        self._finish_showing()  # the report describes the layers as shown
        r = self.result
        if r is None:
            self._error("nothing to report: run a model first")
            return None
        if self.worker is not None:  # refused before its folder is made (a pathologist found empty ones, session 37)
            self.status.value = f"busy: {self.status.value}"
            return None
        folder = Path(self.report_path.value)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            canvas = self._canvas_writer(folder / "canvas.png", r)
        except OSError as e:
            self._error(f"report failed: {e}")
            return None
        # a sweep of the run's image, region and ground truth alone goes into its report (its files say so): the one
        # shown, or one set aside since (the controls name another image now: a pathologist lost it, session 37)
        of = (r.request.image_name, r.request.region, r.truth_name)
        mine = self.sweep_rows is not None and self.sweep_of == of
        kept = self._kept_sweep if not mine and self._kept_sweep is not None and self._kept_sweep[2] == of else None
        sweep = self.sweep_rows if mine else kept[1] if kept is not None else None
        # (a sweep of another choice than this run's: said so, not the history of changes, which read as this run's)
        other = self.sweep_rows is not None or self._kept_sweep is not None
        dropped = None if sweep else ("it was run on another image, region or ground truth than this run" if other
                                      else self.sweep_dropped)
        drawn = dict(sweep=mine, dpi=REPORT_DPI)  # (never another image's sweep)
        if kept is not None:
            drawn.update(rows=kept[1], where=kept[3],
                         shown=(self.sweep_rows, self._sweep_where) if self.sweep_rows is not None else None)

        def job():
            try:
                yield Progress(0, 3, "report: the canvas at the image's resolution...")
                caption = canvas()
                yield Progress(1, 3, "report: the charts...")
                self.charts.save(folder / "charts.png", **drawn)
                yield Progress(2, 3, "report: the numbers...")
                md = compute_report.write_report(folder, r, sweep, screenshot="canvas.png", charts="charts.png",
                                                 canvas_caption=caption, sweep_dropped=dropped)
                yield Progress(3, 3, "report written")  # (the bar ends full)
                return md
            except OSError as e:
                return f"report failed: {e}"

        def done(md) -> None:
            if isinstance(md, str):
                self._error(md)
                return
            self.last_report = md
            judged = compute_models.verdict(r)  # the run's verdict kept (a pathologist saw it replaced, session 38)
            self.status.value = f"report written to {md}" + (f". The run reported: {judged}" if judged else "")
            self._mark_stale(force=True, said=self.status.value)  # still say when the controls name another run
            show_info(self.status.value)

        self.last_report = None
        return self._start(job(), done, "writing the report...")
