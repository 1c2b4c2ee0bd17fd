"""The tiles of one large image spread over a ``dask.distributed`` cluster, stitched here, resumable.

The grid is the pipeline's one tiling policy (:func:`napari_prunuclei.runtime.tiles.tile_grid` with the
request's :class:`~napari_prunuclei.runtime.pipeline.Tiling`). One task per tile: the worker opens the
image itself (lazily, :func:`napari_prunuclei.io.images.open_image`, once per process), reads the tile's
core + halo, runs both branches with the model pair (loaded once per process) and the watershed
with the stitching rule's per-tile part (:func:`napari_prunuclei.runtime.postpool.post_tile`), and writes
the tile's result (k, private block, seam pixels) to ``<scratch>/<tile>.npz``, renamed into place
whole. Only a few numbers travel back. This process stitches the tiles strictly in the grid's
order (:class:`napari_prunuclei.runtime.stitch.Stitcher`) as they arrive, so the labels are those of
``segment(image, tiling="tiled")`` on one machine.

Resume: a tile whose file is in the scratch folder (and opens) is not computed again; dask
reschedules the tasks of a worker that dies (and retries a failed task), and a run started again
with the same scratch folder reuses the tiles the interrupted one finished. The scratch folder
holds a manifest of the image and settings, so tiles of another run are never mixed in; it is
removed when the run succeeds.

The scratch folder, the image and ``out`` (when on disk) must be visible to every worker (a
shared file system on a cluster of several machines). No napari, no Qt; torch only in the
workers' function.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_prunuclei.base.progress import CancelFn, Job, Progress, ProgressFn, check_cancelled, drive
from napari_prunuclei.nuclei.watershed import WatershedParams
from napari_prunuclei.runtime.pairs import ModelSpec, load_pair, pair_weights, results_record
from napari_prunuclei.runtime.request import Segmentation, SegmentInfo, SegmentRequest, throughput
from napari_prunuclei.runtime.stitch import Stitcher, TileLabels, private_block
from napari_prunuclei.runtime.tiles import Tile, max_label, tile_grid

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["TileJob", "tile_file", "run_tile", "iter_segment_tiles", "segment_tiles_on_dask"]

MANIFEST = "prunuclei_tiles.json"
_KEYS = ("k", "block", "rows", "cols", "ids")


def tile_file(scratch: str | os.PathLike, index: int, t: Tile) -> Path:
    """Where tile ``index`` of the grid keeps its result in ``scratch``."""
    return Path(scratch) / f"tile_{index:06d}_r{t.r0}_c{t.c0}.npz"


@dataclass(frozen=True)
class TileJob:
    """What a worker needs for every tile of one image (small, sent with each task)."""

    path: str
    stamp: tuple[int, int]  # the image file's (mtime_ns, size): a changed file is opened again
    spec: ModelSpec
    params: WatershedParams
    device: str
    precision: str
    threads: int
    scratch: str
    pixel_size: float | None = None  # µm per pixel of the image (None: taken at the models' size)
    tissue_mask: bool = True  # a tile whose core shows no tissue skips the networks
    weights: dict | None = None  # the client's weight files (sha256 by branch): a worker must load the same


@lru_cache(maxsize=1)
def _opened(path: str, stamp: tuple[int, int]):
    """The image, opened once per worker process (lazily for TIFF; PNG and JPEG are read whole)."""
    from napari_prunuclei.io.images import open_image

    return open_image(path)


@lru_cache(maxsize=2)
def _pair(spec: ModelSpec):
    """The model pair, loaded once per worker process."""
    return load_pair(spec)


def _load(path: Path, t: Tile) -> TileLabels | None:
    """Tile ``t``'s stitching input from its file, or None when the file is missing or does not open."""
    try:
        with np.load(path) as z:
            k, block, rows, cols, ids = (z[key] for key in _KEYS)
    except Exception:  # noqa: BLE001 - missing, truncated, damaged: compute it again
        return None
    return TileLabels(t, int(k), block, rows, cols, ids)


def _present(path: Path) -> bool:
    """Whether a finished tile file is there and its archive opens with every array (cheap: no decompression)."""
    try:
        with np.load(path) as z:
            return all(key in z.files for key in _KEYS)
    except Exception:  # noqa: BLE001 - missing, truncated, not an archive
        return False


