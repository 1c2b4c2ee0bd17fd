"""Sparse weight files: non-zero values plus a packed bit mask, in safetensors.

A pruned tensor ``W`` is stored as ``<name>::values`` (its kept entries in
C order, original dtype) and ``<name>::mask`` (``numpy.packbits`` of the
keep-mask, uint8) with its shape in the metadata; every other tensor is stored
dense. Loading rebuilds the dense-shaped tensors bit-exactly. The file size is
about ``4 N / CR + N / 8`` bytes for N prunable weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from napari_prunuclei.models.unet import UNet, UNetConfig
from napari_prunuclei.models.weights import (
    WeightsError,
    build_model,
    load_branch,
    read_metadata,
    sha256_file,
    write_safetensors,
)

__all__ = ["save_sparse", "load_sparse", "load_branch_file", "FORMAT"]

FORMAT = "prunuclei-sparse-bitmask-v1"


def save_sparse(
    path: str | os.PathLike, model: UNet, masks: dict[str, torch.Tensor], metadata: dict | None = None
) -> str:
    """Write ``model`` with the tensors in ``masks`` stored sparsely; return sha256."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors: dict[str, torch.Tensor] = {}
    shapes = {}
    for name, t in state.items():
        if name in masks:
            m = masks[name].detach().cpu().bool()
            if torch.any(t[~m] != 0):
                raise ValueError(f"{name} has non-zero weights outside its mask")
            tensors[f"{name}::values"] = t[m].contiguous()
            bits = np.packbits(m.numpy().ravel())
            tensors[f"{name}::mask"] = torch.from_numpy(bits)
            shapes[name] = list(t.shape)
        else:
            tensors[name] = t
    meta = {"format": FORMAT, "config": json.dumps(model.config.to_dict()), "shapes": json.dumps(shapes)}
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    write_safetensors(path, tensors, meta)
    return sha256_file(path)


def load_sparse(path: str | os.PathLike, sha256: str | None = None) -> tuple[UNet, dict[str, torch.Tensor], dict]:
    """Load a sparse file: ``(model, masks, metadata)``, checking ``sha256`` when given."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file missing: {p}")
    if sha256 is not None and sha256_file(p) != sha256:
        raise WeightsError(f"weights file {p} is corrupt or was modified: sha256 does not match the registry")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r} is not {FORMAT}")
        tensors = load_file(str(p))
        shapes = json.loads(meta["shapes"])
        config = UNetConfig.from_dict(json.loads(meta["config"]))
        state, masks = {}, {}
        for name, t in tensors.items():
            if "::" not in name:
                state[name] = t
        for name, shape in shapes.items():
            n = int(np.prod(shape))
            bits = tensors[f"{name}::mask"].numpy()
            m = torch.from_numpy(np.unpackbits(bits, count=n).astype(bool)).view(shape)
            vals = tensors[f"{name}::values"]
            if int(m.sum()) != vals.numel():
                raise ValueError(f"{name}: mask has {int(m.sum())} entries for {vals.numel()} values")
            dense = torch.zeros(shape, dtype=vals.dtype)
            dense[m] = vals
            state[name], masks[name] = dense, m
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001
        raise WeightsError(f"weights file {p} is not a valid sparse branch file: {e}") from None
    return build_model(config, state, p), masks, meta


def load_branch_file(path: str | os.PathLike) -> UNet:
    """One branch file of either kind: sparse (unstructured schemes) or a plain, maybe smaller, network."""
    return load_sparse(path)[0] if read_metadata(path).get("format") == FORMAT else load_branch(path)
