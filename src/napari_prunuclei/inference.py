"""Running one branch network on one image crop: device, precision, folded BatchNorm, padding."""

from __future__ import annotations

import threading

import numpy as np
import torch

from .devices import resolve_device
from .io import as_rgb_uint8
from .models.unet import UNet

__all__ = ["inference_model", "predict_branch", "resolve_precision"]


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 on CUDA and on CPUs with native bf16 (AVX-512 BF16/AMX), else fp32."""
    if precision in ("fp32", "bf16"):
        return precision
    if precision != "auto":
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if device.type == "cuda":
        return "bf16"
    if device.type == "cpu":
        try:
            return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
        except (AttributeError, RuntimeError):
            return "fp32"
    return "fp32"


_PREPARE_LOCK = threading.Lock()


def _fold_batchnorm(model: torch.nn.Module) -> None:
    """Fold every BatchNorm2d that directly follows a Conv2d in a Sequential into it (eval mode).

    Done by walking the modules, not by fx tracing: tracing patches ``Module.__call__``
    globally and would intercept models running in other threads.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in [m for m in model.modules() if isinstance(m, torch.nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = torch.nn.Identity()


def inference_model(model: UNet, device: torch.device, precision: str) -> torch.nn.Module:
    """The fastest sound form of ``model`` for inference on ``device`` in ``precision``.

    BatchNorm is folded into the preceding convolutions (eval mode, exact up to
    rounding); on CPU the model is channels-last, and for bf16 its weights and
    activations are bf16 throughout (no autocast casts per call). Cached on the model
    and rebuilt when any of its parameters or buffers changes in place.
    """
    params = [*model.parameters(), *model.buffers()]
    key = (str(device), precision, tuple(p._version for p in params), tuple(p.data_ptr() for p in params))
    cache = model.__dict__.setdefault("_prunuclei_inference", {})
    if key in cache:
        return cache[key]
    import copy

    with _PREPARE_LOCK:
        fast = copy.deepcopy(model).eval()
    fast.__dict__.pop("_prunuclei_inference", None)
    _fold_batchnorm(fast)
    fast = fast.to(device)
    if device.type == "cpu":
        if precision == "bf16":
            fast = fast.to(torch.bfloat16)
        fast = fast.to(memory_format=torch.channels_last)
    cache.clear()
    cache[key] = fast
    return fast


@torch.no_grad()
def predict_branch(
    model: UNet,
    rgb: np.ndarray,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
) -> np.ndarray:
    """Sigmoid output of one branch on one RGB uint8 crop, as float32 HxW in [0, 1].

    One forward pass: the sides are reflect-padded to the network's multiple. Large
    images are split by the pipeline's tiling policy (:mod:`napari_prunuclei.pipeline`),
    never here.
    """
    rgb = as_rgb_uint8(rgb)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    prec = resolve_precision(precision, dev)
    mult = model.config.min_multiple
    net = inference_model(model, dev, prec)
    h, w = rgb.shape[:2]
    ph, pw = (-h) % mult, (-w) % mult
    crop = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else rgb
    x = torch.from_numpy(crop).to(dev).permute(2, 0, 1)[None].float().div_(255.0)
    if dev.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    if dev.type == "cpu" and prec == "bf16":
        y = net(x.to(torch.bfloat16))
    elif prec == "bf16":
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            y = net(x)
    else:
        y = net(x)
    return torch.sigmoid(y.float())[0, 0, :h, :w].cpu().numpy()
