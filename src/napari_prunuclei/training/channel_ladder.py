"""Gradual channel pruning with fine-tuning: one protocol for every CR and both structured schemes.

The ladder walks ascending CRs from the dense branch. At each CR the filters are
ranked on the current (fine-tuned) weights and the network is cut to the planned
channel counts (:func:`~napari_prunuclei.pruning.channels.channel_prune`), BatchNorm
statistics are re-estimated on training crops, and the smaller network is trained
for ``steps`` Adam steps (cosine lr) on the training images less the held-back ones,
with distillation from the dense branch's outputs (computed once on the whole
un-augmented images and cropped/flipped with each crop, see
:func:`~napari_prunuclei.training.train`). Each CR's result is a plain
(smaller) branch file with its channel configuration, saved before the next CR
starts; a re-run skips finished CRs and resumes the one in progress from its
checkpoint (the cut is deterministic, so the checkpoint fits).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

from napari_prunuclei.models.unet import UNet
from napari_prunuclei.models.weights import load_branch, save_branch, sha256_file
from napari_prunuclei.pruning.channels import DEFAULT_MULTIPLE, channel_prune, macs
from napari_prunuclei.pruning.magnitude import recalibrate_batchnorm
from napari_prunuclei.training.finetune import bn_batches
from napari_prunuclei.training.train import TrainConfig, load_training_set, train

__all__ = ["channel_file_name", "channel_ladder", "teacher_outputs"]


@torch.inference_mode()
def teacher_outputs(teacher: UNet, images: list[np.ndarray]) -> list[np.ndarray]:
    """The teacher's sigmoid output (fp32, CPU) on each whole image (float32 HxWx3 in [0, 1])."""
    teacher = copy.deepcopy(teacher).cpu().float().eval()
    mult = teacher.config.min_multiple
    out = []
    for img in images:
        h, w = img.shape[:2]
        x = np.pad(img, ((0, (-h) % mult), (0, (-w) % mult), (0, 0)), mode="reflect")
        x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        out.append(torch.sigmoid(teacher(x))[0, 0, :h, :w].numpy().astype(np.float32))
    return out


def channel_file_name(branch: str, scheme: str, cr: float) -> str:
    return f"{branch}_{scheme}_cr{float(cr):g}.safetensors"


def channel_ladder(
    dense: UNet,
    branch: str,
    scheme: str,
    crs: list[float],
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    steps: int = 800,
    lr: float = 5e-4,
    distill: float = 1.0,
    batch: int = 8,
    crop: int = 256,
    multiple: int = DEFAULT_MULTIPLE,
    seed: int = 0,
    device: str = "auto",
    threads: int = 0,
    precision: str = "bf16",
    progress: bool = True,
) -> list[Path]:
    """Prune ``dense`` through ``crs`` (ascending) under a channel scheme; return the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, files, previous = dense, [], None
    images = targets = maps = None
    for cr in sorted(float(c) for c in crs):
        sub = out / f"cr{cr:g}"
        final = sub / channel_file_name(branch, scheme, cr)
        if not final.is_file():
            pruned, plan = channel_prune(model, scheme, cr, multiple, dense.config)
            if images is None:
                images, targets, _ = load_training_set(data_dir, branch)
                maps = teacher_outputs(dense, images) if distill > 0 and steps > 0 else None
            recalibrate_batchnorm(pruned, bn_batches(images, targets, batch=batch, crop=crop))
            cfg = TrainConfig(branch=branch, steps=steps, batch=batch, crop=crop, lr=lr, lr_min=lr / 20,
                              warmup=min(20, steps), seed=seed + int(cr * 1000), threads=threads,
                              ckpt_every=max(50, steps // 4), precision=precision)
            meta = {"scheme": scheme, "cr": cr, "achieved_cr": plan.achieved_cr,
                    "channels": list(plan.channels), "multiple": multiple,
                    "macs_ratio": macs(dense.config) / macs(pruned.config),
                    "finetune_steps": steps, "lr": lr, "distill": distill, "recalibrated_bn": True,
                    "batch": batch, "crop": crop,
                    "distill_target": "dense output on the un-augmented image",
                    "start": previous}
            if steps > 0:
                train(cfg, data_dir, sub, resume=True, device=device, init_model=pruned, progress=progress,
                      metadata=meta, distill=distill, teacher_maps=maps)
                pruned = load_branch(sub / f"{branch}.safetensors")
            save_branch(final, pruned, {"branch": branch, **meta})
        model = load_branch(final)
        previous = {"cr": cr, "sha256": sha256_file(final)}
        files.append(final)
        (out / "progress.json").write_text(json.dumps({"done": [str(f) for f in files]}))
    return files
