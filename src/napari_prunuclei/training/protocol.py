"""One fine-tuning protocol for every pruned model of the zoo (issue 21).

A *stage* is one (scheme, CR): both branches are pruned to that CR, by the ladder rule
:attr:`Protocol.ladder`: ``"from-dense"`` cuts the dense pair, ``"gradual"`` cuts the finished stage of
the scheme's previous CR (the first CR from dense; unstructured masks nest, so a weight once pruned stays
pruned). Every CR gets the same budget, so a curve over CR shows the scheme, not how long each point was
trained. BatchNorm statistics are re-estimated on fixed training crops, and each branch is
fine-tuned for :attr:`Protocol.steps` Adam steps (warm-up, cosine lr to lr/20) with distillation from
the dense branch's outputs on the un-augmented training images, on the training images less the 4
held-back ones, with one seed for every stage (every stage sees the same crops in the same order).
Unstructured schemes keep their magnitude mask fixed (a sparse file); channel schemes cut whole
filters (a smaller dense network), and both channel schemes keep head inputs of both signs (a cut that
kept only the filters the head weighs negatively gave a semantic branch that never reaches 0.5:
:func:`~napari_prunuclei.pruning.channels.head_input_keep`). The recipe is written into every file and
registry entry as one record (:meth:`Protocol.record`), so entries made by another recipe are told apart.

Resumable: a finished branch file is kept; an interrupted one resumes from its checkpoint (the cut is
deterministic). On one machine a stage is bit-identical when run again (``tests/test_protocol.py``).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from napari_prunuclei.base.constants import CHANNEL_SCHEMES, UNSTRUCTURED_SCHEMES, zoo_crs
from napari_prunuclei.models.sparse import load_branch_file, save_sparse
from napari_prunuclei.models.unet import UNet
from napari_prunuclei.models.weights import load_branch, read_metadata, save_branch
from napari_prunuclei.pruning.channels import DEFAULT_MULTIPLE, channel_prune, macs
from napari_prunuclei.pruning.magnitude import apply_masks, magnitude_masks, recalibrate_batchnorm
from napari_prunuclei.training.channel_ladder import teacher_outputs
from napari_prunuclei.training.finetune import bn_batches
from napari_prunuclei.training.train import BRANCHES, TrainConfig, load_training_set, train

__all__ = ["Protocol", "LADDERS", "stage_file", "previous_cr", "run_stage", "file_protocol"]

#: the ladder rules: every CR cut from dense, or from the scheme's previous CR
LADDERS = ("from-dense", "gradual")


@dataclass(frozen=True)
class Protocol:
    """The recipe every pruned model is fine-tuned with; ``steps`` per branch per stage."""

    steps: int = 500
    lr: float = 5e-4
    distill: float = 1.0
    batch: int = 8
    crop: int = 256
    seed: int = 1
    ladder: str = "from-dense"
    precision: str = "bf16"
    multiple: int = DEFAULT_MULTIPLE  # channel schemes: channel counts in multiples of this
    version: int = 1

    def __post_init__(self) -> None:
        if self.ladder not in LADDERS:
            raise ValueError(f"ladder must be one of {LADDERS}, got {self.ladder!r}")

    def record(self) -> dict:
        """The registry's ``finetune`` field: the same dict for every entry made by this protocol."""
        return {**asdict(self), "lr_min": self.lr / 20, "warmup": self.warmup,
                "distill_target": "dense outputs on the un-augmented training images",
                "batchnorm": "re-estimated on 8 fixed batches of training crops after the cut",
                "data": "train split less the 4 held-back images",
                "channel_head": "the last decoder layer keeps inputs of both signs of the head's weights"}

    @property
    def warmup(self) -> int:
        return min(50, max(1, self.steps // 10))

    def config(self, branch: str, threads: int = 1) -> TrainConfig:
        """The training configuration of one branch's fine-tuning."""
        return TrainConfig(branch=branch, steps=self.steps, batch=self.batch, crop=self.crop, lr=self.lr,
                           lr_min=self.lr / 20, warmup=self.warmup, seed=self.seed, threads=threads,
                           ckpt_every=max(25, self.steps // 10), precision=self.precision)


def file_protocol(path: Path) -> dict | None:
    """The protocol record a branch file carries (None: none, or unreadable)."""
    try:
        return json.loads(read_metadata(path).get("protocol", "null"))
    except (OSError, ValueError):
        return None


def _check_made_by(path: Path, protocol: Protocol) -> None:
    """Refuse a finished stage file in the work folder that another protocol made (e.g. an earlier zoo's
    stage, or another seed's): it would be taken, and recorded, as this protocol's."""
    made = file_protocol(path)
    if made != protocol.record():
        what = (f"protocol v{made.get('version')}, {made.get('steps')} steps, seed {made.get('seed')}"
                if isinstance(made, dict) else "no protocol record")
        raise ValueError(f"{path}: a finished stage made by another protocol ({what}); this run is protocol "
                         f"v{protocol.version}, {protocol.steps} steps, seed {protocol.seed}: use another work "
                         "folder")


def stage_file(branch: str, scheme: str, cr: float) -> str:
    """The file name of a stage's branch, as the package ships it."""
    return f"{branch}_{scheme}_cr{float(cr):g}.safetensors"


def previous_cr(scheme: str, cr: float) -> float | None:
    """The CR a gradual stage starts from: the scheme's next smaller zoo CR (None: start from dense)."""
    smaller = [c for c in zoo_crs(scheme) if c < float(cr)]
    return max(smaller) if smaller else None


def _start(dense: UNet, branch: str, scheme: str, cr: float, work: Path, protocol: Protocol) -> tuple[UNet, str]:
    """The network a stage cuts, and its name for the record."""
    prev = previous_cr(scheme, cr) if protocol.ladder == "gradual" else None
    if prev is None:
        return dense, "dense"
    f = work / scheme / f"cr{prev:g}" / stage_file(branch, scheme, prev)
    if not f.is_file():
        raise FileNotFoundError(f"gradual ladder: {scheme} CR{cr:g} starts from CR{prev:g}, not built yet ({f})")
    _check_made_by(f, protocol)  # never cut from another protocol's stage
    return load_branch_file(f), f"{scheme} CR{prev:g} stage"


def _cut(dense: UNet, scheme: str, cr: float, protocol: Protocol, dense_config=None):
    """The pruned start of a stage and what its file records of the cut (``dense``: the network cut;
    ``dense_config``: the dense pair's shape, which channel CRs are relative to)."""
    dense_config = dense_config or dense.config
    if scheme in UNSTRUCTURED_SCHEMES:
        masks = magnitude_masks(dense, scheme, cr)
        return apply_masks(copy.deepcopy(dense), masks), masks, {}
    if scheme in CHANNEL_SCHEMES:
        pruned, plan = channel_prune(dense, scheme, cr, protocol.multiple, dense_config, head_signs=True)
        return pruned, None, {"achieved_cr": plan.achieved_cr, "channels": list(plan.channels),
                              "multiple": protocol.multiple, "macs_ratio": macs(dense_config) / macs(pruned.config)}
    raise ValueError(f"unknown pruning scheme {scheme!r}: one of {UNSTRUCTURED_SCHEMES + CHANNEL_SCHEMES}")


def run_stage(dense: dict[str, UNet], scheme: str, cr: float, data_dir: str | Path, work: str | Path,
              protocol: Protocol, *, threads: int = 1, device: str = "cpu", progress: bool = False,
              branches: tuple[str, ...] = BRANCHES) -> dict[str, Path]:
    """Prune each branch to ``cr`` under ``scheme`` (from dense, or from the previous stage in ``work``
    when the ladder is gradual) and fine-tune it by ``protocol``, distilling from dense; return the
    finished files by branch (in ``work/<scheme>/cr<cr>/``). Finished branches are skipped."""
    if threads:
        torch.set_num_threads(threads)
    out = Path(work) / scheme / f"cr{float(cr):g}"
    files = {}
    for branch in branches:
        final = out / stage_file(branch, scheme, cr)
        files[branch] = final
        if final.is_file():
            _check_made_by(final, protocol)
            continue
        teacher = dense[branch]
        start, start_name = _start(teacher, branch, scheme, cr, Path(work), protocol)
        torch.manual_seed(protocol.seed)
        model, masks, cut = _cut(start, scheme, cr, protocol, teacher.config)
        images, targets, _ = load_training_set(data_dir, branch)
        recalibrate_batchnorm(model, bn_batches(images, targets, batch=protocol.batch, crop=protocol.crop))
        maps = teacher_outputs(teacher, images) if protocol.distill > 0 and protocol.steps > 0 else None
        meta = {"branch": branch, "scheme": scheme, "cr": float(cr), "finetune_steps": protocol.steps,
                "lr": protocol.lr, "distill": protocol.distill, "recalibrated_bn": True, "protocol": protocol.record(),
                "cut_from": start_name,
                **cut}
        run_dir = out / branch
        if protocol.steps > 0:
            train(protocol.config(branch, threads), data_dir, run_dir, resume=True,
                  device=device, init_model=model, masks=masks, progress=progress, metadata=meta,
                  distill=protocol.distill, teacher_maps=maps)
            model = load_branch(run_dir / f"{branch}.safetensors")
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(final.name + ".part")  # a stage counts as finished only once its file is whole
        if masks is not None:
            save_sparse(part, model, masks, meta)
        else:
            save_branch(part, model, meta)
        os.replace(part, final)
    return files
