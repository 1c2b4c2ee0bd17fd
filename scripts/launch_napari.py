"""Open napari with the plugin docked, and an H&E image (default: the OS-1 sample, real H&E at about 40x)."""

from __future__ import annotations

import argparse

import napari


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("image", nargs="?", help="H&E image (PNG, JPEG, TIFF); default: the OS-1 sample (real H&E)")
    a = ap.parse_args()
    viewer = napari.Viewer(title="napari-prunuclei")
    if a.image:
        viewer.open(a.image, plugin="napari-prunuclei")
    else:
        viewer.open_sample("napari-prunuclei", "os1")
    viewer.window.add_plugin_dock_widget("napari-prunuclei", "Pruned vs dense nuclei")
    napari.run()


if __name__ == "__main__":
    main()
