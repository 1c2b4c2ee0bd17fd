"""Speed and memory of nuclei segmentation on this machine, as ratios measured in one run.

    python bench/bench_speed.py --data ../shared/data/monuseg2018 --out docs/performance

1. End to end on a 1000x1000 tile (``pipeline.segment``: both branches + watershed, median
   of --repeat) for the dense model in fp32 and in the automatic precision (bf16 where
   the CPU has native bf16), and for both pruned schemes at every CR; branch and watershed
   times apart. Beside it, the network alone in plain fp32 eager PyTorch (NCHW, no
   folding), the baseline of the library's inference path.
2. Sparse inference: one convolution of the pruned model as a sparse (CSR) matrix
   product over im2col, against the dense convolution, per CR.
3. The floor implied by the model's multiply-adds at the measured GEMM rate.
4. Peak memory (RSS of a child process) of tiled segmentation against image size.
Writes speed.json and speed.md into --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_prunuclei.base.constants import DEFAULT_CRS

CRS = list(DEFAULT_CRS)


def _tile(data: Path | None) -> np.ndarray:
    from napari_prunuclei.study.timing import benchmark_tile

    return benchmark_tile(data)


@torch.no_grad()
def _plain_fp32(model, rgb: np.ndarray) -> np.ndarray:
    """The baseline: fp32 eager, default memory layout, padded to the network's multiple."""
    mult = model.config.min_multiple
    h, w = rgb.shape[:2]
    x = np.pad(rgb, ((0, (-h) % mult), (0, (-w) % mult), (0, 0)), mode="reflect")
    x = torch.from_numpy(x).permute(2, 0, 1)[None].float().div_(255.0).contiguous()
    return torch.sigmoid(model.eval().to(memory_format=torch.contiguous_format)(x))[0, 0, :h, :w].numpy()


def _time_e2e(pair, rgb, precision: str, repeat: int) -> dict:
    """Median stage times of ``pipeline.segment`` on one tile."""
    from napari_prunuclei.runtime.pipeline import segment

    segment(rgb, pair, device="cpu", precision=precision)  # warm-up
    runs = [segment(rgb, pair, device="cpu", precision=precision) for _ in range(repeat)]
    br = statistics.median(r.info.seconds["semantic"] + r.info.seconds["distance"] for r in runs)
    ws = statistics.median(r.info.seconds["watershed"] for r in runs)
    mp = rgb.shape[0] * rgb.shape[1] / 1e6
    return {"branches_s": br, "watershed_s": ws, "total_s": br + ws, "mp_per_s": mp / (br + ws),
            "n_nuclei": runs[-1].n_nuclei, "precision": runs[-1].info.precision}


