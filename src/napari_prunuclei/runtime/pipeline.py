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

import time
from dataclasses import replace

import numpy as np

from napari_prunuclei.base.heap import keep_freed_memory
from napari_prunuclei.base.progress import CancelFn, Job, Progress, ProgressFn, check_cancelled, drive
from napari_prunuclei.io.images import as_rgb_uint8, check_lazy_rgb
from napari_prunuclei.models.zoo import model_pixel_size
from napari_prunuclei.nuclei.watershed import WatershedParams, watershed_instances
from napari_prunuclei.runtime.pairs import ModelPair, load_pair
from napari_prunuclei.runtime.request import Segmentation, SegmentInfo, SegmentRequest, as_tiling, throughput
from napari_prunuclei.runtime.scale import Scale
from napari_prunuclei.runtime.tiled_engine import run_tiled
from napari_prunuclei.runtime.tiles import max_label, tile_grid

__all__ = ["as_request", "iter_segment", "segment", "rewatershed", "resolve_device_precision"]


def resolve_device_precision(device: str, precision: str):
    from napari_prunuclei.models.devices import resolve_device
    from napari_prunuclei.models.inference import resolve_precision

    dev = resolve_device(device) if isinstance(device, str) else device
    return dev, resolve_precision(precision, dev)


def _branches(pair: ModelPair, crop: np.ndarray, dev, prec, secs: dict,
              scale: Scale | None = None) -> tuple[np.ndarray, np.ndarray]:
    from napari_prunuclei.models.inference import predict_branch, predict_pair

    if scale is not None and scale.active:  # on the models' grid and back (napari_prunuclei.runtime.scale)
        stats: dict[str, float] = {}
        probs, dists = scale.predict(predict_pair, pair.semantic, pair.distance, crop[None], device=dev,
                                     precision=prec, stats=stats)
        secs["semantic"] += stats.get("semantic", 0.0)
        secs["distance"] += stats.get("distance", 0.0)
        return probs[0], dists[0]
    t0 = time.perf_counter()
    prob = predict_branch(pair.semantic, crop, device=dev, precision=prec)
    t1 = time.perf_counter()
    dist = predict_branch(pair.distance, crop, device=dev, precision=prec)
    secs["semantic"] += t1 - t0
    secs["distance"] += time.perf_counter() - t1
    return prob, dist


def iter_segment(
    image,
    request: SegmentRequest | ModelPair | None = None,
    params: WatershedParams | None = None,
    *,
    pair: ModelPair | None = None,
    out=None,
    cancelled: CancelFn | None = None,
    name: str = "image",
    **settings,
) -> Job[Segmentation]:
    """Generator form of :func:`segment`: yields :class:`Progress`, returns the :class:`Segmentation`."""
    request, pair = as_request(request, params, pair, settings)
    scale = Scale(request.pixel_size, model_pixel_size())
    params = scale.params(request.params or pair.params)
    tiling = request.tiling
    dev, prec = resolve_device_precision(request.device, request.precision)
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
        tile=tiling.tile, halo=tiling.halo, n_tiles=len(grid), seconds=secs,
        resolution={**scale.as_dict(), "min_size_at_models_px": (request.params or pair.params).min_size},
        **pair.models_info())
    t_start = time.perf_counter()
    with keep_freed_memory():  # the memory a tile frees serves the next (see heap.py)
        if tiled:
            labels, stats = yield from run_tiled(image, pair, params, grid, request, (dev, prec), out, secs,
                                                 cancelled, name, scale)
            info.post_workers, info.batch = stats.post_workers, stats.batch
            info.tissue = {"mask": request.tissue_mask, "tiles": len(grid), "glass_tiles": stats.glass_tiles}
            tissue = stats.tissue
            prob = dist = None
        else:
            tissue = None
            prob, dist = np.empty((h, w), np.float32), np.empty((h, w), np.float32)
            total = len(grid) + 1
            for i, t in enumerate(grid):
                check_cancelled(cancelled)
                p, d = _branches(pair, image[t.a0 : t.a1, t.b0 : t.b1], dev, prec, secs, scale)
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
    if tiled and tissue is not None:  # per MP of slide (above) and per MP of tissue
        mp = float(tissue.mean()) * h * w / 1e6
        info.tissue.update(tissue_fraction=float(tissue.mean()), tissue_mp=mp,
                           mp_per_s_tissue=mp / secs["total"] if secs["total"] else None)
    info.n_nuclei = max_label(labels)
    if tiled:
        tp = info.throughput
        nets = tp["stages"]["networks"]["mp_per_s"]
        detail = f", networks {nets:.2f} MP/s, wall/networks {tp['wall_over_networks']:.2f}" if nets else ""
        yield Progress(len(grid), len(grid), f"{pair.label}: {tp['mp_per_s']:.2f} MP/s{detail}")
    return Segmentation(labels, prob, dist, info, tissue)


