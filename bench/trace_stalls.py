"""Where the widget's event-loop stalls go: the GUI thread's stack sampled while no 10 ms tick has come.

    xvfb-run -a python bench/trace_stalls.py --data ../shared/data/monuseg2018 [--toggles 3] [--truth-visible] [--menu]

A sampler thread takes the GUI thread's stack every 5 ms once no tick of a 10 ms QTimer has come for 30 ms.
Phases: the dock opened (``--menu``: from napari's Plugins menu in a fresh interpreter, the package's code not
yet imported, until the widget is made; and 1.5 s of looking at it), a first run (network-wide CR20 beside
dense), a run with the ground truth, then side by side on and off ``--toggles`` times. For each phase: the
longest stall, every stall over 100 ms, and for the longest, the innermost frames sampled in it (the most
frequent first).
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np


class Sampler:
    """Ticks on the GUI thread; stacks of the GUI thread taken from another thread while the ticks stop."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.main = threading.get_ident()
        self.stamps: list[float] = [time.perf_counter()]
        self.samples: list[tuple[float, list[str]]] = []
        self.on = False
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.stamps.append(time.perf_counter()))
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            time.sleep(0.005)
            if self.on and time.perf_counter() - self.stamps[-1] > 0.03:
                frame = sys._current_frames().get(self.main)
                if frame is not None:
                    stack = [f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in traceback.extract_stack(frame)]
                    self.samples.append((time.perf_counter(), stack))

    def phase(self, name: str, start, busy=lambda: False, settle: float = 0.3) -> None:
        from qtpy.QtWidgets import QApplication

        self.stamps, self.samples, self.on = [time.perf_counter()], [], True
        self.timer.start()
        start()
        end = time.perf_counter() + settle
        while busy() or time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.002)
            if busy():
                end = time.perf_counter() + settle
        self.timer.stop()
        self.on = False
        gaps = np.diff(self.stamps)
        k = int(gaps.argmax())
        inside = [s for t, s in self.samples if self.stamps[k] <= t <= self.stamps[k + 1]]
        over = [round(1000 * g) for g in gaps if g > 0.1]
        print(f"\n== {name}: longest {1000 * gaps[k]:.0f} ms; over 100 ms: {over}")
        for frames, n in collections.Counter(" < ".join(reversed(s[-5:])) for s in inside).most_common(8):
            print(f"  {5 * n:4d} ms  {frames[:240]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a MoNuSeg-layout folder: its first test tile")
    ap.add_argument("--toggles", type=int, default=3, help="side by side on and off, this many times")
    ap.add_argument("--truth-visible", action="store_true", help="the ground truth layer shown (else hidden)")
    ap.add_argument("--menu", action="store_true", help="open the dock as napari's Plugins menu does")
    a = ap.parse_args()

    import napari

    from napari_prunuclei.io.dataset import NucleiDataset

    ds = NucleiDataset(a.data)
    name = ds.names("test")[0]
    rgb, truth = ds.load(name)
    viewer = napari.Viewer(show=True)
    image = viewer.add_image(np.ascontiguousarray(rgb[:1000, :1000]), name=name, rgb=True)
    sampler = Sampler()
    holder: dict = {}

    def open_dock() -> None:
        if a.menu:  # the package's widget code imported by the dock, in a thread
            _, holder["shell"] = viewer.window.add_plugin_dock_widget("napari-prunuclei", "Pruned vs dense nuclei")
            return
        from napari_prunuclei.gui.widget import PruneCompareWidget

        holder["w"] = PruneCompareWidget(viewer)
        viewer.window.add_dock_widget(holder["w"])

    def loading() -> bool:
        return a.menu and ("shell" not in holder or holder["shell"].widget is None)

    sampler.phase("dock opened" + (" from the Plugins menu" if a.menu else ""), open_dock, loading, settle=1.5)
    w = holder["shell"].widget if a.menu else holder["w"]
    w.image.value = image
    w.scheme.value, w.cr.value = "network-wide", "20"
    sampler.phase("first run", w.start_run, lambda: w.busy)
    gt = viewer.add_labels(np.ascontiguousarray(truth[:1000, :1000]), name=f"{name} · ground truth",
                           visible=a.truth_visible)
    w.truth.value = gt
    sampler.phase("run with the ground truth", w.start_run, lambda: w.busy)
    for i in range(a.toggles):
        for on in (True, False):
            sampler.phase(f"side by side {'on' if on else 'off'} #{i + 1}",
                          lambda on=on: setattr(w.side_by_side, "value", on), lambda: w.busy)
    viewer.close()


if __name__ == "__main__":
    main()
