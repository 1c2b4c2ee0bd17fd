"""Which branch bounds the dense pair's AJI? An oracle on the 4 held-back train images only (issue 21, item 1).

The shipped dense pair is run once on each held-back image (``segment()``, auto precision); then each branch's
map is replaced by its own training target made from the ground truth (the semantic branch's: 1 on nuclei,
0 elsewhere; the distance branch's: :func:`~napari_prunuclei.io.dataset.distance_target`), one at a time and
both, and flooded by the shipped watershed rule over the threshold grid of the shipped pair's tuning (best of
each). A branch whose perfect map lifts AJI most is where a stronger training is worth its CPU hours.

It trains nothing, writes nothing into the package and never reads the test split.

    OMP_NUM_THREADS=1 python scripts/branch_oracle.py --data ../shared/data/monuseg2018 \
        --json docs/training/branch_oracle.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_prunuclei.base.machine import cpu_name
from napari_prunuclei.io.dataset import distance_target
from napari_prunuclei.pruning.oneshot import load_model
from napari_prunuclei.runtime.pairs import pair_from_models
from napari_prunuclei.study.evaluation import Prediction, predict_dataset, tune_watershed, validation_names, write_json

#: (row, semantic from the ground truth, distance from the ground truth)
ROWS = (("shipped maps", False, False), ("ground-truth semantic", True, False),
        ("ground-truth distance", False, True), ("both from the ground truth", True, True))


def with_targets(preds: list[Prediction], semantic: bool, distance: bool) -> list[Prediction]:
    """The predictions with the chosen branches' maps replaced by their targets from the ground truth."""
    out = []
    for p in preds:
        maps = {}
        if semantic:
            maps["probability"] = (np.asarray(p.truth) > 0).astype(np.float32)
        if distance:
            maps["distance"] = distance_target(p.truth)
        out.append(Prediction(p.name, replace(p.segmentation, **maps), p.truth, p.distance_mse))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    t0 = time.perf_counter()
    names = validation_names(a.data)
    pair = pair_from_models(load_model("semantic", "dense", 1), load_model("distance", "dense", 1))
    preds = predict_dataset(a.data, names, pair)
    rows = []
    for label, semantic, distance in ROWS:
        best, grid = tune_watershed(with_targets(preds, semantic, distance))
        top = max(grid, key=lambda g: g["aji"])
        rows.append({"row": label, "best": best.as_dict(), "aji": top["aji"], "pq": top["pq"], "dice": top["dice"]})
        print(f"{label:<28} AJI {top['aji']:.4f}  PQ {top['pq']:.4f}  Dice {top['dice']:.4f}", flush=True)
    if a.json:
        command = shlex.join(["python", "scripts/branch_oracle.py", *sys.argv[1:]])
        write_json(a.json, {"command": command, "images": names, "rows": rows,
                            "cpu": cpu_name(), "seconds": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
