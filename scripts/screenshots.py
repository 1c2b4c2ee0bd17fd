"""Render the plugin's side-by-side view to PNG files (run under Xvfb, e.g. `xvfb-run -a`).

Writes, for the synthetic sample (or --image): the whole window with the dock,
the instances of dense (left) and pruned (right), their semantic maps, and the
disagreement overlay.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _wait(viewer, widget, settle: float = 1.5) -> None:
    """Until the widget's run is done, then ``settle`` seconds more of events: napari slices and draws
    the new layers after the run (a screenshot taken at once showed the grid cells as 16 x 16 blocks,
    without labels)."""
    import time

    from qtpy.QtWidgets import QApplication

    while widget.busy:
        QApplication.processEvents()
    end = time.perf_counter() + settle
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


#: the widget test's sequence of seven runs: (scheme, CR, compare with dense, side by side, min nucleus px)
SEQUENCE = [
    ("network-wide", "20", True, False, None),
    ("network-wide", "8", True, False, None),
    ("layer-wise", "4", True, True, None),
    ("dense", None, True, True, None),
    ("network-wide", "20", False, True, None),
    ("network-wide", "20", True, True, None),
    ("network-wide", "20", True, True, 60),
]


def replay(viewer, w, out: Path, stem: str) -> None:
    """Run the seven-run sequence; a window screenshot and the plugin's layers after each run."""
    from napari_prunuclei.gui.widget import ALONE

    for i, (scheme, cr, compare, side, min_size) in enumerate(SEQUENCE, 1):
        w.scheme.value = scheme
        if cr is not None:
            w.cr.value = cr
        w.reference.value = "dense" if compare else ALONE
        w.side_by_side.value = side
        if min_size is None:
            w.start_run()
        else:
            w.min_size.value = min_size  # a threshold edit: the watershed re-runs in a worker
        _wait(viewer, w)
        viewer.screenshot(str(out / f"{stem}_sequence_{i}.png"), canvas_only=False)
        names = sorted(layer.name for layer in w.state.owned().values())
        print(f"run {i} ({scheme} {cr or ''} compare={compare} side={side}): {w.status.value}; layers: {names}")


