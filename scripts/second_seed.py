"""Training noise beside image noise (issue 21): one CR of each scheme fine-tuned again by the zoo's protocol with
another seed, both seeds scored on MoNuSeg test, each with its own watershed tuned on the 4 held-back train images.

    python scripts/second_seed.py --data ../shared/data/monuseg2018 --work ../runs/seed2 \\
        --json docs/training/second_seed.json            # resumable: finished stages in --work are kept
    # or one job per core: --schemes channel-layerwise and --schemes channel-networkwide side by side
    # before a new zoo ships: --train-only --steps S --version V trains its seed-2 stages, scored after shipping

The seed-1 pair is the shipped one; the seed-2 pair stays in --work (not shipped). Per scheme: both seeds' mean
test AJI, their per-image AJI, and the paired bootstrap interval of (seed 2 - seed 1) over test images; the
image-noise yardstick beside it is the interval of the shipped pair against dense.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import shlex
import sys
import time
from pathlib import Path

from napari_prunuclei.base.constants import CHANNEL_SCHEMES, UNSTRUCTURED_SCHEMES
from napari_prunuclei.base.machine import cpu_name
from napari_prunuclei.io.atomic import atomic_write, open_lock
from napari_prunuclei.io.dataset import DataError, NucleiDataset
from napari_prunuclei.models.sparse import load_branch_file
from napari_prunuclei.models.zoo import find_entry
from napari_prunuclei.nuclei.watershed import WatershedParams
from napari_prunuclei.pruning.oneshot import load_model
from napari_prunuclei.runtime.pairs import load_pair, pair_from_models
from napari_prunuclei.study.evaluation import held_back_scores, predict_dataset, score_predictions
from napari_prunuclei.study.intervals import difference_interval, relative_drop_interval
from napari_prunuclei.study.release import shared_protocol
from napari_prunuclei.training.protocol import Protocol, run_stage
from napari_prunuclei.training.staging import StageBusy, building


def test_aji(data: Path, pair) -> dict[str, float]:
    """Each MoNuSeg test image's AJI under the pair's own thresholds."""
    names = NucleiDataset(data).names("test")
    preds = predict_dataset(data, names, pair, pair.params, device="cpu", precision="auto")
    return {r["name"]: r["aji"] for r in score_predictions(preds)["per_image"]}


def main() -> int:
    shipped = shared_protocol() or {}  # seed 1 is the shipped zoo: by default seed 2 follows its protocol
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the MoNuSeg 2018 folder")
    p.add_argument("--work", type=Path, required=True, help="the seed-2 stages (outside the repository)")
    p.add_argument("--schemes", nargs="+", default=[*UNSTRUCTURED_SCHEMES, *CHANNEL_SCHEMES])
    p.add_argument("--cr", type=float, default=2.0, help="the CR trained again (the first of every gradual ladder)")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--steps", type=int, default=shipped.get("steps", 250), help="default: the shipped zoo's")
    p.add_argument("--version", type=int, default=shipped.get("version", Protocol.version),
                   help="the zoo protocol's version (default: the shipped zoo's)")
    p.add_argument("--json", type=Path, default=Path("docs/training/second_seed.json"))
    p.add_argument("--train-only", action="store_true",
                   help="train the seed-2 stages into --work and stop (before the zoo of --steps/--version ships: "
                        "scoring them later, against the shipped seed 1, reuses them)")
    a = p.parse_args()
    base = Protocol(steps=a.steps, ladder="gradual", version=a.version)
    protocol = Protocol(steps=a.steps, ladder="gradual", seed=a.seed, version=a.version)
    dense = {b: load_model(b, "dense", 1) for b in ("semantic", "distance")}
    if a.train_only:
        for scheme in a.schemes:
            t0 = time.perf_counter()
            try:
                with building(a.work, scheme, a.cr):
                    run_stage(dense, scheme, a.cr, a.data, a.work, protocol, threads=1)
            except StageBusy as e:
                print(f"second_seed: {e}", file=sys.stderr)
                return 2
            except DataError as e:  # e.g. tiles smaller than the protocol's crops: said, no traceback
                print(f"second_seed: {a.data}: {e}", file=sys.stderr)
                return 1
            print(f"{scheme} CR{a.cr:g} seed {a.seed}: trained in {time.perf_counter() - t0:.0f} s "
                  f"(protocol v{a.version}, {a.steps} steps) into {a.work}", flush=True)
        return 0
    for scheme in a.schemes:  # seed 1 is the shipped pair: it must have been made by this protocol
        made = (find_entry("semantic", scheme, a.cr) or {}).get("finetune")
        if made != base.record():
            raise SystemExit(f"second_seed: the shipped {scheme} CR{a.cr:g} was not made by protocol "
                             f"v{base.version} with {base.steps} steps (its record: {made}); give the shipped "
                             "zoo's --steps and --version")
    out = json.loads(a.json.read_text()) if a.json.is_file() else {}
    if (out.get("cr"), out.get("protocol")) != (a.cr, protocol.record()):
        out = {}  # another CR, seed or protocol: its results are not this run's to resume
    command = shlex.join(["python", "scripts/second_seed.py", *sys.argv[1:]])  # each scheme's own (jobs side by side)
    out.update({"protocol": protocol.record(), "seed_1": base.seed, "cr": a.cr})
    out.setdefault("schemes", {})
    dense_aji = test_aji(a.data, load_pair())
    for scheme in a.schemes:
        if scheme in out["schemes"]:
            continue
        t0 = time.perf_counter()
        try:
            with building(a.work, scheme, a.cr):  # two jobs on one stage would write the same checkpoints
                files = run_stage(dense, scheme, a.cr, a.data, a.work, protocol, threads=1)
        except StageBusy as e:
            print(f"second_seed: {e}", file=sys.stderr)
            return 2
        sem, dist = load_branch_file(files["semantic"]), load_branch_file(files["distance"])
        held = held_back_scores(a.data, sem, dist)
        two = test_aji(a.data, pair_from_models(sem, dist, WatershedParams(**held["best"])))
        one = test_aji(a.data, load_pair(scheme, a.cr))
        names = sorted(one)
        x, y, d = [two[n] for n in names], [one[n] for n in names], [dense_aji[n] for n in names]
        out["schemes"][scheme] = {
            "seed_1_test_aji": sum(y) / len(y), "seed_2_test_aji": sum(x) / len(x),
            "seed_2_held_back_aji": held["aji"], "seed_2_watershed": held["best"],
            "seed_2_minus_seed_1": difference_interval(x, y).as_dict(),
            "seed_1_drop_vs_dense": relative_drop_interval(y, d).as_dict(),
            "images": names, "seed_1_per_image": y, "seed_2_per_image": x,
            "seconds": round(time.perf_counter() - t0, 1), "machine": cpu_name(), "command": command}
        with open_lock(a.json.with_name(a.json.name + ".lock")) as lock:  # another job (another scheme, same
            fcntl.flock(lock, fcntl.LOCK_EX)  # CR and seed) may be writing now, or have written: merge under a lock
            on_disk = json.loads(a.json.read_text()) if a.json.is_file() else {}
            if (on_disk.get("cr"), on_disk.get("protocol")) == (a.cr, protocol.record()):
                out["schemes"] = {**on_disk.get("schemes", {}), **out["schemes"]}
            atomic_write(a.json, lambda t: t.write_text(json.dumps(out, indent=1)))
        print(scheme, json.dumps({k: v for k, v in out["schemes"][scheme].items() if "per_image" not in k
                                  and k != "images"}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
