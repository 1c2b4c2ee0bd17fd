"""Per-nucleus measurements (area, perimeter, eccentricity, mean hematoxylin; in µm with a pixel size) and
the CSV they are written to, with the run's provenance as ``#`` lines."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from skimage.color import rgb2hed
from skimage.measure import regionprops

from napari_prunuclei.io.atomic import atomic_write
from napari_prunuclei.io.labels import check_label_ids, unique_inverse

MEASUREMENT_FIELDS = ("id", "centroid_y", "centroid_x", "area", "perimeter", "eccentricity", "mean_hematoxylin")
#: added to the measurements when the pixel size (micrometres per pixel) is known
MICRON_FIELDS = ("area_um2", "perimeter_um")
FLOAT_FIELDS = ("centroid_y", "centroid_x", "perimeter", "eccentricity", "mean_hematoxylin")
CHUNK_ROWS = 1024  # rows turned into Python objects at a time when writing

__all__ = ["MEASUREMENT_FIELDS", "MICRON_FIELDS", "FLOAT_FIELDS", "CHUNK_ROWS", "hematoxylin_od", "measure_row",
           "fields", "place", "measurements", "compact", "one_line", "preamble", "write_rows", "write_csv"]


def hematoxylin_od(rgb) -> np.ndarray | None:
    """The H channel (optical density) of ``skimage.color.rgb2hed``, or None without an image."""
    return None if rgb is None else rgb2hed(np.asarray(rgb)[..., :3])[..., 0]


def measure_row(r, ident: int, with_hema: bool) -> dict:
    cy, cx = r.centroid
    return {
        "id": ident, "centroid_y": float(cy), "centroid_x": float(cx),
        "area": int(r.area), "perimeter": float(r.perimeter), "eccentricity": float(r.eccentricity),
        "mean_hematoxylin": float(r.intensity_mean) if with_hema else float("nan"),
    }


def fields(pixel_size: float | None) -> list[str]:
    return [*MEASUREMENT_FIELDS, *(MICRON_FIELDS if pixel_size else ())]


def place(row: dict, pixel_size: float | None = None, offset: tuple[int, int] = (0, 0)) -> dict:
    """A row in the image's frame (centroid shifted by ``offset``: a region's corner) and, with a pixel
    size, with the area in µm² and the perimeter in µm."""
    if offset != (0, 0):
        row = {**row, "centroid_y": row["centroid_y"] + offset[0], "centroid_x": row["centroid_x"] + offset[1]}
    if pixel_size:
        row = {**row, "area_um2": row["area"] * pixel_size**2, "perimeter_um": row["perimeter"] * pixel_size}
    return row


def measurements(labels: np.ndarray, rgb: np.ndarray | None = None) -> list[dict]:
    """Per nucleus: id, centroid (row, col), area, perimeter, eccentricity, mean hematoxylin.

    Mean hematoxylin is the mean of the H channel of ``skimage.color.rgb2hed``
    (optical density) inside the nucleus; NaN without an image. The whole image is
    held in memory; :func:`iter_export` measures lazy or large labels block by block.
    """
    lab, ids = compact(labels)
    hema = hematoxylin_od(rgb)
    return [measure_row(r, int(ids[r.label]), hema is not None) for r in regionprops(lab, intensity_image=hema)]


def compact(labels) -> tuple[np.ndarray, np.ndarray]:
    """Labels as ids 0..n (regionprops makes a list as long as the largest id) and each one's own id."""
    lab = check_label_ids(labels)
    ids, inv = unique_inverse(lab)
    if ids[0] != 0:
        ids, inv = np.concatenate([[0], ids]), inv + 1
    return inv.astype(np.int32 if len(ids) < 2**31 else np.int64), ids


def one_line(v: object) -> str:
    """A value as one line of text: a string without line breaks as it is, anything else (a file name with a
    line break, a number, a list) as JSON."""
    return v if isinstance(v, str) and not any(c in v for c in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029") \
        else json.dumps(v)


def preamble(provenance: dict | None) -> str:
    """Provenance as ``# key: value`` lines above a CSV's header (``pandas.read_csv(..., comment="#")``)."""
    if not provenance:
        return ""
    return "".join(f"# {str(k).splitlines()[0] if str(k) else k}: {one_line(v)}\n" for k, v in provenance.items())


def write_rows(t: Path, rows: Iterable[dict], provenance: dict | None = None, pixel_size: float | None = None) -> None:
    with open(t, "w", newline="") as f:
        f.write(preamble(provenance))
        w = csv.DictWriter(f, fieldnames=fields(pixel_size))
        w.writeheader()
        w.writerows(rows)


def write_csv(path: str | os.PathLike, labels: np.ndarray, rgb: np.ndarray | None = None,
              provenance: dict | None = None, *, pixel_size: float | None = None,
              offset: tuple[int, int] = (0, 0)) -> Path:
    """Write :func:`measurements` of in-memory labels as CSV (one row per nucleus, by id); with a
    ``pixel_size`` (µm per pixel) also in µm² and µm; ``offset``: where the labels' (0, 0) lies in
    the image (a region's corner)."""
    rows = [place(r, pixel_size, offset) for r in measurements(labels, rgb)]
    return atomic_write(path, lambda t: write_rows(t, rows, provenance, pixel_size))