def workflow(viewer, w, out: Path, stem: str, crop_sweep: int = 256) -> None:
    """A pathologist's session: the default comparison, side by side, the paper's question (layer-wise
    against network-wide at one CR), a threshold edit, the CR sweep (and its charts' own window), the model and
    export tabs, a report. One window screenshot per step (``{stem}_workflow_N_step.png``)."""
    from qtpy.QtWidgets import QApplication

    def shot(i: int, name: str, tab: str | None = None) -> None:
        if tab is not None:
            w.tabs.setCurrentIndex(list(w.pages).index(tab))
        for _ in range(5):
            QApplication.processEvents()
        viewer.screenshot(str(out / f"{stem}_workflow_{i}_{name}.png"), canvas_only=False)
        print(f"{i} {name}: {w.status.value}")

    shot(0, "start", "Model")
    w.scheme.value, w.cr.value = "network-wide", "20"
    w.start_run()
    _wait(viewer, w)
    shot(1, "nw20_vs_dense")
    w.step_difference(1)  # the first disagreement: the camera goes to it
    w.step_difference(1)
    shot(2, "next_disagreement", "Differences")
    w.fill_nuclei.value = True
    shot(3, "filled")
    w.fill_nuclei.value = False
    viewer.reset_view()  # the home button: the whole tile, which side by side then keeps whole in both cells
    w.side_by_side.value = True
    _wait(viewer, w)
    shot(4, "side_by_side")
    w.reference.value = "layer-wise CR20"
    w.start_run()
    _wait(viewer, w)
    shot(5, "nw20_vs_lw20", "Numbers")
    w.min_size.value = 40
    _wait(viewer, w)
    shot(6, "threshold_edit")
    w.tabs.setCurrentIndex(list(w.pages).index("Model"))
    w.scheme.value, w.cr.value = "layer-wise", "100"  # a pair the zoo knows collapses: flagged before the run
    shot(7, "collapsed_pair_flagged", "Model")
    w.scheme.value, w.cr.value = "network-wide", "20"
    layer, truth = w.image.value, w.truth.value
    full = layer.data
    if max(full.shape[:2]) > crop_sweep:  # the sweep runs 21 models: on a crop, to keep this script short
        w.truth.value = None
        layer.data = full[:crop_sweep, :crop_sweep]
    w.start_sweep()
    _wait(viewer, w)
    shot(8, "sweep", "Charts")
    w.chart_window_btn.clicked()  # the charts larger, in their own window (zoom, values under the pointer)
    for _ in range(10):
        QApplication.processEvents()
    w.chart_window.grab().save(str(out / f"{stem}_workflow_8_chart_window.png"))
    w.chart_window.close()
    layer.data = full  # the whole image again: the sweep (of the crop) is forgotten, as it should be
    w.truth.value = truth
    w.export_what.value = "disagreement"
    w.export_path.value = out / f"{stem}_disagreement.geojson"
    w.overwrite.value = True
    w.export()
    _wait(viewer, w)
    w.report_path.value = out / f"{stem}_report"
    w.write_report()
    _wait(viewer, w)  # (written in a worker)
    shot(9, "export_and_report", "Export")
    print(w.numbers_text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--image", type=Path, default=None, help="H&E image (default: synthetic sample)")
    ap.add_argument("--labels", type=Path, default=None, help="optional ground-truth labels of --image")
    ap.add_argument("--scheme", default="network-wide",
                    choices=["network-wide", "layer-wise", "channel network-wide", "channel layer-wise"])
    ap.add_argument("--cr", default="20")
    ap.add_argument("--crop", type=int, default=0, help="show only the top-left N x N pixels")
    ap.add_argument("--size", default="1600x1000", help="window size WxH (e.g. 1366x768, 1920x1080)")
    ap.add_argument("--sequence", action="store_true",
                    help="replay the widget test's seven mixed runs, one window screenshot after each")
    ap.add_argument("--workflow", action="store_true",
                    help="a pathologist's session (A vs dense, side by side, A vs B, thresholds, sweep, report)")
    a = ap.parse_args()

    import napari

    from napari_prunuclei.gui.samples import synthetic_sample
    from napari_prunuclei.gui.widget import PruneCompareWidget
    from napari_prunuclei.io.images import read_image
    from napari_prunuclei.io.labels import read_labels
    from napari_prunuclei.io.pixel_size import read_pixel_size

    a.out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-prunuclei", show=True)
    width, height = (int(v) for v in a.size.lower().split("x"))
    viewer.window._qt_window.resize(width, height)
    if a.image:
        rgb = read_image(a.image)
        name = a.image.stem[:12]
        truth = read_labels(a.labels) if a.labels else None
    else:
        (rgb, meta, _), (truth, _, _) = synthetic_sample()
        name = meta["name"]
    if a.crop:
        rgb = rgb[: a.crop, : a.crop]
        truth = truth[: a.crop, : a.crop] if truth is not None else None
    px = read_pixel_size(a.image) if a.image else None  # the widget reads it, as for a file opened in napari
    grid = {"scale": (px, px), "units": ("um", "um"), "metadata": {"pixel_size_um": px}} if px else {}
    viewer.add_image(np.ascontiguousarray(rgb), name=name, rgb=True, **grid)  # as napari opens the file
    if truth is not None:
        viewer.add_labels(np.ascontiguousarray(truth), name=f"{name} · ground truth", visible=False)
    w = PruneCompareWidget(viewer)
    viewer.window.add_dock_widget(w, name="Pruned vs dense nuclei")
    w.image.value = viewer.layers[name]
    if truth is not None:
        w.truth.value = viewer.layers[f"{name} · ground truth"]
    stem = a.out / (a.image.stem if a.image else "synthetic")
    if a.sequence or a.workflow:
        (replay if a.sequence else workflow)(viewer, w, a.out, stem.name)
        viewer.close()
        return
    w.scheme.value = a.scheme
    w.cr.value = a.cr
    w.start_run()
    _wait(viewer, w)
    w.side_by_side.value = True
    _wait(viewer, w)
    pruned = w.result.pruned.info.model
    owned = w.state.owned()
    views = {
        "instances": {("dense", "instances"), ("pruned", "instances")},
        "semantic": {("dense", "semantic"), ("pruned", "semantic")},
        "disagreement": {("pruned", "disagreement"), ("view", "disagreement")},
    }
    for view, roles in views.items():
        for role, layer in owned.items():
            layer.visible = role in roles or role in (("view", "dense image"), ("view", "pruned image"))
        for layer in viewer.layers:
            if layer not in owned.values():
                layer.visible = False  # the image's views stand in for it in the two cells
        viewer.reset_view()
        viewer.screenshot(f"{stem}_{view}.png", canvas_only=True)
    for role, layer in owned.items():
        layer.visible = role[1] != "distance"
    viewer.screenshot(f"{stem}_window.png", canvas_only=False)
    print(f"{pruned}: wrote {stem}_{{instances,semantic,disagreement,window}}.png")
    print(w.numbers_text)
    viewer.close()


if __name__ == "__main__":
    main()
