"""Batch throughput: the same 8 tiles with 1 and with 2 single-threaded dask workers, in one run.

    python bench/bench_batch.py --data ../shared/data/monuseg2018 --out docs/performance

Checks that the dask path gives the serial path's labels, and reports tiles/s and the
ratio (2 workers / 1 worker). Each worker is a process with one torch thread.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a MoNuSeg-layout folder")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("docs") / "performance")
    a = ap.parse_args()
    from distributed import Client, LocalCluster

    from napari_prunuclei.io.dataset import NucleiDataset
    from napari_prunuclei.runtime.batch import segment_files

    ds = NucleiDataset(a.data)
    names = (ds.names("test") + ds.names("train"))[: a.n]
    tmp = Path(tempfile.mkdtemp(prefix="prunuclei_batch_"))
    for n in names:
        tifffile.imwrite(tmp / f"{n}.tif", ds.load(n)[0], tile=(256, 256))
    paths = sorted(tmp.glob("*.tif"))
    from napari_prunuclei.runtime.request import SegmentRequest

    opts = SegmentRequest(device="cpu")
    rows = {}
    for workers in (1, 2):
        out = tmp / f"out{workers}"
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
                Client(c) as client:
            client.run(lambda: __import__("napari_prunuclei.runtime.pipeline").pipeline.load_pair())
            # warm-up on one tile (imports, model loading), then the timed batch
            segment_files(paths[:1], tmp / f"warm{workers}", opts, scheduler=c.scheduler_address, progress=False,
                          threads=1)
            t = time.perf_counter()
            segment_files(paths, out, opts, scheduler=c.scheduler_address, progress=False, threads=1)
            secs = time.perf_counter() - t
        rows[workers] = {"seconds": secs, "tiles_per_s": len(paths) / secs}
        print(f"{workers} worker(s): {secs:.1f} s, {len(paths) / secs:.3f} tiles/s", flush=True)
    same = all(np.array_equal(tifffile.imread(tmp / "out1" / f"{p.stem}_labels.tif"),
                              tifffile.imread(tmp / "out2" / f"{p.stem}_labels.tif")) for p in paths)
    res = {"tiles": len(paths), "tile_shape": list(ds.load(names[0])[0].shape), "workers": rows,
           "ratio_2_over_1": rows[2]["tiles_per_s"] / rows[1]["tiles_per_s"], "same_labels": same}
    print(json.dumps(res, indent=1))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "batch.json").write_text(json.dumps(res, indent=1))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