def _time_eager_branches(pair, rgb, repeat: int) -> float:
    """Median time of both networks alone in plain fp32 eager PyTorch (the baseline)."""
    _plain_fp32(pair.semantic, rgb)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _plain_fp32(pair.semantic, rgb), _plain_fp32(pair.distance, rgb)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _macs(model, shape=(1, 3, 1008, 1008), nonzero_only: bool = False) -> int:
    """Multiply-adds of the convolutions for one input of ``shape`` (only those with a non-zero weight)."""
    total = [0]

    def hook(mod, inp, out):
        kh, kw = mod.kernel_size
        density = float((mod.weight != 0).float().mean()) if nonzero_only else 1.0
        if isinstance(mod, torch.nn.ConvTranspose2d):
            total[0] += int(inp[0].numel() * mod.out_channels * kh * kw * density)
        else:
            total[0] += int(out.numel() * mod.in_channels // mod.groups * kh * kw * density)

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        model(torch.zeros(shape))
    for h in hs:
        h.remove()
    return total[0]


def _zero_channels(model) -> dict:
    """Whole output / input channels of the 3x3 convolutions whose weights are all zero (removable exactly)."""
    out = inp = n_out = n_in = 0
    for mod in model.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and mod.weight.shape[-1] > 1:
            w = mod.weight.transpose(0, 1) if isinstance(mod, torch.nn.ConvTranspose2d) else mod.weight
            out += int((w.abs().sum((1, 2, 3)) == 0).sum())
            inp += int((w.abs().sum((0, 2, 3)) == 0).sum())
            n_out += w.shape[0]
            n_in += w.shape[1]
    return {"zero_out": out, "out": n_out, "zero_in": inp, "in": n_in}


def _gemm_rate(dtype) -> float:
    a = torch.randn(4096, 4096, dtype=dtype)
    b = torch.randn(4096, 4096, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(3):
        a @ b
    return 3 * 2 * 4096**3 / (time.perf_counter() - t)


@torch.no_grad()
def _sparse_layer(model, repeat: int = 3) -> dict:
    """The decoder's largest 3x3 convolution at full resolution (256x256 crop of input scale), dense vs CSR."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    name, conv = max(convs, key=lambda nm: nm[1].weight.numel())
    x = torch.randn(1, conv.in_channels, 128, 128)
    w = conv.weight.reshape(conv.out_channels, -1)
    density = float((w != 0).float().mean())
    cols = torch.nn.functional.unfold(x, 3, padding=1)[0]  # (C*9, H*W)
    csr = w.to_sparse_csr()

    def t(f):
        f()
        ts = []
        for _ in range(repeat):
            s = time.perf_counter()
            f()
            ts.append(time.perf_counter() - s)
        return min(ts)

    xc = x.contiguous(memory_format=torch.channels_last)
    convc = conv.to(memory_format=torch.channels_last)

    def dense_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            convc(xc)

    return {"layer": name, "shape": list(conv.weight.shape), "density": density,
            "dense_fp32_conv_s": t(lambda: conv(x)), "dense_bf16_conv_s": t(dense_bf16),
            "csr_fp32_im2col_s": t(lambda: csr @ torch.nn.functional.unfold(x, 3, padding=1)[0]),
            "im2col_only_s": t(lambda: torch.nn.functional.unfold(x, 3, padding=1)),
            "dense_gemm_fp32_im2col_s": t(lambda: w @ cols)}


MEM_CHILD = r"""
import resource, sys, numpy as np, tifffile, zarr
from napari_prunuclei.io.images import open_image
from napari_prunuclei.runtime.pairs import load_pair
from napari_prunuclei.runtime.pipeline import segment
img = open_image(sys.argv[1]); h, w = img.shape[:2]
out = zarr.open_array(sys.argv[2], mode="w", shape=(h, w), chunks=(1024, 1024), dtype="int32", fill_value=0)
segment(img, load_pair(), out=out, device="cpu", tiling="tiled")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _memory(sizes_mp: list[float], data: Path | None, tmp: Path) -> list[dict]:
    rows = []
    tmp.mkdir(parents=True, exist_ok=True)
    for mp in sizes_mp:
        side = int(round((mp * 1e6) ** 0.5))
        img = tmp / f"slide_{side}.tif"
        if not img.is_file():
            if data is None:
                raise SystemExit("--data is needed for the memory part")
            subprocess.run([sys.executable, str(Path(__file__).with_name("make_large_image.py")), "--data", str(data),
                            "--size", str(side), "--out", str(img)], check=True, capture_output=True)
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", MEM_CHILD, str(img), str(tmp / f"labels_{side}.zarr")],
                           check=True, capture_output=True, text=True)
        rows.append({"megapixels": side * side / 1e6, "side": side, "peak_rss_mb": int(r.stdout.split()[-1]) / 1024,
                     "seconds": time.perf_counter() - t})
        print(f"  {rows[-1]}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="a MoNuSeg-layout folder (else a synthetic tile)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--crs", type=float, nargs="*", default=CRS)
    ap.add_argument("--memory-mp", type=float, nargs="*", default=[1, 4, 16, 64])
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/prunuclei_bench"))
    ap.add_argument("--out", type=Path, default=Path("docs") / "performance")
    ap.add_argument("--memory-only", action="store_true", help="only part 4, into memory.json/memory.md")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from napari_prunuclei.pruning.oneshot import load_model
    from napari_prunuclei.runtime.pairs import load_pair

    if a.memory_only:
        rows = _memory(a.memory_mp, a.data, a.tmp)
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "memory.json").write_text(json.dumps({"threads": torch.get_num_threads(), "memory": rows}, indent=1))
        (a.out / "memory.md").write_text(_memory_md(rows))
        print(_memory_md(rows))
        return
    from napari_prunuclei.base.machine import cpu_name

    rgb = _tile(a.data)
    res = {"machine": cpu_name(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "tile": list(rgb.shape), "repeat": a.repeat}
    dense = load_pair()
    e2e = {"dense fp32": _time_e2e(dense, rgb, "fp32", a.repeat), "dense auto": _time_e2e(dense, rgb, "auto", a.repeat)}
    for scheme in ("networkwide", "layerwise"):
        for cr in a.crs:
            e2e[f"{scheme} CR{cr:g} auto"] = _time_e2e(load_pair(scheme, cr), rgb, "auto", a.repeat)
            print(f"  {scheme} CR{cr:g}: {e2e[f'{scheme} CR{cr:g} auto']}", flush=True)
    best = e2e["dense auto"]["total_s"]
    for v in e2e.values():
        v["time_vs_best_dense"] = v["total_s"] / best
    eager = _time_eager_branches(dense, rgb, a.repeat)
    res["branches_fp32_eager_s"] = eager
    res["branches_speedup_vs_fp32_eager"] = eager / e2e["dense auto"]["branches_s"]
    res["end_to_end"] = e2e
    res["nonzero_mac_fraction"] = {f"{cr:g}": _macs(load_model("semantic", "networkwide", cr), nonzero_only=True)
                                    / _macs(load_model("semantic")) for cr in a.crs}
    res["zero_channels"] = {f"{cr:g}": _zero_channels(load_model("semantic", "networkwide", cr)) for cr in a.crs}
    res["sparse_layer"] = {f"{cr:g}": _sparse_layer(load_model("semantic", "networkwide", cr)) for cr in (20, 50, 100)}
    macs = _macs(load_model("semantic"))
    rates = {"fp32": _gemm_rate(torch.float32), "bf16": _gemm_rate(torch.bfloat16)}
    res["floor"] = {"macs_per_branch_1008px": macs, "gemm_flops_per_s": rates,
                    "floor_both_branches_s": {k: 2 * 2 * macs / r for k, r in rates.items()}}
    res["memory"] = _memory(a.memory_mp, a.data, a.tmp) if a.memory_mp else []
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "speed.json").write_text(json.dumps(res, indent=1))
    (a.out / "speed.md").write_text(to_markdown(res))
    print(to_markdown(res))


def to_markdown(res: dict) -> str:
    lines = [f"Machine: {res['machine']}, {res['threads']} torch threads, torch {res['torch']}; "
             f"tile {res['tile'][0]}x{res['tile'][1]}, median of {res['repeat']}.", "",
             "| model | precision | branches (s) | watershed (s) | total (s) | MP/s | time vs dense auto |",
             "|---|---|---|---|---|---|---|"]
    for k, v in res["end_to_end"].items():
        lines.append(f"| {k} | {v['precision']} | {v['branches_s']:.3f} | {v['watershed_s']:.3f} | "
                     f"{v['total_s']:.3f} | {v['mp_per_s']:.3f} | {v['time_vs_best_dense']:.2f} |")
    lines += ["", f"Both networks alone in plain fp32 eager PyTorch: {res['branches_fp32_eager_s']:.3f} s; the "
              f"library's path (dense auto) is {res['branches_speedup_vs_fp32_eager']:.2f}x faster on the networks."]
    lines += ["", "Sparse (CSR) matrix product over im2col for one 3x3 convolution (128x128 input), against dense:", "",
              "| CR | layer | density | dense fp32 conv (s) | dense bf16 conv (s) | im2col (s) | CSR x im2col (s) "
              "| dense GEMM x im2col (s) |",
              "|---|---|---|---|---|---|---|---|"]
    for cr, v in res["sparse_layer"].items():
        lines.append(f"| {cr} | {v['layer']} {v['shape']} | {v['density']:.3f} | {v['dense_fp32_conv_s']:.4f} | "
                     f"{v['dense_bf16_conv_s']:.4f} | {v['im2col_only_s']:.4f} | {v['csr_fp32_im2col_s']:.4f} | "
                     f"{v['dense_gemm_fp32_im2col_s']:.4f} |")
    lines += ["", "Fraction of the dense multiply-adds whose weight is non-zero (semantic branch, network-wide): "
              + ", ".join(f"CR{cr} {v:.3f}" for cr, v in res["nonzero_mac_fraction"].items()) + "."]
    lines += ["", "Whole channels with all-zero weights (removable exactly, i.e. structured speed-up), semantic "
              "branch, network-wide: " + ", ".join(f"CR{cr} {v['zero_out']}/{v['out']} out, {v['zero_in']}/{v['in']} in"
                                                    for cr, v in res["zero_channels"].items()) + "."]
    f = res["floor"]
    lines += ["", f"Multiply-adds per branch at 1008x1008: {f['macs_per_branch_1008px'] / 1e9:.1f} G; "
              "measured GEMM rate "
              + ", ".join(f"{k} {r / 1e9:.0f} GFLOP/s" for k, r in f["gemm_flops_per_s"].items())
              + "; floor for both branches: "
              + ", ".join(f"{k} {s:.3f} s" for k, s in f["floor_both_branches_s"].items()) + "."]
    if res["memory"]:
        lines += ["", _memory_md(res["memory"])]
    return "\n".join(lines) + "\n"


def _memory_md(rows: list[dict]) -> str:
    lines = ["Peak memory of tiled segmentation (1024 px tiles, 128 px halo, dense, lazy TIFF in, zarr labels out):",
             "", "| image (MP) | side (px) | peak RSS (MB) | seconds |", "|---|---|---|---|"]
    for m in rows:
        lines.append(f"| {m['megapixels']:.0f} | {m['side']} | {m['peak_rss_mb']:.0f} | {m['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
