"""Structured (channel) magnitude pruning: whole filters removed, a smaller dense U-Net left.

Two schemes mirror the paper's unstructured pair:

- **channel-layerwise**: every convolution keeps the same fraction of its output
  channels (of the dense network's count), its filters ranked by magnitude;
- **channel-networkwide**: one global ranking of filter magnitudes, each divided by
  the mean magnitude of its layer so that layers of different size compare fairly.

A filter's magnitude is the L2 norm of the filter as it acts at inference: a 3x3
convolution's filter folded with its BatchNorm scale (``gamma / sqrt(var + eps)``),
so that BatchNorm cannot hide a small filter behind a large scale; a transposed
convolution's filter as it is. The 1-channel output head is never pruned (its input
channels go with the last decoder convolution) and the 3 input channels stay.

The head's input is a signed read-out: logit = bias + sum_c w_c * relu(y_c). Magnitude alone
can drop every channel of one sign of ``w_c`` (the dense semantic branch's five positive,
foreground channels are its five smallest filters of 16), and with only negative weights left
the logit never exceeds the bias (< 0): no probability reaches 0.5, whatever BatchNorm or
fine-tuning do. So under channel-networkwide (``head_signs``) each sign of head weight keeps
at least half its share of the kept channels, rounded up (at least one), its largest filters
replacing the other sign's smallest (:func:`head_input_keep`). channel-layerwise keeps the plain
magnitude order by default, so that its cuts and zoo files stay as they were.

CR is defined as for the unstructured schemes: prunable weights of the dense network
(every 3x3 and transposed convolution's weights) / prunable weights left. Whole
channels make exact CRs impossible: counts are rounded to multiples of ``multiple``
(8 by default: measured in ``bench/bench_channels.py``, docs/pruning.md) and then
corrected one multiple at a time towards the nominal CR; the achieved CR is returned
and recorded. The channel dependencies (BatchNorm, the next convolution's inputs, the
skip concatenations and transposed convolutions) are followed by torch-pruning's
dependency graph; the result is checked against a U-Net built from the channel
configuration, which is what the weight file records.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from napari_prunuclei.base.constants import CHANNEL_SCHEMES
from napari_prunuclei.models.unet import UNet, UNetConfig

__all__ = [
    "CHANNEL_SCHEMES",
    "DEFAULT_MULTIPLE",
    "ChannelPlan",
    "conv_layers",
    "filter_magnitudes",
    "prunable_count",
    "plan_channels",
    "channel_prune",
    "cut_channels",
    "head_input_keep",
    "macs",
]

#: channel counts are multiples of this (bench/bench_channels.py measured 1, 4, 8, 16)
DEFAULT_MULTIPLE = 8


@dataclass(frozen=True)
class ChannelPlan:
    """The channel counts chosen for one pruning step and what they achieve."""

    scheme: str
    nominal_cr: float
    channels: tuple[int, ...]
    achieved_cr: float
    multiple: int
    dense_prunable: int
    prunable: int


def conv_layers(model: UNet) -> list[tuple[nn.Module, nn.Module | None]]:
    """(convolution, its BatchNorm or None) for every entry of the channel configuration, in order."""
    out: list[tuple[nn.Module, nn.Module | None]] = []

    def double(block: nn.Sequential) -> None:
        convs = [m for m in block if isinstance(m, nn.Conv2d)]
        bns = [m for m in block if isinstance(m, nn.BatchNorm2d)] or [None, None]
        out.extend(zip(convs, bns))

    for block in model.down:
        double(block)
    for up, dec in zip(model.up, model.dec):
        out.append((up, None))
        double(dec)
    return out


def filter_magnitudes(model: UNet) -> list[np.ndarray]:
    """Per layer of :func:`conv_layers`, the L2 norm of each output filter (BatchNorm folded in)."""
    mags = []
    with torch.no_grad():
        for conv, bn in conv_layers(model):
            w = conv.weight.detach().float()
            if isinstance(conv, nn.ConvTranspose2d):  # (in, out, k, k)
                w = w.transpose(0, 1)
            norms = w.flatten(1).norm(dim=1)
            if bn is not None:
                norms = norms * (bn.weight.detach().float().abs() / torch.sqrt(bn.running_var.float() + bn.eps))
            mags.append(norms.cpu().numpy().astype(np.float64))
    return mags


def _convolutions(config: UNetConfig, channels=None):
    """(kernel area, in channels, out channels, pooling level of the output) of every prunable
    convolution in forward order, for ``channels`` (default: the config's own)."""
    ch = list(channels if channels is not None else config.conv_channels())
    d = config.depth
    down, up = ch[: 2 * d], ch[2 * d:]
    cin, skips = config.in_channels, []
    for lvl in range(d):
        mid, out = down[2 * lvl], down[2 * lvl + 1]
        yield from ((9, cin, mid, lvl), (9, mid, out, lvl))
        skips.append(out)
        cin = out
    for j, skip in enumerate(reversed(skips[:-1])):
        lvl = d - 2 - j
        u, mid, out = up[3 * j: 3 * j + 3]
        yield from ((4, cin, u, lvl + 1), (9, u + skip, mid, lvl), (9, mid, out, lvl))
        cin = out


def prunable_count(config: UNetConfig, channels: tuple[int, ...] | list[int] | None = None) -> int:
    """Prunable weights (3x3 and transposed convolutions) of a U-Net with these channels."""
    return sum(k * cin * cout for k, cin, cout, _ in _convolutions(config, channels))


def macs(config: UNetConfig, height: int = 1024, width: int = 1024) -> int:
    """Multiply-accumulates of one forward pass on a ``height`` x ``width`` image (all convolutions).

    A transposed convolution does its work per input pixel, i.e. at the level below its output.
    """
    px = height * width
    convs = list(_convolutions(config))
    head_in = convs[-1][2]
    return sum(k * cin * cout * px // 4**lvl for k, cin, cout, lvl in convs) + head_in * config.out_channels * px


def _round(n: float, multiple: int, cap: int) -> int:
    return int(min(cap, max(multiple, multiple * round(n / multiple))))


def _correct(counts: list[int], caps: list[int], config: UNetConfig, target: float, multiple: int) -> list[int]:
    """Move single layers by one multiple while that brings the prunable count closer to ``target``."""
    counts = list(counts)
    err = abs(math.log(prunable_count(config, counts) / target))
    while True:
        best = None
        for i in range(len(counts)):
            for step in (-multiple, multiple):
                c = counts[i] + step
                if c < multiple or c > caps[i]:
                    continue
                trial = counts[:i] + [c] + counts[i + 1:]
                e = abs(math.log(prunable_count(config, trial) / target))
                if e < err - 1e-12 and (best is None or e < best[0]):
                    best = (e, i, c)
        if best is None:
            return counts
        err, i, c = best
        counts[i] = c


def plan_channels(model: UNet, scheme: str, cr: float, multiple: int = DEFAULT_MULTIPLE,
                  dense_config: UNetConfig | None = None,
                  magnitudes: list[np.ndarray] | None = None) -> ChannelPlan:
    """Channel counts for ``model`` at ``cr`` (relative to the dense network) under ``scheme``.

    ``model`` may already be channel-pruned (a gradual ladder): counts never exceed its
    current ones, and the fractions of channel-layerwise refer to the dense widths.
    ``magnitudes``: :func:`filter_magnitudes` of ``model`` when the caller has them already.
    """
    if scheme not in CHANNEL_SCHEMES:
        raise ValueError(f"scheme must be one of {CHANNEL_SCHEMES}, got {scheme!r}")
    if not cr >= 1:
        raise ValueError(f"compression ratio must be >= 1, got {cr}")
    dense_cfg = dense_config or replace(model.config, channels=None)
    dense_widths = np.array(dense_cfg.conv_channels(), float)
    caps = list(model.config.conv_channels())
    n_dense = prunable_count(dense_cfg)
    target = n_dense / cr

    if scheme == "channel-layerwise":
        def counts_at(t: float) -> list[int]:  # t = kept fraction of the dense width
            return [_round(t * w, multiple, c) for w, c in zip(dense_widths, caps)]
    else:
        scores = [m / max(m.mean(), 1e-12) for m in (magnitudes or filter_magnitudes(model))]

        def counts_at(t: float) -> list[int]:  # t = 1 - global score quantile: larger keeps more
            thr = np.quantile(np.concatenate(scores), 1 - t)
            return [_round(float((s >= thr).sum()), multiple, c) for s, c in zip(scores, caps)]

    lo, hi = 0.0, 1.0
    for _ in range(40):  # the prunable count grows with t
        mid = (lo + hi) / 2
        if prunable_count(dense_cfg, counts_at(mid)) > target:
            hi = mid
        else:
            lo = mid
    best = min((counts_at(lo), counts_at(hi)), key=lambda c: abs(math.log(prunable_count(dense_cfg, c) / target)))
    counts = _correct(best, caps, dense_cfg, target, multiple)
    kept = prunable_count(dense_cfg, counts)
    return ChannelPlan(scheme, float(cr), tuple(counts), n_dense / kept, multiple, n_dense, kept)


def head_input_keep(magnitudes: np.ndarray, head_weight: np.ndarray, k: int) -> list[int]:
    """The ``k`` head-input channels to keep: the largest ``magnitudes``, except that each sign of
    ``head_weight`` (one weight per channel) keeps at least ``ceil(k * share / 2)`` of its channels
    (``share``: its fraction of the channels with a non-zero weight; at least one), its largest
    filters replacing the other sign's smallest. Sorted indices."""
    mags = np.asarray(magnitudes, np.float64)
    w = np.asarray(head_weight, np.float64).ravel()
    if w.shape != mags.shape:
        raise ValueError(f"one head weight per channel: {w.shape} weights for {mags.shape} channels")
    order = [int(i) for i in np.argsort(-mags, kind="stable")]
    keep = order[:k]
    signs = {s: [i for i in order if np.sign(w[i]) == s] for s in (1.0, -1.0)}  # largest first
    signed = sum(len(g) for g in signs.values())
    need = {s: min(len(g), max(1, math.ceil(k * len(g) / (2 * signed)))) if g else 0 for s, g in signs.items()}
    if sum(need.values()) > k:  # too few channels to keep both signs: magnitude alone
        return sorted(keep)
    for s, group in signs.items():
        short = need[s] - sum(np.sign(w[i]) == s for i in keep)
        if short <= 0:
            continue
        add = [i for i in group if i not in keep][:short]
        other = [i for i in reversed(keep) if np.sign(w[i]) == -s][:short]  # the other sign's smallest
        keep = [i for i in keep if i not in other] + add
    return sorted(keep)


def channel_prune(model: UNet, scheme: str, cr: float, multiple: int = DEFAULT_MULTIPLE,
                  dense_config: UNetConfig | None = None,
                  head_signs: bool | None = None) -> tuple[UNet, ChannelPlan]:
    """A smaller U-Net keeping the largest filters of ``model`` per :func:`plan_channels`.

    ``head_signs`` (default: on for channel-networkwide, off for channel-layerwise): the last
    decoder convolution keeps both signs of the head's weights (:func:`head_input_keep`).
    ``model`` is not modified. The result is a plain :class:`UNet` whose config records the
    channel counts, so it saves and loads like any branch file.
    """
    mags = filter_magnitudes(model)
    plan = plan_channels(model, scheme, cr, multiple, dense_config, magnitudes=mags)
    keep = [sorted(int(i) for i in np.argsort(-m, kind="stable")[:k]) for m, k in zip(mags, plan.channels)]
    if head_signs is None:
        head_signs = scheme == "channel-networkwide"
    if head_signs and model.head.out_channels == 1:
        keep[-1] = head_input_keep(mags[-1], model.head.weight.detach().float().cpu().numpy(), plan.channels[-1])
    return cut_channels(model, keep), plan


def cut_channels(model: UNet, keep: list[list[int]]) -> UNet:
    """A copy of ``model`` keeping, per entry of the channel configuration, the output channels ``keep[i]``.

    torch-pruning's dependency graph removes each dropped channel everywhere it goes
    (BatchNorm, the next convolution's inputs, the skip concatenation, the transposed
    convolution); the result must load strictly into a U-Net built from the new counts.
    """
    import torch_pruning as tp

    work = copy.deepcopy(model).cpu().float().eval()
    layers = [conv for conv, _ in conv_layers(work)]
    if len(keep) != len(layers):
        raise ValueError(f"keep needs {len(layers)} index lists, got {len(keep)}")
    side = 4 * model.config.min_multiple
    # one graph: torch-pruning keeps the concatenations' offsets current as channels go
    # (tests/test_channels.py cuts silent channels everywhere and checks the output is unchanged)
    graph = tp.DependencyGraph().build_dependency(work, example_inputs=torch.zeros(1, 3, side, side))
    for idx, (conv, kept) in enumerate(zip(layers, keep)):
        n = conv.out_channels
        if not kept or min(kept) < 0 or max(kept) >= n:
            raise ValueError(f"layer {idx}: channels to keep must be in 0..{n - 1}, got {kept[:5]}...")
        drop = sorted(set(range(n)) - {int(i) for i in kept})
        if not drop:
            continue
        pruner = graph.get_pruner_of_module(conv)
        group = graph.get_pruning_group(conv, pruner.prune_out_channels, idxs=drop)
        if not graph.check_pruning_group(group):
            raise RuntimeError(f"torch-pruning refused to prune layer {idx} of the channel configuration")
        group.prune()
    config = replace(model.config, channels=tuple(len(set(k)) for k in keep))
    out = UNet(config)
    out.load_state_dict(work.state_dict(), strict=True)  # the graph's result must be this architecture
    return out.eval()
