"""The tiled engine: reading, both networks, the per-tile watershed in worker processes and the stitching,
overlapped and bounded; on an accelerator the networks get a thread of their own."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from napari_prunuclei.base.progress import CancelFn, Progress, check_cancelled
from napari_prunuclei.nuclei.watershed import WatershedParams
from napari_prunuclei.runtime.pairs import ModelPair
from napari_prunuclei.runtime.request import SegmentRequest
from napari_prunuclei.runtime.scale import Scale
from napari_prunuclei.runtime.tiles import Tile
from napari_prunuclei.runtime.tissue import MASK_STEP, core_has_tissue, tissue_box, tissue_pixels

__all__ = ["TiledStats", "run_tiled", "networks_in_thread"]


@dataclass(frozen=True)
class TiledStats:
    """How a tiled run ran: the watershed worker processes and the tiles per network call it used."""

    post_workers: int
    batch: int
    glass_tiles: int = 0  # tiles whose core showed no tissue: empty maps, no network call
    tissue: np.ndarray | None = None  # the tissue mask at 1/MASK_STEP (None: mask off)


def run_tiled(image, pair: ModelPair, params: WatershedParams, grid: list[Tile], request: SegmentRequest,
              device: tuple, out, secs: dict, cancelled: CancelFn | None = None, name: str = "image",
              scale: Scale | None = None):
    """Per tile: both branches and the watershed on core + halo, stitched into ``out``; returns the labels and
    the :class:`TiledStats`. ``device``: the resolved (torch device, precision).

    Four stages overlap: reading (a thread, a few tiles ahead), the networks (``batch`` tiles of
    one shape at a time; on a GPU in a thread of their own, one batch ahead, so the device works
    while this thread hands tiles over and stitches), the watershed and the stitching rule per tile
    (worker processes, maps in shared memory) and the stitching (here, in the grid's order,
    touching only the seams). Memory is bounded by the queues and the number of slots. When the
    networks run on this CPU they use the cores torch has, so by default only the cores left over
    get workers (none when torch uses them all: the watershed then runs here, between network calls).
    """
    import torch

    from napari_prunuclei.models.inference import predict_pair
    from napari_prunuclei.runtime.postpool import PostPool, resolve_workers
    from napari_prunuclei.runtime.readahead import read_ahead
    from napari_prunuclei.runtime.stitch import Stitcher

    dev, prec = device
    tiling, compile = request.tiling, request.compile
    h, w = image.shape[:2]
    if out is not None and tuple(out.shape) != (h, w):
        raise ValueError(f"out has shape {tuple(out.shape)}, the image {(h, w)}")
    on_cpu = dev.type == "cpu"
    workers = resolve_workers(request.post_workers, reserved=torch.get_num_threads() if on_cpu else 0)
    batch = max(1, request.batch or (8 if dev.type == "cuda" else 1))
    secs.update(read=0.0, watershed=0.0, handoff=0.0, stitch=0.0, wait=0.0)
    stats: dict[str, float] = {}
    crop_pixels = max((t.a1 - t.a0) * (t.b1 - t.b0) for t in grid)
    stitcher = Stitcher(out, grid, tiling.tile, (h, w))  # out None: made at the first tile
    core_mp = [(t.r1 - t.r0) * (t.c1 - t.c0) / 1e6 for t in grid]
    done_mp = [0.0]  # megapixels stitched so far (a running sum)
    t_start = time.perf_counter()

    def crops():
        for t in grid:
            t0 = time.perf_counter()
            # checked at the door (iter_segment: uint8, 3 or 4 channels): only the colour channels kept
            crop = np.ascontiguousarray(np.asarray(image[t.a0 : t.a1, t.b0 : t.b1])[..., :3])
            secs["read"] += time.perf_counter() - t0
            yield t, crop

    def predicted():
        """Batches of tiles of one shape through both networks: (tiles, probabilities, distances)."""
        reader = read_ahead(crops(), depth=2 * batch)
        try:
            group: list = []
            for t, crop in reader:
                if group and (len(group) == batch or group[0][1].shape != crop.shape):
                    yield predict(group)
                    group = []
                group.append((t, crop))
            if group:
                yield predict(group)
        finally:
            reader.close()

    glass = [0]
    lowres = np.zeros((-(-h // MASK_STEP), -(-w // MASK_STEP)), bool) if request.tissue_mask else None

    def predict(group):
        tiles = [t for t, _ in group]
        if lowres is not None:  # the tissue mask of each core, at 1/MASK_STEP (written beside a slide's labels)
            for t, c in group:
                m = tissue_pixels(c[t.r0 - t.a0 : t.r1 - t.a0 : MASK_STEP, t.c0 - t.b0 : t.c1 - t.b0 : MASK_STEP])
                r, q = t.r0 // MASK_STEP, t.c0 // MASK_STEP
                lowres[r : r + m.shape[0], q : q + m.shape[1]] = m
        keep = [i for i, (t, c) in enumerate(group)
                if not request.tissue_mask or core_has_tissue(c, (t.r0 - t.a0, t.r1 - t.a0, t.c0 - t.b0, t.c1 - t.b0))]
        shape = (len(group), *group[0][1].shape[:2])
        probs, dists = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        glass[0] += len(group) - len(keep)
        boxes = {i: tissue_box(group[i][1]) if request.tissue_mask else (0, shape[1], 0, shape[2]) for i in keep}
        whole = [i for i in keep if boxes[i] == (0, shape[1], 0, shape[2])]
        runs = ([whole] if whole else []) + [[i] for i in keep if i not in whole]  # a tissue box runs alone
        for ids in runs:
            r0, r1, c0, c1 = boxes[ids[0]]
            p, d = (scale or Scale()).predict(predict_pair, pair.semantic, pair.distance,
                                              np.stack([group[i][1][r0:r1, c0:c1] for i in ids]), device=dev,
                                              precision=prec, compile=compile, stats=stats)
            probs[ids, r0:r1, c0:c1], dists[ids, r0:r1, c0:c1] = p, d
        return tiles, probs, dists

    def stitch_next() -> Progress:
        part = post.next()
        t0 = time.perf_counter()
        stitcher.add(part)
        secs["stitch"] += time.perf_counter() - t0
        done = stitcher.done
        done_mp[0] += core_mp[done - 1]
        rate = done_mp[0] / max(time.perf_counter() - t_start, 1e-9)
        return Progress(done, len(grid), f"{pair.label}: tile {done}/{len(grid)}, {rate:.2f} MP/s")

    slots = 2 * workers + batch
    with PostPool(params, crop_pixels, workers, slots) as post:
        try:
            if networks_in_thread(dev):
                yield from _stitch_while_fed(post, predicted, stitcher, stitch_next, len(grid), dev, cancelled)
            else:
                nets = predicted()
                try:
                    for tiles, probs, dists in nets:
                        check_cancelled(cancelled)
                        for t, p, d in zip(tiles, probs, dists):
                            while post.full or (workers == 0 and len(post)):
                                yield stitch_next()
                            post.submit(t, p, d)  # the maps into a shared-memory slot (0 workers: the tile here)
                        while post.ready():
                            yield stitch_next()
                finally:
                    nets.close()
                while len(post):
                    check_cancelled(cancelled)
                    yield stitch_next()
        except BaseException:
            stitcher.abort()  # nothing writes into ``out`` after a failed or cancelled run
            raise
        secs["watershed"] = post.seconds
        secs["handoff"] = post.handoff
        secs["wait"] = post.waited
    secs["semantic"] = stats.get("semantic", 0.0)
    secs["distance"] = stats.get("distance", 0.0)
    if "gpu" in stats:
        secs["gpu"] = stats["gpu"]
    t0 = time.perf_counter()
    labels = stitcher.close()
    secs["stitch"] += time.perf_counter() - t0
    # waiting for the label writer is not stitching work: counted apart
    secs["write_wait"] = stitcher.write_wait
    secs["stitch"] -= stitcher.write_wait
    return labels, TiledStats(workers, batch, glass[0], lowres)


def _stitch_while_fed(post, predicted, stitcher, stitch_next, n: int, dev, cancelled):
    """The accelerator's loop: a thread runs the networks and hands each tile's maps to ``post`` (waiting
    for a free slot), while this one stitches the tiles in order as they finish (yielding progress)."""
    from napari_prunuclei.runtime.postpool import PoolStopped
    from napari_prunuclei.runtime.readahead import Background

    def feed() -> None:
        nets = predicted()
        try:
            for tiles, probs, dists in nets:
                for t, p, d in zip(tiles, probs, dists):
                    post.submit(t, p, d, wait=True)
                if post.stopped:  # the run failed or was cancelled: no further batch
                    return
        finally:
            nets.close()

    def on_device() -> None:
        import torch  # the current CUDA device is per thread: events and streams on ``dev``

        with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
            feed()

    feeder = Background(on_device, "prunuclei-networks")
    feeder.start()
    try:
        while stitcher.done < n:
            check_cancelled(cancelled)
            if len(post):
                yield stitch_next()
            elif feeder.error is not None:
                raise feeder.error
            elif not feeder.is_alive():  # looked again: it may have handed over a tile, or failed, meanwhile
                if not len(post) and feeder.error is None:
                    raise RuntimeError(f"the networks' thread ended after {stitcher.done} of {n} tiles")
            else:
                time.sleep(0.002)
    except BaseException as e:
        post.stop()
        feeder.join()
        if (feeder.error is not None and feeder.error is not e and not isinstance(feeder.error, PoolStopped)
                and hasattr(e, "add_note")):  # Python 3.11+
            e.add_note(f"the networks' thread failed too: {type(feeder.error).__name__}: {feeder.error}")
        raise
    post.stop()
    feeder.join()
    if feeder.error is not None:
        raise feeder.error


def networks_in_thread(dev) -> bool:
    """Whether a tiled run gives the networks a thread of their own: on an accelerator, so it computes
    while the run's thread hands maps over and stitches; not on a CPU, whose cores the networks use."""
    return dev.type != "cpu"
