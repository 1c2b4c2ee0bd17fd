"""Render the plugin's side-by-side view to PNG files (run under Xvfb, e.g. `xvfb-run -a`).

Writes, for the synthetic sample (or --image): the whole window with the dock,
the instances of dense (left) and pruned (right), their semantic maps, and the
disagreement overlay.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _wait(viewer, widget) -> None:
    from qtpy.QtWidgets import QApplication

    while widget.busy:
        QApplication.processEvents()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--image", type=Path, default=None, help="H&E image (default: synthetic sample)")
    ap.add_argument("--labels", type=Path, default=None, help="optional ground-truth labels of --image")
    ap.add_argument("--scheme", default="network-wide", choices=["network-wide", "layer-wise"])
    ap.add_argument("--cr", default="20")
    ap.add_argument("--crop", type=int, default=0, help="show only the top-left N x N pixels")
    a = ap.parse_args()

    import napari

    from napari_prunuclei.io import read_image, read_labels
    from napari_prunuclei.napari._sample import synthetic_sample
    from napari_prunuclei.napari._widget import PruneCompareWidget

    a.out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-prunuclei", show=True)
    viewer.window._qt_window.resize(1600, 1000)
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
    viewer.add_image(np.ascontiguousarray(rgb), name=name, rgb=True)
    if truth is not None:
        viewer.add_labels(np.ascontiguousarray(truth), name=f"{name} · ground truth", visible=False)
    w = PruneCompareWidget(viewer)
    viewer.window.add_dock_widget(w, name="Pruned vs dense nuclei")
    w.image.value = viewer.layers[name]
    if truth is not None:
        w.truth.value = viewer.layers[f"{name} · ground truth"]
    w.scheme.value = a.scheme
    w.cr.value = a.cr
    w.start_run()
    _wait(viewer, w)
    w.side_by_side.value = True
    _wait(viewer, w)
    stem = a.out / (a.image.stem if a.image else "synthetic")
    pruned = w.result.pruned.label
    views = {
        "instances": [" · instances"],
        "semantic": [" · semantic"],
        "disagreement": ["disagreement with dense"],
    }
    for view, keys in views.items():
        for layer in viewer.layers:
            if layer.name == name or layer.name.endswith("(dense view)"):
                layer.visible = True
            elif "ground truth" in layer.name:
                layer.visible = False
            else:
                layer.visible = any(k in layer.name for k in keys)
            if view == "disagreement" and " · dense · " in layer.name:
                layer.visible = False
        viewer.reset_view()
        viewer.screenshot(f"{stem}_{view}.png", canvas_only=True)
    for layer in viewer.layers:
        layer.visible = " · distance" not in layer.name and "ground truth" not in layer.name
    viewer.screenshot(f"{stem}_window.png", canvas_only=False)
    print(f"{pruned}: wrote {stem}_{{instances,semantic,disagreement,window}}.png")
    print(w.numbers.value)
    viewer.close()


if __name__ == "__main__":
    main()
