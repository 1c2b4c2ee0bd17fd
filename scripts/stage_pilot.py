"""Pilot for issue 21's protocol: how many fine-tuning steps does one pruning stage need?

Runs one stage of the zoo's protocol (:mod:`napari_prunuclei.training.protocol`: pruned from the
shipped dense pair to ``--cr`` under ``--scheme``, BatchNorm re-estimated, distillation from dense, one
seed) once for every budget in ``--budgets`` (each its own run, its own cosine schedule), one thread,
and scores each pair (and the one-shot cut, budget 0) on the 4 held-back train images over the
watershed grid. The budget to use is the smallest one past which doubling changes held-back AJI by
less than ``--tolerance`` (relative). With ``--ladder gradual`` each budget runs the scheme's whole
ladder up to ``--cr`` (every smaller zoo CR a stage of that budget, each cut from the one before), so the
two ladder rules compare at equal steps per stage. Resumable: re-run the same command to continue; the JSON is
rewritten after each budget. Never touches the test split nor the package.

    python scripts/stage_pilot.py --data ../shared/data/monuseg2018 --out ../runs/stage_pilot \
        --scheme layer-wise --cr 10 --budgets 250 500 1000 2000 --json docs/training/stage_pilot.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from napari_prunuclei.base.constants import zoo_crs
from napari_prunuclei.models.sparse import load_branch_file
from napari_prunuclei.pruning.oneshot import load_model
from napari_prunuclei.study.evaluation import held_back_scores, write_json
from napari_prunuclei.training.protocol import LADDERS, Protocol, run_stage
from napari_prunuclei.training.train import BRANCHES


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
    p.add_argument("--scheme", default="layerwise",
                   choices=["layerwise", "networkwide", "channel-layerwise", "channel-networkwide"])
    p.add_argument("--cr", type=float, default=10.0)
    p.add_argument("--budgets", type=int, nargs="+", default=[250, 500, 1000, 2000])
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--distill", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tolerance", type=float, default=0.005)
    p.add_argument("--ladder", choices=LADDERS, default="from-dense")
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
        "ladder": a.ladder,
        "rows": [],
    }
    dense = {b: load_model(b, "dense", 1) for b in BRANCHES}
    oneshot = run_stage(dense, a.scheme, a.cr, a.data, a.out / "steps0", Protocol(steps=0), threads=a.threads)
    models = (load_branch_file(oneshot[b]) for b in BRANCHES)
    result["rows"].append({"steps": 0, **held_back_scores(a.data, *models)})
    print(json.dumps(result["rows"][-1]), flush=True)
    for steps in sorted(a.budgets):
        protocol = Protocol(steps=steps, lr=a.lr, distill=a.distill, ladder=a.ladder)
        t0 = time.perf_counter()
        work = a.out / (f"steps{steps}" if a.ladder == "from-dense" else f"gradual{steps}")
        chain = [c for c in zoo_crs(a.scheme) if c < a.cr] if a.ladder == "gradual" else []
        for cr in (*chain, a.cr):
            files = run_stage(dense, a.scheme, cr, a.data, work, protocol, threads=a.threads)
        row = {"steps": steps, "stages": len(chain) + 1, "train_seconds_this_run": round(time.perf_counter() - t0, 1),
               "protocol": protocol.record(),
               **held_back_scores(a.data, *(load_branch_file(files[b]) for b in BRANCHES))}
        result["rows"].append(row)
        result["chosen_steps"] = choose(result["rows"], a.tolerance)
        print(json.dumps(row), flush=True)
        if a.json:
            write_json(a.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
