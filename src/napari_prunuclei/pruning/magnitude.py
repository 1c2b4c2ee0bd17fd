"""Unstructured magnitude pruning: layer-wise and network-wide, at exact compression ratios.

Prunable tensors are the weights of every 3x3 convolution and 2x2 transposed
convolution. Biases, BatchNorm parameters and the 1x1 output convolution (16
weights that map the last features to the output; pruning them removes whole
output channels) are never pruned and are not counted.

CR = prunable weights / remaining weights. For a model with N prunable weights
both schemes keep exactly ``round(N / CR)`` weights:

- **layer-wise**: every tensor keeps ``n_i / CR`` of its weights, rounded by the
  largest-remainder rule so the counts add up to the total exactly;
- **network-wide**: the ``round(N / CR)`` weights of largest magnitude over all
  prunable tensors (one global threshold).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

__all__ = [
    "SCHEMES",
    "prunable_parameters",
    "magnitude_masks",
    "apply_masks",
    "prune",
    "sparsity_report",
    "kept_count",
    "recalibrate_batchnorm",
]

SCHEMES = ("layerwise", "networkwide")


def prunable_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Name -> weight of the prunable tensors (conv and transposed conv, not the head)."""
    out = {}
    for mname, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)) and mod.kernel_size != (1, 1):
            out[f"{mname}.weight"] = mod.weight
    return out


def kept_count(n_prunable: int, cr: float) -> int:
    """Number of weights that remain at compression ratio ``cr``."""
    if not cr >= 1:
        raise ValueError(f"compression ratio must be >= 1, got {cr}")
    return max(1, int(round(n_prunable / cr)))


def _largest_remainder(sizes: list[int], total: int) -> list[int]:
    n = sum(sizes)
    exact = np.array(sizes, float) * total / n
    k = np.floor(exact).astype(int)
    rest = total - k.sum()
    order = np.argsort(-(exact - k), kind="stable")
    k[order[:rest]] += 1
    return k.tolist()


def magnitude_masks(model: nn.Module, scheme: str, cr: float) -> dict[str, torch.Tensor]:
    """Boolean keep-masks for ``scheme`` (layerwise/networkwide) at ratio ``cr``."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    params = prunable_parameters(model)
    sizes = [p.numel() for p in params.values()]
    total = kept_count(sum(sizes), cr)
    masks: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        if scheme == "layerwise":
            for (name, p), k in zip(params.items(), _largest_remainder(sizes, total)):
                flat = p.detach().abs().flatten().float()
                m = torch.zeros_like(flat, dtype=torch.bool)
                if k:
                    m[torch.topk(flat, k, sorted=False).indices] = True
                masks[name] = m.view_as(p)
        else:
            flat = torch.cat([p.detach().abs().flatten().float() for p in params.values()])
            m = torch.zeros_like(flat, dtype=torch.bool)
            m[torch.topk(flat, total, sorted=False).indices] = True
            for (name, p), part in zip(params.items(), torch.split(m, sizes)):
                masks[name] = part.view_as(p)
    return masks


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Zero the weights outside ``masks`` in place; return ``model``."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, m in masks.items():
            params[name].mul_(m.to(params[name].device, params[name].dtype))
    return model


def prune(model: nn.Module, scheme: str, cr: float) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A pruned copy of ``model`` and its masks (one-shot, no fine-tuning)."""
    pruned = copy.deepcopy(model)
    masks = magnitude_masks(pruned, scheme, cr)
    apply_masks(pruned, masks)
    return pruned, masks


def sparsity_report(model: nn.Module) -> list[dict]:
    """Per prunable tensor: name, size, non-zeros and sparsity.

    For a channel-pruned network (smaller tensors) ``size`` is the dense network's tensor
    size, so sparsity is the fraction of that layer's weights removed either way.
    """
    dense_sizes = {}
    cfg = getattr(model, "config", None)
    if getattr(cfg, "channels", None):
        from dataclasses import replace

        with torch.device("meta"):
            dense = type(model)(replace(cfg, channels=None))
        dense_sizes = {k: v.numel() for k, v in prunable_parameters(dense).items()}
    rows = []
    for name, p in prunable_parameters(model).items():
        nz = int(torch.count_nonzero(p))
        size = dense_sizes.get(name, p.numel())
        rows.append({"layer": name, "size": size, "nonzero": nz, "sparsity": 1 - nz / size})
    return rows


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Re-estimate BatchNorm running statistics on ``batches`` (weights untouched)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = model.training
    model.train()
    for x in batches:
        model(x)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.train(was_training)
    return model
