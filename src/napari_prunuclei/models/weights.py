"""Branch weight files: safetensors (no pickle), architecture in the metadata, sha256 checked."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from napari_prunuclei.io.atomic import atomic_write
from napari_prunuclei.models.unet import UNet, UNetConfig

__all__ = ["WeightsError", "sha256_file", "save_branch", "load_branch", "read_metadata", "build_model"]


class WeightsError(RuntimeError):
    """A weight file is missing, corrupt, or does not match its recorded hash."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_branch(path: str | os.PathLike, model: UNet, metadata: dict | None = None) -> str:
    """Write ``model``'s state (dense tensors) to ``path``; return the file's sha256."""
    from safetensors.torch import save_file

    meta = {"config": json.dumps(model.config.to_dict())}
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda t: save_file(state, str(t), metadata=meta))
    return sha256_file(path)


def read_metadata(path: str | os.PathLike) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_branch(path: str | os.PathLike, sha256: str | None = None) -> UNet:
    """Load a branch written by :func:`save_branch`, checking ``sha256`` when given."""
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file missing: {p}")
    if sha256 is not None:
        got = sha256_file(p)
        if got != sha256:
            raise WeightsError(
                f"weights file {p} is corrupt or was modified: sha256 {got[:12]}... "
                f"differs from the registry's {sha256[:12]}... Reinstall the package."
            )
    try:
        meta = read_metadata(p)
        state = load_file(str(p))
        config = UNetConfig.from_dict(json.loads(meta["config"]))
    except Exception as e:  # noqa: BLE001 - header, json or key errors all mean a bad file
        raise WeightsError(f"weights file {p} is not a valid branch file: {e}") from None
    return build_model(config, state, p)


def build_model(config: UNetConfig, state: dict[str, torch.Tensor], path: Path) -> UNet:
    """A UNet of ``config`` holding ``state`` (strict), in eval mode; WeightsError if it does not fit."""
    model = UNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"weights file {path} does not fit the architecture: {e}") from None
    return model.eval()
