"""Time one 1000x1000 tile through the semantic branch, the distance branch and the watershed.

Each stage of ``pipeline.segment`` is timed separately (median of --repeat runs) in fp32
and in bf16 (channels-last, folded BatchNorm), in one run, so the ratios compare like with like.
Uses a MoNuSeg test tile when --data is given, else a synthetic tile.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=None, help="a MoNuSeg-layout folder")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.runtime.pairs import load_pair
    from napari_prunuclei.runtime.pipeline import segment

    if a.data:
        from napari_prunuclei.io.dataset import NucleiDataset

        ds = NucleiDataset(a.data)
        rgb, _ = ds.load(ds.names("test")[0])
    else:
        from napari_prunuclei.nuclei.synthetic import synthetic_tile

        rgb, _ = synthetic_tile(1000, seed=0)
    rgb = rgb[:1000, :1000]
    pair = load_pair()
    results = {}
    for prec in ("fp32", "bf16"):
        segment(rgb, pair, device="cpu", precision=prec)  # warm-up
        runs = [segment(rgb, pair, device="cpu", precision=prec).info.seconds for _ in range(a.repeat)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("semantic", "distance", "watershed")}
        med["total"] = sum(med.values())
        results[prec] = med
    info = {"machine": cpu_name(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "tile": list(rgb.shape), "repeat": a.repeat, "seconds": results,
            "bf16_speedup_total": results["fp32"]["total"] / results["bf16"]["total"]}
    print(f"1000x1000 tile, {info['threads']} threads, median of {a.repeat}")
    print(f"{'precision':<10}{'semantic':>10}{'distance':>10}{'watershed':>11}{'total':>9}  (s)")
    for prec, m in results.items():
        print(f"{prec:<10}{m['semantic']:>10.3f}{m['distance']:>10.3f}{m['watershed']:>11.3f}{m['total']:>9.3f}")
    print(f"bf16 end-to-end speed-up over fp32: {info['bf16_speedup_total']:.2f}x")
    if a.json:
        a.json.write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
