"""The one path an image takes: a model pair, both branches, the marker-controlled watershed.

Every front end (the Python API, ``prunuclei segment`` serial and on dask, ``evaluate``,
``sweep``, ``tune-watershed``, the widget and its sweep, the headless demo, the
benchmarks) calls :func:`segment` (or its generator form :func:`iter_segment`). One
large image whose tiles are spread over a dask cluster (:mod:`napari_prunuclei.runtime.distributed`)
takes the same tiles through the same per-tile steps and stitching, with the same labels.

One tiling policy, core + halo (:func:`napari_prunuclei.runtime.tiles.tile_grid`):

- an image up to :data:`~napari_prunuclei.base.constants.WHOLE_MAX_PIXELS` runs *whole*: both
  branches on each tile's core + halo (a single tile, no halo, up to ``tile`` px a side),
  the maps assembled from the cores, then one watershed over the whole image; maps kept;
- a larger image (a slide, possibly lazy) runs *tiled*: both branches and the watershed
  per tile on core + halo, a nucleus kept by the tile whose core holds its centroid and
  stitched into ``out`` (numpy, or a zarr array on disk); maps are not kept.

Every model pair runs with its own watershed thresholds (:attr:`ModelPair.params`)
unless the caller passes others.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from napari_prunuclei import __version__
from napari_prunuclei.base.constants import HALO, MAX_BATCH, MAX_TILE, MIN_TILE, SCHEME_LABELS, TILE, WHOLE_MAX_PIXELS
from napari_prunuclei.base.heap import keep_freed_memory
from napari_prunuclei.base.progress import CancelFn, Job, Progress, ProgressFn, check_cancelled, drive
from napari_prunuclei.io.images import as_rgb_uint8, check_lazy_rgb
from napari_prunuclei.nuclei.watershed import WatershedParams, watershed_instances
from napari_prunuclei.runtime.tiles import Tile, max_label, tile_grid

__all__ = [
    "ModelSpec", "ModelPair", "load_pair", "pair_from_models", "Tiling", "SegmentRequest", "SegmentInfo",
    "Segmentation", "iter_segment", "segment", "rewatershed", "throughput",
]


@dataclass(frozen=True)
class ModelSpec:
    """Which model pair: ``scheme`` (dense, layerwise, networkwide), ``cr``, fine-tuned or one-shot."""

    scheme: str = "dense"
    cr: float = 1.0
    fine_tuned: bool = True

    def __post_init__(self) -> None:
        from napari_prunuclei.models.zoo import normalize_scheme

        scheme = normalize_scheme(self.scheme)
        object.__setattr__(self, "scheme", scheme)
        if scheme == "dense":
            object.__setattr__(self, "cr", 1.0)
            object.__setattr__(self, "fine_tuned", True)
        else:
            if not float(self.cr) >= 1:
                raise ValueError(f"compression ratio must be >= 1, got {self.cr}")
            object.__setattr__(self, "cr", float(self.cr))
            object.__setattr__(self, "fine_tuned", bool(self.fine_tuned))

    @property
    def is_dense(self) -> bool:
        return self.scheme == "dense"

    @property
    def label(self) -> str:
        """``dense``, ``network-wide CR20``, ``layer-wise CR7 one-shot``."""
        if self.is_dense:
            return "dense"
        return f"{SCHEME_LABELS[self.scheme]} CR{self.cr:g}" + ("" if self.fine_tuned else " one-shot")


@dataclass(frozen=True, eq=False)
class ModelPair:
    """Both branches of one model, and the pair's own watershed thresholds.

    Pairs from :func:`load_pair` are shared (cached): do not modify their modules; use
    :func:`napari_prunuclei.models.zoo.load_model` for a copy to train or prune.
    """

    spec: ModelSpec
    semantic: Any
    distance: Any
    params: WatershedParams

    @property
    def label(self) -> str:
        return self.spec.label

    def models_info(self) -> dict[str, dict]:
        """Zoo records (id, file, sha256, ...) and weight sparsity of both branches."""
        cache = self.__dict__.get("_info")
        if cache is None:
            from napari_prunuclei.models.zoo import model_info
            from napari_prunuclei.pruning.channels import prunable_count
            from napari_prunuclei.pruning.magnitude import prunable_parameters

            cache = {}
            for branch, model in (("semantic", self.semantic), ("distance", self.distance)):
                params = prunable_parameters(model)
                total = sum(p.numel() for p in params.values())
                nonzero = sum(int((p != 0).sum()) for p in params.values())
                # a channel-pruned network is smaller: count against the dense network's weights
                cfg = getattr(model, "config", None)
                dense_total = prunable_count(replace(cfg, channels=None)) if getattr(cfg, "channels", None) else total
                cache[branch] = {**model_info(model), "prunable": total, "nonzero": nonzero,
                                 "dense_prunable": dense_total, "sparsity": 1 - nonzero / max(dense_total, 1)}
            self.__dict__["_info"] = cache
        return {k: dict(v) for k, v in cache.items()}


def _registry_stamp(weights_dir: str) -> tuple:
    p = Path(weights_dir) / "registry.json"
    try:
        st = p.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return (0, 0)


@lru_cache(maxsize=8)
def _cached_pair(spec: ModelSpec, weights_dir: str, stamp: tuple) -> ModelPair:
    from napari_prunuclei.models.zoo import default_watershed
    from napari_prunuclei.pruning.oneshot import load_model

    wd = Path(weights_dir)
    sem = load_model("semantic", spec.scheme, spec.cr, fine_tuned=spec.fine_tuned, weights_dir=wd)
    dst = load_model("distance", spec.scheme, spec.cr, fine_tuned=spec.fine_tuned, weights_dir=wd)
    return ModelPair(spec, sem, dst, default_watershed(spec.scheme, spec.cr, spec.fine_tuned, weights_dir=wd))


def load_pair(scheme: str | ModelSpec = "dense", cr: float = 1, fine_tuned: bool = True, *,
              weights_dir: str | Path | None = None) -> ModelPair:
    """Both branches of a zoo model (hash-checked) and its own watershed thresholds. A (scheme, CR) the
    zoo has no file for is made by one-shot pruning and its spec says ``fine_tuned=False``. Cached:
    loading the same pair again costs nothing."""
    from napari_prunuclei.models.zoo import WEIGHTS_DIR, find_entry

    spec = scheme if isinstance(scheme, ModelSpec) else ModelSpec(scheme, cr, fine_tuned)
    wd = str(weights_dir or WEIGHTS_DIR)
    if spec.fine_tuned and not spec.is_dense and find_entry("semantic", spec.scheme, spec.cr, True, Path(wd)) is None:
        spec = replace(spec, fine_tuned=False)  # not in the zoo: made by one-shot pruning, and named so
    return _cached_pair(spec, wd, _registry_stamp(wd))


def pair_from_models(semantic, distance, params: WatershedParams | None = None,
                     spec: ModelSpec | None = None) -> ModelPair:
    """A pair of modules not (or not yet) in the zoo, e.g. just trained; spec from their zoo records."""
    if spec is None:
        zi = getattr(semantic, "zoo_info", {}) or {}
        spec = ModelSpec(zi.get("scheme", "dense"), zi.get("cr", 1), zi.get("fine_tuned", True))
    return ModelPair(spec, semantic, distance, params or WatershedParams())


@dataclass(frozen=True)
class Tiling:
    """The tiling policy: ``mode`` auto (tiled above ``whole_max_pixels``), whole or tiled."""

    mode: str = "auto"
    tile: int = TILE
    halo: int = HALO
    whole_max_pixels: int = WHOLE_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "whole", "tiled"):
            raise ValueError(f"tiling must be auto, whole or tiled, got {self.mode!r}")
        if not MIN_TILE <= self.tile <= MAX_TILE or self.halo < 0:
            raise ValueError(f"tile must be {MIN_TILE} to {MAX_TILE} px and halo >= 0, got {self.tile}, {self.halo}")
        if self.halo > self.tile:
            raise ValueError(f"halo ({self.halo} px) must not exceed the tile ({self.tile} px): every tile would "
                             f"compute {((self.tile + 2 * self.halo) / self.tile) ** 2:.0f}x its own area")

    def is_tiled(self, shape) -> bool:
        """Whether an image of ``shape`` goes tile by tile (per-tile watershed, stitched)."""
        if self.mode != "auto":
            return self.mode == "tiled"
        return int(shape[0]) * int(shape[1]) > self.whole_max_pixels


def _as_tiling(tiling: str | Tiling) -> Tiling:
    return tiling if isinstance(tiling, Tiling) else Tiling(mode=tiling)


@dataclass(frozen=True)
class SegmentRequest:
    """Everything a run needs besides the image: the model, thresholds, device and tiling.

    ``params`` None: the pair's own thresholds. The one request type of every front end.
    """

    scheme: str = "dense"
    cr: float = 1.0
    fine_tuned: bool = True
    params: WatershedParams | None = None
    device: str = "auto"
    precision: str = "auto"
    tiling: Tiling = field(default_factory=Tiling)
    post_workers: int | None = None
    batch: int = 0
    compile: bool = False

    def __post_init__(self) -> None:
        import math

        from napari_prunuclei.base.machine import available_cores

        if not (isinstance(self.cr, (int, float)) and math.isfinite(self.cr) and self.cr >= 1):
            raise ValueError(f"cr must be a finite number >= 1, got {self.cr!r}")
        if not 0 <= self.batch <= MAX_BATCH:
            raise ValueError(f"batch must be 0 (automatic) to {MAX_BATCH} tiles per network call, got {self.batch}")
        cores = available_cores()
        if self.post_workers is not None and not 0 <= self.post_workers <= cores:
            raise ValueError(f"post_workers must be 0 to {cores} (the cores this process may use), "
                             f"got {self.post_workers}")

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.scheme, self.cr, self.fine_tuned)

    def pair(self) -> ModelPair:
        return load_pair(self.spec)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["params"] = None if self.params is None else self.params.as_dict()
        return d


@dataclass
class SegmentInfo:
    """What ran and how: the models (ids, sha256, sparsity), thresholds, device, tiling, timings.

    ``seconds``: per stage (``read``, ``semantic``, ``distance``, ``watershed`` summed over
    tiles and workers, ``stitch``, ``wait`` for post-processing, ``total`` wall); ``throughput``:
    the same per megapixel (:func:`throughput`), the overlap achieved and, on CUDA, the GPU's
    busy share.
    """

    model: str
    scheme: str
    cr: float
    fine_tuned: bool
    semantic: dict
    distance: dict
    watershed: WatershedParams
    device: str
    precision: str
    mode: str
    tile: int
    halo: int
    n_tiles: int
    seconds: dict[str, float] = field(default_factory=dict)
    n_nuclei: int = 0
    post_workers: int = 0
    batch: int = 1
    throughput: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def as_dict(self) -> dict:
        d = asdict(self)
        d["watershed"] = self.watershed.as_dict()
        return d


@dataclass
class Segmentation:
    """Outputs of :func:`segment`: instance labels, and (whole mode) the two branch maps."""

    labels: Any
    probability: np.ndarray | None
    distance: np.ndarray | None
    info: SegmentInfo

    @property
    def tiled(self) -> bool:
        return self.info.mode == "tiled"

    @property
    def n_nuclei(self) -> int:
        """Number of nuclei: the largest id (ids are 1..n; on a stitched slide, ids are given in order).
        Counted once, when the run ends (a slide's labels may be on disk)."""
        return self.info.n_nuclei


def resolve_device_precision(device: str, precision: str):
    from napari_prunuclei.models.devices import resolve_device
    from napari_prunuclei.models.inference import resolve_precision

    dev = resolve_device(device) if isinstance(device, str) else device
    return dev, resolve_precision(precision, dev)


def _branches(pair: ModelPair, crop: np.ndarray, dev, prec, secs: dict) -> tuple[np.ndarray, np.ndarray]:
    from napari_prunuclei.models.inference import predict_branch

    t0 = time.perf_counter()
    prob = predict_branch(pair.semantic, crop, device=dev, precision=prec)
    t1 = time.perf_counter()
    dist = predict_branch(pair.distance, crop, device=dev, precision=prec)
    secs["semantic"] += t1 - t0
    secs["distance"] += time.perf_counter() - t1
    return prob, dist


def iter_segment(
    image,
    pair: ModelPair | None = None,
    params: WatershedParams | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    tiling: str | Tiling = "auto",
    out=None,
    post_workers: int | None = None,
    batch: int = 0,
    compile: bool = False,
    cancelled: CancelFn | None = None,
    name: str = "image",
) -> Job[Segmentation]:
    """Generator form of :func:`segment`: yields :class:`Progress`, returns the :class:`Segmentation`."""
    pair = pair or load_pair()
    params = params or pair.params
    tiling = _as_tiling(tiling)
    dev, prec = resolve_device_precision(device, precision)
    shape = tuple(image.shape)
    tiled = tiling.is_tiled(shape)
    if tiled:
        image = check_lazy_rgb(image, name)
    else:
        image = as_rgb_uint8(np.asarray(image), name=name)
    h, w = shape[:2]
    grid = tile_grid((h, w), tiling.tile, tiling.halo)
    secs = {"semantic": 0.0, "distance": 0.0, "watershed": 0.0}
    info = SegmentInfo(
        model=pair.label, scheme=pair.spec.scheme, cr=pair.spec.cr, fine_tuned=pair.spec.fine_tuned,
        watershed=params, device=str(dev), precision=prec, mode="tiled" if tiled else "whole",
        tile=tiling.tile, halo=tiling.halo, n_tiles=len(grid), seconds=secs, **pair.models_info())
    t_start = time.perf_counter()
    with keep_freed_memory():  # the memory a tile frees serves the next (see heap.py)
        if tiled:
            labels = yield from _tiled(image, pair, params, grid, dev, prec, out, post_workers, batch, compile,
                                       tiling, cancelled, secs, name)
            info.post_workers, info.batch = int(secs.pop("post_workers")), int(secs.pop("batch"))
            prob = dist = None
        else:
            prob, dist = np.empty((h, w), np.float32), np.empty((h, w), np.float32)
            total = len(grid) + 1
            for i, t in enumerate(grid):
                check_cancelled(cancelled)
                p, d = _branches(pair, image[t.a0 : t.a1, t.b0 : t.b1], dev, prec, secs)
                core = np.s_[t.r0 - t.a0 : t.r1 - t.a0, t.c0 - t.b0 : t.c1 - t.b0]
                prob[t.r0 : t.r1, t.c0 : t.c1] = p[core]
                dist[t.r0 : t.r1, t.c0 : t.c1] = d[core]
                yield Progress(i + 1, total, f"{pair.label}: branches, tile {i + 1}/{len(grid)}")
            check_cancelled(cancelled)
            t0 = time.perf_counter()
            labels = watershed_instances(prob, dist, params)
            secs["watershed"] = time.perf_counter() - t0
            yield Progress(total, total, f"{pair.label}: watershed done")
    secs["total"] = time.perf_counter() - t_start
    info.throughput = throughput(secs, h * w)
    info.n_nuclei = max_label(labels)
    if tiled:
        tp = info.throughput
        nets = tp["stages"]["networks"]["mp_per_s"]
        detail = f", networks {nets:.2f} MP/s, wall/networks {tp['wall_over_networks']:.2f}" if nets else ""
        yield Progress(len(grid), len(grid), f"{pair.label}: {tp['mp_per_s']:.2f} MP/s{detail}")
    return Segmentation(labels, prob, dist, info)


def throughput(seconds: dict[str, float], pixels: int) -> dict[str, Any]:
    """Per-stage numbers of a run: seconds, seconds per megapixel and MP/s of each stage; the
    run's MP/s; ``wall_over_networks`` (1.0: everything but the networks hidden behind them);
    ``hidden``: the share of the other stages' time (reading, watershed summed over workers, the
    hand-over of maps to the workers, stitching) that overlapped the networks; ``gpu_busy``: the
    GPU's busy share of the wall time."""
    mp = pixels / 1e6
    wall = seconds.get("total", 0.0)
    stages = {k: seconds[k] for k in ("read", "semantic", "distance", "watershed", "handoff", "stitch", "wait",
                                      "write_wait")
              if k in seconds}
    stages["networks"] = seconds.get("semantic", 0.0) + seconds.get("distance", 0.0)
    rest = sum(v for k, v in stages.items() if k in ("read", "watershed", "handoff", "stitch"))
    out: dict[str, Any] = {
        "megapixels": mp, "wall_seconds": wall, "mp_per_s": mp / wall if wall else 0.0,
        "stages": {k: {"seconds": v, "s_per_mp": v / mp if mp else 0.0, "mp_per_s": mp / v if v else None}
                   for k, v in stages.items()},
        "wall_over_networks": wall / stages["networks"] if stages["networks"] else None,
        "hidden": min(1.0, max(0.0, (stages["networks"] + rest - wall) / rest)) if rest else 1.0,
    }
    if "gpu" in seconds and wall:
        out["gpu_busy"] = seconds["gpu"] / wall
    return out


def _tiled(image, pair: ModelPair, params, grid: list[Tile], dev, prec, out, post_workers: int | None,
           batch: int, compile: bool, tiling: Tiling, cancelled, secs: dict, name: str):
    """Per tile: both branches and the watershed on core + halo, stitched into ``out``.

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

    h, w = image.shape[:2]
    if out is not None and tuple(out.shape) != (h, w):
        raise ValueError(f"out has shape {tuple(out.shape)}, the image {(h, w)}")
    on_cpu = dev.type == "cpu"
    workers = resolve_workers(post_workers, reserved=torch.get_num_threads() if on_cpu else 0)
    batch = max(1, batch or (8 if dev.type == "cuda" else 1))
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
            crop = as_rgb_uint8(np.asarray(image[t.a0 : t.a1, t.b0 : t.b1]),
                                name=f"{name} tile [{t.a0}:{t.a1}, {t.b0}:{t.b1}]")
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

    def predict(group):
        probs, dists = predict_pair(pair.semantic, pair.distance, np.stack([c for _, c in group]), device=dev,
                                    precision=prec, compile=compile, stats=stats)
        return [t for t, _ in group], probs, dists

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
            if _networks_in_thread(dev):
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
    secs["post_workers"] = workers
    secs["batch"] = batch
    t0 = time.perf_counter()
    labels = stitcher.close()
    secs["stitch"] += time.perf_counter() - t0
    # waiting for the label writer is not stitching work: counted apart
    secs["write_wait"] = stitcher.write_wait
    secs["stitch"] -= stitcher.write_wait
    return labels


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


def _networks_in_thread(dev) -> bool:
    """Whether a tiled run gives the networks a thread of their own: on an accelerator, so it computes
    while the run's thread hands maps over and stitches; not on a CPU, whose cores the networks use."""
    return dev.type != "cpu"


def segment(
    image,
    pair: ModelPair | None = None,
    params: WatershedParams | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    tiling: str | Tiling = "auto",
    out=None,
    post_workers: int | None = None,
    batch: int = 0,
    compile: bool = False,
    progress: ProgressFn | None = None,
    cancelled: CancelFn | None = None,
    name: str = "image",
) -> Segmentation:
    """Segment nuclei in an H&E RGB image (H x W x 3 uint8, in memory or lazy) with a model pair.

    ``pair`` defaults to the dense model (:func:`load_pair`), ``params`` to the pair's own
    thresholds. ``progress`` receives :class:`~napari_prunuclei.base.progress.Progress`
    records; ``cancelled()`` returning True stops the run with
    :class:`~napari_prunuclei.base.progress.Cancelled`. ``out``: a zero-filled int32 (H, W)
    array (e.g. zarr on disk) for the labels of a tiled run. Tiled runs only:
    ``post_workers`` processes run the watershed (None: one per available core, 0: in this
    process), ``batch`` tiles go through the networks at once (0: 8 on CUDA, else 1) and
    ``compile`` uses ``torch.compile`` on CUDA.
    """
    job = iter_segment(image, pair, params, device=device, precision=precision, tiling=tiling, out=out,
                       post_workers=post_workers, batch=batch, compile=compile, cancelled=cancelled, name=name)
    return drive(job, progress)


def rewatershed(seg: Segmentation, params: WatershedParams) -> Segmentation:
    """The same run with other thresholds: only the watershed again, on the kept maps (whole mode)."""
    if seg.tiled or seg.probability is None:
        raise ValueError("this image ran tile by tile without keeping the maps: run it again to apply "
                         "new thresholds")
    t0 = time.perf_counter()
    labels = watershed_instances(seg.probability, seg.distance, params)
    seconds = {**seg.info.seconds, "watershed": time.perf_counter() - t0}
    info = replace(seg.info, watershed=params, seconds=seconds, n_nuclei=max_label(labels))
    return replace(seg, labels=labels, info=info)
