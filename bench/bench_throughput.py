"""Whole-slide throughput: each stage's time per megapixel, the overlap achieved, peak memory, and
how the post-processing scales with worker processes.

    python bench/bench_throughput.py --data ../shared/data/monuseg2018 --size 10000 --json out.json

Three measurements in one run, on a mosaic of MoNuSeg test tiles built in memory
(``bench/make_large_image.py``'s layout; synthetic tiles without ``--data``):

1. the networks alone: both branches over every tile of the grid (batched as the pipeline
   batches), nothing else, before the end-to-end run and again after it: the mean of the two
   is the time the whole run is compared with (a shared machine's speed drifts);
2. end to end: ``pipeline.segment`` tiled (read-ahead, networks, watershed in
   ``--post-workers`` processes, seam-only stitching), its ``SegmentInfo.throughput`` and the
   peak memory (this process's peak RSS from the kernel plus its worker processes' PSS, sampled);
3. post-processing scaling: the watershed and the stitching rule per tile
   (``postpool.PostPool``) on precomputed maps with 1, 2, 4, ... processes up to the cores
   available, in core megapixels per second.

Rates are in megapixels of the image (tile cores), not of core + halo.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _pss_mb(pids: list[int]) -> float:
    """Proportional set size of the processes, summed (MB): shared memory counted once."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class PeakMemory:
    """Peak memory of this process and its children: this process's peak RSS from the kernel
    (``VmHWM``, reset on entry), plus the summed PSS of its children sampled every ``every`` s (the
    worker processes). Sampling this process itself perturbed the run: reading its ``smaps_rollup``
    every 0.2 s slowed its networks (a scratch comparison, in the session note of 2026-12-04).
    Shared memory is counted in both parts: an upper bound."""

    def __init__(self, every: float = 0.5) -> None:
        self.peak = self.own = self.children = 0.0
        self.every, self._stop = every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _children() -> list[int]:
        try:
            import psutil

            return [c.pid for c in psutil.Process().children(recursive=True)]
        except ImportError:
            return []

    @staticmethod
    def _hwm_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.children = max(self.children, _pss_mb(self._children()))

    def __enter__(self) -> PeakMemory:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.children = max(self.children, _pss_mb(self._children()))
        self.own = self._hwm_mb()
        self.peak = self.own + self.children


def _key(crop: np.ndarray) -> bytes:
    """A sample of a crop's pixels and its shape: tells the mosaic's tiles apart, cheaply."""
    return crop[::37, ::41].tobytes() + bytes(str(crop.shape), "ascii")


class MapCache:
    """The maps of every tile, kept as the networks make them; :meth:`predict_pair` then hands them out
    instead of running the networks (an infinitely fast accelerator, for the other stages' ceiling)."""

    def __init__(self) -> None:
        self.maps: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def keep(self, crops, probs, dists) -> None:
        for c, p, d in zip(crops, probs, dists):
            self.maps[_key(c)] = (p, d)

    def predict_pair(self, semantic, distance, crops, stats=None, **_):
        maps = [self.maps[_key(c)] for c in crops]
        return np.stack([p for p, _ in maps]), np.stack([d for _, d in maps])


def networks_alone(image, grid, pair, device, precision, batch, compile, cache: MapCache | None = None) -> dict:
    """Both branches over every tile, batched like the pipeline (same-shape runs of ``batch``)."""
    from napari_prunuclei.base.heap import keep_freed_memory
    from napari_prunuclei.models.inference import predict_pair

    stats: dict[str, float] = {}
    t0 = time.perf_counter()
    group: list = []

    def run(group):
        crops = np.stack(group)
        probs, dists = predict_pair(pair.semantic, pair.distance, crops, device=device, precision=precision,
                                    compile=compile, stats=stats)
        if cache is not None:
            cache.keep(crops, probs, dists)

    with keep_freed_memory():  # as pipeline.segment runs them
        for t in grid:
            crop = np.ascontiguousarray(image[t.a0 : t.a1, t.b0 : t.b1])
            if group and (len(group) == batch or group[0].shape != crop.shape):
                run(group)
                group = []
            group.append(crop)
        if group:
            run(group)
    return {"wall": time.perf_counter() - t0, **stats}


