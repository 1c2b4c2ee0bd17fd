"""Running the branches on an image: padding, tiling, precision, and ``segment()``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .devices import resolve_device
from .io import as_rgb_uint8
from .models.unet import UNet
from .postprocess import WatershedParams, watershed_instances

__all__ = ["SegmentationResult", "predict_branch", "segment", "resolve_precision"]

ProgressFn = Callable[[int, int], None]


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


def _tiles(n: int, tile: int, margin: int) -> list[tuple[int, int]]:
    """Core intervals of length <= tile - 2*margin covering 0..n."""
    step = tile - 2 * margin
    return [(s, min(s + step, n)) for s in range(0, n, step)]


@torch.no_grad()
def predict_branch(
    model: UNet,
    rgb: np.ndarray,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    tile: int = 1024,
    margin: int = 64,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Sigmoid output of one branch on an RGB uint8 image, as float32 HxW in [0, 1].

    Sides are reflect-padded to the network's multiple; images larger than
    ``tile`` are processed in overlapping tiles (only each tile's centre,
    ``margin`` px away from its border, is kept), so memory is bounded by the tile.
    """
    rgb = as_rgb_uint8(rgb)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    prec = resolve_precision(precision, dev)
    mult = model.config.min_multiple
    net = inference_model(model, dev, prec)
    cpu_bf16 = dev.type == "cpu" and prec == "bf16"
    h, w = rgb.shape[:2]
    out = np.zeros((h, w), np.float32)
    if max(h, w) <= tile:
        rows, cols, m = [(0, h)], [(0, w)], 0
    else:
        rows, cols, m = _tiles(h, tile, margin), _tiles(w, tile, margin), margin
    total, done = len(rows) * len(cols), 0
    for r0, r1 in rows:
        for c0, c1 in cols:
            if cancelled is not None and cancelled():
                raise InterruptedError("cancelled")
            a0, a1, b0, b1 = max(r0 - m, 0), min(r1 + m, h), max(c0 - m, 0), min(c1 + m, w)
            crop = rgb[a0:a1, b0:b1]
            ph, pw = (-crop.shape[0]) % mult, (-crop.shape[1]) % mult
            if ph or pw:
                crop = np.pad(crop, ((0, ph), (0, pw), (0, 0)), mode="reflect")
            x = torch.from_numpy(crop).to(dev).permute(2, 0, 1)[None].float().div_(255.0)
            if dev.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            if cpu_bf16:
                y = net(x.to(torch.bfloat16))
            elif prec == "bf16":
                with torch.autocast(dev.type, dtype=torch.bfloat16):
                    y = net(x)
            else:
                y = net(x)
            y = torch.sigmoid(y.float())[0, 0].cpu().numpy()
            out[r0:r1, c0:c1] = y[r0 - a0 : r1 - a0, c0 - b0 : c1 - b0]
            done += 1
            if progress is not None:
                progress(done, total)
    return out


@dataclass
class SegmentationResult:
    """Outputs of :func:`segment`: semantic probability, distance map, instance labels."""

    probability: np.ndarray
    distance: np.ndarray
    labels: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def n_nuclei(self) -> int:
        return int(self.labels.max())


def segment(
    rgb: np.ndarray,
    scheme: str = "dense",
    cr: float = 1,
    device: str = "auto",
    *,
    fine_tuned: bool = True,
    params: WatershedParams | None = None,
    precision: str = "auto",
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
    models: tuple[UNet, UNet] | None = None,
) -> SegmentationResult:
    """Segment nuclei in an H&E RGB image with a (pruned) two-branch model.

    ``scheme`` is ``dense``, ``layerwise`` or ``networkwide`` and ``cr`` the
    compression ratio; ``params`` default to the tuned watershed of the model card.
    ``info`` records models, thresholds, precision and timings.
    """
    from .models.zoo import default_watershed, load_model, model_info

    rgb = as_rgb_uint8(rgb)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    params = params or default_watershed(scheme, cr, fine_tuned)
    if models is None:
        sem = load_model("semantic", scheme, cr, fine_tuned=fine_tuned)
        dst = load_model("distance", scheme, cr, fine_tuned=fine_tuned)
    else:
        sem, dst = models
    n_steps = 3
    step = [0]

    def sub_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(step[0] * total + done, n_steps * total)

    t0 = time.perf_counter()
    prob = predict_branch(sem, rgb, device=dev, precision=prec, progress=sub_progress, cancelled=cancelled)
    t1 = time.perf_counter()
    step[0] = 1
    dist = predict_branch(dst, rgb, device=dev, precision=prec, progress=sub_progress, cancelled=cancelled)
    t2 = time.perf_counter()
    if cancelled is not None and cancelled():
        raise InterruptedError("cancelled")
    labels = watershed_instances(prob, dist, params)
    t3 = time.perf_counter()
    if progress is not None:
        progress(n_steps, n_steps)
    info = {
        "semantic": model_info(sem),
        "distance": model_info(dst),
        "scheme": scheme,
        "cr": cr,
        "fine_tuned": fine_tuned,
        "watershed": params.as_dict(),
        "device": str(dev),
        "precision": prec,
        "seconds": {"semantic": t1 - t0, "distance": t2 - t1, "watershed": t3 - t2},
    }
    return SegmentationResult(prob, dist, labels, info)
