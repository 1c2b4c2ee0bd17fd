"""Training loops for both branches, and fixed-mask fine-tuning of pruned ones.

Every step draws its crops from ``numpy.random.default_rng([seed, step])``, and
the learning rate is a pure function of the step, so a run resumed from a
checkpoint continues exactly where it stopped.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from napari_prunuclei.io.atomic import atomic_write
from napari_prunuclei.io.dataset import NucleiDataset, augment, distance_target, random_crops, split_train_val
from napari_prunuclei.models.devices import resolve_device
from napari_prunuclei.models.unet import UNet, UNetConfig
from napari_prunuclei.models.weights import save_branch
from napari_prunuclei.pruning.magnitude import apply_masks

__all__ = ["BRANCHES", "TrainConfig", "train", "branch_loss", "lr_at", "load_training_set", "touching_borders",
           "border_weights"]

BRANCHES = ("semantic", "distance")


@dataclass
class TrainConfig:
    """Everything that defines a training (or fine-tuning) run."""

    branch: str = "semantic"
    steps: int = 3000
    batch: int = 8
    crop: int = 256
    lr: float = 1.5e-3
    lr_min: float = 1e-5
    warmup: int = 100
    seed: int = 0  # crops, augmentation and initialisation
    n_val: int = 4
    split_seed: int = 0  # which train images are held back: the same for every run (tuning uses them)
    ckpt_every: int = 100
    precision: str = "bf16"  # or "fp32"
    threads: int = 0  # 0: torch default
    border_weight: float = 0.0  # semantic: extra BCE weight on pixels where two nuclei touch (0: off)
    stain_jitter: float = 0.05  # HED stain augmentation's range (io.dataset.augment)
    model: dict = field(default_factory=lambda: UNetConfig().to_dict())

    def __post_init__(self) -> None:
        if self.branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {self.branch!r}")
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be bf16 or fp32, got {self.precision!r}")
        if not 0 <= self.stain_jitter < 1:  # (1 or more would scale a stain's density to zero or below)
            raise ValueError(f"stain_jitter must be in [0, 1), got {self.stain_jitter!r}")


#: settings of how a run runs, not of what it trains: a resume may change them
RUN_ONLY = ("threads", "ckpt_every")


def _check_same_run(config: Path, cfg: TrainConfig, ckpt: Path) -> None:
    """Refuse to resume ``ckpt`` when the run that wrote it (its ``config.json``) trained something else
    (other steps, learning rate, seed, held-back split or network): its weights would go on under another
    schedule and be recorded as this run's. A setting the older run's record lacks counts at its default."""
    try:
        was = json.loads(config.read_text())
    except (OSError, ValueError):
        return  # no record (a run of an earlier version): the checkpoint's own checks apply
    if not isinstance(was, dict):
        return
    now = json.loads(json.dumps(asdict(cfg)))
    default = json.loads(json.dumps(asdict(TrainConfig(branch=cfg.branch))))
    differ = sorted(k for k in set(was) | set(now) if k not in RUN_ONLY and was.get(k, default.get(k)) != now.get(k))
    if differ:
        raise ValueError(f"cannot resume from {ckpt}: it belongs to a run with other settings ("
                         + ", ".join(f"{k} {was.get(k)!r}, now {now.get(k)!r}" for k in differ[:4])
                         + "); remove its folder to start afresh, or choose another")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``lr_min``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(t, 1.0)))


def branch_loss(
    branch: str, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Semantic: BCE (pixel-weighted by ``weight`` if given) + soft Dice. Distance: MSE of sigmoid output."""
    logits = logits.float()
    if branch == "semantic":
        bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
        return bce + dice
    return F.mse_loss(torch.sigmoid(logits), target)


