"""Instance label images: read (any integer type, ids never cast down) and write (ids kept), id checks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_prunuclei.io.atomic import atomic_write
from napari_prunuclei.io.guards import (
    ImageError,
    decoding,
    missing_file_error,
    read_tiff_page,
)
from napari_prunuclei.io.images import TIFF_SUFFIXES, read_pillow, tiff_main_series

__all__ = [
    "resolution_tags",
    "read_labels",
    "check_label_ids",
    "label_dtype",
    "unique_inverse",
    "write_labels",
]


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an instance label image (TIFF or PNG, any unsigned or non-negative integer type) as int32, or int64
    where an id needs it (ids are never cast down); 0 = background; negative ids are refused.

    A palette PNG gives its palette indices. The header is checked before decoding, as in
    :func:`read_image`.
    """
    p = Path(path)
    if not p.is_file():
        raise missing_file_error(p, "label")
    if p.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with decoding(p, "labels"), tifffile.TiffFile(p) as tf:
            level = tiff_main_series(tf, p, "labels").levels[0]
            if len(level.shape) != 2:
                raise ImageError(f"labels {p} must be a 2-D integer image, got shape {tuple(level.shape)}")
            a = read_tiff_page(p, level.keyframe, "labels")
    else:
        a = read_pillow(p, "labels")
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ImageError(f"labels {p} must be a 2-D integer image, got {a.shape} {a.dtype}")
    try:
        a = check_label_ids(a, f" {p}")
    except ValueError as e:
        raise ImageError(str(e)) from None
    return a.astype(np.int32) if int(a.max(initial=0)) < 2**31 else a  # ids kept: int64 where they need it


def check_label_ids(labels: np.ndarray, where: str = "") -> np.ndarray:
    """``labels`` (any integer type) as int64 ids, after refusing negative ids and ids >= 2**63 (which no
    signed 64-bit array keeps) with a clear error; 0 is background."""
    b = np.asarray(labels)
    if b.dtype == bool:
        b = b.astype(np.uint8)
    if not np.issubdtype(b.dtype, np.integer):
        raise ValueError(f"labels{where} must be integers, got {b.dtype}")
    if b.size and b.dtype.kind == "i" and b.min() < 0:
        raise ValueError(f"labels{where} have negative ids ({int(b.min())}); ids must be >= 0")
    if b.size and b.dtype.kind == "u" and b.dtype.itemsize == 8 and int(b.max()) >= 2**63:
        raise ValueError(f"labels{where} have ids >= 2**63 ({int(b.max())}); relabel them first")
    return b.astype(np.int64, copy=False)


def unique_inverse(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(labels, return_inverse=True)`` with the inverse in ``labels``' shape, for non-negative
    integer ids: the sorted distinct ids and each pixel's index among them. Ids up to a few times the
    pixel count go through a table (one pass, no sort: 10-20x faster on a 1000x1000 label image);
    others through ``np.unique``. Equal results either way."""
    lab = np.asarray(labels)
    flat = lab.ravel()
    hi = int(flat.max()) if flat.size else -1
    if flat.size and lab.dtype.kind in "ui" and int(flat.min()) >= 0 and hi <= max(4 * flat.size, 1 << 16):
        present = np.zeros(hi + 1, bool)
        present[flat] = True
        rank = np.cumsum(present, dtype=np.intp) - 1  # an id's index among the distinct ids
        return np.flatnonzero(present).astype(lab.dtype), rank[flat].reshape(lab.shape)
    ids, inv = np.unique(lab, return_inverse=True)
    return ids, inv.reshape(lab.shape)


def label_dtype(max_id: int) -> np.dtype:
    """The smallest unsigned type that keeps every id up to ``max_id``."""
    return np.dtype("<u2" if max_id < 2**16 else "<u4" if max_id < 2**32 else "<u8")


def resolution_tags(pixel_size: float | None) -> dict:
    """tifffile keywords giving a TIFF the pixel size in µm (pixels per centimetre), so it reopens in µm beside
    its image; none when the pixel size is unknown."""
    if not pixel_size:
        return {}
    per_cm = 1e4 / float(pixel_size)
    return {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}


def write_labels(path: str | os.PathLike, labels: np.ndarray, pixel_size: float | None = None) -> Path:
    """Write instance labels to TIFF (ids kept: 16, 32 or 64 bits as they need; with ``pixel_size`` in µm, its
    resolution tags) or 16-bit PNG; negative ids and ids >= 2**63 are refused, as are ids over 65535 for PNG."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".tif", ".tiff", ".png"):
        raise ValueError(f"unsupported label format {suffix!r}: use .tif or .png")
    lab = check_label_ids(labels)
    hi = int(lab.max(initial=0))
    if suffix == ".png":
        if hi >= 2**16:
            raise ValueError(f"id {hi} does not fit a 16-bit PNG; use .tif")
        import imageio.v3 as iio

        return atomic_write(p, lambda t: iio.imwrite(t, lab.astype(np.uint16), extension=".png"))
    import tifffile

    return atomic_write(p, lambda t: tifffile.imwrite(t, lab.astype(label_dtype(hi)), compression="zlib",
                                                      **resolution_tags(pixel_size)))
