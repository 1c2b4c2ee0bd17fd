"""Test-time augmentation for the dense pair? A pilot on the 4 held-back train images only (issue 21, item 1).

Each held-back image is run through the shipped dense pair (``segment()``, auto precision) once per
transform of the square's symmetry group (identity, the two flips, both, and the same after a 90-degree
rotation); each transform's probability and distance maps are turned back and averaged. Three rows, each
flooded by the shipped watershed rule over the same threshold grid as the shipped pair's tuning
(:func:`~napari_prunuclei.study.evaluation.tune_watershed`'s grid, best of each):

- **none**: the identity alone (the product as shipped);
- **flips**: the mean over the 4 flips (4 passes of both networks);
- **flips and rotations**: the mean over all 8 (8 passes).

It writes nothing into the package and never reads the test split; a row is worth shipping only if it
gains at least 0.005 held-back AJI (the rule of the other dense pilots), and then it costs 4 or 8 times
the networks' time, for dense and for every pruned pair alike.

    OMP_NUM_THREADS=1 python scripts/tta_pilot.py --data ../shared/data/monuseg2018 --json docs/training/tta_pilot.json
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from napari_prunuclei.base.machine import cpu_name
from napari_prunuclei.io.dataset import NucleiDataset
from napari_prunuclei.nuclei.metrics import score_instances
from napari_prunuclei.nuclei.watershed import WatershedParams, watershed_instances
from napari_prunuclei.pruning.oneshot import load_model
from napari_prunuclei.runtime.pairs import pair_from_models
from napari_prunuclei.runtime.pipeline import segment
from napari_prunuclei.study.evaluation import validation_names, write_json

FG = (0.4, 0.5, 0.6)
MARKER = (0.3, 0.4, 0.5, 0.6, 0.7)
MIN_SIZE = (10, 20, 40)
ROWS = {"none": 1, "flips": 4, "flips and rotations": 8}


def forward(a: np.ndarray, k: int) -> np.ndarray:
    """Transform ``k`` (0-7) of the square's symmetry group on the first two axes."""
    a = np.rot90(a, 1) if k >= 4 else a
    a = a[::-1] if k & 1 else a
    return a[:, ::-1] if k & 2 else a


def backward(a: np.ndarray, k: int) -> np.ndarray:
    """The inverse of :func:`forward`."""
    a = a[:, ::-1] if k & 2 else a
    a = a[::-1] if k & 1 else a
    return np.rot90(a, -1) if k >= 4 else a


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    names = validation_names(a.data)
    ds = NucleiDataset(a.data)
    pair = pair_from_models(load_model("semantic", "dense", 1), load_model("distance", "dense", 1))
    maps, truths, seconds = {}, {}, []
    for name in names:
        rgb, truths[name] = ds.load(name)
        for k in range(8):
            t = time.perf_counter()
            seg = segment(np.ascontiguousarray(forward(rgb, k)), pair, precision="auto", name=name)
            seconds.append(time.perf_counter() - t)
            maps[name, k] = (backward(seg.probability, k), backward(seg.distance, k))
        print(f"{name}: 8 passes", flush=True)
    rows = []
    for row, n in ROWS.items():
        avg = {name: tuple(np.mean([maps[name, k][i] for k in range(n)], axis=0) for i in (0, 1)) for name in names}
        best = None
        for f, m, s in itertools.product(FG, MARKER, MIN_SIZE):
            params = WatershedParams(f, m, s)
            per = [score_instances(truths[nm], watershed_instances(*avg[nm], params)).aji for nm in names]
            if best is None or np.mean(per) > best["aji"]:
                best = {"augmentation": row, "passes": n, "aji": float(np.mean(per)), **params.as_dict(),
                        "per_image_aji": dict(zip(names, map(float, per)))}
        rows.append(best)
        print(f"{row:<22} held-back AJI {best['aji']:.4f} (fg {best['fg_threshold']}, marker "
              f"{best['marker_threshold']}, min size {best['min_size']}) per image "
              + ", ".join(f"{v:.3f}" for v in best["per_image_aji"].values()), flush=True)
    if a.json:
        write_json(a.json, {"images": names, "model": "dense pair (shipped)", "cpu": cpu_name(),
                            "seconds_per_pass_median": round(float(np.median(seconds)), 3),
                            "seconds": round(time.perf_counter() - t0, 1), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
