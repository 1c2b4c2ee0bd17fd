"""Whole-slide segmentation in tiles: both branches and the watershed per tile, stitched.

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

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .inference import predict_branch, resolve_precision
from .io import as_rgb_uint8
from .models.unet import UNet
from .postprocess import WatershedParams, watershed_instances

__all__ = ["WHOLE_MAX_PIXELS", "Tile", "tile_grid", "segment_tiled", "iter_segment_tiled", "max_label"]

#: images with more pixels than this are segmented tile by tile (CLI and widget)
WHOLE_MAX_PIXELS = 2048 * 2048


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


def tile_grid(shape: tuple[int, int], tile: int = 1024, halo: int = 128) -> list[Tile]:
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


def _read(image, t: Tile) -> np.ndarray:
    crop = np.asarray(image[t.a0 : t.a1, t.b0 : t.b1])
    return as_rgb_uint8(crop, name=f"tile [{t.a0}:{t.a1}, {t.b0}:{t.b1}]")


def segment_tiled(
    image,
    models: tuple[UNet, UNet],
    params: WatershedParams,
    *,
    tile: int = 1024,
    halo: int = 128,
    device: str = "auto",
    precision: str = "auto",
    out=None,
    maps=None,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    timings: dict | None = None,
    post_workers: int = 0,
):
    """Instance labels of an H&E ``image`` (H x W x 3, any array supporting slicing), tile by tile.

    ``out``: a zero-filled int32 array of shape (H, W) to write into (e.g. a zarr
    array on disk); a numpy array is made when None. Returns ``out``. Ids are unique
    per nucleus (not necessarily consecutive). ``maps``: optional (probability,
    distance) float32 arrays of shape (H, W) that receive the branch outputs.
    ``timings`` (a dict) receives the seconds spent in the branches, the watershed
    and stitching, and the tile count. Raises InterruptedError when ``cancelled()``.
    ``post_workers``: threads that run the watershed while the next tiles' branches run.
    """
    gen = iter_segment_tiled(image, models, params, tile=tile, halo=halo, device=device, precision=precision,
                             out=out, maps=maps, cancelled=cancelled, timings=timings, post_workers=post_workers)
    while True:
        try:
            done, total = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(done, total)


def iter_segment_tiled(image, models, params, *, tile=1024, halo=128, device="auto", precision="auto", out=None,
                       maps=None, cancelled=None, timings=None, post_workers: int = 0):
    """Generator form of :func:`segment_tiled`: yields ``(tiles done, total)``, returns the labels.

    ``post_workers > 0`` overlaps the watershed of finished tiles with the branches of the
    next ones in that many threads (for a GPU, or many CPU cores); tiles are still stitched
    one by one in raster order, so the labels are the same as with ``post_workers=0``.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from .devices import resolve_device

    h, w = image.shape[:2]
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if out is None:
        out = np.zeros((h, w), np.int32)
    elif tuple(out.shape) != (h, w):
        raise ValueError(f"out has shape {tuple(out.shape)}, the image {(h, w)}")
    sem, dst = models
    tiles = tile_grid((h, w), tile, halo)
    big = tile + 2 * halo + 64  # one forward pass per tile
    state = {"next_id": 1, "done": 0}
    secs = {"branches": 0.0, "watershed": 0.0, "stitch": 0.0}

    def post(prob, dist):
        t = time.perf_counter()
        local = watershed_instances(prob, dist, params)
        return local, time.perf_counter() - t

    def finish(t: Tile, prob, dist, local, ws_s: float):
        t2 = time.perf_counter()
        state["next_id"] = _stitch(out, local, t, state["next_id"])
        if maps is not None:
            core = np.s_[t.r0 - t.a0 : t.r1 - t.a0, t.c0 - t.b0 : t.c1 - t.b0]
            maps[0][t.r0 : t.r1, t.c0 : t.c1] = prob[core]
            maps[1][t.r0 : t.r1, t.c0 : t.c1] = dist[core]
        secs["watershed"] += ws_s
        secs["stitch"] += time.perf_counter() - t2
        state["done"] += 1
        if timings is not None:
            timings.update(secs, tiles=state["done"])
        return state["done"], len(tiles)

    pool = ThreadPoolExecutor(post_workers) if post_workers > 0 else None
    pending: deque = deque()
    try:
        for t in tiles:
            if cancelled is not None and cancelled():
                raise InterruptedError("cancelled")
            t0 = time.perf_counter()
            rgb = _read(image, t)
            prob = predict_branch(sem, rgb, device=dev, precision=prec, tile=big)
            dist = predict_branch(dst, rgb, device=dev, precision=prec, tile=big)
            secs["branches"] += time.perf_counter() - t0
            if pool is None:
                yield finish(t, prob, dist, *post(prob, dist))
                continue
            pending.append((t, prob, dist, pool.submit(post, prob, dist)))
            while pending and (pending[0][3].done() or len(pending) > 2 * post_workers):
                t_, p_, d_, fut = pending.popleft()
                yield finish(t_, p_, d_, *fut.result())
        while pending:
            t_, p_, d_, fut = pending.popleft()
            yield finish(t_, p_, d_, *fut.result())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return out


def max_label(labels, rows: int = 1024) -> int:
    """Largest id of a label array, read ``rows`` rows at a time (for on-disk arrays)."""
    if isinstance(labels, np.ndarray):
        return int(labels.max(initial=0))
    return max((int(np.asarray(labels[r : r + rows]).max()) for r in range(0, labels.shape[0], rows)), default=0)


def _stitch(out, local: np.ndarray, t: Tile, next_id: int) -> int:
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
