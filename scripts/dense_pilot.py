"""Pilot for issue 21's stronger dense pair: does a longer schedule help on the held-back images?

Continues each shipped dense branch (warm restart) for ``--steps`` more Adam steps at ``--lr``
(cosine to 1e-5, same crops, augmentation and seed rule as the original training), one thread,
semantic then distance, resumable (re-run the same command to continue), then scores the candidate
pair and the shipped pair on the 4 held-back train images over the watershed grid. Never touches
the test split and never writes into the package: the candidate is shipped, if at all, by
``prunuclei ship-dense`` after its numbers are read.

    python scripts/dense_pilot.py --data ../shared/data/monuseg2018 --out ../runs/dense_pilot \
        --steps 2000 --lr 5e-4 --json docs/training/dense_pilot.json
    python scripts/dense_pilot.py --data ../shared/data/monuseg2018 --out ../runs/dense_border \
        --steps 1500 --lr 5e-4 --border-weight 5 --branches semantic --json docs/training/dense_border.json
    python scripts/dense_pilot.py --data ../shared/data/monuseg2018 --out ../runs/dense_stain \
        --steps 1000 --lr 5e-4 --stain-jitter 0.15 --json docs/training/dense_stain.json
    python scripts/dense_pilot.py --data ../shared/data/monuseg2018 --out ../runs/dense_scratch \
        --from-scratch --steps 8000 --lr 1.5e-3 --branches semantic --json docs/training/dense_scratch.json

``--from-scratch`` trains the branch anew with the shipped recipe (seed 0, 100 warm-up steps) instead of
continuing the shipped weights.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from napari_prunuclei.models.weights import load_branch
from napari_prunuclei.pruning.oneshot import load_model
from napari_prunuclei.study.evaluation import held_back_scores, write_json
from napari_prunuclei.training.train import TrainConfig, train


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="run folder (outside the repository)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--border-weight", type=float, default=0.0,
                   help="semantic: extra BCE weight where two nuclei touch (0: off)")
    p.add_argument("--stain-jitter", type=float, default=0.05,
                   help="HED stain augmentation's range (0.05: the shipped training's)")
    p.add_argument("--branches", nargs="+", choices=("semantic", "distance"), default=["semantic", "distance"],
                   help="branches to continue; the others stay the shipped ones")
    p.add_argument("--from-scratch", action="store_true",
                   help="train anew (seed 0 and 100 warm-up steps, as the shipped run; give --steps and --lr: "
                        "the shipped run had 4000 at 1.5e-3) instead of a warm restart")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    files, seconds = {}, {}
    for branch in a.branches:
        out = a.out / branch
        files[branch] = out / f"{branch}.safetensors"
        if files[branch].is_file():
            continue
        cfg = TrainConfig(branch=branch, steps=a.steps, lr=a.lr, warmup=100 if a.from_scratch else 50,
                          threads=a.threads, seed=0 if a.from_scratch else 1,
                          border_weight=a.border_weight, stain_jitter=a.stain_jitter)
        init = None if a.from_scratch else copy.deepcopy(load_model(branch, "dense", 1))
        t0 = time.perf_counter()
        train(cfg, a.data, out, resume=True, init_model=init, progress=False,
              metadata={"init": "scratch" if a.from_scratch else f"{branch}-dense (shipped)"})
        seconds[branch] = time.perf_counter() - t0
    result = {
        "command": shlex.join(["python", "scripts/dense_pilot.py", *sys.argv[1:]]),
        "steps": a.steps, "lr": a.lr, "from_scratch": a.from_scratch, "border_weight": a.border_weight,
        "stain_jitter": a.stain_jitter,
        "branches": a.branches,
        "train_seconds_this_run": seconds,
        "shipped": held_back_scores(a.data, *(load_model(b, "dense", 1) for b in ("semantic", "distance"))),
        "candidate": held_back_scores(a.data, *(load_branch(files[b]) if b in files else load_model(b, "dense", 1)
                                         for b in ("semantic", "distance"))),
    }
    print(json.dumps({k: result[k] for k in ("shipped", "candidate")}, indent=1))
    if a.json:
        write_json(a.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
