"""Where a channel-pruned network's time goes: why its time stops shrinking near 0.3x dense (issue 21).

For dense and each shipped channel pair's semantic branch, one forward pass on a 1000x1000 input (padded
to the network's multiple, as ``predict_branch`` does) in the inference form ``segment()`` runs (BatchNorm
folded, channels-last, ``--precision``), one thread, the models interleaved, median of ``--repeats`` after
a warm-up. Two splits of the same time:

- by **resolution level** (hooks on the U-Net's blocks: level 0 is the full-resolution encoder block, the
  last decoder block and the head; an up-convolution belongs to the level it feeds; what runs between the
  blocks, max-pooling and the skip concatenation, is its own share);
- by **operation** (``torch.profiler`` self time: convolutions, concatenation, max-pooling, ReLU, the rest).

    python bench/profile_floor.py --json docs/performance/network_floor_cpu.json
    python bench/profile_floor.py --compile --json docs/performance/network_floor_cpu_compiled.json

``--compile``: each network also through ``torch.compile`` (inductor, frozen weights), the compiled and the
eager form timed in the same rounds (``seconds``: eager, ``seconds_compiled``); times only (the splits need the
eager modules); the compilation is not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import defaultdict

import torch

from napari_prunuclei.base.machine import cpu_name
from napari_prunuclei.models.inference import inference_model, resolve_precision
from napari_prunuclei.pruning.channels import macs
from napari_prunuclei.pruning.oneshot import load_model

OPS = {"aten::mkldnn_convolution": "convolution", "aten::convolution_overrideable": "convolution",
       "aten::_convolution": "convolution", "aten::cat": "concatenation",
       "aten::max_pool2d_with_indices": "max-pool", "aten::max_pool2d": "max-pool",
       "aten::clamp_min_": "ReLU", "aten::relu_": "ReLU", "aten::relu": "ReLU"}


def level_hooks(net: torch.nn.Module, acc: dict[int, float]) -> list:
    """Hooks adding each block's wall time to its resolution level (0 = full resolution)."""
    depth = len(net.down)
    starts: dict[int, float] = {}
    handles = []

    def timed(module: torch.nn.Module, level: int, key: int) -> None:
        def pre(*_):
            starts[key] = time.perf_counter()

        def post(*_):
            acc[level] += time.perf_counter() - starts.pop(key)
        handles.extend([module.register_forward_pre_hook(pre), module.register_forward_hook(post)])

    for i, block in enumerate(net.down):
        timed(block, i, id(block))
    for j, (up, dec) in enumerate(zip(net.up, net.dec)):
        level = depth - 2 - j
        timed(up, level, id(up))
        timed(dec, level, id(dec))
    timed(net.head, 0, id(net.head))
    return handles


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crs", nargs="+", type=float, default=[2, 4, 8, 16, 32])
    ap.add_argument("--schemes", nargs="+", default=["channel-layerwise", "channel-networkwide"])
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--json", default=None)
    ap.add_argument("--compile", action="store_true", help="torch.compile (inductor, frozen) each network; times only")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    dev = torch.device("cpu")
    prec = resolve_precision(a.precision, dev)
    names = [("dense", 1.0)] + [(s, cr) for s in a.schemes for cr in a.crs]
    models = {n: load_model("semantic", *n) for n in names}
    nets = {n: inference_model(m, dev, prec) for n, m in models.items()}
    side = a.size + (-a.size) % models[names[0]].config.min_multiple
    x = torch.rand(1, 3, side, side).contiguous(memory_format=torch.channels_last)
    if prec == "bf16":
        x = x.to(torch.bfloat16)
    if a.compile:
        import torch._inductor.config as inductor

        inductor.freezing = True
        torch._dynamo.config.recompile_limit = 4 * len(nets)  # one U-Net forward, compiled once per network
        compiled = {n: torch.compile(net, dynamic=False) for n, net in nets.items()}
    times: dict = defaultdict(list)
    forms = {**{(n, "eager"): nets[n] for n in names},
             **({(n, "compiled"): compiled[n] for n in names} if a.compile else {})}
    with torch.inference_mode():
        for f in forms.values():
            f(x)  # warm-up (and the compilation)
        for _ in range(a.repeats):  # interleaved
            for key, f in forms.items():
                t0 = time.perf_counter()
                f(x)
                times[key].append(time.perf_counter() - t0)
        rows = []
        for n in names:
            if a.compile:
                rows.append({"scheme": n[0], "cr": n[1], "seconds": statistics.median(times[(n, "eager")]),
                             "seconds_compiled": statistics.median(times[(n, "compiled")]),
                             "macs_ratio": macs(models[names[0]].config) / macs(models[n].config)})
                continue
            net = nets[n]
            levels: dict[int, float] = defaultdict(float)
            handles = level_hooks(net, levels)
            t0 = time.perf_counter()
            for _ in range(a.repeats):
                net(x)
            total_levels = time.perf_counter() - t0
            for h in handles:
                h.remove()
            with torch.profiler.profile() as prof:
                net(x)
            ops: dict[str, float] = defaultdict(float)
            for ev in prof.key_averages():
                ops[OPS.get(ev.key, "other")] += ev.self_cpu_time_total / 1e6
            total_ops = sum(ops.values())
            rows.append({
                "scheme": n[0], "cr": n[1], "seconds": statistics.median(times[(n, "eager")]),
                "macs_ratio": macs(models[names[0]].config) / macs(models[n].config),
                "channels": list(models[n].config.conv_channels()),
                "level_share": {**{str(k): v / total_levels for k, v in sorted(levels.items())},
                                "between blocks": 1 - sum(levels.values()) / total_levels},
                "op_share": {k: v / total_ops for k, v in sorted(ops.items())},
            })
    dense = rows[0]["seconds"]
    print(f"{'model':<26}{'s':>7}{'vs dense':>9}{'MACs ÷':>8}{'level 0':>9}{'between':>9}"
          f"{'conv':>7}{'cat':>6}{'pool':>6}{'ReLU':>6}")
    for r in rows:
        line = f"{r['scheme'] + ' CR' + format(r['cr'], 'g'):<26}{r['seconds']:>7.3f}{r['seconds'] / dense:>8.2f}x" \
               f"{r['macs_ratio']:>8.1f}"
        if "seconds_compiled" in r:
            ratio = r["seconds_compiled"] / rows[0]["seconds_compiled"]
            line += f"   compiled {r['seconds_compiled']:.3f} s, {ratio:.2f}x"
        if "op_share" in r:  # eager: the splits
            o, lv = r["op_share"], r["level_share"]
            line += (f"{lv['0']:>9.0%}{lv['between blocks']:>9.0%}{o.get('convolution', 0):>7.0%}"
                     f"{o.get('concatenation', 0):>6.0%}{o.get('max-pool', 0):>6.0%}{o.get('ReLU', 0):>6.0%}")
        print(line)
    if a.json:
        out = {"machine": {"cpu": cpu_name(), "arch": platform.machine(), "torch": torch.__version__,
                           "threads": 1, "precision": prec},
               "input": [side, side], "repeats": a.repeats, "compiled": a.compile, "rows": rows}
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
