"""How long the napari event loop stalls while the widget works (run under Xvfb: `xvfb-run -a`).

    xvfb-run -a python bench/bench_widget.py                      # tile: runs, re-run, threshold edit
    xvfb-run -a python bench/bench_widget.py --data ../shared/data/monuseg2018 --json out.json
                                         # a real 1000x1000 MoNuSeg test tile: threshold edits, stalls
    xvfb-run -a python bench/bench_widget.py --slide /tmp/slide9k.tif [--compare]  # slide: run, export

A timer ticks every 10 ms on the GUI thread; the longest gap between ticks is the longest
stall a user feels. Tile part (the synthetic sample): a first run (layers made), a re-run
with another CR (layers updated) and a threshold edit (watershed in a worker). Slide part
(e.g. 9000 x 9000, made by ``bench/make_large_image.py``): a tiled run with labels in a
scratch zarr store, choosing a ground-truth layer, GeoJSON and CSV export (streamed in a
worker, mean hematoxylin filled), then closing the widget: no scratch folder may remain.
Real tile part (``--data``: the first MoNuSeg test image, its top-left 1000x1000, and its ground truth):
the dock opened (and 0.8 s of looking at it), network-wide CR20 beside dense with no labels layer open at all
(layers made: the session's first labels drawn), again with the ground truth opened, CR8 and CR20
again (layers updated), side by side on and off, a run with side by side on, a report written, 'time A vs B'; then
``--edits`` threshold edits, each timed from the edit to the new
result shown (the widget's 300 ms debounce included, and said apart), their median, the longest stall
of each; the same edits through the library call alone (``study.session.rerun_watershed``).
Writes a JSON report to --json.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np


class StallMeter:
    """Longest gap between 10 ms timer ticks on the GUI thread, per phase."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.stamps: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.stamps.append(time.perf_counter()))

    def measure(self, start, widget) -> dict:
        from qtpy.QtWidgets import QApplication

        self.stamps = [time.perf_counter()]
        self.timer.start()
        t0 = time.perf_counter()
        start()
        while widget.busy:
            QApplication.processEvents()
            time.sleep(0.001)
        done = time.perf_counter() - t0
        for _ in range(20):  # the last layer's first paint
            QApplication.processEvents()
            time.sleep(0.005)
        self.timer.stop()
        gaps = np.diff(self.stamps)
        return {"seconds": done, "longest_stall_ms": 1000 * float(gaps.max()),
                "ticks": len(self.stamps), "status": widget.status.value}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slide", type=Path, default=None, help="a large H&E TIFF (tiled path)")
    ap.add_argument("--compare", action="store_true", help="slide: run dense beside the pruned model")
    ap.add_argument("--data", type=Path, default=None, help="a MoNuSeg-layout folder: its first test tile")
    ap.add_argument("--edits", type=int, default=7, help="--data: threshold edits to time")
    ap.add_argument("--profile", action="store_true", help="--data: cProfile one foreground edit (library call)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/prunuclei_bench_widget"))
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    import napari

    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.gui.reader import read_he
    from napari_prunuclei.gui.samples import synthetic_sample
    from napari_prunuclei.gui.widget import ALONE, PruneCompareWidget

    a.out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    meter = StallMeter()
    report: dict = {"machine": cpu_name()}
    if a.data is not None:
        report.update(real_tile(viewer, meter, a.data, a.edits, a.profile))
    elif a.slide is None:
        for data, meta, kind in synthetic_sample():
            getattr(viewer, f"add_{kind}")(data, **meta)
        w = PruneCompareWidget(viewer)
        viewer.window.add_dock_widget(w)
        w.image.value = viewer.layers["synthetic H&E"]
        report["first run (7 layers made)"] = meter.measure(w.start_run, w)
        w.cr.value = "8"
        report["re-run, another CR (layers updated)"] = meter.measure(w.start_run, w)
        report["threshold edit (debounced, worker)"] = meter.measure(lambda: setattr(w.min_size, "value", 40), w)
    else:
        (data, meta, _), = read_he(a.slide)
        layer = viewer.add_image(data, **meta)
        w = PruneCompareWidget(viewer)
        viewer.window.add_dock_widget(w)
        w.image.value = layer
        w.reference.value = "dense" if a.compare else ALONE
        report["slide"] = {"path": str(a.slide), "shape": list(layer.data[0].shape if layer.multiscale
                                                               else layer.data.shape)}
        report["run (tiled, zarr labels)"] = meter.measure(w.start_run, w)
        labels = w.result.chosen.labels
        truth = viewer.add_labels(labels, name="ground truth (the run's own labels)", visible=False)
        report["choose ground truth"] = meter.measure(lambda: setattr(w.truth, "value", truth), w)
        w.overwrite.value = True  # the bench's own files from an earlier run
        for name in ("nuclei.geojson", "nuclei.csv"):
            w.export_path.value = a.out / name
            report[f"export {name}"] = meter.measure(w.export, w)
        lines = [line for line in (a.out / "nuclei.csv").read_text().splitlines() if not line.startswith("#")]
        rows = list(csv.DictReader(lines))
        report["csv rows"] = len(rows)
        report["csv rows with hematoxylin"] = sum(r["mean_hematoxylin"] not in ("", "nan") for r in rows)
        scratch = w.scratch.root
        viewer.close()
        from qtpy.QtWidgets import QApplication

        for _ in range(20):
            QApplication.processEvents()
        report["scratch folder left after closing"] = bool(scratch is not None and scratch.exists())
    for k, v in report.items():
        print(f"{k}: {v}")
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    if a.slide is None:
        viewer.close()


