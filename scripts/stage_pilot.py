"""Pilot for issue 21's protocol: how many fine-tuning steps does one pruning stage need?

Prunes the shipped dense pair once to ``--cr`` under ``--scheme`` (magnitude masks, BatchNorm
re-estimated on training crops), then fine-tunes each branch with the mask fixed for every budget in
``--budgets`` (each its own run: warm-up, cosine lr to lr/20, distillation from the dense branch's
outputs, the same seed), one thread, and scores each pair on the 4 held-back train images over the
watershed grid. The budget to use is the smallest one past which doubling changes held-back AJI by
less than ``--tolerance`` (relative). Resumable: re-run the same command to continue; the JSON is
rewritten after each budget. Never touches the test split nor the package.

    python scripts/stage_pilot.py --data ../shared/data/monuseg2018 --out ../runs/stage_pilot \
        --scheme layer-wise --cr 10 --budgets 250 500 1000 2000 --json docs/training/stage_pilot.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from napari_prunuclei.models.weights import load_branch
from napari_prunuclei.pruning.magnitude import apply_masks, magnitude_masks, recalibrate_batchnorm
from napari_prunuclei.pruning.oneshot import load_model
from napari_prunuclei.runtime.pairs import pair_from_models
from napari_prunuclei.study.evaluation import (
    predict_dataset,
    score_predictions,
    tune_watershed,
    validation_names,
    write_json,
)
from napari_prunuclei.training.channel_ladder import teacher_outputs
from napari_prunuclei.training.finetune import bn_batches
from napari_prunuclei.training.train import TrainConfig, load_training_set, train

BRANCHES = ("semantic", "distance")


def held_back(data: Path, semantic, distance) -> dict:
    """The watershed grid's best on the held-back images: mean and per-image AJI."""
    names = validation_names(data)
    preds = predict_dataset(data, names, pair_from_models(semantic, distance), precision="auto")
    best, grid = tune_watershed(preds)
    per = score_predictions(preds, best)["per_image"]
    top = max(grid, key=lambda g: g["aji"])
    return {
        "best": best.as_dict(),
        "aji": top["aji"],
        "pq": top["pq"],
        "dice": top["dice"],
        "per_image_aji": {r["name"]: r["aji"] for r in per},
    }


def pruned_start(branch: str, scheme: str, cr: float, data: Path):
    """The dense branch cut to ``cr`` with BatchNorm re-estimated, and its masks."""
    dense = load_model(branch, "dense", 1)
    masks = magnitude_masks(dense, scheme, cr)
    model = apply_masks(copy.deepcopy(dense), masks)
    images, targets, _ = load_training_set(data, branch)
    recalibrate_batchnorm(model, bn_batches(images, targets))
    return dense, model, masks, images


def choose(rows: list[dict], tolerance: float) -> int | None:
    """Smallest budget whose doubling changes held-back AJI by less than ``tolerance`` (relative)."""
    by = {r["steps"]: r["aji"] for r in rows}
    for b in sorted(by):
        if b > 0 and 2 * b in by and abs(by[2 * b] - by[b]) < tolerance * by[b]:
            return b
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="run folder (outside the repository)")
    p.add_argument("--scheme", default="layer-wise")
    p.add_argument("--cr", type=float, default=10.0)
    p.add_argument("--budgets", type=int, nargs="+", default=[250, 500, 1000, 2000])
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--distill", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tolerance", type=float, default=0.005)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    result = {
        "command": "python scripts/stage_pilot.py "
        + " ".join(
            f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(a).items() if v is not None
        ),
        "scheme": a.scheme,
        "cr": a.cr,
        "lr": a.lr,
        "distill": a.distill,
        "rows": [],
    }
    starts = {b: pruned_start(b, a.scheme, a.cr, a.data) for b in BRANCHES}
    result["rows"].append({"steps": 0, **held_back(a.data, starts["semantic"][1], starts["distance"][1])})
    print(json.dumps(result["rows"][-1]), flush=True)
    maps = {}
    for steps in sorted(a.budgets):
        models, seconds = {}, {}
        for branch in BRANCHES:
            dense, model, masks, images = starts[branch]
            out = a.out / f"steps{steps}" / branch
            done = out / f"{branch}.safetensors"
            if not done.is_file():
                if branch not in maps:
                    maps[branch] = teacher_outputs(dense, images)
                cfg = TrainConfig(
                    branch=branch,
                    steps=steps,
                    lr=a.lr,
                    lr_min=a.lr / 20,
                    warmup=min(50, steps // 10),
                    threads=a.threads,
                    seed=1,
                    ckpt_every=50,
                )
                t0 = time.perf_counter()
                train(
                    cfg,
                    a.data,
                    out,
                    resume=True,
                    init_model=copy.deepcopy(model),
                    masks=masks,
                    progress=False,
                    metadata={"scheme": a.scheme, "cr": a.cr},
                    teacher_maps=maps[branch],
                    distill=a.distill,
                )
                seconds[branch] = time.perf_counter() - t0
            models[branch] = load_branch(done)
        row = {
            "steps": steps,
            "train_seconds_this_run": seconds,
            **held_back(a.data, models["semantic"], models["distance"]),
        }
        result["rows"].append(row)
        result["chosen_steps"] = choose(result["rows"], a.tolerance)
        print(json.dumps(row), flush=True)
        if a.json:
            write_json(a.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
