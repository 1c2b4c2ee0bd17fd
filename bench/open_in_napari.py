"""Open a large slide (and optionally its labels) in napari through the plugin's lazy reader; report peak memory.

    xvfb-run -a python bench/open_in_napari.py /tmp/slide10k.tif runs/large/seg10k/slide10k_labels.tif

Prints the layer's data type and levels, the time to open and draw, and the process's peak RSS;
writes a canvas screenshot to --png.
"""

from __future__ import annotations

import argparse
import resource
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image")
    ap.add_argument("labels", nargs="?")
    ap.add_argument("--png", default="/tmp/big_open.png")
    a = ap.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    t = time.perf_counter()
    layers = viewer.open(a.image, plugin="napari-prunuclei")
    if a.labels:
        viewer.open(a.labels, plugin="napari-prunuclei")
    for _ in range(50):  # let napari fetch and draw the tiles in view
        QApplication.processEvents()
        time.sleep(0.02)
    data = layers[0].data
    shapes = [d.shape for d in data] if layers[0].multiscale else [data.shape]
    print(f"{type(data).__name__}: levels {shapes}")
    print(f"open + draw {time.perf_counter() - t:.1f} s, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    viewer.screenshot(a.png, canvas_only=True)
    viewer.close()


if __name__ == "__main__":
    main()