#: the threshold edits of --data, in turn: (box, value); each a change from the one before
EDITS = (("min_size", 40), ("fg", 0.5), ("marker", 0.45), ("min_size", 20), ("fg", 0.65), ("marker", 0.5),
         ("min_size", 60), ("fg", 0.55), ("marker", 0.4))


def real_tile(viewer, meter: StallMeter, data: Path, edits: int, profile: bool = False) -> dict:
    """A real 1000x1000 tile: a run with ground truth, then threshold edits in the widget and in the library."""
    import statistics

    from napari_prunuclei.gui.tooltips import DEBOUNCE_MS
    from napari_prunuclei.gui.widget import PruneCompareWidget
    from napari_prunuclei.io.dataset import NucleiDataset
    from napari_prunuclei.nuclei.watershed import WatershedParams
    from napari_prunuclei.study.session import rerun_watershed

    ds = NucleiDataset(data)
    name = ds.names("test")[0]
    rgb, truth = ds.load(name)
    rgb, truth = np.ascontiguousarray(rgb[:1000, :1000]), np.ascontiguousarray(truth[:1000, :1000])
    image = viewer.add_image(rgb, name=name, rgb=True)
    holder: dict = {}

    def open_dock() -> None:  # as a user opens it, then looks at it for a moment before choosing anything
        from qtpy.QtWidgets import QApplication

        holder["w"] = PruneCompareWidget(viewer)
        viewer.window.add_dock_widget(holder["w"])
        end = time.perf_counter() + 0.8
        while time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.005)

    out_dock = meter.measure(open_dock, SimpleNamespace(busy=False, status=SimpleNamespace(value="")))
    w = holder["w"]
    w.image.value = image
    w.scheme.value, w.cr.value = "network-wide", "20"
    out: dict = {"tile": f"{name}, rows 0-1000, columns 0-1000", "debounce_ms": DEBOUNCE_MS,
                 "dock opened (the package imported before; the canvas text warm-up included)": out_dock}
    out["first run: network-wide CR20 and dense, no labels layer open at all (6 layers made)"] = \
        meter.measure(w.start_run, w)
    gt = viewer.add_labels(truth, name=f"{name} · ground truth", visible=False)
    w.truth.value = gt
    out["run with ground truth (7 layers)"] = meter.measure(w.start_run, w)
    w.cr.value = "8"
    out["re-run: network-wide CR8 (layers updated)"] = meter.measure(w.start_run, w)
    w.cr.value = "20"
    out["re-run: network-wide CR20 (layers updated)"] = meter.measure(w.start_run, w)
    out["side by side on (layers rebuilt)"] = meter.measure(lambda: setattr(w.side_by_side, "value", True), w)
    out["side by side off (layers rebuilt)"] = meter.measure(lambda: setattr(w.side_by_side, "value", False), w)
    w.side_by_side.value = True
    meter.measure(lambda: None, w)  # (the toggle's layers shown)
    out["run with side by side on (layers updated in both cells)"] = meter.measure(w.start_run, w)
    w.side_by_side.value = False
    meter.measure(lambda: None, w)
    import tempfile

    w.report_path.value = tempfile.mkdtemp(prefix="prunuclei_bench_report_")
    out["write report (canvas at the image's resolution, charts, numbers)"] = meter.measure(w.write_report, w)
    if hasattr(w, "start_timing"):  # (an earlier version's widget, to compare, has none)
        out["time A vs B (median of 3)"] = meter.measure(w.start_timing, w)
        t = w.result.timing
        out["time A vs B"] = {"how": t.how, "A": t.names["pruned"], "B": t.names["dense"],
                              "A_s": t.median("pruned"), "B_s": t.median("dense"),
                              "A_over_B": t.ratio("pruned", "dense"), "note": t.note, "seconds": t.seconds}
    runs = []
    for box, value in EDITS[:edits]:
        m = meter.measure(lambda box=box, value=value: setattr(getattr(w, box), "value", value), w)
        m["edit"] = f"{box} {value}"
        m["after_debounce_s"] = m["seconds"] - DEBOUNCE_MS / 1000
        runs.append(m)
    out["threshold edits (widget: edit to result shown)"] = runs
    out["threshold edit: median seconds, edit to shown"] = statistics.median(m["seconds"] for m in runs)
    out["threshold edit: median seconds after the debounce"] = statistics.median(m["after_debounce_s"] for m in runs)
    out["threshold edit: longest stall ms"] = max(m["longest_stall_ms"] for m in runs)
    base, lib = w.result, []  # the library call alone, on the same run, the same edits
    ws = base.chosen.info.watershed
    for box, value in EDITS[:edits]:
        field = {"fg": "fg_threshold", "marker": "marker_threshold", "min_size": "min_size"}[box]
        ws = WatershedParams(**{**ws.as_dict(), field: value})
        t = time.perf_counter()
        rerun_watershed(base, ws, truth, rgb)
        lib.append(time.perf_counter() - t)
    out["rerun_watershed (library) seconds"] = lib
    out["rerun_watershed (library): median seconds"] = statistics.median(lib)
    if profile:  # where one foreground edit's time goes (cumulative seconds, the package's functions)
        import cProfile
        import io
        import pstats

        ws = WatershedParams(**{**base.chosen.info.watershed.as_dict(), "fg_threshold": 0.5})
        prof = cProfile.Profile()
        prof.enable()
        rerun_watershed(base, ws, truth, rgb)
        prof.disable()
        text = io.StringIO()
        stats = pstats.Stats(prof, stream=text).sort_stats("cumulative")
        stats.print_stats(r"napari_prunuclei|unique|regionprops", 25)
        out["profile: foreground 0.5 edit, library (cProfile, cumulative)"] = text.getvalue().splitlines()
    return out


if __name__ == "__main__":
    main()