def replay(image, pair, tiling, cache: MapCache, workers: int, labels=None) -> dict:
    """``pipeline.segment`` as on an accelerator (networks in their own thread, ``workers`` post-processing
    processes, labels into a zarr store as the CLI writes slides) with the networks replaced by the
    maps they made before: the ceiling of every other stage on this machine, the networks' thread's
    hand-over of maps per MP and the run's own thread's stitching per MP (waiting for the label writer
    thread apart)."""
    import tempfile

    from napari_prunuclei.models import inference
    from napari_prunuclei.runtime import tiled_engine as pipeline
    from napari_prunuclei.runtime.stitch import label_store

    saved = inference.predict_pair, pipeline.networks_in_thread
    inference.predict_pair, pipeline.networks_in_thread = cache.predict_pair, lambda dev: True
    mp = image.shape[0] * image.shape[1] / 1e6
    try:
        with tempfile.TemporaryDirectory() as scratch:
            out = label_store(f"{scratch}/labels", image.shape[:2], tiling.tile)  # as the CLI's
            t0 = time.perf_counter()
            res = pipeline.segment(image, pair, device="cpu", tiling=tiling, post_workers=workers, out=out)
            wall = time.perf_counter() - t0
            same = None if labels is None else bool(np.array_equal(out[:], labels))
    finally:
        inference.predict_pair, pipeline.networks_in_thread = saved
    s = res.info.seconds
    row = {"post_workers": workers, "wall": wall, "mp_per_s": mp / wall, "seconds": s,
           "stitch_s_per_mp": s["stitch"] / mp, "stitch_mp_per_s": mp / s["stitch"] if s["stitch"] else None,
           "handoff_s_per_mp": s["handoff"] / mp,
           "post_core_mp_per_s_per_worker": mp / s["watershed"] if s["watershed"] else None,
           "identical_to_end_to_end": same}
    print(f"  replay, {workers} worker(s): {wall:.1f} s = {mp / wall:.1f} MP/s; the networks' thread: hand-over "
          f"{s['handoff']:.2f} s; this thread: stitching {s['stitch']:.2f} s = {s['stitch'] / mp * 1000:.2f} ms/MP "
          f"(waiting for the label writer {s['write_wait']:.2f} s apart); watershed {s['watershed']:.1f} s summed "
          f"({mp / s['watershed']:.1f} MP/s per worker); labels identical: {same}", flush=True)
    return row


def stitch_alone(image, tiling, cache: MapCache, params) -> dict:
    """The stitching alone, one thread, no other stage running, freed memory kept as in a run: every tile
    post-processed first (in this process, blocks kept), then stitched in order into a zarr store as the
    CLI writes slides (rows of tiles by the writer thread). The per-core rate of the run's own thread on an
    accelerator run. Then the label TIFF the CLI writes from that store, by one thread and by one per core."""
    import tempfile

    from napari_prunuclei.base.heap import keep_freed_memory
    from napari_prunuclei.runtime.batch import _write_tiled_tiff
    from napari_prunuclei.runtime.postpool import PostPool, available_cores
    from napari_prunuclei.runtime.stitch import Stitcher, TileLabels, label_store
    from napari_prunuclei.runtime.tiles import tile_grid

    with keep_freed_memory():
        grid = tile_grid(image.shape[:2], tiling.tile, tiling.halo)
        parts = []
        with PostPool(params, max((t.a1 - t.a0) * (t.b1 - t.b0) for t in grid), 0, 1) as pool:
            for t in grid:
                crop = np.ascontiguousarray(image[t.a0 : t.a1, t.b0 : t.b1])
                p, d = cache.maps[_key(crop)]
                pool.submit(t, p, d)
                x = pool.next()
                parts.append(TileLabels(x.tile, x.k, x.block.copy(), x.rows, x.cols, x.ids))
        mp = image.shape[0] * image.shape[1] / 1e6
        passes = []
        with tempfile.TemporaryDirectory() as scratch:
            for i in range(2):  # the first pass also maps the bands' memory; a slide's run pays that once
                out = label_store(f"{scratch}/labels{i}", image.shape[:2], tiling.tile)
                stitcher = Stitcher(out, grid, tiling.tile)
                t0 = time.perf_counter()
                for part in parts:
                    stitcher.add(part)
                stitcher.close()
                wall = time.perf_counter() - t0
                own = wall - stitcher.write_wait
                passes.append({"seconds": wall, "write_wait": stitcher.write_wait, "own_s_per_mp": own / mp,
                               "own_mp_per_s": mp / own, "mp_per_s_with_writer": mp / wall})
                print(f"  stitching alone (zarr out), pass {i + 1}: {wall:.2f} s, of which waiting for the label "
                      f"writer {stitcher.write_wait:.2f} s: {own / mp * 1000:.2f} ms/MP of this thread "
                      f"({mp / own:.0f} MP/s); writer-bound {mp / wall:.0f} MP/s", flush=True)
            tiff = {}  # the label TIFF the CLI writes from the store after a run, compressed by 1 and by all threads
            for threads in sorted({1, available_cores()}):
                t1 = time.perf_counter()
                _write_tiled_tiff(Path(scratch) / f"labels_{threads}.tif", out, threads=threads)
                tiff[threads] = time.perf_counter() - t1
    print("  label TIFF from the store: " + ", ".join(f"{v:.2f} s with {k} thread(s)" for k, v in tiff.items()),
          flush=True)
    return {**passes[0], "passes": passes, "label_tiff_seconds_by_threads": tiff}


