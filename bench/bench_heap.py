"""What keeping freed memory (``heap.keep_freed_memory``) does to the networks on a CPU.

    python bench/bench_heap.py --data ../shared/data/monuseg2018 --tiles 9 --rounds 2 --json out.json

Both branches on the same ``--tiles`` crops of 1280 x 1280 (a tile's core + halo), in passes
that alternate: glibc's defaults (every large block ``mmap``-ed and returned), then freed
memory kept, ``--rounds`` times, in one process (round 0's first pass is glibc untouched; the
later default passes run with the thresholds a kept pass leaves: mmap above 32 MiB, trim above
64 MiB). ``--thread``: in a worker thread, as the widget runs (glibc maps blocks over 64 MiB
there whatever the setting). ``--pause`` seconds between tiles stand for
the other stages of a run (a host may reclaim memory freed in the meantime). Each pass
reports its seconds and the page faults it took (``ru_minflt``). A 10000 x 10000 array
allocated and written after each pass (the labels of a 100 MP run) is timed as well.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def one_pass(pair, crops, pause: float, dev, prec) -> dict:
    from napari_prunuclei.models.inference import predict_pair

    f0, net = _faults(), 0.0
    for c in crops:
        t0 = time.perf_counter()
        predict_pair(pair.semantic, pair.distance, c[None], device=dev, precision=prec)
        net += time.perf_counter() - t0
        time.sleep(pause)
    faults = _faults() - f0
    t0 = time.perf_counter()
    labels = np.zeros((10000, 10000), np.int32)
    labels.reshape(-1)[::1024] = 1  # a write into every 4 KiB page, as stitching does
    alloc = time.perf_counter() - t0
    del labels
    return {"seconds": net, "s_per_tile": net / len(crops), "page_faults": faults,
            "faults_per_tile": faults / len(crops), "labels_100mp_alloc_write_s": alloc}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="a MoNuSeg-layout folder (else synthetic tiles)")
    ap.add_argument("--tiles", type=int, default=9)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pause", type=float, default=0.0, help="seconds between tiles")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--thread", action="store_true",
                    help="run the passes in a thread other than the main one (as the widget's runs are)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    import torch
    from make_large_image import mosaic, sources

    from napari_prunuclei.base.heap import _glibc, keep_freed_memory
    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.models.inference import predict_pair, resolve_precision
    from napari_prunuclei.runtime.pairs import load_pair

    if _glibc() is None:
        sys.exit("bench_heap: the allocator is not glibc's, or MALLOC_*/GLIBC_TUNABLES/PRUNUCLEI_KEEP_HEAP "
                 "are set: nothing to compare")
    side = 1000 * int(np.ceil(np.sqrt(a.tiles))) + 280
    image = mosaic(sources(a.data), side)
    spots = [(r, c) for r in range(0, side - 1279, 1000) for c in range(0, side - 1279, 1000)][: a.tiles]
    crops = [np.ascontiguousarray(image[r : r + 1280, c : c + 1280]) for r, c in spots]
    pair = load_pair()
    dev = torch.device("cpu")
    prec = resolve_precision(a.precision, dev)
    predict_pair(pair.semantic, pair.distance, crops[0][None], device=dev, precision=prec)  # warm-up
    rows = []
    for r in range(a.rounds):
        for kept in (False, True):
            def work(kept=kept):
                if kept:
                    with keep_freed_memory():
                        return one_pass(pair, crops, a.pause, dev, prec)
                return one_pass(pair, crops, a.pause, dev, prec)

            if a.thread:
                with ThreadPoolExecutor(1) as ex:
                    row = ex.submit(work).result()
            else:
                row = work()
            row.update(round=r, kept=kept)
            rows.append(row)
            print(f"round {r} {'kept   ' if kept else 'default'}: {row['seconds']:.2f} s "
                  f"({row['s_per_tile']:.3f} s/tile), {row['faults_per_tile']:.0f} page faults/tile; "
                  f"100 MP labels allocated and written in {row['labels_100mp_alloc_write_s']:.3f} s", flush=True)
    mean = {k: float(np.mean([x["seconds"] for x in rows if x["kept"] == k])) for k in (False, True)}
    print(f"kept / default: {mean[True] / mean[False]:.3f} of the networks' time")
    if a.json:
        a.json.write_text(json.dumps({"machine": cpu_name(), "torch": torch.__version__, "precision": prec,
                                      "threads": torch.get_num_threads(), "tiles": a.tiles, "pause": a.pause,
                                      "thread": a.thread,
                                      "passes": rows, "kept_over_default": mean[True] / mean[False]}, indent=1))


if __name__ == "__main__":
    main()