def _worker_name() -> str:
    """The dask worker's address (or host:pid outside a worker)."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def run_tile(job: TileJob, index: int, t: Tile, force: bool = False) -> dict[str, Any]:
    """One tile on a worker: read core + halo, both branches, the watershed and the stitching rule's
    per-tile part; the result goes to :func:`tile_file` (atomically). Returns only metadata:
    ``index``, ``computed`` (False: the file was there already), ``k``, per-stage ``seconds``, the
    device, precision and worker that ran it."""
    import torch

    from napari_prunuclei.io.atomic import atomic_write
    from napari_prunuclei.io.guards import ImageError
    from napari_prunuclei.models.inference import predict_pair
    from napari_prunuclei.models.zoo import model_pixel_size
    from napari_prunuclei.runtime.pipeline import resolve_device_precision
    from napari_prunuclei.runtime.postpool import post_tile
    from napari_prunuclei.runtime.scale import Scale
    from napari_prunuclei.runtime.tissue import core_has_tissue, tissue_box

    target = tile_file(job.scratch, index, t)
    where = _worker_name()
    if not force and _present(target):
        return {"index": index, "computed": False, "worker": where}
    torch.set_num_threads(max(1, job.threads))
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        image = _opened(job.path, tuple(job.stamp))
        # open_image checked the file at the door; a tile that cannot be decoded raises ImageError here
        crop = np.ascontiguousarray(np.asarray(image[t.a0 : t.a1, t.b0 : t.b1])[..., :3])
    except ImageError as e:  # bad input: said once, not retried, no traceback in the workers' logs
        return {"index": index, "computed": False, "error": str(e), "worker": where}
    secs["read"] = time.perf_counter() - t0
    pair = _pair(job.spec)
    have = pair_weights(pair)
    if job.weights is not None and have != job.weights:  # a worker of another install (a --scheduler cluster)
        return {"index": index, "computed": False, "worker": where,
                "error": f"{job.path}: worker {where} loads other weight files than this run's (sha256 "
                         f"{str(have['semantic'])[:12]}, this run {str(job.weights.get('semantic'))[:12]}): "
                         "install the same napari-prunuclei on every worker"}
    dev, prec = resolve_device_precision(job.device, job.precision)
    stats: dict[str, float] = {}
    scale = Scale(job.pixel_size, model_pixel_size())
    probs, dists = np.zeros((1, *crop.shape[:2]), np.float32), np.zeros((1, *crop.shape[:2]), np.float32)
    if not job.tissue_mask or core_has_tissue(crop, (t.r0 - t.a0, t.r1 - t.a0, t.c0 - t.b0, t.c1 - t.b0)):
        r0, r1, c0, c1 = tissue_box(crop) if job.tissue_mask else (0, crop.shape[0], 0, crop.shape[1])
        p, d = scale.predict(predict_pair, pair.semantic, pair.distance, crop[None, r0:r1, c0:c1], device=dev,
                             precision=prec, stats=stats)
        probs[:, r0:r1, c0:c1], dists[:, r0:r1, c0:c1] = p, d  # glass (no tissue in the core): empty maps
    secs["semantic"], secs["distance"] = stats.get("semantic", 0.0), stats.get("distance", 0.0)
    if "gpu" in stats:
        secs["gpu"] = stats["gpu"]
    t0 = time.perf_counter()
    p0, p1, q0, q1 = private_block(t)
    block = np.empty((p1 - p0, q1 - q0), np.int32)
    k, rows, cols, ids = post_tile(probs[0], dists[0], job.params, t, block)
    secs["watershed"] = time.perf_counter() - t0
    t0 = time.perf_counter()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, k=np.int64(k), block=block, rows=rows, cols=cols, ids=ids)

    atomic_write(target, write)
    secs["write"] = time.perf_counter() - t0
    return {"index": index, "computed": True, "k": int(k), "seconds": secs, "device": str(dev),
            "precision": prec, "worker": where}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _prepare_scratch(scratch: Path, want: dict, discard_stale: bool) -> None:
    """Make ``scratch`` hold tiles of this run only: its manifest says which image and settings."""
    from napari_prunuclei.io.atomic import atomic_write

    manifest = scratch / MANIFEST
    if scratch.is_dir() and any(scratch.iterdir()):
        try:
            have = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            have = None
        if have != want:
            if have is None and not discard_stale:
                raise ValueError(f"scratch folder {scratch} is not empty and holds no prunuclei tiles: "
                                 "choose an empty or new folder")
            if not discard_stale:
                raise ValueError(f"scratch folder {scratch} holds tiles of another image or settings "
                                 f"({have.get('image')}, tile {have.get('tile')}); choose another folder "
                                 "or remove it")
            shutil.rmtree(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    if not manifest.is_file():
        atomic_write(manifest, lambda t: t.write_text(json.dumps(want, indent=1)))


def iter_segment_tiles(path: str | os.PathLike, client: Client, request: SegmentRequest | None = None, *, out=None,
                       scratch: str | os.PathLike | None = None, threads: int = 1, retries: int = 2,
                       discard_stale: bool = False, cancelled: CancelFn | None = None) -> Job[Segmentation]:
    """Generator form of :func:`segment_tiles_on_dask`: yields :class:`Progress`, returns the
    :class:`~napari_prunuclei.runtime.pipeline.Segmentation`."""
    from distributed import as_completed

    from napari_prunuclei.io.images import open_image
    from napari_prunuclei.models.zoo import model_pixel_size
    from napari_prunuclei.runtime.scale import Scale

    request = request or SegmentRequest()
    path = Path(path)
    image = open_image(path)  # checked here, before any task starts
    h, w = image.shape[:2]
    del image
    tiling = request.tiling
    pair = load_pair(request.spec)
    scale = Scale(request.pixel_size, model_pixel_size())
    params = scale.params(request.params or pair.params)
    grid = tile_grid((h, w), tiling.tile, tiling.halo)
    if out is None:
        out = np.zeros((h, w), np.int32)
    elif tuple(out.shape) != (h, w):
        raise ValueError(f"out has shape {tuple(out.shape)}, the image {(h, w)}")
    stamp = _stamp(path)
    want = {"image": str(path.resolve()), "mtime_ns": stamp[0], "size": stamp[1], "shape": [h, w],
            "tile": tiling.tile, "halo": tiling.halo, "model": asdict(pair.spec), "params": params.as_dict(),
            "device": request.device, "precision": request.precision, "pixel_size": request.pixel_size,
            "tissue_mask": request.tissue_mask, "results": results_record(pair.spec, params)}
    own = scratch is None
    if own:
        folder = Path(tempfile.mkdtemp(prefix=".prunuclei_tiles."))
    else:
        folder = Path(scratch)
    job = TileJob(str(path.resolve()), stamp, pair.spec, params, request.device, request.precision,
                  max(1, threads), str(folder), request.pixel_size, request.tissue_mask,
                  weights=pair_weights(pair))
    secs = {"read": 0.0, "semantic": 0.0, "distance": 0.0, "watershed": 0.0, "write": 0.0, "stitch": 0.0}
    devices: set[str] = set()
    precisions: set[str] = set()
    workers: set[str] = set()
    n = len(grid)
    counts = {"computed": 0, "reused": 0, "resubmitted": 0}
    tries: dict[int, int] = {}
    futures: list = []
    t_start = time.perf_counter()
    success = False
    stitcher = None
    try:
        _prepare_scratch(folder, want, discard_stale or own)
        before = [i for i, t in enumerate(grid) if _present(tile_file(folder, i, t))]
        ready: dict[int, dict] = {i: {"index": i, "computed": False} for i in before}
        todo = [i for i in range(n) if i not in ready]
        futures = [client.submit(run_tile, job, i, grid[i], pure=False, retries=retries) for i in todo]
        arrivals = as_completed(futures)
        stitcher = Stitcher(out, grid, tiling.tile)
        stitched_mp = [0.0]

        def take(meta: dict) -> None:
            if meta.get("computed"):
                counts["computed"] += 1
                for k, v in meta["seconds"].items():
                    secs[k] = secs.get(k, 0.0) + v
                devices.add(meta["device"])
                precisions.add(meta["precision"])
                workers.add(meta["worker"])
            else:
                counts["reused"] += 1
            ready[meta["index"]] = meta

        def stitch_ready():
            while stitcher.done < n and stitcher.done in ready:
                i = stitcher.done
                t = grid[i]
                t0 = time.perf_counter()
                part = _load(tile_file(folder, i, t), t)
                if part is None:  # damaged since: compute it again (twice at most)
                    ready.pop(i)
                    counts["resubmitted"] += 1
                    tries[i] = tries.get(i, 0) + 1
                    if tries[i] > 2:
                        raise OSError(f"{path}: the result of tile {i} cannot be read back from "
                                      f"{tile_file(folder, i, t)}")
                    fut = client.submit(run_tile, job, i, t, True, pure=False, retries=retries)
                    futures.append(fut)
                    arrivals.add(fut)
                    return
                stitcher.add(part)
                secs["stitch"] += time.perf_counter() - t0
                done = stitcher.done
                stitched_mp[0] += (t.r1 - t.r0) * (t.c1 - t.c0) / 1e6
                rate = stitched_mp[0] / max(time.perf_counter() - t_start, 1e-9)
                yield Progress(done, n, f"{pair.label}: tile {done}/{n} on the cluster, {rate:.2f} MP/s")

        counts["reused"] = len(before)
        yield from stitch_ready()
        while stitcher.done < n:
            check_cancelled(cancelled)
            batch = arrivals.next_batch(block=False)
            if not batch:
                if arrivals.is_empty():
                    raise RuntimeError(f"{path}: tile {stitcher.done} never arrived")  # should not happen
                time.sleep(0.02)
                continue
            for fut in batch:
                try:
                    meta = fut.result()
                except Exception as e:
                    raise RuntimeError(f"{path}: a tile failed on the cluster: {type(e).__name__}: {e}") from e
                if "error" in meta:  # the image itself cannot be used (names the file)
                    raise ValueError(meta["error"])
                take(meta)
            yield from stitch_ready()
        labels = stitcher.close()
        success = True
    finally:
        if stitcher is not None:
            stitcher.abort()  # nothing writes into ``out`` after a failed or cancelled run
        if futures and not success:
            try:
                client.cancel(futures)
            except Exception:  # noqa: BLE001 - the client may be gone already (interrupted)
                pass
        if success or own:
            shutil.rmtree(folder, ignore_errors=True)
    secs["total"] = time.perf_counter() - t_start
    info = SegmentInfo(
        model=pair.label, scheme=pair.spec.scheme, cr=pair.spec.cr, fine_tuned=pair.spec.fine_tuned,
        watershed=params, device=",".join(sorted(devices)) or request.device,
        precision=",".join(sorted(precisions)) or request.precision, mode="tiled", tile=tiling.tile,
        halo=tiling.halo, n_tiles=n, seconds=secs, post_workers=0, batch=1, resolution=scale.as_dict(),
        **pair.models_info())
    info.throughput = throughput(secs, h * w)
    info.throughput["cluster"] = {**counts, "workers": len(workers)}
    info.n_nuclei = max_label(labels)
    tp = info.throughput
    yield Progress(n, n, f"{pair.label}: {tp['mp_per_s']:.2f} MP/s on {len(workers)} worker(s), "
                   f"{counts['reused']} tile(s) reused")
    return Segmentation(labels, None, None, info)


def segment_tiles_on_dask(path: str | os.PathLike, client: Client, request: SegmentRequest | None = None, *, out=None,
                          scratch: str | os.PathLike | None = None, threads: int = 1, retries: int = 2,
                          discard_stale: bool = False, progress: ProgressFn | None = None,
                          cancelled: CancelFn | None = None) -> Segmentation:
    """Segment one image file tile by tile on the dask cluster of ``client``; labels as
    ``segment(image, tiling="tiled")`` gives on one machine.

    ``request``: the model pair, thresholds (None: the pair's own), device and precision (resolved
    on each worker) and the tiling (its tile and halo; the image is tiled whatever its size).
    ``out``: a zero-filled int32 (H, W) array (numpy or zarr) for the labels (None: numpy).
    ``scratch``: the folder for the tiles' results; given, the tiles a former run finished there are
    reused and it is kept when the run fails (start again to resume); None, a private folder in the
    system's temporary folder (which must be visible to the workers). Removed when the run succeeds.
    ``discard_stale``: tiles of another image or settings in ``scratch`` are removed instead of refused.
    ``threads``: torch threads per task; ``retries``: how often dask retries a failed tile task.
    ``info.throughput["cluster"]`` counts the tiles ``computed`` here, ``reused`` and the ``workers``
    that ran them; ``info.seconds`` sums the workers' stages (``read``, ``semantic``, ``distance``,
    ``watershed``, ``write``) and this process's ``stitch``.
    """
    job = iter_segment_tiles(path, client, request, out=out, scratch=scratch, threads=threads, retries=retries,
                             discard_stale=discard_stale, cancelled=cancelled)
    try:
        return drive(job, progress)
    finally:
        job.close()  # a failing progress callback: the tasks are cancelled now, not when collected
