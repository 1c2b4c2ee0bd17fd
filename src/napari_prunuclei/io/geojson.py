"""Nuclei as GeoJSON polygons (QuPath detections, pixel-corner convention, holes and parts kept); classified
regions (e.g. disagreement events) as QuPath annotations."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import find_contours, regionprops

from napari_prunuclei.io.atomic import atomic_write
from napari_prunuclei.io.measure import CHUNK_ROWS, compact, hematoxylin_od, measure_row, place

__all__ = ["boundary_ring", "nucleus_geometry", "feature_json", "write_features", "write_geojson", "Region",
           "region_row", "region_feature_json"]


def boundary_ring(mask: np.ndarray, offset: tuple[int, int], outer: bool) -> list[list[float]]:
    """The boundary of one connected binary region as a closed [x, y] ring, in QuPath's convention:
    pixel (row r, column c) covers [c, c + 1] x [r, r + 1], so a boundary point between pixels lies on
    their shared edge. Exterior rings have a positive shoelace area in these coordinates and holes a
    negative one (RFC 7946's counter-clockwise exteriors, reading the numbers as x right, y up)."""
    contours = find_contours(np.pad(mask, 1).astype(np.uint8), 0.5)
    ring = max(contours, key=len)
    pts = [[float(c - 0.5 + offset[1]), float(r - 0.5 + offset[0])] for r, c in ring]
    if pts[0] != pts[-1]:
        pts.append(pts[0])
    x, y = np.array(pts).T
    area = 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))
    if (area > 0) != outer:
        pts.reverse()
    return pts


def nucleus_geometry(mask: np.ndarray, offset: tuple[int, int]) -> dict:
    """A nucleus as a GeoJSON Polygon (holes as interior rings), or a MultiPolygon when it has several
    separate parts. Parts are 4-connected: two parts that touch only at a corner are two polygons (a ring
    through a single shared corner point is not a valid polygon, and tracing one would lose a part)."""
    parts_lab, n = ndi.label(mask)
    polygons = []
    for k in range(1, n + 1):
        part = parts_lab == k
        filled = ndi.binary_fill_holes(part)
        rings = [boundary_ring(filled, offset, outer=True)]
        holes, nh = ndi.label(filled & ~part)
        rings += [boundary_ring(holes == j, offset, outer=False) for j in range(1, nh + 1)]
        polygons.append(rings)
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}


def feature_json(row: dict, geometry: dict, classification: str) -> bytes:
    """One GeoJSON Feature (QuPath detection) as JSON bytes."""
    ident = row["id"]
    return json.dumps({
        "type": "Feature",
        "id": str(ident),
        "geometry": geometry,
        "properties": {
            "objectType": "detection",
            "classification": {"name": classification},
            "name": f"nucleus {ident}",
            "measurements": {k: v for k, v in row.items() if k != "id" and v == v},
        },
    }).encode()


def write_features(t: Path, features: Iterable[bytes], provenance: dict | None = None) -> None:
    """A FeatureCollection written feature by feature (the same text as one ``json.dumps``); provenance,
    if any, as the collection's ``properties`` (a GeoJSON foreign member)."""
    with open(t, "wb") as f:
        f.write(b'{"type": "FeatureCollection", ')
        if provenance:
            f.write(b'"properties": ' + json.dumps(provenance).encode() + b", ")
        f.write(b'"features": [')
        for k, feat in enumerate(features):
            if k:
                f.write(b", ")
                if k % CHUNK_ROWS == 0:
                    time.sleep(0)  # let a GUI thread in (the GIL)
            f.write(feat)
        f.write(b"]}")


def write_geojson(path: str | os.PathLike, labels: np.ndarray, rgb: np.ndarray | None = None,
                  classification: str = "Nucleus", provenance: dict | None = None, *,
                  pixel_size: float | None = None, offset: tuple[int, int] = (0, 0)) -> Path:
    """A FeatureCollection of nucleus polygons, one per id, with measurements as properties.

    QuPath (0.3+) imports it with File > Import objects; ``objectType`` is ``detection``.
    The labels are held in memory; :func:`iter_export` streams lazy or large ones.
    """
    lab, ids = compact(labels)
    hema = hematoxylin_od(rgb)

    def features() -> Iterator[bytes]:
        for r in regionprops(lab, intensity_image=hema):
            r0, c0 = r.bbox[:2]
            row = place(measure_row(r, int(ids[r.label]), hema is not None), pixel_size, offset)
            yield feature_json(row, nucleus_geometry(r.image, (r0 + offset[0], c0 + offset[1])), classification)

    return atomic_write(path, lambda t: write_features(t, features(), provenance))


@dataclass(frozen=True)
class Region:
    """A classified region to export (e.g. a disagreement event): its pixels ``mask`` in a box whose top-left
    pixel is ``origin`` (row, col) in the labels' frame; ``name`` and ``color`` (RGB, 0-255) its QuPath
    classification; ``properties`` (numbers, text, lists of ints) written before its area and centroid."""

    name: str
    color: tuple[int, int, int]
    mask: np.ndarray = field(repr=False, compare=False)
    origin: tuple[int, int]
    properties: dict = field(default_factory=dict)


def region_row(region: Region, pixel_size: float | None = None, offset: tuple[int, int] = (0, 0)) -> dict:
    """A region's properties, then ``area_px`` and its centroid (``centroid_y``, ``centroid_x``) in the image's
    frame (shifted by ``offset``), and ``area_um2`` with a pixel size (µm per pixel)."""
    rows, cols = np.nonzero(region.mask)
    row = {**region.properties, "area_px": int(len(rows)),
           "centroid_y": float(rows.mean() + region.origin[0] + offset[0]) if len(rows) else float("nan"),
           "centroid_x": float(cols.mean() + region.origin[1] + offset[1]) if len(rows) else float("nan")}
    if pixel_size:
        row["area_um2"] = row["area_px"] * pixel_size**2
    return row


def region_feature_json(ident: int, region: Region, pixel_size: float | None = None,
                        offset: tuple[int, int] = (0, 0)) -> bytes:
    """One region as a GeoJSON Feature (a QuPath annotation of class ``region.name`` in ``region.color``), in the
    nuclei's coordinate convention; its properties, ``area_px``, ``centroid_x`` and ``centroid_y`` (in the image's
    frame) as properties, the numbers also as QuPath measurements."""
    row = region_row(region, pixel_size, offset)
    origin = (region.origin[0] + offset[0], region.origin[1] + offset[1])
    numbers = {k: v for k, v in row.items() if k not in region.properties}
    return json.dumps({
        "type": "Feature",
        "id": str(ident),
        "geometry": nucleus_geometry(np.asarray(region.mask, bool), origin),
        "properties": {
            "objectType": "annotation",
            "classification": {"name": region.name, "color": [int(c) for c in region.color]},
            "name": f"{region.name} {ident}",
            **region.properties,
            "area_px": row["area_px"],
            "centroid_x": row["centroid_x"],  # named, as in the CSV: a pair would read as [x, y] like the geometry
            "centroid_y": row["centroid_y"],
            "measurements": numbers,
        },
    }).encode()
