"""Which channel multiple do the kernels like? Forward time of channel-pruned branches vs dense.

For each multiple (1 = no rounding) and CR, the semantic branch is channel-pruned
(channel-layerwise and channel-networkwide, no fine-tuning: timing only) and one
forward pass on a 1024x1024 crop is timed with the inference path's precision,
interleaved with the dense branch in the same process (median of ``--repeats``).
    python bench/bench_channels.py [--crs 4 8 16] [--multiples 1 4 8 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from napari_prunuclei.base.machine import cpu_name
from napari_prunuclei.models.inference import resolve_precision
from napari_prunuclei.pruning.channels import CHANNEL_SCHEMES, channel_prune, macs
from napari_prunuclei.pruning.oneshot import load_model


def forward_time(model, x, precision: str, repeats: int) -> list[float]:
    model = model.to(memory_format=torch.channels_last).eval()
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
    times = []
    with torch.inference_mode(), ctx:
        model(x)  # warm-up
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crs", type=float, nargs="+", default=[4, 8, 16])
    ap.add_argument("--multiples", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    precision = resolve_precision(a.precision, torch.device("cpu"))
    dense = load_model("semantic")
    x = torch.rand(1, 3, a.size, a.size).contiguous(memory_format=torch.channels_last)
    rows = []
    print(f"# {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads, precision {precision}, "
          f"{a.size}x{a.size}")
    print("| scheme | CR | multiple | achieved CR | MACs ÷ | dense s | pruned s | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for scheme in CHANNEL_SCHEMES:
        for cr in a.crs:
            for mult in a.multiples:
                pruned, plan = channel_prune(dense, scheme, cr, multiple=mult)
                td, tp_ = [], []
                for _ in range(a.repeats):  # interleaved
                    td += forward_time(dense, x, precision, 1)
                    tp_ += forward_time(pruned, x, precision, 1)
                d, p = statistics.median(td), statistics.median(tp_)
                row = {"scheme": scheme, "cr": cr, "multiple": mult, "achieved_cr": plan.achieved_cr,
                       "macs_ratio": macs(dense.config) / macs(pruned.config), "dense_s": d, "pruned_s": p,
                       "speedup": d / p, "channels": list(plan.channels)}
                rows.append(row)
                print(f"| {scheme} | {cr:g} | {mult} | {plan.achieved_cr:.2f} | {row['macs_ratio']:.2f} | "
                      f"{d:.3f} | {p:.3f} | {d / p:.2f}× |", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cpu": cpu_name(), "machine": platform.machine(), "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "precision": precision, "size": a.size,
                       "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
