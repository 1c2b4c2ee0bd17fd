"""Which watershed rule for the dense pair? A pilot on the 4 held-back train images only (issue 21, item 1).

The rule shipped when the pilot ran (watershed rule 1, row "shipped"): foreground = probability above
``fg_threshold``; markers = connected parts of the distance map above ``marker_threshold`` inside it. Rule 2,
shipped since (:func:`~napari_prunuclei.nuclei.watershed.watershed_instances`), is the "own holes" row.
Two alternatives, each with its own grid of thresholds (the best of each grid is reported, as the shipped
rule's tuning does):

- **holes filled**: the foreground's holes filled before flooding (``scipy.ndimage.binary_fill_holes``);
- **nuclei's own holes filled**: after flooding, a hole that one nucleus alone encloses becomes that nucleus's
  (a gap ringed by several nuclei, such as a lumen, stays background);
- **h-maxima markers**: markers = the distance map's regional maxima of height ``h`` (``skimage``'s
  ``h_maxima``) above ``marker_threshold``, single-pixel markers kept.

The dense pair's maps are computed once (``segment()``, auto precision); every rule floods the same maps.
Each rule's row also gives the share of its nuclei that have a hole (pixels enclosed by that nucleus alone),
at its best thresholds.

    python scripts/watershed_pilot.py --data ../shared/data/monuseg2018 --json docs/training/watershed_pilot.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from napari_prunuclei.base.machine import cpu_name
from napari_prunuclei.nuclei.metrics import score_instances
from napari_prunuclei.nuclei.watershed import drop_small, fill_own_holes, own_holes
from napari_prunuclei.pruning.oneshot import load_model
from napari_prunuclei.runtime.pairs import pair_from_models
from napari_prunuclei.study.evaluation import predict_dataset, validation_names

FG = (0.4, 0.5, 0.6)
MIN_SIZE = (10, 20, 40)
RULES = {  # name: (fill holes: False, True (the foreground's) or "nuclei", h of h-maxima or 0, marker thresholds)
    "shipped: threshold markers": (False, 0.0, (0.3, 0.4, 0.5, 0.6, 0.7)),
    "holes filled": (True, 0.0, (0.3, 0.4, 0.5, 0.6, 0.7)),
    "nuclei's own holes filled": ("nuclei", 0.0, (0.3, 0.4, 0.5, 0.6, 0.7)),
    "h-maxima markers, h 0.02": (False, 0.02, (0.05, 0.2, 0.3, 0.4)),
    "h-maxima markers, h 0.05": (False, 0.05, (0.05, 0.2, 0.3, 0.4)),
    "h-maxima markers, h 0.1": (False, 0.1, (0.05, 0.2, 0.3, 0.4)),
    "h-maxima markers, h 0.2": (False, 0.2, (0.05, 0.2, 0.3, 0.4)),
}


def holed_share(labels: np.ndarray) -> float:
    """The share of nuclei with a hole of their own."""
    n = len(np.unique(labels)) - 1
    return len(set(own_holes(labels)[1].tolist()) - {0}) / n if n else 0.0


def flood(prob: np.ndarray, dist: np.ndarray, fg_t: float, mk_t: float, min_size: int, fill: bool | str,
          h: float) -> np.ndarray:
    """Instance labels by one rule, written out plainly (``h`` = 0 and ``fill`` False: watershed rule 1, shipped
    until zoo v2; ``fill`` "nuclei": the own-holes rule, shipped since as rule 3)."""
    fg = prob > fg_t
    if fill is True:
        fg = ndi.binary_fill_holes(fg)
    if h:
        seeds = h_maxima(np.round(dist * 1000).astype(np.int32), int(round(h * 1000))).astype(bool)
        markers = ndi.label(seeds & fg & (dist > mk_t))[0]
    else:
        markers = drop_small(ndi.label((dist > mk_t) & fg)[0], max(1, min_size // 4))
    labels = drop_small(watershed(-dist, markers, mask=fg), min_size)
    return fill_own_holes(labels) if fill == "nuclei" else labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    names = validation_names(a.data)
    pair = pair_from_models(load_model("semantic", "dense", 1), load_model("distance", "dense", 1))
    preds = predict_dataset(a.data, names, pair, precision="auto")
    rows = []
    for rule, (fill, h, markers) in RULES.items():
        best = None
        for f, m, s in itertools.product(FG, markers, MIN_SIZE):
            labels = [flood(p.segmentation.probability, p.segmentation.distance, f, m, s, fill, h) for p in preds]
            per = [score_instances(p.truth, lab).aji for p, lab in zip(preds, labels)]
            if best is None or np.mean(per) > best["aji"]:
                best = {"rule": rule, "aji": float(np.mean(per)), "fg_threshold": f, "marker_threshold": m,
                        "min_size": s, "per_image_aji": dict(zip(names, map(float, per))),
                        "nuclei_with_a_hole": float(np.mean([holed_share(lab) for lab in labels]))}
        rows.append(best)
        print(f"{rule:<30} held-back AJI {best['aji']:.4f} (fg {best['fg_threshold']}, marker "
              f"{best['marker_threshold']}, min size {best['min_size']}); nuclei with a hole "
              f"{100 * best['nuclei_with_a_hole']:.1f} %", flush=True)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump({"images": names, "model": "dense pair (shipped)", "cpu": cpu_name(),
                       "seconds": round(time.perf_counter() - t0, 1), "rules": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
