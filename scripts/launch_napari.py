"""Open napari with the plugin docked, and an H&E image (default: the synthetic sample)."""

from __future__ import annotations

import argparse

import napari


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("image", nargs="?", help="H&E image (PNG, JPEG, TIFF); default: synthetic sample")
    a = ap.parse_args()
    viewer = napari.Viewer(title="napari-prunuclei")
    if a.image:
        viewer.open(a.image, plugin="napari-prunuclei")
    else:
        viewer.open_sample("napari-prunuclei", "synthetic")
    viewer.window.add_plugin_dock_widget("napari-prunuclei", "Pruned vs dense nuclei")
    napari.run()


if __name__ == "__main__":
    main()
