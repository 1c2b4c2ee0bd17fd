"""Post-processing of tiles in worker processes: the watershed and the stitching rule per tile.

The maps of a tile go to a worker through shared memory (no pickling of the maps): the run
holds one block of ``slots`` slots, each with room for a tile's probability and distance
maps and its kept labels. A worker runs :func:`post_tile` on a slot and writes the private
block of the tile's kept nuclei back into it; only the seam pixels (a few thousand) travel
back pickled. Slots are handed out and taken back by the run (:class:`PostPool`), so memory is
bounded by the number of slots. ``workers=0`` runs the same code in this process.

Core only (numpy, scipy, scikit-image): no torch, no napari in the workers.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import queue
import secrets
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from napari_prunuclei.base.machine import available_cores
from napari_prunuclei.nuclei.watershed import WatershedParams, watershed_in_core
from napari_prunuclei.runtime.stitch import TileLabels, private_block, split_tile
from napari_prunuclei.runtime.tiles import Tile

__all__ = ["available_cores", "resolve_workers", "post_tile", "PostPool", "PoolStopped", "remove_dead_segments"]


def resolve_workers(workers: int | None, reserved: int = 0) -> int:
    """``None``: one worker process per available core less the ``reserved`` ones (the cores the
    networks use when they run on this CPU); 0: in this process. A daemonic process (a dask worker,
    say) may not start processes, so it runs the tiles itself."""
    if workers is None:
        workers = max(0, available_cores() - max(0, reserved))
    if workers < 0:
        raise ValueError(f"post_workers must be >= 0 or None, got {workers}")
    if workers and mp.current_process().daemon:
        return 0
    return workers


def post_tile(prob: np.ndarray, dist: np.ndarray, params: WatershedParams, t: Tile,
              block_out: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Watershed of one tile's maps (core + halo), its kept nuclei (centroid in the core) numbered 1..k;
    the private block goes into ``block_out``, the seam pixels are returned with k. The kept nuclei are
    ``tiled.kept_nuclei(watershed_instances(prob, dist, params), t)``, computed by
    :func:`~napari_prunuclei.nuclei.watershed.watershed_in_core` without a centroid for every nucleus."""
    kept, k = watershed_in_core(prob, dist, params, (t.r0 - t.a0, t.r1 - t.a0, t.c0 - t.b0, t.c1 - t.b0))
    p0, p1, q0, q1 = private_block(t)
    block_out[...] = kept[p0 - t.a0 : p1 - t.a0, q0 - t.b0 : q1 - t.b0]
    return (k, *split_tile(kept, k, t))


@dataclass(frozen=True)
class _Layout:
    """Where slot ``i``'s arrays lie in the shared block (each slot: prob, dist float32, kept int32)."""

    name: str
    slots: int
    pixels: int  # room per array, in elements

    @property
    def nbytes(self) -> int:
        return self.slots * 3 * self.pixels * 4

    def arrays(self, buf, slot: int, crop: tuple[int, int], block: tuple[int, int]):
        base = slot * 3 * self.pixels * 4
        n, m = crop[0] * crop[1], block[0] * block[1]
        prob = np.ndarray(crop, np.float32, buf, base)
        dist = np.ndarray(crop, np.float32, buf, base + self.pixels * 4)
        kept = np.ndarray(block, np.int32, buf, base + 2 * self.pixels * 4)
        assert n <= self.pixels and m <= self.pixels
        return prob, dist, kept


_ATTACHED: dict[str, shared_memory.SharedMemory] = {}


def _attach(name: str) -> shared_memory.SharedMemory:
    """The worker's handle on a run's block (opened once per run; older runs' handles closed)."""
    shm = _ATTACHED.get(name)
    if shm is None:
        for old in list(_ATTACHED):
            _ATTACHED.pop(old).close()
        shm = _ATTACHED[name] = shared_memory.SharedMemory(name=name)
    return shm


