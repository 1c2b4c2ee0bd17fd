"""Exports of instance labels: per-nucleus measurements (CSV) and polygons (GeoJSON for QuPath)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
from skimage.color import rgb2hed
from skimage.measure import find_contours, regionprops

from .io import atomic_write, write_labels

__all__ = ["measurements", "write_csv", "write_geojson", "export_labels", "MEASUREMENT_FIELDS"]

MEASUREMENT_FIELDS = ("id", "centroid_y", "centroid_x", "area", "perimeter", "eccentricity", "mean_hematoxylin")


def measurements(labels: np.ndarray, rgb: np.ndarray | None = None) -> list[dict]:
    """Per nucleus: id, centroid (row, col), area, perimeter, eccentricity, mean hematoxylin.

    Mean hematoxylin is the mean of the H channel of ``skimage.color.rgb2hed``
    (optical density) inside the nucleus; NaN without an image.
    """
    lab = np.asarray(labels)
    hema = rgb2hed(rgb)[..., 0] if rgb is not None else None
    rows = []
    for r in regionprops(lab, intensity_image=hema):
        rows.append({
            "id": int(r.label), "centroid_y": float(r.centroid[0]), "centroid_x": float(r.centroid[1]),
            "area": int(r.area), "perimeter": float(r.perimeter), "eccentricity": float(r.eccentricity),
            "mean_hematoxylin": float(r.intensity_mean) if hema is not None else float("nan"),
        })
    return rows


def write_csv(path: str | os.PathLike, labels: np.ndarray, rgb: np.ndarray | None = None) -> Path:
    rows = measurements(labels, rgb)

    def write(t: Path) -> None:
        with open(t, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(MEASUREMENT_FIELDS))
            w.writeheader()
            w.writerows(rows)

    return atomic_write(path, write)


def _polygon(mask: np.ndarray, offset: tuple[int, int]) -> list[list[float]]:
    """Outer contour of a binary mask as a closed [x, y] ring in image coordinates."""
    contours = find_contours(np.pad(mask, 1).astype(np.uint8), 0.5)
    ring = max(contours, key=len)
    pts = [[float(c - 1 + offset[1]), float(r - 1 + offset[0])] for r, c in ring]
    if pts[0] != pts[-1]:
        pts.append(pts[0])
    return pts


def write_geojson(path: str | os.PathLike, labels: np.ndarray, rgb: np.ndarray | None = None,
                  classification: str = "Nucleus") -> Path:
    """A FeatureCollection of nucleus polygons, one per id, with measurements as properties.

    QuPath (0.3+) imports it with File > Import objects; ``objectType`` is ``detection``.
    """
    lab = np.asarray(labels)
    meas = {m["id"]: m for m in measurements(lab, rgb)}
    feats = []
    for r in regionprops(lab):
        r0, c0, _, _ = r.bbox
        m = meas[r.label]
        feats.append({
            "type": "Feature",
            "id": str(r.label),
            "geometry": {"type": "Polygon", "coordinates": [_polygon(r.image, (r0, c0))]},
            "properties": {
                "objectType": "detection",
                "classification": {"name": classification},
                "name": f"nucleus {r.label}",
                "measurements": {k: v for k, v in m.items() if k != "id" and v == v},
            },
        })
    doc = {"type": "FeatureCollection", "features": feats}
    return atomic_write(path, lambda t: t.write_text(json.dumps(doc)))


def export_labels(path: str | os.PathLike, labels: np.ndarray, rgb: np.ndarray | None = None) -> Path:
    """Write by extension: .tif/.tiff/.png (labels), .geojson/.json (polygons), .csv (measurements)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".geojson", ".json"):
        return write_geojson(path, labels, rgb)
    if suffix == ".csv":
        return write_csv(path, labels, rgb)
    return write_labels(path, labels)
