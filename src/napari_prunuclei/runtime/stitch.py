"""Stitching tiles without a pass over every pixel: only the nuclei on the seams are resolved.

The rule is :func:`napari_prunuclei.runtime.tiles.stitch_tile`'s, applied tile by tile in the grid's
(row-major) order: a tile keeps the nuclei whose centroid lies in its core, numbered after
those of the tiles before it, and a pixel already claimed by an earlier tile's nucleus is
left to it. That rule needs a look at the labels already written only where an earlier
tile's core + halo reaches: the top and left ``halo`` px of the core. The rest of the core
(the *private block*) is written as one block, offset, and the few kept pixels outside it
(the *seam pixels*) are resolved one by one. :func:`split_tile` does the tile's share of
the work (in a worker process); :class:`Stitcher` the ordered, cheap rest.

Labels go into ``out`` directly when it is a numpy array; any other array (a zarr store)
receives whole rows of tiles through a band held in memory, so its chunks are written
once, by a writer thread (compressing a row of tiles costs more than stitching it), at most
one row behind. A finished band is handed to the writer as it is (no copy) and, when the store
copies what it is given (zarr on disk), comes back zeroed for reuse: per row of tiles only the
rows later tiles still reach are copied into the next band. At most three bands of
``2 x tile + halo`` rows exist at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from napari_prunuclei.runtime.tiles import Tile

__all__ = ["TileLabels", "private_block", "split_tile", "label_store", "Stitcher"]


def private_block(t: Tile) -> tuple[int, int, int, int]:
    """``(r0, r1, c0, c1)``: the part of the core no earlier tile's core + halo reaches."""
    halo_top = t.r0 - t.a0  # the halo this tile has above equals the one the tile above has below
    halo_left = t.c0 - t.b0
    return min(t.r0 + halo_top, t.r1), t.r1, min(t.c0 + halo_left, t.c1), t.c1


@dataclass
class TileLabels:
    """One tile's kept nuclei, ready to stitch: ``k`` nuclei numbered 1..k, the private block in
    ``block`` (a view, possibly of shared memory), and the seam pixels (global ``rows``, ``cols``,
    their local ids ``ids``)."""

    tile: Tile
    k: int
    block: np.ndarray | None
    rows: np.ndarray
    cols: np.ndarray
    ids: np.ndarray


