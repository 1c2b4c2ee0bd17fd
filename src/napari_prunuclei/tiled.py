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
from scipy import ndimage as ndi

from .constants import HALO, TILE

__all__ = ["Tile", "tile_grid", "stitch_tile", "max_label"]


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


def stitch_tile(out, local: np.ndarray, t: Tile, next_id: int) -> int:
    """Write the nuclei of ``local`` whose centroid lies in the tile's core; return the next free id."""
    n = int(local.max())
    if n == 0:
        return next_id
    idx = np.arange(1, n + 1)
    centroids = np.asarray(ndi.center_of_mass(np.ones_like(local), local, idx)).reshape(-1, 2)
    cr = centroids[:, 0] + t.a0
    cc = centroids[:, 1] + t.b0
    keep = (cr >= t.r0) & (cr < t.r1) & (cc >= t.c0) & (cc < t.c1)
    if not keep.any():
        return next_id
    lut = np.zeros(n + 1, np.int32)
    lut[idx[keep]] = np.arange(next_id, next_id + int(keep.sum()), dtype=np.int32)
    new = lut[local]
    region = np.asarray(out[t.a0 : t.a1, t.b0 : t.b1])
    write = (new > 0) & (region == 0)
    region = region.copy()
    region[write] = new[write]
    out[t.a0 : t.a1, t.b0 : t.b1] = region
    return next_id + int(keep.sum())
