"""Do channel-pruned models pay? End-to-end time of structured pairs against dense, same process.

    python bench/bench_structured.py [--data ../shared/data/monuseg2018] [--pairs channel-layerwise:4 ...]
                                     [--device cpu|cuda] [--repeat 5] [--json out.json]

For dense and each pair, ``pipeline.segment`` runs on one 1000x1000 tile (the first
MoNuSeg test image, or a synthetic one without --data), interleaved round by round so
that a busy machine slows every model alike; medians of --repeat rounds after a warm-up.
Reported: both branches, the watershed, end to end, and each pair's ratio to dense in the
same run, with the achieved CR and the MACs ratio from the registry. On CUDA it also
times the networks alone on a batch of ``--batch`` 1024x1024 tiles (bf16, channels-last),
which is what a slide run feeds them. ``--slide-size N``: also a N x N mosaic of the MoNuSeg
test tiles (``bench/make_large_image.py``'s layout, in memory), segmented tile by tile by dense
and each pair one after the other, reporting the wall time against dense and the agreement
with dense on the slide (nuclei count, foreground Dice).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from napari_prunuclei.base.constants import CHANNEL_SCHEMES
from napari_prunuclei.base.machine import cpu_name
from napari_prunuclei.models.zoo import registry
from napari_prunuclei.runtime.pairs import load_pair
from napari_prunuclei.runtime.pipeline import segment
from napari_prunuclei.study.timing import benchmark_tile, time_segment


def zoo_channel_pairs() -> list[tuple[str, float]]:
    return sorted({(e["scheme"], float(e["cr"])) for e in registry()["models"] if e["scheme"] in CHANNEL_SCHEMES})


def parse_pair(text: str) -> tuple[str, float]:
    scheme, _, cr = text.rpartition(":")
    return scheme, float(cr)


@torch.inference_mode()
def time_networks(pairs: dict, device: str, batch: int, repeat: int) -> dict:
    """Median seconds of both networks on a batch of 1024x1024 tiles (bf16, channels-last)."""
    dev = torch.device(device)
    x = torch.rand(batch, 3, 1024, 1024, device=dev).contiguous(memory_format=torch.channels_last)
    out = {}
    for label, pair in pairs.items():
        nets = [m.to(dev).to(memory_format=torch.channels_last).eval() for m in (pair.semantic, pair.distance)]
        times = []
        for i in range(repeat + 2):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                for n in nets:
                    n(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - t)
        s = statistics.median(times)
        out[label] = {"networks_s": s, "mp_per_s": batch * 1024 * 1024 / 1e6 / s}
        for n in nets:
            n.to("cpu")
    return out


def time_slide(pairs: dict, a) -> list[dict]:
    """Wall time of a tiled run on a mosaic for dense and each pair, and agreement with dense."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from make_large_image import mosaic, sources

    img = mosaic(sources(a.data), a.slide_size)
    mp = a.slide_size**2 / 1e6
    out, dense_fg, dense_s = [], None, None
    print(f"\n# slide: {a.slide_size}x{a.slide_size} mosaic ({mp:.0f} MP) of MoNuSeg test tiles, tiled, one run each")
    print("| model | wall s | MP/s | time vs dense | nuclei | nuclei vs dense | foreground Dice vs dense |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, pair in pairs.items():
        t = time.perf_counter()
        seg = segment(img, pair, device=a.device, precision=a.precision, tiling="tiled")
        wall = time.perf_counter() - t
        fg = seg.labels > 0
        if dense_fg is None:
            dense_fg, dense_s, dense_n = fg, wall, seg.n_nuclei
        dice = 2 * np.count_nonzero(fg & dense_fg) / max(1, np.count_nonzero(fg) + np.count_nonzero(dense_fg))
        row = {"model": label, "wall_s": wall, "mp_per_s": mp / wall, "ratio": wall / dense_s,
               "n_nuclei": seg.n_nuclei, "nuclei_ratio": seg.n_nuclei / max(1, dense_n), "fg_dice": dice}
        out.append(row)
        print(f"| {label} | {wall:.1f} | {mp / wall:.2f} | {row['ratio']:.2f}× | {seg.n_nuclei} | "
              f"{row['nuclei_ratio']:.3f} | {dice:.4f} |", flush=True)
        del seg
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--pairs", nargs="*", default=None, help="scheme:CR (default: every channel pair in the zoo)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8, help="CUDA: tiles per batch for the networks-only timing")
    ap.add_argument("--slide-size", type=int, default=0, help="also time a N x N mosaic (needs --data)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    wanted = [parse_pair(p) for p in a.pairs] if a.pairs else zoo_channel_pairs()
    pairs = {"dense": load_pair()}
    info = {}
    for scheme, cr in wanted:
        pair = load_pair(scheme, cr)
        label = pair.label
        pairs[label] = pair
        zi = getattr(pair.semantic, "zoo_info", {})
        info[label] = {"scheme": scheme, "cr": cr, "fine_tuned": pair.spec.fine_tuned,
                       "achieved_cr": zi.get("achieved_cr"), "macs_ratio": zi.get("macs_ratio")}
    rgb = benchmark_tile(a.data)
    e2e = time_segment(pairs, rgb, repeat=a.repeat, device=a.device, precision=a.precision)
    nets = time_networks(pairs, a.device, a.batch, max(3, a.repeat)) if a.device.startswith("cuda") else {}
    d = e2e["dense"]
    name = torch.cuda.get_device_name() if a.device.startswith("cuda") else cpu_name()
    print(f"# {name}, torch {torch.__version__}, {torch.get_num_threads()} threads, device {a.device}, "
          f"precision {a.precision}; 1000x1000 tile, median of {a.repeat} interleaved rounds")
    print("| model | achieved CR | MACs ÷ | branches s | watershed s | end to end s | time vs dense |"
          + (" networks MP/s (batch) | networks vs dense |" if nets else ""))
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if nets else ""))
    rows = []
    for label, r in e2e.items():
        i = info.get(label, {"achieved_cr": 1.0, "macs_ratio": 1.0})
        row = {"model": label, **i, **r, "ratio": r["total_s"] / d["total_s"]}
        line = (f"| {label} | {(i['achieved_cr'] or float('nan')):.2f} | {(i['macs_ratio'] or float('nan')):.2f} | "
                f"{r['branches_s']:.3f} | {r['watershed_s']:.3f} | {r['total_s']:.3f} | {row['ratio']:.2f}× |")
        if nets:
            row.update(nets[label])
            row["networks_ratio"] = nets[label]["networks_s"] / nets["dense"]["networks_s"]
            line += f" {nets[label]['mp_per_s']:.0f} | {row['networks_ratio']:.2f}× |"
        rows.append(row)
        print(line, flush=True)
    slide_rows = time_slide(pairs, a) if a.slide_size else []
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"device": name, "machine": platform.machine(), "torch": torch.__version__,
                                      "threads": torch.get_num_threads(), "rows": rows, "slide": slide_rows},
                                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
