"""Exports of instance labels: per-nucleus measurements (CSV), polygons (GeoJSON for QuPath), label images.

Small in-memory labels are measured whole with ``regionprops``. Lazy (zarr, dask) or large labels are
streamed block by block by :func:`iter_export`: pass 1 collects every id's bounding box over the whole
image, pass 2 measures each nucleus exactly once, whole, in a window read around the nuclei whose box
starts in the block, and the rows are written in id order, so they equal the whole-image ones while
memory stays at a few blocks (plus a few numbers per nucleus).
"""

from __future__ import annotations

import json
import mmap
import os
import tempfile
import time
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import regionprops

from napari_prunuclei.base.constants import EXPORT_EXTENSIONS, WHOLE_MAX_PIXELS
from napari_prunuclei.base.progress import CancelFn, Progress, ProgressFn, check_cancelled, drive
from napari_prunuclei.io.atomic import atomic_write
from napari_prunuclei.io.geojson import (
    Region,
    feature_json,
    nucleus_geometry,
    region_feature_json,
    region_row,
    write_features,
    write_geojson,
)
from napari_prunuclei.io.labels import check_label_ids, label_dtype, write_labels
from napari_prunuclei.io.measure import (
    CHUNK_ROWS,
    FLOAT_FIELDS,
    MEASUREMENT_FIELDS,
    hematoxylin_od,
    measure_row,
    place,
    write_csv,
    write_rows,
)

__all__ = ["export_labels", "iter_export", "iter_export_regions", "EXPORT_EXTENSIONS", "IN_MEMORY_MAX_PIXELS"]


#: numpy labels up to this many pixels are measured whole; larger or lazy ones block by block
IN_MEMORY_MAX_PIXELS = WHOLE_MAX_PIXELS

_KINDS = {".csv": "csv", ".geojson": "geojson", ".json": "geojson", ".tif": "tif", ".tiff": "tif", ".png": "png"}
_BIGTIFF_BYTES = 2**32 - 2**25  # tifffile's threshold for BigTIFF


# --- measurements of one region, shared by the whole-image and the block paths -------------------------------


# --- streaming ---------------------------------------------------------------------------------------------------


class _Spill:
    """Byte records kept in an anonymous temporary file beside the output, read back in index order."""

    def __init__(self, folder: Path, n: int):
        self._f = tempfile.TemporaryFile(dir=folder)  # unlinked at once: nothing is left behind
        self.offset = np.zeros(n, np.int64)
        self.length = np.zeros(n, np.int64)
        self.size = 0

    def put(self, i: int, data: bytes) -> None:
        self._f.write(data)
        self.offset[i], self.length[i] = self.size, len(data)
        self.size += len(data)

    def records(self) -> Iterator[bytes]:
        self._f.flush()
        if self.size == 0:
            yield from (b"" for _ in range(len(self.offset)))
            return
        with mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for s in range(0, len(self.offset), CHUNK_ROWS):
                for o, n in zip(self.offset[s : s + CHUNK_ROWS].tolist(), self.length[s : s + CHUNK_ROWS].tolist()):
                    yield mm[o : o + n]

    def close(self) -> None:
        self._f.close()