def _post_in_worker(layout: _Layout, slot: int, t: Tile, params: WatershedParams):
    t0 = time.perf_counter()
    shm = _attach(layout.name)
    p0, p1, q0, q1 = private_block(t)
    prob, dist, kept = layout.arrays(shm.buf, slot, (t.a1 - t.a0, t.b1 - t.b0), (p1 - p0, q1 - q0))
    res = post_tile(prob, dist, params, t, kept)
    del prob, dist, kept  # no views of the buffer may outlive the call
    return (*res, time.perf_counter() - t0)


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _worker_init(parent: int) -> None:
    """In each worker: yield to the process that feeds the networks (on a CPU the networks are the slow
    stage and the watershed fills their gaps; on a GPU machine the feeding thread must not wait for a
    core), and exit as soon as the process that started the pool is gone (killed, say), instead of
    living on beside the forkserver."""
    try:
        os.nice(5)
    except (AttributeError, OSError):
        pass

    def watch() -> None:
        while _alive(parent):
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="prunuclei-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


SHM_PREFIX = "prunuclei_"


def remove_dead_segments(folder: str = "/dev/shm") -> list[str]:
    """Unlink the shared-memory blocks of runs whose process is gone (named ``prunuclei_<pid>_...``): a run
    killed with its whole process group (resource tracker included) leaves its block; the next run frees it."""
    import re

    gone = []
    try:
        names = os.listdir(folder)
    except OSError:
        return gone
    for name in names:
        m = re.fullmatch(rf"{SHM_PREFIX}(\d+)_[0-9a-f]+", name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                os.unlink(os.path.join(folder, name))
                gone.append(name)
            except OSError:
                pass
    return gone


@contextmanager
def _main_hidden():
    """Hide the caller's script from new worker processes: spawn and forkserver children run the
    ``__main__`` script again unless it is hidden (a script without a ``__main__`` guard would
    start a run in every worker). The workers need only this module."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__.pop(k) for k in ("__file__",) if main is not None and k in main.__dict__}
    spec = getattr(main, "__spec__", None)
    if main is not None and spec is not None and not spec.name.endswith("__main__"):
        main.__spec__ = None
    try:
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)
            if spec is not None:
                main.__spec__ = spec


def _pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers``, all started now, kept for later runs (starting costs about a second)."""
    pool = _POOLS.get(workers)
    if pool is not None and getattr(pool, "_broken", False):
        _POOLS.pop(workers).shutdown(wait=False, cancel_futures=True)
        pool = None
    if pool is None:
        if "forkserver" in mp.get_all_start_methods():
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload([__name__])  # no effect once a server is running
        else:
            ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),))
        with _main_hidden():  # processes start on submit, one per task while none is idle
            for f in [pool.submit(os.getpid) for _ in range(workers)]:
                f.result()
        _POOLS[workers] = pool
    return pool


@atexit.register
def _shutdown_pools() -> None:
    for pool in _POOLS.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _POOLS.clear()


class PoolStopped(RuntimeError):
    """A waiting :meth:`PostPool.submit` gave up: the pool was stopped (the run failed or was cancelled)."""


@dataclass
class _Pending:
    tile: Tile
    slot: int
    future: Future
    block: np.ndarray | None = None  # workers=0: the private block, made here