def load_training_set(
    data_dir: str | Path, branch: str, n_val: int = 4, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Images (float32 in [0, 1]) and targets of the train split less the held-back images.

    Cached (one data set per process) so a pruning ladder reads the data once.
    """
    return _load_training_set(str(Path(data_dir).resolve()), branch, n_val, seed)


@lru_cache(maxsize=2)
def _load_training_set(data_dir: str, branch: str, n_val: int, seed: int):
    ds = NucleiDataset(data_dir)
    train_names, _ = split_train_val(ds.names("train"), n_val=n_val, seed=seed)
    images, targets = [], []
    for name in train_names:
        rgb, lab = ds.load(name)
        images.append(rgb.astype(np.float32) / 255.0)
        targets.append((lab > 0).astype(np.float32) if branch == "semantic" else distance_target(lab))
    return images, targets, train_names


def touching_borders(labels: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels within ``width`` px of a place where two different nuclei meet (bool HxW)."""
    labels = np.asarray(labels)
    size = 2 * width + 1
    big = int(labels.max()) + 1  # stands for background in the minimum (ndimage overflows near int64's max)
    hi = ndi.maximum_filter(labels.astype(np.int64), size=size)
    lo = ndi.minimum_filter(np.where(labels > 0, labels.astype(np.int64), big), size=size)
    return (lo != big) & (hi != lo)


def border_weights(data_dir: str | Path, n_val: int = 4, seed: int = 0, width: int = 2) -> list[np.ndarray]:
    """Touching-border masks (float32 0/1) of the training images, in :func:`load_training_set`'s order."""
    ds = NucleiDataset(data_dir)
    names, _ = split_train_val(ds.names("train"), n_val=n_val, seed=seed)
    return [touching_borders(ds.load(n)[1], width).astype(np.float32) for n in names]


def _autocast(device: torch.device, precision: str):
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def train(
    cfg: TrainConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    init_model: UNet | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    progress: bool = True,
    metadata: dict | None = None,
    stop_at: int | None = None,
    teacher: UNet | None = None,
    distill: float = 0.0,
    teacher_maps: list[np.ndarray] | None = None,
) -> Path | None:
    """Train one branch; return the path of the exported ``<branch>.safetensors``.

    ``out_dir`` receives ``checkpoint.pt`` (every ``ckpt_every`` steps),
    ``log.csv``, ``loss.png``, ``config.json`` and the final weights.
    With ``masks`` the pruned weights are kept at exactly zero (fixed-mask fine-tuning).
    ``stop_at`` ends the run after that step with a checkpoint (as an interruption
    would) and returns None; ``resume=True`` continues it.
    With ``teacher`` and ``distill > 0`` the loss adds ``distill`` times the mean squared
    difference between the student's and the teacher's sigmoid outputs (distillation).
    ``teacher_maps`` (with ``distill > 0``, instead of ``teacher``): the teacher's sigmoid
    outputs on the whole un-augmented training images (in :func:`load_training_set`'s
    order), cropped and flipped/rotated with each crop: the same distillation target
    without a teacher forward pass per step.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = init_model if init_model is not None else UNet(UNetConfig.from_dict(cfg.model))
    cfg.model = model.config.to_dict()
    model = model.to(dev).to(memory_format=torch.channels_last)
    if masks:
        masks = {k: v.to(dev) for k, v in masks.items()}
    if masks:
        apply_masks(model, masks)
    if teacher is not None and distill > 0:
        teacher = teacher.to(dev).to(memory_format=torch.channels_last).eval()
    else:
        teacher = None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start = 0
    log_rows: list[dict] = []
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.is_file():
        _check_same_run(out / "config.json", cfg, ckpt)
        try:  # weights only: a checkpoint never runs code
            state = torch.load(ckpt, map_location=dev, weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            start = int(state["step"])
        except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: say which, resume nothing
            why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
            raise ValueError(f"cannot resume from {ckpt}: not a checkpoint of this training run ({why}); "
                             "remove it to start afresh") from None
        log_rows = _read_log(out / "log.csv")[:start]
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    images, targets, names = load_training_set(data_dir, cfg.branch, cfg.n_val, cfg.split_seed)
    if teacher_maps is not None and distill > 0:
        if len(teacher_maps) != len(targets) or any(m.shape != t.shape for m, t in zip(teacher_maps, targets)):
            raise ValueError("teacher_maps must match the training targets one to one")
        targets = [np.stack([t, m.astype(np.float32)], -1) for t, m in zip(targets, teacher_maps)]
    else:
        teacher_maps = None
    weighted = cfg.branch == "semantic" and cfg.border_weight > 0
    if weighted:
        borders = border_weights(data_dir, cfg.n_val, cfg.split_seed)
        targets = [np.concatenate([t.reshape(*t.shape[:2], -1), b[..., None]], -1) for t, b in zip(targets, borders)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.branch}", unit="step")
    model.train()
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        rng = np.random.default_rng([cfg.seed, step])
        x, y = random_crops(images, targets, cfg.batch, cfg.crop, rng,
                            lambda im, ts, g: augment(im, ts, g, stain=cfg.stain_jitter))
        x = torch.from_numpy(x).to(dev).contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(y).to(dev)
        soft = weight = None
        if weighted:
            y, weight = y[:, :-1], 1.0 + cfg.border_weight * y[:, -1:]
        if teacher_maps is not None:
            y, soft = y[:, :1], y[:, 1:2]
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        with _autocast(dev, cfg.precision):
            logits = model(x)
        loss = branch_loss(cfg.branch, logits, y, weight)
        if teacher is not None:
            with torch.no_grad(), _autocast(dev, cfg.precision):
                soft = torch.sigmoid(teacher(x).float())
        if soft is not None:
            loss = loss + distill * F.mse_loss(torch.sigmoid(logits.float()), soft)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if masks:
            apply_masks(model, masks)
        log_rows.append({"step": step + 1, "loss": loss.item(), "lr": lr,
                         "seconds": time.perf_counter() - t0})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{log_rows[-1]['loss']:.4f}")
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            _save_checkpoint(ckpt, model, opt, step + 1)
            _write_log(out / "log.csv", log_rows)
        if stop_at is not None and step + 1 >= stop_at and step + 1 < cfg.steps:
            _save_checkpoint(ckpt, model, opt, step + 1)
            _write_log(out / "log.csv", log_rows)
            if bar is not None:
                bar.close()
            return None
    if bar is not None:
        bar.close()
    _write_log(out / "log.csv", log_rows)
    plot_loss(out / "log.csv", out / "loss.png", title=f"{cfg.branch} branch")
    model.eval()
    meta = {"branch": cfg.branch, "steps": cfg.steps, "train_config": asdict(cfg),
            "train_images": names}
    meta.update(metadata or {})
    weights = out / f"{cfg.branch}.safetensors"
    save_branch(weights, model.to("cpu").to(memory_format=torch.contiguous_format), meta)
    return weights


def _save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int) -> None:
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step}
    atomic_write(path, lambda t: torch.save(state, t))


def _write_log(path: Path, rows: list[dict]) -> None:
    def write(t: Path) -> None:
        with open(t, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "loss", "lr", "seconds"])
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        return [{k: float(v) if k != "step" else int(v) for k, v in r.items()} for r in csv.DictReader(f)]


def plot_loss(log_csv: Path, png: Path, title: str = "") -> None:
    """Loss curve (raw and smoothed) of a run's ``log.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _read_log(log_csv)
    if not rows:
        return
    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows])
    k = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, loss, alpha=0.3, lw=0.8, label="loss")
    ax.plot(steps[k - 1 :], smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
