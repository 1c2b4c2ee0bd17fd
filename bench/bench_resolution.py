"""Resolution-aware inference on real tissue at 20x: MoNuSeg test halved (0.5 µm/px), as a scanner would give it.

Each of the 14 MoNuSeg 2018 test tiles (40x, about 0.25 µm/px) is halved (anti-aliased) and written as a
TIFF whose resolution tags say 0.5 µm/px; its ground truth is halved the same way (nearest). Three runs of
the dense pair, each scored against the halved ground truth (AJI):

- ``native``: the 40x tile as it is, its labels then halved like the ground truth (the reference);
- ``read``: the 20x TIFF with the pixel size read from its tags (resampled to the models' 0.25 µm/px);
- ``as_40x``: the same TIFF taken as if it were 40x (``pixel_size=0.25``: what main did before).

    python bench/bench_resolution.py --data ../shared/data/monuseg2018 --json docs/results/resolution_20x.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def halve(a: np.ndarray, labels: bool) -> np.ndarray:
    from skimage.transform import resize

    shape = (a.shape[0] // 2, a.shape[1] // 2)
    if labels:
        return resize(a, shape, order=0, preserve_range=True, anti_aliasing=False).astype(np.int32)
    return np.clip(np.rint(resize(a, shape, order=1, anti_aliasing=True, preserve_range=True)), 0, 255).astype(np.uint8)


def paired_ci(diff: np.ndarray, n_boot: int = 10000, seed: int = 0) -> list[float]:
    """95 % bootstrap interval of the mean of paired per-image differences."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def main() -> int:
    import tifffile
    import torch

    from napari_prunuclei import segment
    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.io.dataset import NucleiDataset
    from napari_prunuclei.io.images import open_image
    from napari_prunuclei.io.pixel_size import read_pixel_size
    from napari_prunuclei.nuclei.metrics import aji

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    ds = NucleiDataset(a.data)
    names = ds.names("test")[: a.limit]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rgb, truth = ds.load(name)
            truth_h = halve(truth, labels=True)
            path = Path(tmp) / f"{name}_20x.tif"
            tifffile.imwrite(path, halve(rgb, labels=False), photometric="rgb", resolution=(2e4, 2e4),
                             resolutionunit="CENTIMETER")  # 20,000 px per cm = 0.5 µm per px
            px = read_pixel_size(path)
            image = np.asarray(open_image(path))
            t0 = time.perf_counter()
            native = halve(segment(rgb, device="cpu").labels, labels=True)
            t1 = time.perf_counter()
            read = segment(image, device="cpu", pixel_size=px)
            t2 = time.perf_counter()
            as_40x = segment(image, device="cpu", pixel_size=0.25).labels
            t3 = time.perf_counter()
            rows.append({"name": name, "pixel_size_read": px, "aji_native": aji(truth_h, native),
                         "aji_read": aji(truth_h, read.labels), "aji_as_40x": aji(truth_h, as_40x),
                         "seconds": {"native": t1 - t0, "read": t2 - t1, "as_40x": t3 - t2},
                         "resolution": read.info.resolution})
            r = rows[-1]
            print(f"{name}: native {r['aji_native']:.4f}  read {r['aji_read']:.4f}  as 40x {r['aji_as_40x']:.4f}",
                  flush=True)
    m = {k: float(np.mean([r[f"aji_{k}"] for r in rows])) for k in ("native", "read", "as_40x")}
    d = np.array([r["aji_read"] - r["aji_as_40x"] for r in rows])
    out = {"command": "python bench/bench_resolution.py " + " ".join(sys.argv[1:]), "cpu": cpu_name(),
           "n_images": len(rows), "mean_aji": m, "read_over_native": m["read"] / m["native"],
           "read_minus_as_40x": {"mean": float(d.mean()), "ci95_paired_bootstrap": paired_ci(d)},
           "per_image": rows}
    print(json.dumps({k: out[k] for k in ("mean_aji", "read_over_native", "read_minus_as_40x")}, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
