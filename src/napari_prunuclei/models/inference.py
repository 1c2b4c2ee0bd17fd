"""Running one branch network on one image crop: device, precision, folded BatchNorm, padding."""

from __future__ import annotations

import threading

import numpy as np
import torch

from napari_prunuclei.io.images import as_rgb_uint8
from napari_prunuclei.models.devices import resolve_device
from napari_prunuclei.models.unet import UNet

__all__ = ["inference_model", "predict_branch", "predict_pair", "resolve_precision"]


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
    rounding); on CPU and CUDA the model is channels-last, and for bf16 its weights and
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
    if device.type in ("cpu", "cuda"):
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
    images are split by the pipeline's tiling policy (:mod:`napari_prunuclei.runtime.pipeline`),
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
    if not crop.flags.writeable:  # a read-only array (a memory-mapped file, a napari layer): torch wants to own it
        crop = crop.copy()
    x = torch.from_numpy(crop).to(dev).permute(2, 0, 1)[None].float().div_(255.0)
    return _forward(net, x, dev, prec)[0, :h, :w].cpu().numpy()


def _forward(net: torch.nn.Module, x: torch.Tensor, dev: torch.device, prec: str) -> torch.Tensor:
    """Sigmoid of the network on a float batch in [0, 1] (N, 3, H, W): (N, H, W) float32, on ``dev``."""
    if dev.type in ("cpu", "cuda"):
        x = x.contiguous(memory_format=torch.channels_last)
    if dev.type in ("cpu", "cuda") and prec == "bf16":
        y = net(x.to(torch.bfloat16))
    elif prec == "bf16":
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            y = net(x)
    else:
        y = net(x)
    return torch.sigmoid(y.float())[:, 0]


_PINNED: dict[tuple, torch.Tensor] = {}


def _compiled(net: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile`` of an inference model, made once per model (static shapes)."""
    fn = net.__dict__.get("_prunuclei_compiled")
    if fn is None:
        fn = net.__dict__["_prunuclei_compiled"] = torch.compile(net, dynamic=False)
    return fn


@torch.no_grad()
def predict_pair(
    semantic: UNet,
    distance: UNet,
    crops: np.ndarray,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    compile: bool = False,
    stats: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Both branches on a batch of crops of one shape (N x H x W x 3 uint8): two N x H x W float32 maps.

    The crops go to the device once for both branches; on CUDA through pinned host memory
    with a non-blocking copy. One crop gives what :func:`predict_branch` gives for it.
    ``compile``: ``torch.compile`` the networks (CUDA; the first batch of each shape pays
    the compilation). ``stats``: seconds added under ``semantic``, ``distance`` and, on CUDA,
    ``gpu`` (the device's busy time in both networks, from CUDA events).
    """
    import time

    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"crops must be N x H x W x 3 uint8, got {crops.shape} {crops.dtype}")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    prec = resolve_precision(precision, dev)
    mult = semantic.config.min_multiple
    n, h, w = crops.shape[:3]
    ph, pw = (-h) % mult, (-w) % mult
    if ph or pw:
        crops = np.pad(crops, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")
    host = torch.from_numpy(np.ascontiguousarray(crops))
    cuda = dev.type == "cuda"
    if cuda:
        key = tuple(host.shape)
        pinned = _PINNED.get(key)
        if pinned is None:
            _PINNED.clear()
            pinned = _PINNED[key] = torch.empty(key, dtype=torch.uint8).pin_memory()
        pinned.copy_(host)
        host = pinned
    x = host.to(dev, non_blocking=cuda).permute(0, 3, 1, 2).float().div_(255.0)
    outs, secs = [], {}
    for branch, model in (("semantic", semantic), ("distance", distance)):
        net = inference_model(model, dev, prec)
        if compile and cuda:
            net = _compiled(net)
        t0 = time.perf_counter()
        if cuda:
            ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            ev0.record()
        y = _forward(net, x, dev, prec)[:, :h, :w]
        if cuda:
            ev1.record()
        outs.append(y.cpu().numpy())
        secs[branch] = time.perf_counter() - t0
        if cuda:
            secs["gpu"] = secs.get("gpu", 0.0) + ev0.elapsed_time(ev1) / 1000
    if stats is not None:
        for k, v in secs.items():
            stats[k] = stats.get(k, 0.0) + v
    return outs[0], outs[1]
