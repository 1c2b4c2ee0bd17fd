"""Writer for labels layers: TIFF (ids kept), 16-bit PNG, GeoJSON polygons, CSV measurements."""

from __future__ import annotations

import numpy as np

from napari_prunuclei.io.export import export_labels


def _source_image(meta: dict):
    """The H&E image a result layer came from (named in its metadata), if it is open in napari."""
    name = (meta.get("metadata") or {}).get("prunuclei", {}).get("image")
    if not name:
        return None
    try:
        import napari

        viewer = napari.current_viewer()
        layer = viewer.layers[name] if viewer is not None and name in viewer.layers else None
    except Exception:  # noqa: BLE001 - no viewer: measurements without hematoxylin
        return None
    if layer is None or layer.multiscale or not getattr(layer, "rgb", False):
        return None
    return np.asarray(layer.data)


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write a labels layer; for the widget's result layers the source image gives mean hematoxylin.

    A name without an extension (napari's default in File > Save Selected Layers) is written as TIFF, never
    over an existing file of that name (the save dialog asked about the name without it). Lazy (slide) labels
    are written block by block.
    """
    from pathlib import Path

    added = not Path(path).suffix
    if added:
        path = f"{path}.tif"
    if isinstance(data, (list, tuple)):  # a multiscale (slide) layer: its full-resolution level
        data = data[0]
    rgb = _source_image(meta)
    if rgb is not None and tuple(rgb.shape[:2]) != tuple(data.shape):
        rgb = None
    out = export_labels(path, data, rgb, overwrite=not added)
    return [str(out)]
