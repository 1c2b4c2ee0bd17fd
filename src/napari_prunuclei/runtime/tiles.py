"""The tile grid (cores + halo) and the stitching rule of tiled segmentation.

Each tile's *core* (``tile`` px square, the cores partition the image) is
processed with a ``halo`` of context on every side: the branches and the
watershed run on core + halo, and a nucleus is kept by the tile whose core
holds its centroid, with all its pixels (also those in the halo). So a nucleus
on a seam is segmented with full context, written once, and never cut; pixels
already claimed by a neighbour's nucleus are left to it. Memory is bounded by
the tile: the image may be a lazy array (zarr, dask, memory-mapped TIFF) and
the labels may be written into a chunked on-disk array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_prunuclei.base.constants import HALO, TILE

__all__ = ["Tile", "tile_grid", "kept_nuclei", "stitch_tile", "max_label"]


@dataclass(frozen=True)
class Tile:
    """A core region ``[r0:r1, c0:c1]`` and the region read around it ``[a0:a1, b0:b1]``."""

    r0: int
    r1: int
    c0: int
    c1: int
    a0: int
    a1: int
    b0: int
    b1: int


def tile_grid(shape: tuple[int, int], tile: int = TILE, halo: int = HALO) -> list[Tile]:
    """Row-major tiles whose cores partition an image of ``shape``."""
    if tile < 64 or halo < 0:
        raise ValueError(f"tile must be >= 64 and halo >= 0, got {tile}, {halo}")
    h, w = shape
    out = []
    for r0 in range(0, h, tile):
        for c0 in range(0, w, tile):
            r1, c1 = min(r0 + tile, h), min(c0 + tile, w)
            out.append(Tile(r0, r1, c0, c1, max(r0 - halo, 0), min(r1 + halo, h), max(c0 - halo, 0),
                            min(c1 + halo, w)))
    return out


def max_label(labels, rows: int = 1024) -> int:
    """Largest id of a label array, read ``rows`` rows at a time (for on-disk arrays)."""
    if isinstance(labels, np.ndarray):
        return int(labels.max(initial=0))
    return max((int(np.asarray(labels[r : r + rows]).max()) for r in range(0, labels.shape[0], rows)), default=0)


def _centroid_axes(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every pixel of a ``shape`` array, float64, raveled (cached per shape)."""
    cached = _AXES.get(shape)
    if cached is None:
        rows, cols = np.indices(shape, dtype=np.float64)
        cached = _AXES[shape] = (rows.ravel(), cols.ravel())
        while len(_AXES) > 8:
            _AXES.pop(next(iter(_AXES)))
    return cached


_AXES: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def kept_nuclei(local: np.ndarray, t: Tile) -> tuple[np.ndarray, int]:
    """The stitching rule for one tile: its nuclei whose centroid lies in the core.

    ``local``: the tile's labels on core + halo (ids 1..n). Returns the kept nuclei
    renumbered 1..k in the order of their local ids (0 elsewhere), and k. The centroids are
    the exact means of the pixel coordinates (sums of integers, exact in float64), the
    same numbers :func:`scipy.ndimage.center_of_mass` gives.
    """
    n = int(local.max(initial=0))
    if n == 0:
        return np.zeros(local.shape, np.int32), 0
    flat = local.ravel()
    rows, cols = _centroid_axes(local.shape)
    count = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    cr = np.bincount(flat, weights=rows, minlength=n + 1)[1:] / count + t.a0
    cc = np.bincount(flat, weights=cols, minlength=n + 1)[1:] / count + t.b0
    keep = (cr >= t.r0) & (cr < t.r1) & (cc >= t.c0) & (cc < t.c1)
    k = int(keep.sum())
    lut = np.zeros(n + 1, np.int32)
    lut[1:][keep] = np.arange(1, k + 1, dtype=np.int32)
    return lut[local], k


def stitch_tile(out, local: np.ndarray, t: Tile, next_id: int) -> int:
    """Write the nuclei of ``local`` whose centroid lies in the tile's core; return the next free id.

    The rule pixel by pixel (the reference): pixels already claimed by an earlier tile's
    nucleus are left to it. :class:`napari_prunuclei.runtime.stitch.Stitcher` gives the same labels
    touching only the seams.
    """
    kept, k = kept_nuclei(local, t)
    if k == 0:
        return next_id
    new = kept + np.int32(next_id - 1)
    region = np.asarray(out[t.a0 : t.a1, t.b0 : t.b1])
    write = (kept > 0) & (region == 0)
    region = region.copy()
    region[write] = new[write]
    out[t.a0 : t.a1, t.b0 : t.b1] = region
    return next_id + k
