"""Segmenting many images or slides: one function per file, run serially or on dask.

:func:`segment_file` writes ``<stem>_labels.tif`` (a tiled, compressed TIFF for
large images, written tile by tile from a chunked zarr store so memory stays
bounded), the probability and distance maps for images that fit in memory, and
``<stem>_info.json`` last: a file whose info JSON exists is finished, so
:func:`segment_files` skips it when resumed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .pipeline import SegmentRequest, load_pair, segment
from .progress import Progress, tqdm_callback

__all__ = ["segment_file", "segment_files", "info_path"]


def info_path(path: Path, out_dir: Path) -> Path:
    return Path(out_dir) / f"{Path(path).stem}_info.json"


def _write_tiled_tiff(path: Path, arr, tile: int = 512) -> None:
    """Stream a 2-D (zarr) array into a tiled, zlib-compressed TIFF, one tile in memory at a time."""
    import tifffile

    from .io import atomic_write

    h, w = arr.shape

    def tiles():
        for r in range(0, h, tile):
            for c in range(0, w, tile):
                t = np.zeros((tile, tile), arr.dtype)
                block = np.asarray(arr[r : r + tile, c : c + tile])
                t[: block.shape[0], : block.shape[1]] = block
                yield t

    atomic_write(path, lambda t: tifffile.imwrite(t, tiles(), shape=(h, w), dtype=arr.dtype,
                                                  tile=(tile, tile), compression="zlib", bigtiff=True))


def segment_file(path: str | Path, out_dir: str | Path, request: SegmentRequest,
                 progress: Callable[[Progress], None] | None = None, threads: int = 0) -> dict:
    """Segment one image file into ``out_dir``; return its info (also written as JSON, last).

    Tiled runs write their labels into a scratch zarr store private to this run (a
    hidden, uniquely named folder in ``out_dir``, removed afterwards, also on failure), so
    concurrent runs into one folder never share one; every output is renamed into place
    whole.
    """
    import tempfile

    import tifffile
    import torch

    from .io import atomic_write, open_image, write_labels

    if threads:
        torch.set_num_threads(threads)
    path, out = Path(path), Path(out_dir)
    image = open_image(path)  # checked before anything is created
    out.mkdir(parents=True, exist_ok=True)
    stem = out / path.stem
    pair = load_pair(request.spec)
    h, w = image.shape[:2]
    t0 = time.perf_counter()
    kwargs = dict(device=request.device, precision=request.precision, tiling=request.tiling,
                  post_workers=request.post_workers, progress=progress, name=str(path))
    if request.tiling.is_tiled((h, w)):
        import zarr

        scratch = Path(tempfile.mkdtemp(prefix=f".{path.stem}_labels.", suffix=".zarr", dir=out))
        try:
            labels = zarr.open_array(str(scratch / "labels"), mode="w", shape=(h, w),
                                     chunks=(request.tiling.tile, request.tiling.tile), dtype="int32", fill_value=0)
            res = segment(image, pair, request.params, out=labels, **kwargs)
            _write_tiled_tiff(Path(f"{stem}_labels.tif"), labels)
            n = res.n_nuclei
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    else:
        res = segment(np.asarray(image), pair, request.params, **kwargs)
        write_labels(f"{stem}_labels.tif", res.labels)
        for key, arr in (("probability", res.probability), ("distance", res.distance)):
            atomic_write(f"{stem}_{key}.tif", lambda t, arr=arr: tifffile.imwrite(t, arr, compression="zlib"))
        n = res.n_nuclei
    info = {**res.info.as_dict(), "image": str(path), "shape": [h, w], "n_nuclei": n,
            "request": request.as_dict(), "wall_seconds": time.perf_counter() - t0}
    atomic_write(info_path(path, out), lambda t: t.write_text(json.dumps(info, indent=1)))
    return info


def segment_files(paths: list[str | Path], out_dir: str | Path, request: SegmentRequest | None = None, *,
                  workers: int = 1, scheduler: str | None = None, resume: bool = True,
                  progress: bool = True, threads: int = 0) -> list[dict]:
    """Segment many files; finished ones (info JSON present) are skipped when ``resume``.

    ``workers > 1`` starts a ``dask.distributed`` LocalCluster of single-threaded
    worker processes (``threads`` torch threads each, default 1); ``scheduler`` is the
    address of an existing dask cluster instead. With one worker and no scheduler
    the files run in this process, tile progress included.
    """
    from tqdm import tqdm

    request = request or SegmentRequest()
    out = Path(out_dir)
    todo = [Path(p) for p in paths if not (resume and info_path(p, out).is_file())]
    skipped = len(paths) - len(todo)
    results: list[dict] = []
    bar = tqdm(total=len(todo), desc="segment", unit="image", disable=not progress)
    if skipped and progress:
        bar.write(f"{skipped} finished image(s) skipped (resume)")
    if workers <= 1 and scheduler is None:
        for p in todo:
            tbar = tqdm(desc=p.name, unit="step", leave=False, disable=not progress)
            results.append(segment_file(p, out, request, progress=tqdm_callback(tbar), threads=threads))
            tbar.close()
            bar.update(1)
    else:
        from distributed import Client, LocalCluster, as_completed

        cluster = None
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        with Client(scheduler or cluster) as client:
            futures = [client.submit(segment_file, p, out, request, None, threads or 1, pure=False) for p in todo]
            tiles, t0 = 0, time.perf_counter()
            for fut in as_completed(futures):
                results.append(fut.result())
                tiles += int(results[-1].get("n_tiles", 1))
                bar.set_postfix(tiles_per_s=f"{tiles / (time.perf_counter() - t0):.2f}")
                bar.update(1)
        if cluster is not None:
            cluster.close()
    bar.close()
    return results
