"""Branch weight files: safetensors (no pickle), architecture in the metadata, sha256 checked."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from napari_prunuclei.io.atomic import atomic_write
from napari_prunuclei.models.unet import UNet, UNetConfig

__all__ = ["WeightsError", "sha256_file", "write_safetensors", "save_branch", "load_branch", "read_metadata",
           "build_model"]


class WeightsError(RuntimeError):
    """A weight file is missing, corrupt, or does not match its recorded hash."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically, byte for byte the same for the same content: safetensors writes
    its metadata map in a random order, so the header is written again with sorted keys."""
    import struct

    from safetensors.torch import save

    raw = save(tensors, metadata=metadata)
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    ordered = {"__metadata__": dict(sorted(header.pop("__metadata__", {}).items())), **dict(sorted(header.items()))}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the data stays 8-byte aligned, as safetensors writes it
    atomic_write(path, lambda t: t.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :]))


def save_branch(path: str | os.PathLike, model: UNet, metadata: dict | None = None) -> str:
    """Write ``model``'s state (dense tensors) to ``path``; return the file's sha256."""
    meta = {"config": json.dumps(model.config.to_dict())}
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_safetensors(path, state, meta)
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
    try:
        model = UNet(config)
    except Exception as e:  # noqa: BLE001 - a corrupt config in the header: say which file
        raise WeightsError(f"weights file {path} has a corrupt architecture in its header "
                           f"({type(e).__name__}: {str(e)[:200]})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"weights file {path} does not fit the architecture: {e}") from None
    return model.eval()
