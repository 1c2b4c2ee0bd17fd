"""Device choice shared by training and inference."""

from __future__ import annotations

import torch

__all__ = ["available_devices", "resolve_device"]


def available_devices() -> list[str]:
    """Devices usable here, best last: ``cpu`` and, when present, ``cuda``/``mps``."""
    devs = ["cpu"]
    if torch.cuda.is_available():
        devs.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append("mps")
    return devs


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; a named device must be available."""
    if device == "auto":
        return torch.device(available_devices()[-1])
    if device.split(":")[0] not in available_devices():
        raise ValueError(f"device {device!r} is not available here (have: {', '.join(available_devices())})")
    return torch.device(device)
