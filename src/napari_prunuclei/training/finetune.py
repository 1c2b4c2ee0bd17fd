"""Pruning with fixed-mask fine-tuning, one CR at a time or gradually through a CR ladder.

Gradual magnitude pruning walks the ladder of compression ratios in one run:
at each CR the masks are recomputed from the current (fine-tuned) weights,
BatchNorm statistics are re-estimated on training crops, and the model is
fine-tuned for a few steps with the mask fixed; then it is saved sparsely.
Weights pruned at a lower CR have magnitude 0 and so stay pruned: the masks nest.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from napari_prunuclei.io.dataset import random_crops
from napari_prunuclei.models.sparse import load_sparse, save_sparse
from napari_prunuclei.models.unet import UNet
from napari_prunuclei.pruning.magnitude import apply_masks, magnitude_masks, recalibrate_batchnorm
from napari_prunuclei.training.train import TrainConfig, load_training_set, train

__all__ = ["bn_batches", "prune_and_finetune", "gradual_prune"]


def bn_batches(images, targets, n: int = 8, batch: int = 8, crop: int = 256, seed: int = 123):
    """Fixed training crops for BatchNorm re-estimation."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x, _ = random_crops(images, targets, batch, crop, rng)
        yield torch.from_numpy(x)


def prune_and_finetune(
    dense: UNet,
    branch: str,
    scheme: str,
    cr: float,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    steps: int = 300,
    lr: float = 3e-4,
    batch: int = 8,
    crop: int = 256,
    seed: int = 0,
    device: str = "auto",
    threads: int = 0,
    resume: bool = False,
    recalibrate: bool = True,
    progress: bool = True,
    teacher: UNet | None = None,
    distill: float = 0.0,
    extra_metadata: dict | None = None,
) -> tuple[Path, dict[str, torch.Tensor]]:
    """Prune ``dense`` to ``cr`` and fine-tune with the mask fixed; return (sparse file, masks).

    ``teacher``/``distill``: distil the outputs of an unpruned model while fine-tuning
    (see :func:`~napari_prunuclei.training.train`). ``extra_metadata`` is written into the
    sparse file (e.g. the provenance of a continued ladder).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    masks = magnitude_masks(dense, scheme, cr)
    model = apply_masks(dense, masks)
    if recalibrate:
        images, targets, _ = load_training_set(data_dir, branch)
        recalibrate_batchnorm(model, bn_batches(images, targets, batch=batch, crop=crop))
    cfg = TrainConfig(branch=branch, steps=steps, batch=batch, crop=crop, lr=lr, lr_min=lr / 20, warmup=min(20, steps),
                      seed=seed + int(cr * 1000), threads=threads, ckpt_every=max(50, steps // 4))
    if steps > 0:
        train(cfg, data_dir, out, resume=resume, device=device, init_model=model, masks=masks,
              progress=progress, metadata={"scheme": scheme, "cr": cr}, teacher=teacher, distill=distill)
        from napari_prunuclei.models.weights import load_branch

        model = load_branch(out / f"{branch}.safetensors")
    sparse = out / f"{branch}_{scheme}_cr{cr:g}.safetensors"
    save_sparse(sparse, model, masks, {"branch": branch, "scheme": scheme, "cr": cr,
                                       "finetune_steps": steps, "recalibrated_bn": recalibrate,
                                       "lr": lr, "distill": distill if teacher is not None else 0.0,
                                       **(extra_metadata or {})})
    return sparse, masks


def gradual_prune(
    dense: UNet,
    branch: str,
    scheme: str,
    crs: list[float],
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    steps_per_cr: int = 150,
    start: UNet | None = None,
    **kwargs,
) -> list[Path]:
    """Walk ``crs`` (ascending) from ``dense``; resumable: finished CRs are skipped.

    ``start`` continues a ladder from an already pruned model (e.g. a lower CR of an
    earlier run) instead of from ``dense``; its zeros stay zero.
    """
    out = Path(out_dir)
    files = []
    model = start if start is not None else dense
    for cr in sorted(crs):
        sub = out / f"cr{cr:g}"
        done = sub / f"{branch}_{scheme}_cr{cr:g}.safetensors"
        if not done.is_file():
            done, _ = prune_and_finetune(model, branch, scheme, cr, data_dir, sub, steps=steps_per_cr,
                                         resume=True, **kwargs)
        model, _, _ = load_sparse(done)
        files.append(done)
        (out / "progress.json").write_text(json.dumps({"done": [str(f) for f in files]}))
    return files