def _check_inputs(labels, rgb, pixel_size: float | None = None) -> tuple[int, int]:
    import math

    shape = tuple(labels.shape)
    dtype = np.dtype(labels.dtype)
    if len(shape) != 2 or not (np.issubdtype(dtype, np.integer) or dtype.kind == "b"):
        raise ValueError(f"labels must be a 2-D integer array, got shape {shape} and dtype {labels.dtype}")
    if rgb is not None:
        rs = tuple(rgb.shape)
        if len(rs) != 3 or rs[:2] != shape or rs[2] not in (3, 4):
            raise ValueError(f"the image has shape {rs}; expected {shape[0]} x {shape[1]} x 3 like the labels")
        if np.dtype(rgb.dtype) != np.uint8:
            raise ValueError(f"the image has dtype {rgb.dtype}; mean hematoxylin needs 8-bit RGB (uint8)")
    if pixel_size is not None and not (math.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel size must be a positive number of micrometres per pixel, got {pixel_size}")
    return shape[0], shape[1]


def _grid(h: int, w: int, block: int) -> list[tuple[int, int]]:
    return [(r, c) for r in range(0, h, block) for c in range(0, w, block)]


def _read_labels(labels, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """``labels[r0:r1, c0:c1]`` as int64, checking ids are >= 0."""
    return check_label_ids(labels[r0:r1, c0:c1], f" in [{r0}:{r1}, {c0}:{c1}]")


def _block_boxes(b: np.ndarray, r: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids in a block and their bounding boxes there (rows: r0, r1, c0, c1 in image coordinates)."""
    fg = b > 0
    if not fg.any():
        return np.zeros(0, np.int64), np.zeros((0, 4), np.int64)
    vals = b[fg]
    lo, hi = int(vals.min()), int(vals.max())
    if hi - lo <= 4 * b.size:  # ids close together: find_objects on shifted ids directly
        objs = ndi.find_objects(np.where(fg, b - (lo - 1), 0))
        present = [i for i, s in enumerate(objs) if s is not None]
        ids = lo + np.asarray(present, np.int64)
    else:  # sparse, huge ids: rank them first
        ids, inv = np.unique(vals, return_inverse=True)
        local = np.zeros(b.shape, np.intp)
        local[fg] = inv.ravel() + 1
        objs = ndi.find_objects(local)
        present = range(len(ids))
    boxes = np.array([(objs[i][0].start + r, objs[i][0].stop + r, objs[i][1].start + c, objs[i][1].stop + c)
                      for i in present], np.int64)
    return ids.astype(np.int64), boxes


def _merge_boxes(ids: list[np.ndarray], boxes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ids and the union of each id's boxes from all blocks."""
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, 4), np.int64)
    allid, allbox = np.concatenate(ids), np.concatenate(boxes)
    order = np.argsort(allid, kind="stable")
    allid, allbox = allid[order], allbox[order]
    if not len(allid):
        return allid, allbox.reshape(0, 4)
    starts = np.flatnonzero(np.r_[True, allid[1:] != allid[:-1]])
    box = np.stack([np.minimum.reduceat(allbox[:, 0], starts), np.maximum.reduceat(allbox[:, 1], starts),
                    np.minimum.reduceat(allbox[:, 2], starts), np.maximum.reduceat(allbox[:, 3], starts)], axis=1)
    return allid[starts], box


def _groups(idx: np.ndarray, box: np.ndarray, block: int) -> list[np.ndarray]:
    """The nuclei of a block measured in one window; each one larger than a block in its own window."""
    ext = np.maximum(box[idx, 1] - box[idx, 0], box[idx, 3] - box[idx, 2])
    big = ext > block
    out = [idx[~big]] if (~big).any() else []
    return out + [idx[j : j + 1] for j in np.flatnonzero(big)]


def _measure_window(labels, rgb, uid: np.ndarray, box: np.ndarray, g: np.ndarray, table: dict,
                    spill: _Spill | None, pixel_size: float | None = None, offset: tuple[int, int] = (0, 0)) -> None:
    """Measure nuclei ``g`` (indices into ``uid``, ascending) in the window covering their boxes."""
    r0, r1 = int(box[g, 0].min()), int(box[g, 1].max())
    c0, c1 = int(box[g, 2].min()), int(box[g, 3].max())
    lab = _read_labels(labels, r0, r1, c0, c1)
    ids = uid[g]
    pos = np.minimum(np.searchsorted(ids, lab), len(ids) - 1)
    local = np.where(ids[pos] == lab, pos + 1, 0)  # the window's own nuclei as 1..len(g), others 0
    hema = hematoxylin_od(rgb[r0:r1, c0:c1]) if rgb is not None else None
    regions = regionprops(local, intensity_image=hema, offset=(r0, c0))
    if len(regions) != len(g):
        raise RuntimeError(f"window [{r0}:{r1}, {c0}:{c1}] has {len(regions)} of its {len(g)} nuclei")
    for r in regions:
        i = int(g[r.label - 1])
        row = measure_row(r, int(uid[i]), hema is not None)
        table["area"][i] = row["area"]
        for k in FLOAT_FIELDS:
            table[k][i] = row[k]
        if spill is not None:
            br, bc = r.bbox[:2]
            spill.put(i, feature_json(place(row, pixel_size, offset),
                                  nucleus_geometry(r.image, (r0 + br + offset[0], c0 + bc + offset[1])), "Nucleus"))


def _table_rows(uid: np.ndarray, table: dict, pixel_size: float | None = None,
                offset: tuple[int, int] = (0, 0)) -> Iterator[dict]:
    """CSV rows in id order, as Python numbers (the same text as :func:`measurements`)."""
    for s in range(0, len(uid), CHUNK_ROWS):
        cols = {"id": uid[s : s + CHUNK_ROWS].tolist(), **{k: v[s : s + CHUNK_ROWS].tolist() for k, v in table.items()}}
        for i in range(len(cols["id"])):
            row = {k: cols[k][i] for k in MEASUREMENT_FIELDS}
            yield place(row, pixel_size, offset) if pixel_size or offset != (0, 0) else row
        time.sleep(0)  # let a GUI thread in between chunks (the GIL)


def _export_table(p: Path, kind: str, labels, rgb, block: int, cancelled: CancelFn | None,
                  provenance: dict | None = None, pixel_size: float | None = None,
                  offset: tuple[int, int] = (0, 0)) -> Generator[Progress, None, Path]:
    """CSV or GeoJSON of lazy or large labels, in two passes over blocks."""
    h, w = labels.shape
    grid = _grid(h, w, block)
    n, ncols = len(grid), -(-w // block)
    total = 2 * n + 1
    ids, boxes = [], []
    for k, (r, c) in enumerate(grid):
        check_cancelled(cancelled)
        i, b = _block_boxes(_read_labels(labels, r, r + block, c, c + block), r, c)
        ids.append(i)
        boxes.append(b)
        yield Progress(k + 1, total, f"finding nuclei: block {k + 1}/{n}")
    uid, box = _merge_boxes(ids, boxes)
    del ids, boxes
    m = len(uid)
    table = {"area": np.zeros(m, np.int64), **{k: np.full(m, np.nan) for k in FLOAT_FIELDS}}
    owner = (box[:, 0] // block) * ncols + box[:, 2] // block  # the block where a nucleus's box starts
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(n + 1))
    spill = _Spill(p.parent, m) if kind == "geojson" else None
    try:
        for k in range(n):
            check_cancelled(cancelled)
            for g in _groups(order[bounds[k] : bounds[k + 1]], box, block):
                _measure_window(labels, rgb, uid, box, g, table, spill, pixel_size, offset)
            yield Progress(n + k + 1, total, f"measuring: block {k + 1}/{n}")
        check_cancelled(cancelled)
        if spill is None:
            atomic_write(p, lambda t: write_rows(t, _table_rows(uid, table, pixel_size, offset), provenance,
                                                  pixel_size))
        else:
            atomic_write(p, lambda t: write_features(t, spill.records(), provenance))
    finally:
        if spill is not None:
            spill.close()
    yield Progress(total, total, f"wrote {p.name}")
    return p


def _export_tiff(p: Path, labels, tile: int, cancelled: CancelFn | None,
                 provenance: dict | None = None, pixel_size: float | None = None) -> Generator[Progress, None, Path]:
    """A tiled, zlib-compressed TIFF (ids kept; with ``pixel_size``, its resolution tags in µm), compressed tile
    by tile, then written in one go."""
    import tifffile

    from napari_prunuclei.io.labels import resolution_tags

    h, w = labels.shape
    grid = _grid(h, w, tile)
    n = len(grid)
    total = 2 * n + 1
    hi = 0
    for k, (r, c) in enumerate(grid):
        check_cancelled(cancelled)
        hi = max(hi, int(_read_labels(labels, r, r + tile, c, c + tile).max(initial=0)))
        yield Progress(k + 1, total, f"largest id: block {k + 1}/{n}")
    dtype = label_dtype(hi)
    spill = _Spill(p.parent, n)
    try:
        for k, (r, c) in enumerate(grid):
            check_cancelled(cancelled)
            t = np.zeros((tile, tile), dtype)
            b = np.asarray(labels[r : r + tile, c : c + tile])
            t[: b.shape[0], : b.shape[1]] = b
            spill.put(k, zlib.compress(t.tobytes(), 6))
            yield Progress(n + k + 1, total, f"compressing: block {k + 1}/{n}")
        check_cancelled(cancelled)
        bigtiff = max(h * w * dtype.itemsize, spill.size) > _BIGTIFF_BYTES
        atomic_write(p, lambda t: tifffile.imwrite(t, spill.records(), shape=(h, w), dtype=dtype, tile=(tile, tile),
                                                   compression="zlib", byteorder="<", bigtiff=bigtiff,
                                                   photometric="minisblack", metadata=None,
                                                   description=json.dumps(provenance) if provenance else None,
                                                   **resolution_tags(pixel_size)))
    finally:
        spill.close()
    yield Progress(total, total, f"wrote {p.name}")
    return p


def _export_whole(p: Path, kind: str, labels, rgb, cancelled: CancelFn | None,
                  provenance: dict | None = None, pixel_size: float | None = None,
                  offset: tuple[int, int] = (0, 0)) -> Generator[Progress, None, Path]:
    check_cancelled(cancelled)
    yield Progress(0, 1, f"writing {p.name}")
    check_cancelled(cancelled)
    if kind == "csv":
        write_csv(p, labels, rgb, provenance, pixel_size=pixel_size, offset=offset)
    elif kind == "geojson":
        write_geojson(p, labels, rgb, provenance=provenance, pixel_size=pixel_size, offset=offset)
    elif kind == "tif" and provenance:  # the provenance goes into the TIFF's description
        return (yield from _export_tiff(p, np.asarray(labels), 256, cancelled, provenance, pixel_size))
    else:
        write_labels(p, np.asarray(labels), pixel_size=pixel_size if kind == "tif" else None)
    yield Progress(1, 1, f"wrote {p.name}")
    return p


def iter_export(path: str | os.PathLike, labels: Any, rgb: Any = None, *, block: int = 1024,
                cancelled: CancelFn | None = None, provenance: dict | None = None,
                overwrite: bool = True, pixel_size: float | None = None,
                offset: tuple[int, int] = (0, 0)) -> Generator[Progress, None, Path]:
    """Export labels by extension as a job: yields :class:`Progress`, returns the written path.

    ``.csv``: :data:`MEASUREMENT_FIELDS` per nucleus; ``.geojson``/``.json``: a FeatureCollection of
    polygons with the measurements as properties; ``.tif``/``.tiff``: the labels, ids kept; ``.png``:
    16-bit labels (at most 65535 ids; read whole). ``labels`` is a 2-D integer array, numpy or lazy
    (zarr, dask: anything with ``shape``, ``dtype`` and slicing); ``rgb`` the H x W x 3 H&E image for
    mean hematoxylin, also possibly lazy. Lazy labels, or numpy ones over :data:`IN_MEMORY_MAX_PIXELS`,
    are read ``block`` x ``block`` at a time (a tiled TIFF for ``.tif``); the results equal
    :func:`measurements` of the whole image. Raises :class:`~.progress.Cancelled` when
    ``cancelled()`` (checked between blocks); a cancelled or failed export leaves no file.
    ``provenance`` (image, models, sha256, thresholds, version...) goes into the CSV's ``#`` lines, the
    GeoJSON collection's ``properties`` and the TIFF's description (not into PNG). ``overwrite=False``
    refuses an existing file. ``pixel_size`` (µm per pixel) adds :data:`MICRON_FIELDS` to CSV and
    GeoJSON; ``offset`` (row, column) puts the labels of a region where it lies in the image (CSV
    centroids and GeoJSON coordinates; label images are written as they are).
    """
    offset = (int(offset[0]), int(offset[1]))
    p = Path(path)
    kind = _KINDS.get(p.suffix.lower())
    if kind is None:
        what = f"extension {p.suffix!r}" if p.suffix else "no extension"
        raise ValueError(f"cannot export {p}: {what}; use one of {', '.join(EXPORT_EXTENSIONS)}")
    if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
        labels = np.asarray(labels)
    _check_inputs(labels, rgb, pixel_size)
    if block < 16:
        raise ValueError(f"block must be >= 16 pixels, got {block}")
    if not p.parent.is_dir():
        raise OSError(f"cannot write {p}: folder {p.parent} does not exist")
    if not overwrite and p.exists():
        raise FileExistsError(f"{p} exists: choose another name, or allow overwriting")
    if kind == "png" or (isinstance(labels, np.ndarray) and labels.size <= IN_MEMORY_MAX_PIXELS):
        return (yield from _export_whole(p, kind, labels, rgb, cancelled, provenance, pixel_size, offset))
    if kind == "tif":
        return (yield from _export_tiff(p, labels, block - block % 16, cancelled, provenance, pixel_size))
    return (yield from _export_table(p, kind, labels, rgb, block, cancelled, provenance, pixel_size, offset))


def export_labels(path: str | os.PathLike, labels: Any, rgb: Any = None, *, progress: ProgressFn | None = None,
                  cancelled: CancelFn | None = None, block: int = 1024, provenance: dict | None = None,
                  overwrite: bool = True, pixel_size: float | None = None,
                  offset: tuple[int, int] = (0, 0)) -> Path:
    """Write by extension: .csv (measurements), .geojson/.json (polygons), .tif/.tiff/.png (labels).

    Runs :func:`iter_export` with ``progress`` called on each :class:`Progress` record.
    """
    return drive(iter_export(path, labels, rgb, block=block, cancelled=cancelled, provenance=provenance,
                             overwrite=overwrite, pixel_size=pixel_size, offset=offset), progress)


def iter_export_regions(path: str | os.PathLike, regions: list[Region], *, cancelled: CancelFn | None = None,
                        provenance: dict | None = None, overwrite: bool = True, pixel_size: float | None = None,
                        offset: tuple[int, int] = (0, 0)) -> Generator[Progress, None, Path]:
    """Export classified regions (e.g. disagreement events) as a job: one row or feature per region, numbered
    1..n in order. ``.geojson``/``.json``: QuPath annotations (:func:`region_feature_json`), the provenance as
    the collection's ``properties``; ``.csv``: ``id``, the regions' properties (lists as ``;``-joined ids),
    ``area_px``, ``centroid_y``, ``centroid_x`` (and ``area_um2`` with a pixel size), the provenance as ``#``
    lines. ``offset`` (row, column) places a region's coordinates in the image. Atomic; cancelled: no file."""
    import csv

    from napari_prunuclei.io.measure import preamble

    offset = (int(offset[0]), int(offset[1]))
    p = Path(path)
    kind = _KINDS.get(p.suffix.lower())
    if kind not in ("csv", "geojson"):
        raise ValueError(f"cannot export regions to {p}: use .geojson, .json or .csv (a label image of kinds "
                         "is written by iter_export)")
    if pixel_size is not None:
        _check_inputs(np.zeros((1, 1), np.uint8), None, pixel_size)
    if not p.parent.is_dir():
        raise OSError(f"cannot write {p}: folder {p.parent} does not exist")
    if not overwrite and p.exists():
        raise FileExistsError(f"{p} exists: choose another name, or allow overwriting")
    check_cancelled(cancelled)
    yield Progress(0, 1, f"writing {p.name}")

    def each(k: int, r: Region):
        if k % 64 == 0:
            check_cancelled(cancelled)  # Cancelled inside the atomic write: nothing is written
        return k, r

    if kind == "geojson":
        feats = (region_feature_json(*each(k, r), pixel_size, offset) for k, r in enumerate(regions, 1))
        atomic_write(p, lambda t: write_features(t, feats, provenance))
    else:
        rows = [{"id": k, **region_row(each(k, r)[1], pixel_size, offset)} for k, r in enumerate(regions, 1)]
        names = list(dict.fromkeys(name for row in rows for name in row)) or ["id", "area_px", "centroid_y",
                                                                               "centroid_x"]

        def write(t: Path) -> None:
            with open(t, "w", newline="") as f:
                f.write(preamble(provenance))
                w = csv.DictWriter(f, fieldnames=names)
                w.writeheader()
                w.writerows({k: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v
                             for k, v in row.items()} for row in rows)

        atomic_write(p, write)
    yield Progress(1, 1, f"wrote {p.name}")
    return p
