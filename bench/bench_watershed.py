"""The watershed's cost per megapixel: ``watershed_instances`` against its plain definition.

    python bench/bench_watershed.py --data ../shared/data/monuseg2018 --json out.json

The dense pair's maps of every MoNuSeg test tile (1000x1000) are computed once; then, in one
process and interleaved (``--repeat`` rounds, best of each), two post-processings run on them:

- ``plain``: ``skimage.segmentation.watershed(-dist, markers, mask=fg)`` over the whole
  foreground, small objects dropped, ids made sequential: the definition, as the pipeline ran it
  before issue 14 (``tests/reference_tiled.watershed_reference``);
- ``ours``: :func:`napari_prunuclei.nuclei.watershed.watershed_instances`, which floods only the
  foreground components that hold two or more markers and writes the rest from a table.

Labels must be identical on every tile (checked). Rates are megapixels per second of one
process: the per-process rate the tiled pipeline's worker pool multiplies by its workers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="a MoNuSeg-layout folder (else synthetic tiles)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.nuclei.watershed import WATERSHED_RULE, watershed_instances
    from napari_prunuclei.runtime.pairs import load_pair
    from napari_prunuclei.runtime.pipeline import segment
    from reference_tiled import watershed_reference as plain_watershed

    pair = load_pair()
    if a.data:
        from napari_prunuclei.io.dataset import NucleiDataset

        ds = NucleiDataset(a.data)
        images = [ds.load(n)[0] for n in ds.names("test")]
    else:
        from napari_prunuclei.nuclei.synthetic import synthetic_tile

        images = [synthetic_tile(1000, seed=s)[0] for s in range(4)]
    maps = []
    for img in images:
        seg = segment(img, pair, tiling="whole")
        maps.append((seg.probability, seg.distance))
    mp = sum(p.size for p, _ in maps) / 1e6
    funcs = {"plain": plain_watershed, "ours": watershed_instances}
    best = {k: float("inf") for k in funcs}
    for _ in range(a.repeat):
        for name, f in funcs.items():
            t0 = time.perf_counter()
            for p, d in maps:
                f(p, d, pair.params)
            best[name] = min(best[name], time.perf_counter() - t0)
    identical = all(np.array_equal(plain_watershed(p, d, pair.params), watershed_instances(p, d, pair.params))
                    for p, d in maps)
    fg = float(np.mean([np.mean(p > pair.params.fg_threshold) for p, _ in maps]))
    out = {"machine": cpu_name(), "watershed_rule": WATERSHED_RULE, "load": os.getloadavg()[0],
           "tiles": len(maps), "megapixels": mp, "params": pair.params.as_dict(),
           "foreground_fraction": fg, "repeat": a.repeat, "identical_labels": identical,
           "seconds": best, "mp_per_s": {k: mp / v for k, v in best.items()},
           "speedup": best["plain"] / best["ours"]}
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