class PostPool:
    """Runs :func:`post_tile` for tiles in submission order with ``workers`` processes (0: here).

    ``submit(t, prob, dist)`` copies the maps into a free slot (waiting for the oldest tile when
    none is free) and starts it; ``ready()`` / ``next()`` hand back finished tiles in order as
    :class:`~napari_prunuclei.runtime.stitch.TileLabels` (whose ``block`` lives in the slot until the next
    call). Use as a context manager: the shared block is freed on exit.
    """

    def __init__(self, params: WatershedParams, crop_pixels: int, workers: int, slots: int) -> None:
        self.params, self.workers = params, workers
        self.slots = max(1, slots)
        self.seconds = 0.0  # post-processing time summed over tiles (in the workers)
        self.waited = 0.0  # time this process waited for a tile's post-processing
        self.handoff = 0.0  # time spent copying maps into slots (by the thread that submits)
        self._pending: deque[_Pending] = deque()
        self._held: int | None = None
        self._stopped = threading.Event()
        if workers > 0:
            remove_dead_segments()
            self._shm = shared_memory.SharedMemory(name=f"{SHM_PREFIX}{os.getpid()}_{secrets.token_hex(6)}",
                                                   create=True, size=max(1, self.slots * 3 * crop_pixels * 4))
            self._layout = _Layout(self._shm.name, self.slots, crop_pixels)
            self._free: queue.Queue[int] = queue.Queue()
            for slot in range(self.slots):
                self._free.put(slot)
            self._executor = _pool(workers)
        else:
            self._shm = None

    def __enter__(self) -> PostPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Cancel what has not started and free the shared block (workers' views go with their handles)."""
        self.stop()
        for p in self._pending:
            p.future.cancel()
        self._pending.clear()
        if self._shm is not None:
            self._shm.unlink()
            try:
                self._shm.close()
            except BufferError:  # a caller still holds a block: the memory goes with it
                pass
            self._shm = None

    def stop(self) -> None:
        """Make every :meth:`submit` with ``wait`` (from another thread) give up with :class:`PoolStopped`."""
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called (a feeding thread stops before its next batch)."""
        return self._stopped.is_set()

    def _arrays(self, slot: int, t: Tile):
        p0, p1, q0, q1 = private_block(t)
        return self._layout.arrays(self._shm.buf, slot, (t.a1 - t.a0, t.b1 - t.b0), (p1 - p0, q1 - q0))

    @property
    def full(self) -> bool:
        """Whether :meth:`submit` would wait for a tile first (take one with :meth:`next`)."""
        return self.workers > 0 and self._free.empty()

    def submit(self, t: Tile, prob: np.ndarray, dist: np.ndarray, wait: bool = False) -> None:
        """Start post-processing tile ``t``. Without ``wait`` the caller must take a tile with
        :meth:`next` first when :attr:`full`. With ``wait`` (a thread that feeds the pool while
        another takes the tiles) it waits until a slot is free (with no workers: until fewer than
        ``slots`` tiles wait), or raises :class:`PoolStopped` after :meth:`stop`. One thread may
        submit while one other takes tiles with :meth:`next`."""
        crop = (t.a1 - t.a0, t.b1 - t.b0)
        if prob.shape != crop or dist.shape != crop:
            raise ValueError(f"maps of shape {prob.shape}, {dist.shape} for a tile of shape {crop}")
        if wait and self._stopped.is_set():
            raise PoolStopped("the post-processing pool was stopped")
        if not wait:  # the caller also takes the tiles: the block it holds is done with
            self._release()
        if self.workers == 0:
            while wait and len(self._pending) >= self.slots:
                self._wait()
            p0, p1, q0, q1 = private_block(t)
            block = np.empty((p1 - p0, q1 - q0), np.int32)
            t0 = time.perf_counter()
            res = post_tile(prob, dist, self.params, t, block)
            fut: Future = Future()
            fut.set_result((*res, time.perf_counter() - t0))
            self._pending.append(_Pending(t, -1, fut, block))
            return
        slot = None
        while slot is None:
            try:
                slot = self._free.get(timeout=0.05) if wait else self._free.get_nowait()
            except queue.Empty:
                if not wait:
                    raise RuntimeError("no free slot: take a finished tile with next() first") from None
                self._wait()
        t0 = time.perf_counter()
        sp, sd, _ = self._arrays(slot, t)
        sp[...] = prob
        sd[...] = dist
        del sp, sd
        self.handoff += time.perf_counter() - t0
        fut = self._executor.submit(_post_in_worker, self._layout, slot, t, self.params)
        self._pending.append(_Pending(t, slot, fut))

    def _wait(self) -> None:
        if self._stopped.is_set():
            raise PoolStopped("the post-processing pool was stopped")
        time.sleep(0.005)

    def ready(self) -> bool:
        """Whether the oldest submitted tile is finished."""
        return bool(self._pending) and self._pending[0].future.done()

    def __len__(self) -> int:
        return len(self._pending)

    def _release(self) -> None:
        if self._held is not None:
            self._free.put(self._held)
            self._held = None

    def next(self) -> TileLabels:
        """The oldest submitted tile, waited for; its block is valid until the next call on the pool."""
        self._release()
        p = self._pending.popleft()
        t0 = time.perf_counter()
        k, rows, cols, ids, secs = p.future.result()
        self.waited += time.perf_counter() - t0
        self.seconds += secs
        if p.block is not None:
            block = p.block
        else:
            block = self._arrays(p.slot, p.tile)[2]
            self._held = p.slot
        return TileLabels(p.tile, k, block, rows, cols, ids)
