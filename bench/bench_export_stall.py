"""What stalls napari's GUI thread while a slide is exported (run under Xvfb: `xvfb-run -a`).

    xvfb-run -a python bench/bench_export_stall.py --slide /tmp/slide9k.tif [--ext .csv] [--no-freeze]

Opens the slide in a viewer with the widget docked and a label store of the same size shown as a
labels pyramid (synthetic nuclei, so no run is needed), then exports it in a napari
``thread_worker`` the way the widget does, with a 10 ms timer ticking on the GUI thread. Prints
the time of one full garbage collection (``gc.collect(2)``) in this process, each full
collection during the export (``gc.callbacks``), the longest gaps between ticks and the
collections that overlap them. ``--no-freeze`` leaves napari's objects in the collector's view
(the widget freezes them during jobs).
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import numpy as np


def label_store(path: Path, side: int):
    """A ``side`` x ``side`` zarr label store tiled with the synthetic tissue's nuclei (fresh ids per tile)."""
    import zarr

    from napari_prunuclei.nuclei.synthetic import synthetic_tissue

    z = zarr.open_array(str(path), mode="w", shape=(side, side), chunks=(1024, 1024), dtype="int32", fill_value=0)
    _, lab = synthetic_tissue(512, seed=1)
    n, k = int(lab.max()), 0
    for r in range(0, side, 512):
        row = np.zeros((min(512, side - r), side), np.int32)
        for c in range(0, side, 512):
            t = lab[: row.shape[0], : min(512, side - c)]
            row[:, c : c + t.shape[1]] = np.where(t > 0, t + k * n, 0)
            k += 1
        z[r : r + row.shape[0]] = row
    return z


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slide", type=Path, required=True, help="a large H&E TIFF (bench/make_large_image.py)")
    ap.add_argument("--ext", default=".csv", choices=[".csv", ".geojson"])
    ap.add_argument("--no-freeze", action="store_true", help="do not freeze napari's objects during the export")
    ap.add_argument("--out", type=Path, default=Path("/tmp/prunuclei_bench_export_stall"))
    a = ap.parse_args()

    import napari
    from napari.qt.threading import thread_worker
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.gui.reader import read_he
    from napari_prunuclei.gui.widget import PruneCompareWidget
    from napari_prunuclei.io.export import iter_export
    from napari_prunuclei.study.session import label_pyramid

    a.out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    (data, meta, _), = read_he(a.slide)
    viewer.add_image(data, **meta)
    rgb = data[0] if isinstance(data, list) else data
    labels = label_store(a.out / "labels.zarr", rgb.shape[0])
    viewer.add_labels(label_pyramid(labels), name="nuclei", opacity=0.5)
    w = PruneCompareWidget(viewer)
    viewer.window.add_dock_widget(w)
    for _ in range(50):
        QApplication.processEvents()
        time.sleep(0.01)
    t = time.perf_counter()
    gc.collect(2)
    print(f"machine: {cpu_name()}; objects tracked: {len(gc.get_objects())}; "
          f"one gc.collect(2): {1000 * (time.perf_counter() - t):.0f} ms")

    events: list[tuple[str, float]] = []
    gc.callbacks.append(lambda phase, info: info["generation"] == 2 and events.append((phase, time.perf_counter())))
    if not a.no_freeze:
        gc.freeze()
    stamps: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    timer.start()
    done: list[int] = []

    def job():
        yield from iter_export(a.out / f"nuclei{a.ext}", labels, rgb)

    worker = thread_worker(job)()

    def progress(p) -> None:
        w.progress.max, w.progress.value, w.status.value = p.total, p.done, p.message

    worker.yielded.connect(progress)
    worker.finished.connect(lambda: done.append(1))
    t0 = time.perf_counter()
    worker.start()
    while not done:
        QApplication.processEvents()
        time.sleep(0.001)
    timer.stop()
    if not a.no_freeze:
        gc.unfreeze()
    gaps = np.diff(stamps)
    starts = [s for phase, s in events if phase == "start"]
    stops = [s for phase, s in events if phase == "stop"]
    print(f"export {a.ext} ({'no freeze' if a.no_freeze else 'gc frozen'}): {time.perf_counter() - t0:.1f} s, "
          f"longest stall {1000 * gaps.max():.0f} ms, 99th percentile {1000 * np.percentile(gaps, 99):.0f} ms")
    print("full collections during the export (at s, ms):",
          [(round(s - t0, 1), round(1000 * (e - s))) for s, e in zip(starts, stops)])
    for i in np.argsort(gaps)[::-1][:3]:
        s, e = stamps[i], stamps[i + 1]
        overlap = [round(1000 * (e2 - s2)) for s2, e2 in zip(starts, stops) if s2 < e and e2 > s]
        print(f"stall {1000 * (e - s):.0f} ms at {s - t0:.1f} s; full collections inside it (ms): {overlap}")
    viewer.close()


if __name__ == "__main__":
    main()
