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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .postprocess import WatershedParams
from .tiled import WHOLE_MAX_PIXELS, max_label, segment_tiled

__all__ = ["SegmentOptions", "segment_file", "segment_files", "info_path"]



@dataclass
class SegmentOptions:
    """Model, watershed and tiling choices for :func:`segment_file`."""

    scheme: str = "dense"
    cr: float = 1
    fine_tuned: bool = True
    device: str = "cpu"
    precision: str = "auto"
    params: dict = field(default_factory=dict)  # WatershedParams fields; empty: the model card's
    tile: int = 1024
    halo: int = 128
    threads: int = 0  # torch threads in the worker; 0: torch's default
    post_workers: int = 0  # threads overlapping the watershed with the next tiles' branches
    force_tiled: bool = False


def info_path(path: Path, out_dir: Path) -> Path:
    return Path(out_dir) / f"{Path(path).stem}_info.json"


def _params(opts: SegmentOptions) -> WatershedParams:
    from .models.zoo import default_watershed

    return WatershedParams(**opts.params) if opts.params else default_watershed(opts.scheme, opts.cr, opts.fine_tuned)


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


def segment_file(path: str | Path, out_dir: str | Path, opts: SegmentOptions,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Segment one image file into ``out_dir``; return its info (also written as JSON)."""
    import tifffile
    import torch

    from .inference import segment
    from .io import atomic_write, open_image, write_labels
    from .models.zoo import load_model, model_info

    if opts.threads:
        torch.set_num_threads(opts.threads)
    path, out = Path(path), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / path.stem
    image = open_image(path)
    models = (load_model("semantic", opts.scheme, opts.cr, fine_tuned=opts.fine_tuned),
              load_model("distance", opts.scheme, opts.cr, fine_tuned=opts.fine_tuned))
    params = _params(opts)
    h, w = image.shape[:2]
    t0 = time.perf_counter()
    if h * w > WHOLE_MAX_PIXELS or opts.force_tiled:
        import zarr

        store = Path(f"{stem}_labels.zarr")
        if store.exists():
            shutil.rmtree(store)
        labels = zarr.open_array(str(store), mode="w", shape=(h, w), chunks=(opts.tile, opts.tile),
                                 dtype="int32", fill_value=0)
        timings: dict = {}
        segment_tiled(image, models, params, tile=opts.tile, halo=opts.halo, device=opts.device,
                      precision=opts.precision, out=labels, progress=progress, timings=timings,
                      post_workers=opts.post_workers)
        _write_tiled_tiff(Path(f"{stem}_labels.tif"), labels)
        n = max_label(labels, opts.tile)
        shutil.rmtree(store)
        info = {"mode": "tiled", "tile": opts.tile, "halo": opts.halo, "seconds": timings,
                "semantic": model_info(models[0]), "distance": model_info(models[1]),
                "watershed": params.as_dict()}
    else:
        res = segment(np.asarray(image), opts.scheme, opts.cr, opts.device, fine_tuned=opts.fine_tuned,
                      params=params, precision=opts.precision, models=models)
        write_labels(f"{stem}_labels.tif", res.labels)
        for key, arr in (("probability", res.probability), ("distance", res.distance)):
            atomic_write(f"{stem}_{key}.tif", lambda t, arr=arr: tifffile.imwrite(t, arr, compression="zlib"))
        n = res.n_nuclei
        info = {"mode": "whole", **res.info}
        if progress is not None:
            progress(1, 1)
    info.update({"image": str(path), "shape": [h, w], "n_nuclei": n, "options": asdict(opts),
                 "wall_seconds": time.perf_counter() - t0})
    atomic_write(info_path(path, out), lambda t: t.write_text(json.dumps(info, indent=1)))
    return info


def segment_files(paths: list[str | Path], out_dir: str | Path, opts: SegmentOptions, *,
                  workers: int = 1, scheduler: str | None = None, resume: bool = True,
                  progress: bool = True) -> list[dict]:
    """Segment many files; finished ones (info JSON present) are skipped when ``resume``.

    ``workers > 1`` starts a ``dask.distributed`` LocalCluster of single-threaded
    worker processes (``opts.threads`` torch threads each); ``scheduler`` is the
    address of an existing dask cluster instead. With one worker and no scheduler
    the files run in this process, tile progress included.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    todo = [Path(p) for p in paths if not (resume and info_path(p, out).is_file())]
    skipped = len(paths) - len(todo)
    results: list[dict] = []
    bar = tqdm(total=len(todo), desc="segment", unit="image", disable=not progress)
    if skipped and progress:
        bar.write(f"{skipped} finished image(s) skipped (resume)")
    if workers <= 1 and scheduler is None:
        for p in todo:
            tbar = tqdm(desc=p.name, unit="tile", leave=False, disable=not progress)

            def tick(done, total, tbar=tbar):
                tbar.total = total
                tbar.update(done - tbar.n)  # the bar shows tiles/s

            results.append(segment_file(p, out, opts, progress=tick))
            tbar.close()
            bar.update(1)
    else:
        from distributed import Client, LocalCluster, as_completed

        cluster = None
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        opts = SegmentOptions(**{**asdict(opts), "threads": opts.threads or 1})
        with Client(scheduler or cluster) as client:
            futures = [client.submit(segment_file, p, out, opts, pure=False) for p in todo]
            tiles, t0 = 0, time.perf_counter()
            for fut in as_completed(futures):
                results.append(fut.result())
                tiles += int(results[-1].get("seconds", {}).get("tiles", 1))
                bar.set_postfix(tiles_per_s=f"{tiles / (time.perf_counter() - t0):.2f}")
                bar.update(1)
        if cluster is not None:
            cluster.close()
    bar.close()
    return results
