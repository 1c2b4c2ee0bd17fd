"""Segmenting many images or slides: one function per file, run serially or on dask.

:func:`segment_file` writes ``<stem>_labels.tif`` (a tiled, compressed TIFF for
large images, written tile by tile from a chunked zarr store so memory stays
bounded), the probability and distance maps for images that fit in memory, and
``<stem>_info.json`` last: a file whose info JSON exists is finished, so
:func:`segment_files` skips it when resumed.

On a dask cluster, small images run one per task; an image large enough to be tiled has its
tiles spread over the workers (:mod:`napari_prunuclei.runtime.distributed`), their results kept in a
hidden ``.prunuclei-<stem>.tiles`` folder of the output folder until the image is finished, so an
interrupted run resumes at the tile. What a folder holds and what a run may remove there:
:mod:`napari_prunuclei.io.outfolder`.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as replaced
from pathlib import Path

import numpy as np

from napari_prunuclei.base.progress import Progress, tqdm_callback
from napari_prunuclei.io.outfolder import (
    check_name,
    check_outputs_free,
    claim,
    describe_differences,
    info_path,
    is_finished,
    labels_scratch,
    model_record,
    output_path,
    outputs_record,
    pending_path,
    record_pending,
    remove_leftovers,
    source_record,
    tiles_path,
)
from napari_prunuclei.runtime.pairs import load_pair, pair_weights, results_record
from napari_prunuclei.runtime.pipeline import segment
from napari_prunuclei.runtime.request import SegmentRequest

__all__ = ["BatchResult", "segment_file", "segment_files", "check_loaded", "info_path", "tiles_path", "local_workers",
           "WORKER_MEMORY"]


#: the smallest pyramid level of a slide's labels is about this many pixels a side
PYRAMID_SMALLEST = 1024


def _write_tiled_tiff(path: Path, arr, tile: int = 512, threads: int | None = None,
                      pixel_size: float | None = None) -> None:
    """Stream a 2-D (zarr) array into a tiled, zlib-compressed pyramidal OME-TIFF, a few tiles in memory at a
    time, compressed by ``threads`` threads (None: one per available core; tifffile's own default is half).

    Level 0 holds the labels; coarser levels (every 2nd, 4th... pixel: ids kept, no blending) go down to about
    :data:`PYRAMID_SMALLEST` px, as SubIFDs, so QuPath and napari open a slide's labels fast; with a
    ``pixel_size`` (µm per pixel) the OME metadata says it, and they lie at the right scale over the slide."""
    import math

    import tifffile

    from napari_prunuclei.io.atomic import atomic_write
    from napari_prunuclei.io.labels import resolution_tags
    from napari_prunuclei.runtime.postpool import available_cores

    h, w = arr.shape
    n_sub = 0
    while max(h, w) // 2 ** (n_sub + 1) >= PYRAMID_SMALLEST:
        n_sub += 1

    def tiles(step: int):
        hh, ww = math.ceil(h / step), math.ceil(w / step)
        for r in range(0, hh, tile):
            for c in range(0, ww, tile):
                t = np.zeros((tile, tile), arr.dtype)
                block = np.asarray(arr[r * step : min(h, (r + tile) * step) : step,
                                       c * step : min(w, (c + tile) * step) : step])
                t[: block.shape[0], : block.shape[1]] = block
                yield t

    meta: dict = {"axes": "YX"}
    if pixel_size:
        meta.update(PhysicalSizeX=pixel_size, PhysicalSizeXUnit="µm", PhysicalSizeY=pixel_size,
                    PhysicalSizeYUnit="µm")
    opts = dict(dtype=arr.dtype, tile=(tile, tile), compression="zlib", maxworkers=threads or available_cores())

    def write(t: Path) -> None:
        with tifffile.TiffWriter(t, bigtiff=True, ome=True) as tw:
            tw.write(tiles(1), shape=(h, w), subifds=n_sub, metadata=meta, **opts,
                     **resolution_tags(pixel_size))  # plain TIFF readers (no OME) see the pixel size too
            for k in range(1, n_sub + 1):
                step = 2**k
                tw.write(tiles(step), shape=(math.ceil(h / step), math.ceil(w / step)), subfiletype=1, **opts)

    atomic_write(path, write)


def _write_mask(path: Path, mask: np.ndarray, pixel_size: float | None) -> None:
    """A slide's tissue mask (1 pixel per ``MASK_STEP`` x ``MASK_STEP``; 255 = tissue) as a TIFF whose resolution
    tags give that step's size in µm when the slide's pixel size is known."""
    import tifffile

    from napari_prunuclei.io.atomic import atomic_write
    from napari_prunuclei.runtime.tissue import MASK_STEP

    kw = {}
    if pixel_size:
        per_cm = 1e4 / (pixel_size * MASK_STEP)
        kw = dict(resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
    data = mask.astype(np.uint8) * 255
    atomic_write(path, lambda t: tifffile.imwrite(t, data, compression="zlib", description=(
        f"napari-prunuclei tissue mask: 1 pixel per {MASK_STEP} x {MASK_STEP} of the slide, 255 = tissue"), **kw))


def segment_file(path: str | Path, out_dir: str | Path, request: SegmentRequest,
                 progress: Callable[[Progress], None] | None = None, threads: int = 0, client=None,
                 replace: bool = False, expect: dict | None = None) -> dict:
    """Segment one image file into ``out_dir``; return its info (also written as JSON, last).

    Tiled runs write their labels into a scratch zarr store private to this run (a
    hidden, uniquely named folder in ``out_dir``, removed afterwards, also on failure), so
    concurrent runs into one folder never share one; every output is renamed into place
    whole, and a run that fails removes the outputs it wrote (the image is left without results,
    never with a part of them). ``client``: a dask client; a tiled image then has its tiles spread
    over the cluster's workers (``threads`` torch threads per tile task, default 1), their results
    kept in :func:`tiles_path` until the image is finished (a run of the same folder resumes
    them), with the labels of a run on one machine. Existing files with the outputs' names that no run
    of this package made are refused, unless ``replace`` (the user asked to redo this image). ``expect``: the
    batch's model record (its folder's); the pair loaded for this image must be the one it names (the zoo's
    files may be replaced while a batch runs: the image then fails, nothing written).
    """
    import tifffile
    import torch

    from napari_prunuclei.io.atomic import atomic_write
    from napari_prunuclei.io.images import open_image
    from napari_prunuclei.io.labels import resolution_tags, write_labels
    from napari_prunuclei.runtime.tissue import tissue_mask_of

    if threads and client is None:
        torch.set_num_threads(threads)
    path, out = Path(path), Path(out_dir)
    check_name(path)
    image = open_image(path)  # checked before anything is created
    given = request
    if request.pixel_size is None:  # the file's own pixel size, where it declares one
        from napari_prunuclei.io.pixel_size import read_pixel_size

        px = read_pixel_size(path)
        try:
            request = replaced(request, pixel_size=px)
        except ValueError as e:
            raise ValueError(f"{path}: the file declares {px:g} µm per pixel, which cannot be segmented ({e}); "
                             "--pixel-size overrides it") from None
    out.mkdir(parents=True, exist_ok=True)
    if not replace:
        check_outputs_free(path, out)
    source = source_record(path)
    pair = load_pair(request.spec)
    model = expect or model_record(given, results_record(given.spec, given.params))
    check_loaded(path, pair, given.params, model)
    h, w = image.shape[:2]
    t0 = time.perf_counter()
    written: list[Path] = []
    info_path(path, out).unlink(missing_ok=True)  # from here on the image is not finished until its info says so
    try:
        if request.tiling.is_tiled((h, w)):
            from napari_prunuclei.runtime.stitch import label_store

            scratch = labels_scratch(path, out)
            try:
                labels = label_store(scratch / "labels", (h, w), request.tiling.tile)
                if client is not None:
                    from napari_prunuclei.runtime.distributed import segment_tiles_on_dask

                    del image
                    try:
                        res = segment_tiles_on_dask(path, client, request, out=labels, scratch=tiles_path(path, out),
                                                    threads=threads or 1, discard_stale=True, progress=progress)
                    except ValueError:  # the image cannot be used: nothing to resume
                        shutil.rmtree(tiles_path(path, out), ignore_errors=True)
                        raise
                    if request.tissue_mask:  # the workers saw the tiles: the mask, as a local run makes it
                        res = replaced(res, tissue=tissue_mask_of(open_image(path)))
                else:
                    res = segment(image, request, pair=pair, out=labels, progress=progress, name=str(path))
                written.append(output_path(path, out, "labels"))
                record_pending(path, out, written, about_to_write=written[-1])
                _write_tiled_tiff(written[-1], labels, pixel_size=request.pixel_size)
                record_pending(path, out, written)  # a kill from here on leaves files the next run knows as ours
                if res.tissue is not None:  # where the tissue is, at 1/16 (its pixel size says so)
                    written.append(output_path(path, out, "tissue"))
                    record_pending(path, out, written, about_to_write=written[-1])
                    _write_mask(written[-1], res.tissue, request.pixel_size)
                    record_pending(path, out, written)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        else:
            res = segment(np.asarray(image), request, pair=pair, progress=progress, name=str(path))
            written.append(output_path(path, out, "labels"))
            record_pending(path, out, written, about_to_write=written[-1])
            write_labels(written[-1], res.labels, pixel_size=request.pixel_size)
            record_pending(path, out, written)  # a kill from here on leaves files the next run knows as ours
            tags = resolution_tags(request.pixel_size)  # every map reopens on its image's grid, in µm
            for key, arr in (("probability", res.probability), ("distance", res.distance)):
                written.append(output_path(path, out, key))
                record_pending(path, out, written, about_to_write=written[-1])
                atomic_write(written[-1], lambda t, arr=arr: tifffile.imwrite(t, arr, compression="zlib", **tags))
                record_pending(path, out, written)
        info = {**res.info.as_dict(), "image": str(path), "shape": [h, w], "n_nuclei": res.n_nuclei,
                "request": given.as_dict(), "model": model,
                "source": source, "outputs": outputs_record(out, written),
                "wall_seconds": time.perf_counter() - t0}
        atomic_write(info_path(path, out), lambda t: t.write_text(json.dumps(info, indent=1)))
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        pending_path(path, out).unlink(missing_ok=True)
        raise
    pending_path(path, out).unlink(missing_ok=True)  # the info lists them now
    return info


def check_loaded(path: Path, pair, params, model: dict) -> None:
    """The pair just loaded is the one ``model`` (the folder's record) names: its files' sha256 and its
    thresholds; ValueError naming ``path`` else (the zoo's files changed while the batch ran)."""
    want = model.get("results") or {}
    have = {"weights": pair_weights(pair), "thresholds": (params or pair.params).as_dict()}
    differ = {k: v for k, v in have.items() if v != want.get(k)}
    if differ:
        raise ValueError(f"{path}: the zoo's files or thresholds changed while this run went on ("
                         + describe_differences({k: want.get(k) for k in differ}, differ)
                         + "): run it again into a new folder")


@dataclass
class BatchResult:
    """What a batch did: the info of each finished image, ``(path, reason)`` of each failed one, and how
    many were skipped as finished before (resume)."""

    finished: list[dict] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    notes: list[str] = field(default_factory=list)  # what the batch changed of what was asked (said out loud)


#: memory a local dask worker needs for one image run whole (a 2048^2 image's maps and labels, the two
#: networks' activations of one tile): fewer workers are started than would get less
WORKER_MEMORY = 3 * 2**30


def local_workers(asked: int) -> tuple[int, str | None]:
    """How many local dask workers to start for ``asked``: at most one per core and one per
    :data:`WORKER_MEMORY` of this machine's memory; with the reason when fewer."""
    from napari_prunuclei.base.machine import available_cores, memory_bytes

    cores, mem = available_cores(), memory_bytes()
    by_mem = max(1, mem // WORKER_MEMORY) if mem else asked
    n = max(1, min(asked, cores, by_mem))
    if n == asked:
        return n, None
    return n, (f"--workers {asked}: starting {n} (this machine has {cores} cores"
               + (f" and {mem / 2**30:.0f} GiB, {WORKER_MEMORY // 2**30} GiB per worker" if mem else "") + ")")


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())[:500]
    return text if isinstance(e, (ValueError, OSError)) else f"{type(e).__name__}: {text}"


def segment_files(paths: list[str | Path], out_dir: str | Path, request: SegmentRequest | None = None, *,
                  workers: int = 1, scheduler: str | None = None, resume: bool = True,
                  progress: bool = True, threads: int = 0, per_file: bool = False) -> BatchResult:
    """Segment many files; finished ones (info JSON present) are skipped when ``resume``.

    A file that fails (unreadable, not RGB...) is reported and the batch goes on; nothing of
    it is written. Two inputs with one name (stem) are refused before anything runs, since
    their outputs would overwrite each other. ``workers > 1`` starts a ``dask.distributed``
    LocalCluster of single-threaded worker processes (``threads`` torch threads each,
    default 1); ``scheduler`` is the address of an existing dask cluster instead. On a
    cluster, an image large enough to be tiled (the request's :class:`~napari_prunuclei.runtime.pipeline.Tiling`)
    has its tiles spread over the workers and stitched here, one such image at a time, while
    smaller images run one per task; ``per_file``: every image in one task instead. With one
    worker and no scheduler the files run in this process, tile progress included.
    """
    request = request or SegmentRequest()
    out = Path(out_dir)
    unique: dict[Path, Path] = {}
    for p in map(Path, paths):  # one file named twice (a folder and a list, ./x and x) runs once
        unique.setdefault(p.resolve() if p.exists() else p, p)
    paths = list(unique.values())
    stems: dict[str, list[str]] = {}
    for p in paths:
        stems.setdefault(p.stem, []).append(str(p))
    same = {k: v for k, v in stems.items() if len(v) > 1}
    if same:
        raise ValueError("inputs with the same name would write the same outputs: "
                         + "; ".join(" and ".join(v) for v in same.values()) + ". Run them into separate folders")
    result = BatchResult()
    model = model_record(request, results_record(request.spec, request.params))
    # nothing finished (nor skipped as finished before): claim leaves no folder or manifest of this run behind
    with claim(out, model, overwrite=not resume, finished=lambda: bool(result.finished or result.skipped)):
        todo = [p for p in paths if not (resume and is_finished(p, out, model))]
        result.skipped = len(paths) - len(todo)
        if todo:
            remove_leftovers(out, {p.stem for p in todo}, keep_tiles=resume)
            _run(todo, out, request, workers, scheduler, threads, result, per_file, progress, replace=not resume,
                 model=model)
    return result


def _nested_bars(progress: bool) -> bool:
    """Whether each image's (or slide's tiles') own bar is drawn: only on a terminal (piped to a log, its cursor
    codes came before the error lines)."""
    return progress and sys.stderr.isatty()


def _run(todo: list[Path], out: Path, request: SegmentRequest, workers: int, scheduler: str | None, threads: int,
         result: BatchResult, per_file: bool, progress: bool, replace: bool = False, model: dict | None = None) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="segment", unit="image", disable=not progress)
    nested = _nested_bars(progress)
    if result.skipped and progress:
        bar.write(f"{result.skipped} image(s) already finished in {out} with this model: skipped (resume; "
                  "segment_files(replace=True), the CLI's --overwrite, redoes them)")
    if workers <= 1 and scheduler is None:
        for p in todo:
            tbar = tqdm(desc=" ".join(p.name.split()), unit="step", leave=False, disable=not nested)
            try:
                result.finished.append(segment_file(p, out, request, progress=tqdm_callback(tbar),
                                                    threads=threads, replace=replace, expect=model))
            except Exception as e:  # noqa: BLE001 - one bad image does not stop the batch
                result.failed.append((str(p), _reason(e)))
            tbar.close()
            bar.update(1)
    else:
        _run_on_dask(todo, out, request, workers, scheduler, threads, result, bar, per_file, progress, replace, model)
    bar.close()


def _is_tiled_file(path: Path, request: SegmentRequest) -> bool:
    """Whether the pipeline would tile this image (read from its header; False when that fails: its
    task reports why)."""
    from napari_prunuclei.io.images import declared_shape

    shape = declared_shape(path)  # the header only: the file is opened (and checked) once, by its own run
    return shape is not None and request.tiling.is_tiled(tuple(shape[:2]))


def _file_task(path: Path, out: Path, request: SegmentRequest, threads: int,
               replace: bool = False, model: dict | None = None) -> tuple[dict | None, str | None]:
    """One image in a dask task: ``(info, None)``, or ``(None, why)`` for an image that cannot be used
    (returned, not raised, so no worker logs a traceback for bad input)."""
    try:
        return segment_file(path, out, request, None, threads, replace=replace, expect=model), None
    except (ValueError, OSError) as e:
        return None, _reason(e)


def _run_on_dask(todo, out, request, workers, scheduler, threads, result: BatchResult, bar, per_file: bool = False,
                 progress: bool = False, replace: bool = False, model: dict | None = None) -> None:
    import logging

    from distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    cluster = None
    if scheduler is None:
        workers, note = local_workers(workers)
        if note:
            result.notes.append(note)
            bar.write(f"note: {note}")
        # workers' own logs (CommClosedError at shutdown, KeyboardInterrupt on Ctrl-C) are not for users:
        # every image's outcome is reported by the batch
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)
    try:
        with Client(scheduler or cluster) as client:
            spread = [] if per_file else [p for p in todo if _is_tiled_file(p, request)]
            whole = [p for p in todo if p not in spread]
            futures = {client.submit(_file_task, p, out, request, threads or 1, replace, model, pure=False): p
                       for p in whole}
            tiles, t0 = 0, time.perf_counter()
            for p in spread:  # one large image at a time, its tiles over every worker
                tbar = tqdm(desc=" ".join(p.name.split()), unit="tile", leave=False,
                            disable=not _nested_bars(progress))
                try:
                    info = segment_file(p, out, request, progress=tqdm_callback(tbar), threads=threads, client=client,
                                        replace=replace, expect=model)
                except Exception as e:  # noqa: BLE001 - reported, the others go on
                    result.failed.append((str(p), _reason(e)))
                else:
                    result.finished.append(info)
                    tiles += int(info.get("n_tiles", 1))
                    bar.set_postfix(tiles_per_s=f"{tiles / (time.perf_counter() - t0):.2f}")
                tbar.close()
                bar.update(1)
            for fut in as_completed(futures):
                try:
                    info, why = fut.result()
                except Exception as e:  # noqa: BLE001 - reported, the others go on
                    result.failed.append((str(futures[fut]), _reason(e)))
                    continue
                if why is not None:
                    result.failed.append((str(futures[fut]), why))
                else:
                    result.finished.append(info)
                    tiles += int(info.get("n_tiles", 1))
                    bar.set_postfix(tiles_per_s=f"{tiles / (time.perf_counter() - t0):.2f}")
                bar.update(1)
    finally:
        if cluster is not None:
            cluster.close()