def serial_reference(image, grid, pair, device, precision, labels) -> dict:
    """The labels of the serial loop from before issue 14 on the same tiles (maps computed again, one
    tile at a time as the pipeline does on CPU), compared with ``labels``."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from napari_prunuclei.models.inference import predict_pair
    from reference_tiled import tiled_reference

    def maps_of(t):
        crop = np.ascontiguousarray(image[t.a0 : t.a1, t.b0 : t.b1])[None]
        p, d = predict_pair(pair.semantic, pair.distance, crop, device=device, precision=precision)
        return p[0], d[0]

    t0 = time.perf_counter()
    ref = tiled_reference(maps_of, grid, labels.shape, pair.params)
    differ = int(np.count_nonzero(ref != labels))
    out = {"seconds": time.perf_counter() - t0, "identical": differ == 0, "pixels_differing": differ,
           "n_nuclei_reference": int(ref.max()), "n_nuclei": int(labels.max())}
    print(f"  serial reference (before issue 14): {out['seconds']:.1f} s, {out['n_nuclei_reference']} nuclei; "
          f"identical labels: {out['identical']} ({differ} pixels differ)", flush=True)
    return out


def post_scaling(maps: list, grid_tiles: list, params, counts: list[int], per_worker: int) -> list[dict]:
    """Core MP/s of ``post_tile`` over precomputed maps with each number of processes."""
    from napari_prunuclei.runtime.postpool import PostPool

    crop_pixels = max(p.size for p, _ in maps)
    rows = []
    for n in counts:
        m = max(per_worker * n, 2 * len(maps))
        with PostPool(params, crop_pixels, n, 2 * n) as pool:
            t0 = time.perf_counter()
            mp = 0.0
            for i in range(m):
                (p, d), t = maps[i % len(maps)], grid_tiles[i % len(maps)]
                while pool.full:
                    pool.next()
                pool.submit(t, p, d)
                mp += (t.r1 - t.r0) * (t.c1 - t.c0) / 1e6
            while len(pool):
                pool.next()
            wall = time.perf_counter() - t0
        rows.append({"processes": n, "tiles": m, "seconds": wall, "core_mp_per_s": mp / wall})
        print(f"  post-processing, {n:2d} process(es): {m} tiles in {wall:.2f} s = {mp / wall:.2f} MP/s", flush=True)
    return rows


def post_costs(maps: list, grid_tiles: list, params, repeat: int = 3) -> dict:
    """In this process: ``watershed_instances`` alone on 1000 x 1000 maps (MP/s of maps, as issue 14's
    table has it) and the whole per-tile post-processing (``post_tile``: watershed on core + halo, the
    stitching rule, the seam pixels) in MP/s of tile cores."""
    from napari_prunuclei.nuclei.watershed import watershed_instances
    from napari_prunuclei.runtime.postpool import post_tile
    from napari_prunuclei.runtime.stitch import private_block

    p, d = maps[0]
    p1k, d1k = np.ascontiguousarray(p[:1000, :1000]), np.ascontiguousarray(d[:1000, :1000])
    t0 = time.perf_counter()
    for _ in range(repeat):
        watershed_instances(p1k, d1k, params)
    ws = repeat * 1.0 / (time.perf_counter() - t0)
    t0, mp = time.perf_counter(), 0.0
    for (p, d), t in zip(maps, grid_tiles):
        r0, r1, c0, c1 = private_block(t)
        post_tile(p, d, params, t, np.empty((r1 - r0, c1 - c0), np.int32))
        mp += (t.r1 - t.r0) * (t.c1 - t.c0) / 1e6
    post = mp / (time.perf_counter() - t0)
    print(f"  one process: watershed_instances on 1000x1000 maps {ws:.2f} MP/s; per-tile post-processing "
          f"{post:.2f} MP/s of cores (ratio {post / ws:.2f})", flush=True)
    return {"watershed_1000_mp_per_s": ws, "post_tile_core_mp_per_s": post, "ratio": post / ws}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="a MoNuSeg-layout folder (else synthetic tiles)")
    ap.add_argument("--size", type=int, default=10000, help="side of the square mosaic (px)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch", type=int, default=0, help="tiles per network call (0: 8 on CUDA, else 1)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the networks (CUDA)")
    ap.add_argument("--post-workers", type=int, default=None,
                    help="processes (default: the pipeline's: all cores on a GPU run, those torch leaves on a CPU)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--tile", type=int, default=0, help="tile side (0: the pipeline's, 1024); halo stays 128")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: networks, end2end, scaling")
    ap.add_argument("--replay", type=int, nargs="*", default=None,
                    help="after the end-to-end run: the run again as on an accelerator with these numbers of "
                         "post-processing workers (default: 1 and all cores), the networks replaced by the maps "
                         "they made (kept in memory: 13 MB per tile)")
    ap.add_argument("--scaling-tiles", type=int, default=6, help="tiles per process in the scaling curve")
    ap.add_argument("--save-labels", type=Path, default=None, help="write the end-to-end labels (.npy)")
    ap.add_argument("--compare", type=Path, default=None, help="labels (.npy) the end-to-end run must equal")
    ap.add_argument("--reference", action="store_true",
                    help="also run the serial loop from before issue 14 (tests/reference_tiled.py: plain "
                         "scikit-image watershed per tile, the pixel-by-pixel stitching rule) on the same tiles "
                         "and compare the labels with the end-to-end run's")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from make_large_image import mosaic, sources

    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.models.devices import resolve_device
    from napari_prunuclei.models.inference import predict_pair, resolve_precision
    from napari_prunuclei.runtime.pairs import load_pair
    from napari_prunuclei.runtime.pipeline import segment
    from napari_prunuclei.runtime.postpool import available_cores
    from napari_prunuclei.runtime.request import Tiling
    from napari_prunuclei.runtime.tiles import tile_grid

    skip = set(filter(None, a.skip.split(",")))
    dev = resolve_device(a.device)
    prec = resolve_precision(a.precision, dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    batch = a.batch or (8 if dev.type == "cuda" else 1)
    cores = available_cores()
    t0 = time.perf_counter()
    image = mosaic(sources(a.data), a.size)
    print(f"mosaic {a.size}x{a.size} built in {time.perf_counter() - t0:.1f} s", flush=True)
    tiling = Tiling("tiled", a.tile) if a.tile else Tiling("tiled")
    grid = tile_grid(image.shape[:2], tiling.tile, tiling.halo)
    pair = load_pair()
    mp = a.size * a.size / 1e6
    info: dict = {"machine": cpu_name(), "cores": cores, "torch": torch.__version__, "torch_threads":
                  torch.get_num_threads(), "device": str(dev), "precision": prec, "batch": batch,
                  "compile": a.compile, "post_workers_asked": a.post_workers, "tile": tiling.tile,
                  "halo": tiling.halo, "size": a.size, "megapixels": mp,
                  "n_tiles": len(grid), "data": "monuseg" if a.data else "synthetic"}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    # warm-up: one batch of full tiles (and the compilation, when asked) outside every timing
    full = [t for t in grid if (t.a1 - t.a0, t.b1 - t.b0) == (tiling.tile + 2 * tiling.halo,) * 2][:max(batch, 4)]
    t0 = time.perf_counter()
    warm = np.stack([image[t.a0 : t.a1, t.b0 : t.b1] for t in full or grid[:1]])
    probs, dists = predict_pair(pair.semantic, pair.distance, warm, device=dev, precision=prec, compile=a.compile)
    info["warmup_seconds"] = time.perf_counter() - t0
    print(f"warm-up {info['warmup_seconds']:.1f} s", flush=True)

    if "networks" not in skip:
        cache = MapCache() if a.replay is not None else None
        net = networks_alone(image, grid, pair, dev, prec, batch, a.compile)
        net["mp_per_s"] = mp / net["wall"]
        if "gpu" in net:
            net["gpu_busy"] = net["gpu"] / net["wall"]
        info["networks_alone"] = net
        print(f"networks alone: {net['wall']:.1f} s = {net['mp_per_s']:.2f} MP/s", flush=True)

    labels = None
    if "end2end" not in skip:
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            res = segment(image, pair, device=dev, precision=prec, tiling=tiling, post_workers=a.post_workers,
                          batch=batch, compile=a.compile)
            wall = time.perf_counter() - t0
        tp = res.info.throughput
        e2e = {"post_workers": res.info.post_workers, "wall": wall, "mp_per_s": mp / wall, "peak_memory_mb": mem.peak,
               "peak_own_rss_mb": mem.own, "peak_workers_pss_mb": mem.children,
               "n_nuclei": res.info.n_nuclei,
               "throughput": tp, "seconds": res.info.seconds,
               "stitch_s_per_100mp": 100 * res.info.seconds["stitch"] / mp}
        if "networks_alone" in info:
            # the networks alone once more, after the run: the machine's drift is bracketed
            after = networks_alone(image, grid, pair, dev, prec, batch, a.compile)  # same work as before
            info["networks_alone_after"] = after
            alone = (info["networks_alone"]["wall"] + after["wall"]) / 2
            print(f"networks alone again, after the run: {after['wall']:.1f} s", flush=True)
            e2e["networks_alone_mean"] = alone
            e2e["wall_over_networks_alone"] = wall / alone
            e2e["networks_in_run_over_alone"] = tp["stages"]["networks"]["seconds"] / alone
        info["end_to_end"] = e2e
        st = tp["stages"]
        print(f"end to end ({res.info.post_workers} post workers): {wall:.1f} s = {mp / wall:.2f} MP/s, "
              f"peak memory {mem.peak:.0f} MB (own peak RSS {mem.own:.0f} + workers' PSS {mem.children:.0f}), "
              f"{res.info.n_nuclei} nuclei", flush=True)
        for k, v in st.items():
            rate = f"{v['mp_per_s']:.2f} MP/s" if v["mp_per_s"] else "-"
            print(f"  {k:<10} {v['seconds']:8.2f} s  {v['s_per_mp']:.4f} s/MP  {rate}")
        print(f"  wall / networks in the run {tp['wall_over_networks']:.3f}; hidden {tp['hidden']:.2f}; "
              f"stitching {e2e['stitch_s_per_100mp']:.2f} s per 100 MP"
              + (f"; GPU busy {tp['gpu_busy']:.2f}" if "gpu_busy" in tp else ""))
        if "wall_over_networks_alone" in e2e:
            print(f"  wall / networks alone (mean of before and after) {e2e['wall_over_networks_alone']:.3f}; "
                  f"the networks in the run / alone {e2e['networks_in_run_over_alone']:.3f}")
        if a.save_labels:
            np.save(a.save_labels, res.labels)
        if a.compare:
            ref = np.load(a.compare)
            e2e["identical_to_reference"] = bool(np.array_equal(ref, res.labels))
            print(f"  labels identical to {a.compare}: {e2e['identical_to_reference']}")
        if a.reference:
            e2e["serial_reference"] = serial_reference(image, grid, pair, dev, prec, res.labels)
        labels = res.labels if a.replay is not None else None
        del res

    if a.replay is not None and "networks" not in skip:
        networks_alone(image, grid, pair, dev, prec, batch, a.compile, cache)  # a pass of its own, untimed
        counts = a.replay or sorted({1, cores})
        info["replay"] = [replay(image, pair, tiling, cache, n, labels) for n in counts]
        info["stitch_alone"] = stitch_alone(image, tiling, cache, pair.params)

    if "scaling" not in skip:
        tiles = full or grid[:1]
        maps = list(zip(probs, dists))
        counts = sorted({1, *[2**i for i in range(1, 8) if 2**i < cores], cores})
        info["post_costs"] = post_costs(maps, tiles, pair.params)
        info["post_scaling"] = post_scaling(maps, tiles, pair.params, counts, a.scaling_tiles)
    if a.json:
        a.json.write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