def as_request(request: SegmentRequest | ModelPair | None, params: WatershedParams | None,
               pair: ModelPair | None, settings: dict) -> tuple[SegmentRequest, ModelPair]:
    """The request of a call and the pair it runs. ``request`` is the one request type; the keyword
    convenience (``segment(image, pair, params, device=..., tiling=...)``) builds one from the ``settings``
    (device, precision, tiling, post_workers, batch, compile, pixel_size) and the pair's spec."""
    if isinstance(request, SegmentRequest):
        if settings or params is not None:
            raise TypeError("segment(image, request): the request holds the settings; give no keyword settings "
                            f"beside it ({', '.join(sorted(settings)) or 'params'})")
        return request, pair or request.pair()
    if isinstance(request, ModelPair):
        if pair is not None:
            raise TypeError("segment(image, pair, pair=...): give the pair once")
        pair = request
    elif request is not None:
        raise TypeError(f"segment(image, request): request must be a SegmentRequest or a ModelPair, "
                        f"got {type(request).__name__}")
    unknown = set(settings) - {"device", "precision", "tiling", "post_workers", "batch", "compile", "pixel_size",
                               "tissue_mask"}
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    if "tiling" in settings:
        settings = {**settings, "tiling": as_tiling(settings["tiling"])}
    pair = pair or load_pair()
    spec = pair.spec
    return SegmentRequest(scheme=spec.scheme, cr=spec.cr, fine_tuned=spec.fine_tuned, params=params,
                          **settings), pair


def segment(
    image,
    request: SegmentRequest | ModelPair | None = None,
    params: WatershedParams | None = None,
    *,
    pair: ModelPair | None = None,
    out=None,
    progress: ProgressFn | None = None,
    cancelled: CancelFn | None = None,
    name: str = "image",
    **settings,
) -> Segmentation:
    """Segment nuclei in an H&E RGB image (H x W x 3 uint8, in memory or lazy).

    ``request`` (:class:`SegmentRequest`): the model (scheme, CR, fine-tuned), thresholds (None: the
    pair's own), device, precision, tiling, and for tiled runs ``post_workers`` (processes running the
    watershed; None: one per available core less the networks', 0: here), ``batch`` (tiles per network
    call; 0: 8 on CUDA, else 1) and ``compile`` (``torch.compile`` on CUDA). ``pair``: the loaded pair, when
    the caller holds it (else loaded from the request, cached). As a convenience ``segment(image, pair,
    params, device=..., tiling=...)`` builds the request from a :class:`ModelPair` and keyword settings.
    ``progress`` receives :class:`~napari_prunuclei.base.progress.Progress` records; ``cancelled()``
    returning True stops the run with :class:`~napari_prunuclei.base.progress.Cancelled`. ``out``: a
    zero-filled int32 (H, W) array (e.g. zarr on disk) for the labels of a tiled run.
    """
    job = iter_segment(image, request, params, pair=pair, out=out, cancelled=cancelled, name=name, **settings)
    return drive(job, progress)


def rewatershed(seg: Segmentation, params: WatershedParams) -> Segmentation:
    """The same run with other thresholds: only the watershed again, on the kept maps (whole mode). Its seconds
    (and throughput) are the run's with the new watershed in place of the old: the total stays the sum of its
    steps."""
    if seg.tiled or seg.probability is None:
        raise ValueError("this image ran tile by tile without keeping the maps: run it again to apply "
                         "new thresholds")
    res = seg.info.resolution or {}
    asked = params.min_size  # on the models' grid, as the box shows it
    params = Scale(res.get("pixel_size_um"), res.get("model_pixel_size_um") or model_pixel_size()).params(params)
    t0 = time.perf_counter()  # thresholds on the models' grid, applied on the image's as the run did
    labels = watershed_instances(seg.probability, seg.distance, params)
    seconds = dict(seg.info.seconds)  # the total: the other steps (kept) and the new watershed, as one run's
    new = time.perf_counter() - t0
    if "total" in seconds:
        seconds["total"] = max(seconds["total"] - seconds.get("watershed", 0.0), 0.0) + new
    seconds["watershed"] = new
    resolution = {**res, "min_size_at_models_px": asked} if res else seg.info.resolution
    info = replace(seg.info, watershed=params, seconds=seconds, n_nuclei=max_label(labels), resolution=resolution,
                   throughput=throughput(seconds, int(np.prod(labels.shape[:2]))))
    return replace(seg, labels=labels, info=info)