def split_tile(kept: np.ndarray, k: int, t: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seam pixels of a tile's kept nuclei (``kept``: 1..k on core + halo): global rows, columns
    and ids of the kept pixels outside :func:`private_block`, band by band (above the block, left and
    right of it, below it: the frame around the block is all that is read)."""
    p0, p1, q0, q1 = private_block(t)
    p0, p1, q0, q1 = p0 - t.a0, p1 - t.a0, q0 - t.b0, q1 - t.b0
    h, w = kept.shape
    bands = [(0, p0, 0, w), (p0, p1, 0, q0), (p0, p1, q1, w), (p1, h, 0, w)] if k else []
    rows, cols = [], []
    for y0, y1, x0, x1 in bands:
        if y1 > y0 and x1 > x0:
            r, c = np.nonzero(kept[y0:y1, x0:x1])
            rows.append(r + y0)
            cols.append(c + x0)
    if not rows:  # no nucleus kept, or the private block is the whole tile (no halo, one tile for the image)
        empty = np.zeros(0, np.int32)
        return empty, empty, empty
    r, c = np.concatenate(rows), np.concatenate(cols)
    ids = kept[r, c]
    return (r + t.a0).astype(np.int32), (c + t.b0).astype(np.int32), ids.astype(np.int32)


def _written(out, r0: int, band: np.ndarray, n: int, failed: threading.Event, reuse: bool) -> np.ndarray | None:
    """(In the writer thread.) The band's first ``n`` rows into ``out`` at row ``r0``, unless an earlier
    write failed; then the band zeroed for reuse, or None when ``out`` may keep what it was given."""
    if failed.is_set():
        return None
    try:
        out[r0 : r0 + n] = band[:n]
    except BaseException:
        failed.set()  # the rows queued behind this one are not written
        raise
    if not reuse:
        return None
    band.fill(0)
    return band


def label_store(path, shape: tuple[int, int], chunk: int):
    """A new zero-filled int32 zarr array of ``shape`` in the directory ``path`` (its chunks ``chunk`` px
    square, one per tile core): the on-disk labels a tiled run of the CLI or the widget writes into."""
    import zarr

    return zarr.open_array(str(path), mode="w", shape=tuple(shape), chunks=(chunk, chunk), dtype="int32",
                           fill_value=0)


def _copies_what_it_is_given(out) -> bool:
    """Whether ``out`` keeps no reference to an array written into it, so a band can be reused: a zarr
    array in a directory (it encodes chunks to files). An in-memory store may keep the array itself."""
    try:
        import zarr
        from zarr.storage import LocalStore
    except ImportError:
        return False
    return isinstance(out, zarr.Array) and isinstance(out.store, LocalStore)


class Stitcher:
    """Writes tiles' kept nuclei into ``out`` in the grid's order (:meth:`add`), then :meth:`close`.

    Same labels as :func:`~napari_prunuclei.runtime.tiles.stitch_tile` called tile after tile.
    """

    def __init__(self, out, grid: list[Tile], tile: int, shape: tuple[int, int] | None = None) -> None:
        """``out``: the labels (numpy: written in place; another array: through a band), or None: a numpy
        array of ``shape`` made at the first tile (by then the memory the networks freed can serve it,
        already mapped: writing a fresh 400 MB array took 0.8-0.9 s here, ``bench/bench_heap.py``)."""
        self.out = out
        self.grid = grid
        self.next_id = 1
        self.done = 0
        self._shape = tuple(out.shape) if out is not None else tuple(shape)
        h, w = self._shape
        self.direct = out is None or isinstance(out, np.ndarray)
        self.tile = tile
        self.write_wait = 0.0  # seconds spent waiting for the writer thread
        self._writes: deque[Future] = deque()  # each returns its band zeroed for reuse, or None
        self._free: list[np.ndarray] = []  # zeroed bands
        self._failed = threading.Event()  # a write failed: the writer writes nothing more
        self._reuse = not self.direct and _copies_what_it_is_given(out)
        self._writer: ThreadPoolExecutor | None = None
        if self.direct:
            self.canvas, self.lo = out, 0
        else:
            rows = max((t.a1 - (t.a0 // tile) * tile for t in grid), default=0)
            self.canvas, self.lo = np.zeros((min(rows, h), w), np.int32), 0
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="prunuclei-label-writer")

    def _write(self, r0: int, band: np.ndarray, n: int) -> None:
        """Hand the band (its first ``n`` rows, for rows ``r0:``) to the writer thread, in order (it is the
        writer's from now on; reusable ones come back zeroed). Waits while another band is being written."""
        if self._writer is None:
            raise RuntimeError("this stitcher was aborted: nothing more is written")
        self._writes.append(self._writer.submit(_written, self.out, r0, band, n, self._failed, self._reuse))
        t0 = time.perf_counter()
        try:
            while len(self._writes) > 1 or (self._writes and self._writes[0].done()):
                back = self._writes.popleft().result()  # a failed write is raised here
                if back is not None:
                    self._free.append(back)
        except BaseException:
            self.abort()  # no later row is written after a failed one
            raise
        finally:
            self.write_wait += time.perf_counter() - t0

    def _band(self) -> np.ndarray:
        return self._free.pop() if self._free else np.zeros_like(self.canvas)

    def _hold(self, t: Tile) -> None:
        """Band mode: flush whole rows of tiles that no later tile reaches, keep the rest."""
        if self.direct:
            return
        start = (t.a0 // self.tile) * self.tile
        if start > self.lo:
            n = start - self.lo
            band = self._band()  # zero; the rows below this row of tiles that its halo reached move over
            band[: max(0, band.shape[0] - n)] = self.canvas[n:]
            self._write(self.lo, self.canvas, n)  # no copy: the band itself goes to the writer
            self.canvas, self.lo = band, start

    def _made(self) -> None:
        if self.out is None:
            self.out = self.canvas = np.zeros(self._shape, np.int32)

    def add(self, part: TileLabels) -> None:
        """Stitch the next tile of the grid (tiles must come in the grid's order)."""
        t = part.tile
        if t != self.grid[self.done]:
            raise ValueError(f"tile {t} stitched out of order (expected {self.grid[self.done]})")
        self._made()
        self._hold(t)
        if part.k:
            off = np.int32(self.next_id - 1)
            p0, p1, q0, q1 = private_block(t)
            dst = self.canvas[p0 - self.lo : p1 - self.lo, q0:q1]
            # no earlier tile reaches the private block: it is all zero here, written as one block
            # through a table (0 -> 0, i -> i + off): one gather, no mask array
            lut = np.arange(off, off + part.k + 1, dtype=np.int32)
            lut[0] = 0
            dst[...] = lut[part.block]
            if part.rows.size:  # seam pixels: taken only where no earlier tile's nucleus is
                rr = part.rows - self.lo
                if self.canvas.flags.c_contiguous:  # one flat index: cheaper than a 2-D fancy index
                    flat = self.canvas.reshape(-1)  # a view
                    at = rr.astype(np.intp) * self.canvas.shape[1] + part.cols
                    free = flat[at] == 0
                    flat[at[free]] = part.ids[free] + off
                else:
                    free = self.canvas[rr, part.cols] == 0
                    self.canvas[rr[free], part.cols[free]] = part.ids[free] + off
            self.next_id += part.k
        self.done += 1

    def close(self):
        """Flush what the band holds, wait for the writes; return ``out``."""
        self._made()
        if not self.direct:
            n = min(self.canvas.shape[0], self.out.shape[0] - self.lo)
            if n > 0:
                self._write(self.lo, self.canvas, n)
            t0 = time.perf_counter()
            try:
                while self._writes:
                    self._writes.popleft().result()
            finally:
                self.write_wait += time.perf_counter() - t0
                self.abort()
        return self.out

    def abort(self) -> None:
        """Stop writing (a run that failed or was cancelled): rows not yet started are dropped, the
        one being written is waited for, so nothing writes into ``out`` after this returns."""
        if self._writer is not None:
            for f in self._writes:
                f.cancel()
            self._writer.shutdown(wait=True)
            self._writes.clear()
            self._writer = None
