"""Rebuild the zoo from the shipped dense pair by one protocol (issue 21); resumable, in the background.

Every stage (scheme, CR) is pruned from dense and fine-tuned by :class:`Protocol` (same steps, lr,
distillation, crops and seed for every scheme and CR) into ``--work``; with ``--ship`` it is then copied
into the package with its registry entry's ``finetune`` record and its own watershed thresholds tuned on
the 4 held-back train images (never test), and, with ``--commit``, committed on its own (the models are
the product; checkpoints stay in ``--work``, outside the repository). Re-run the same command to
continue: finished stages are kept, shipped stages whose files carry this protocol are skipped, an
interrupted stage resumes from its checkpoint.

    python scripts/build_zoo.py --plan                                  # the table: stages x steps x s/step
    python scripts/build_zoo.py --data ../shared/data/monuseg2018 --work ../runs/zoo \\
        --shard 0/2 > ../runs/zoo/shard0.log 2>&1 &                    # and --shard 1/2 beside it
    python scripts/build_zoo.py --data ../shared/data/monuseg2018 --work ../runs/zoo \
        --ship --commit                                                   # ship what is built (and resume)

``--steps``, ``--ladder`` and ``--version`` default to the protocol of the zoo that ships (its registry's one
``finetune`` record), so the commands above rebuild what ships; give them to build another protocol.

Over several sessions (protocol v2): build with ``--stage-into staging/zoo_v2 --commit`` (each finished stage
committed outside the package), then ``--ship-staged staging/zoo_v2`` once every stage is there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from napari_prunuclei.base.constants import CHANNEL_SCHEMES, UNSTRUCTURED_SCHEMES, zoo_crs
from napari_prunuclei.base.machine import cpu_name
from napari_prunuclei.models.weights import read_metadata
from napari_prunuclei.models.zoo import WEIGHTS_DIR, clear_cache, find_entry, register
from napari_prunuclei.nuclei.watershed import WATERSHED_RULE
from napari_prunuclei.pruning.oneshot import load_model
from napari_prunuclei.study.release import shared_protocol
from napari_prunuclei.training.protocol import LADDERS, Protocol, file_protocol, run_stage, stage_file
from napari_prunuclei.training.staging import (
    StageBusy,
    building,
    restage,
    restore_into_work,
    stage,
    staged_rows,
)

#: seconds per step per branch, one thread, measured on the 2-core AMD EPYC (AVX-512 BF16) at bf16: dense-shaped
#: networks (unstructured: sparse weights in dense convolutions) 1.09-1.25 s (docs/training/dense_pilot.json);
#: channel-pruned networks are smaller (the plan uses the dense figure: an upper bound)
SECONDS_PER_STEP = 1.17


def stages(schemes: list[str], shard: tuple[int, int] = (0, 1), ladder: str = "from-dense") -> list[tuple[str, float]]:
    """The (scheme, CR) stages of shard ``K/N``, in an order that interleaves schemes. From dense, every
    N-th stage; gradual, whole schemes (each stage needs the one before it), each ladder smallest CR first."""
    k, n = shard
    if ladder == "gradual":
        schemes = schemes[k::n]
    rows = [(i, s, float(cr)) for s in schemes for i, cr in enumerate(zoo_crs(s))]
    order = [(s, cr) for _, s, cr in sorted(rows, key=lambda r: (r[0], schemes.index(r[1])))]
    return order if ladder == "gradual" else order[k::n]


def shipped_by(protocol: Protocol, scheme: str, cr: float) -> bool:
    """True when both branches in the package were made by this protocol."""
    for branch in ("semantic", "distance"):
        f = WEIGHTS_DIR / stage_file(branch, scheme, cr)
        if not f.is_file():
            return False
        meta = read_metadata(f)
        if json.loads(meta.get("protocol", "null")) != protocol.record():
            return False
    return True


def ship_stage(files: dict[str, Path], scheme: str, cr: float, data: Path | None, tuned: dict | None = None) -> dict:
    """Copy a finished stage into the package, register both branches, tune its watershed on held-back
    (``tuned``: the staged row's ``watershed`` and ``held_back_aji``, from the same files and the watershed's
    rule: not tuned again)."""
    from napari_prunuclei.study.release import ship_channel, ship_sparse

    ship = ship_channel if scheme in CHANNEL_SCHEMES else ship_sparse
    for branch in ("semantic", "distance"):
        ship(files[branch])
    if tuned is None:
        return retune_shipped(scheme, cr, data)
    register(model_watershed=(scheme, cr, tuned["watershed"]))
    held = held_back_record(tuned["held_back_aji"])  # (a staged row of this rule: ship_staged checks)
    for branch in ("semantic", "distance"):  # the widget's "known accuracy" until the sweep measures test
        register({**find_entry(branch, scheme, cr), "metrics_held_back": held})
    return {"watershed": tuned["watershed"], "held_back_aji": held["aji"]}


def held_back_of(files: dict[str, Path], data: Path) -> dict:
    """A built stage's watershed tuned on the 4 held-back train images, and its held-back AJI there."""
    from napari_prunuclei.models.sparse import load_branch_file
    from napari_prunuclei.study.evaluation import held_back_scores

    scores = held_back_scores(data, load_branch_file(files["semantic"]), load_branch_file(files["distance"]))
    return {"watershed": scores["best"], "held_back_aji": round(float(scores["aji"]), 6),
            "watershed_rule": WATERSHED_RULE, "cpu": cpu_name()}


def held_back_record(aji: float) -> dict:
    return {"aji": round(float(aji), 6), "data": "4 held-back MoNuSeg train images, watershed tuned on them",
            "watershed_rule": WATERSHED_RULE}


def rule_of(record: dict | None) -> int | None:
    """The watershed rule a held-back tuning or score was made under (records before rule 2 name none: rule 1);
    None: no record, or one whose rule is not a whole number (neither counts as this rule's: tuned again)."""
    if not isinstance(record, dict):
        return None
    rule = record.get("watershed_rule", 1)
    return rule if isinstance(rule, int) and not isinstance(rule, bool) else None


def dense_held_back(data: Path, again: bool = False) -> None:
    """The dense pair's watershed tuned on the held-back images and its held-back AJI there, in the registry
    (once; again when its record is of another watershed rule, or ``again``), for the pruned stages to compare
    with."""
    from napari_prunuclei.study.evaluation import held_back_scores

    if not again and not dense_stale():
        return
    scores = held_back_scores(data, load_model("semantic", "dense", 1), load_model("distance", "dense", 1))
    register(watershed=scores["best"])  # dense's own thresholds, tuned under this rule like every stage's
    held = held_back_record(scores["aji"])
    for branch in ("semantic", "distance"):
        register({**find_entry(branch, "dense", 1), "metrics_held_back": held})


def dense_stale() -> bool:
    """True when dense's held-back record is missing or of another watershed rule than this one."""
    return any(rule_of((find_entry(b, "dense", 1) or {}).get("metrics_held_back")) != WATERSHED_RULE
               for b in ("semantic", "distance"))


def shipped_stale(scheme: str, cr: float) -> bool:
    """True when a shipped stage's held-back tuning is of another watershed rule than this one."""
    return rule_of((find_entry("semantic", scheme, cr) or {}).get("metrics_held_back", {})) != WATERSHED_RULE


def retune_shipped(scheme: str, cr: float, data: Path) -> dict:
    """A shipped stage's watershed tuned again on the held-back images (after a change of the rule)."""
    from napari_prunuclei.study.evaluation import held_back_scores

    scores = held_back_scores(data, load_model("semantic", scheme, cr), load_model("distance", scheme, cr))
    register(model_watershed=(scheme, cr, scores["best"]))
    held = held_back_record(scores["aji"])
    for branch in ("semantic", "distance"):
        register({**find_entry(branch, scheme, cr), "metrics_held_back": held})
    return {"watershed": scores["best"], "held_back_aji": held["aji"]}


def git_commit(paths: list, msg: str) -> bool:
    """Commit ``paths`` only (``git commit -- paths``), retried while another job holds git's lock; on giving
    up, the paths are taken out of the index again (a developer's next commit must not carry them)."""
    paths = [str(p) for p in paths]
    for _ in range(30):
        add = subprocess.run(["git", "add", *paths], capture_output=True, text=True)
        if add.returncode == 128 and "not a git repository" in add.stderr:
            print(f"not committed (not a git repository): {msg}", file=sys.stderr)
            return False
        if add.returncode == 0 and subprocess.run(["git", "commit", "-m", msg, "--", *paths],
                                                  capture_output=True, text=True).returncode == 0:
            return True
        time.sleep(10)
    subprocess.run(["git", "reset", "-q", "--", *paths], capture_output=True)
    print(f"could not commit: {msg}: {add.stderr.strip()}", file=sys.stderr)
    return False


def commit(scheme: str, cr: float, protocol: Protocol, note: dict) -> None:
    """Commit one shipped stage's two files and the registry."""
    paths = [WEIGHTS_DIR / stage_file(b, scheme, cr) for b in ("semantic", "distance")]
    paths.append(WEIGHTS_DIR / "registry.json")
    git_commit(paths, f"zoo: {scheme} CR{cr:g} by protocol v{protocol.version} ({protocol.steps} steps per branch); "
                      f"held-back AJI {note['held_back_aji']:.4f}")


def stage_into(folder: Path, files: dict[str, Path], row: dict, protocol: Protocol, commit_it: bool) -> None:
    """Stage a finished stage in ``folder`` (:func:`~napari_prunuclei.training.staging.stage`: a repository
    folder outside the package, for a zoo built over several sessions) and, with ``commit_it``, commit it."""
    paths = stage(folder, files, row, protocol)
    if commit_it:
        took = "resumed" if row.get("resumed") else f"{row['seconds']:.0f} s"
        git_commit(paths, f"zoo v{protocol.version} staged: {row['scheme']} CR{row['cr']:g} ({protocol.steps} "
                          f"steps per branch, {took}; held-back AJI {row['held_back_aji']:.4f})")


def ship_staged(folder: Path, protocol: Protocol, todo: list[tuple[str, float]], commit_it: bool = False,
                data: Path | None = None, retune: bool = False) -> int:
    """Ship a whole staged zoo into the package at once (one protocol in the registry, never two): refused
    while any stage of ``todo`` is not staged; if shipping fails midway, the package's files and registry are
    put back as they were. ``data``: dense's held-back AJI is scored there if missing or made under another
    watershed rule; a stage staged under another rule has its watershed tuned again there (so no tuning of
    another rule ships); with ``retune``, every stage and dense again. Returns the number of stages shipped."""
    if commit_it and already_shipped(protocol):  # a rerun after shipping (ship_zoo.sh resumed): nothing to do
        print(f"the zoo that ships is protocol v{protocol.version}'s ({protocol.steps} steps) and committed: "
              "nothing to ship", flush=True)
        return 0
    rows = staged_rows(folder, protocol)
    missing = [f"{s} CR{cr:g}" for s, cr in todo if (s, cr) not in rows]
    if missing:
        raise SystemExit(f"{folder}: {len(missing)} of {len(todo)} stages are not staged yet by this protocol "
                         f"({', '.join(missing[:6])}{'...' if len(missing) > 6 else ''}); nothing shipped")
    bad = [str(folder / stage_file(b, s, cr)) for s, cr in todo for b in ("semantic", "distance")
           if file_protocol(folder / stage_file(b, s, cr)) != protocol.record()]
    if bad:
        raise SystemExit(f"not made by this protocol: {', '.join(bad[:4])}; nothing shipped")
    stale = [(s, cr) for s, cr in todo if retune or rule_of(rows[(s, cr)]) != WATERSHED_RULE]
    if (stale or dense_stale()) and data is None:
        what = f"{len(stale)} stages were" if stale else "dense's held-back AJI was"
        raise SystemExit(f"{what} tuned under another watershed rule than this one ({WATERSHED_RULE}): give --data "
                         f"to tune again on the held-back images; nothing shipped")
    touched = [WEIGHTS_DIR / "registry.json"] + [WEIGHTS_DIR / stage_file(b, s, cr) for s, cr in todo
                                                 for b in ("semantic", "distance")]
    with tempfile.TemporaryDirectory() as keep:
        for f in touched:
            if f.is_file():
                shutil.copy2(f, Path(keep) / f.name)
        try:
            if data is not None:  # after every check, and put back with the rest if shipping fails
                dense_held_back(data, again=retune)
            for scheme, cr in todo:
                files = {b: folder / stage_file(b, scheme, cr) for b in ("semantic", "distance")}
                note = ship_stage(files, scheme, cr, data,
                                  tuned=None if (scheme, cr) in stale else rows[(scheme, cr)])
                print(json.dumps({"scheme": scheme, "cr": cr, **note}), flush=True)
        except BaseException:
            for f in touched:
                kept = Path(keep) / f.name
                if kept.is_file():
                    shutil.copy2(kept, f)
                else:
                    f.unlink(missing_ok=True)
            clear_cache()
            raise
    if commit_it:  # the staged copies go in the same commit (the history keeps them; stages.jsonl stays)
        staged = [folder / stage_file(b, s, cr) for s, cr in todo for b in ("semantic", "distance")]
        tracked = [f for f in staged if subprocess.run(["git", "ls-files", "--error-unmatch", str(f)],
                                                       capture_output=True).returncode == 0]
        for f in tracked:  # (a copy git never had stays: removing it would lose it)
            f.unlink()
        if not git_commit(touched + tracked, f"zoo: protocol v{protocol.version} shipped whole ({len(todo)} stages, "
                                             f"{protocol.steps} steps per branch per stage), replacing the earlier "
                                             f"zoo; the staged copies removed from {folder}"):
            raise SystemExit(f"shipped into {WEIGHTS_DIR} but not committed: commit it and {folder}'s removed copies "
                             f"(git commit -- {WEIGHTS_DIR} {folder}), or undo with git checkout -- {WEIGHTS_DIR} "
                             f"{folder}")
    return len(todo)


def already_shipped(protocol: Protocol) -> bool:
    """Every fine-tuned pruned pair that ships was made by ``protocol`` and the package's weights are committed;
    SystemExit when they are this protocol's but not committed (a ship whose commit failed)."""
    if shared_protocol() != protocol.record():
        return False
    dirty = subprocess.run(["git", "status", "--porcelain", "--", str(WEIGHTS_DIR)], capture_output=True, text=True)
    if dirty.returncode == 0 and dirty.stdout.strip():
        raise SystemExit(f"the zoo in {WEIGHTS_DIR} is protocol v{protocol.version}'s but not committed: commit it "
                         f"(git commit -- {WEIGHTS_DIR}); nothing shipped")
    return True


def retune_staged(folder: Path, protocol: Protocol, todo: list[tuple[str, float]], data: Path,
                  commit_it: bool = False) -> int:
    """Tune again on the held-back images the watershed of every stage of ``todo`` staged in ``folder`` under
    another watershed rule, each recorded by a new line for the same files (and, with ``commit_it``,
    committed): the work shipping would do, done stage by stage while the build goes on. Returns how many."""
    rows = staged_rows(folder, protocol)
    done = 0
    for key in todo:
        if key not in rows or rule_of(rows[key]) == WATERSHED_RULE:
            continue
        scheme, cr = key
        files = {b: folder / stage_file(b, scheme, cr) for b in ("semantic", "distance")}
        was = rows[key]["held_back_aji"]
        tuned = {k: v for k, v in held_back_of(files, data).items() if k != "cpu"}  # ``cpu``: where it trained
        row = {**{k: v for k, v in rows[key].items() if k != "protocol"}, **tuned, "retuned_on": cpu_name()}
        paths = restage(folder, row, protocol)
        if commit_it:
            git_commit(paths, f"zoo v{protocol.version} staged: {scheme} CR{cr:g} watershed tuned again under rule "
                              f"{WATERSHED_RULE} (held-back AJI {row['held_back_aji']:.4f}, was {was:.4f})")
        print(json.dumps({"scheme": scheme, "cr": cr, "watershed": row["watershed"],
                          "held_back_aji": row["held_back_aji"], "was": was}), flush=True)
        done += 1
    return done


def time_left(left: list[tuple[str, float]], staged, cpu: str | None = None) -> str:
    """The stages still to build and their time, at the median seconds of the stages of their kind (channel or
    unstructured) staged whole so far (a resumed stage's seconds are only its last part); of those staged on
    ``cpu`` (their row names it) where that kind has any, since stage times differ between machines."""
    import statistics

    def kind(scheme: str) -> str:
        return "channel" if scheme in CHANNEL_SCHEMES else "unstructured"

    whole: dict[str, list[float]] = {}
    here: dict[str, list[float]] = {}
    for r in staged:
        if not r.get("resumed"):
            whole.setdefault(kind(r["scheme"]), []).append(float(r["seconds"]))
            if cpu is not None and r.get("cpu") == cpu:
                here.setdefault(kind(r["scheme"]), []).append(float(r["seconds"]))
    med = {k: statistics.median(here.get(k) or v) for k, v in whole.items()}
    if not left:
        return "left: none"
    if any(kind(s) not in med for s, _ in left):
        return f"left: {len(left)} stages (no stage of their kind staged whole yet: no estimate)"
    total = sum(med[kind(s)] for s, _ in left)
    on = "this CPU's " if here else "the "
    return (f"left: {len(left)} stages, about {total / 3600:.1f} h of one core at {on}median whole stage so far ("
            + ", ".join(f"{k} {v:.0f} s" + (" here" if k in here else "") for k, v in sorted(med.items()))
            + f"): about {total / 7200:.1f} h with one job per core")


def main() -> int:
    shipped = shared_protocol() or {}  # defaults: the protocol of the zoo that ships (a bare rebuild matches it)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path)
    p.add_argument("--work", type=Path, help="checkpoints and finished stages (outside the repository)")
    p.add_argument("--steps", type=int, default=shipped.get("steps"),
                   help="fine-tuning steps per branch per stage (default: the shipped zoo's)")
    p.add_argument("--schemes", nargs="+", default=[*UNSTRUCTURED_SCHEMES, *CHANNEL_SCHEMES])
    p.add_argument("--ladder", choices=LADDERS, default=shipped.get("ladder"),
                   help="cut each CR from dense, or from the scheme's previous CR (then shards split by scheme; "
                        "default: the shipped zoo's)")
    p.add_argument("--shard", default="0/1",
                   help="K/N: this job runs every N-th stage from the K-th (gradual: every N-th scheme)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="where the fine-tuning runs: cpu, or cuda on a lent GPU machine")
    p.add_argument("--version", type=int, default=shipped.get("version"),
                   help="the protocol's version in its record (default: the shipped zoo's)")
    p.add_argument("--stage-into", type=Path, default=None,
                   help="copy each finished stage into this repository folder (outside the package) and, with "
                        "--commit, commit it: a zoo built over several sessions, shipped whole at the end")
    p.add_argument("--ship", action="store_true",
                   help="copy each finished stage into the package and register it (else: build into --work only)")
    p.add_argument("--commit", action="store_true", help="with --ship or --stage-into: git commit each stage")
    p.add_argument("--ship-staged", type=Path, default=None,
                   help="ship the whole zoo staged in this folder by --stage-into (all stages or none), then stop")
    p.add_argument("--retune", action="store_true",
                   help="with --ship-staged and --data: tune every stage's watershed (and dense's held-back AJI) "
                        "again on the held-back images, e.g. after the watershed's rule changed (about 2 min a "
                        "stage), instead of using the staged tuning")
    p.add_argument("--retune-staged", type=Path, default=None, metavar="FOLDER",
                   help="with --data: tune again on the held-back images every stage staged in FOLDER under an "
                        "earlier watershed rule (this job's --shard/--schemes only), a new line each, then stop")
    p.add_argument("--status", type=Path, default=None, metavar="FOLDER",
                   help="print the stages staged in FOLDER by this protocol (held-back AJI against dense's) and stop")
    p.add_argument("--plan", action="store_true", help="print the plan (stages x steps x s/step) and stop")
    a = p.parse_args()
    if None in (a.steps, a.ladder, a.version):  # no one protocol ships (e.g. two, mid-way): never guess one
        p.error("the shipped zoo carries no one fine-tuning record to default to: give --steps, --ladder and "
                "--version")
    protocol = Protocol(steps=a.steps, ladder=a.ladder, version=a.version)
    k, n = (int(v) for v in a.shard.split("/"))
    todo = stages(a.schemes, (k, n), a.ladder)
    if a.plan:
        per = 2 * protocol.steps * SECONDS_PER_STEP
        print(f"{'stage':<28}{'steps/branch':>14}{'s/step':>9}{'hours':>8}")
        for scheme, cr in todo:
            print(f"{scheme + f' CR{cr:g}':<28}{protocol.steps:>14}{SECONDS_PER_STEP:>9.2f}{per / 3600:>8.2f}")
        print(f"{len(todo)} stages: {len(todo) * per / 3600:.1f} h on one core "
              f"(+ about 2 min each for the held-back watershed tuning)")
        return 0
    if a.status is not None:
        rows = staged_rows(a.status, protocol)
        dense = (find_entry("semantic", "dense", 1) or {}).get("metrics_held_back", {}).get("aji")
        print(f"| stage | seconds | held-back AJI | vs dense {dense or float('nan'):.4f} |\n|---|---:|---:|---:|")
        for scheme, cr in todo:
            r = rows.get((scheme, cr))
            if r is not None:
                took = f"{r['seconds']:.0f}" + (" (resumed)" if r.get("resumed") else "")
                drop = f"{100 * (r['held_back_aji'] / dense - 1):+.1f} %" if dense else ""
                print(f"| {scheme} CR {cr:g} | {took} | {r['held_back_aji']:.4f} | {drop} |")
        old = sum(rule_of(r) != WATERSHED_RULE for r in rows.values())
        if old:
            print(f"{old} staged stages were tuned under an earlier watershed rule: shipping tunes them again on the "
                  f"held-back images (rule {WATERSHED_RULE}), or --retune-staged before it")
        if dense_stale():
            print(f"dense's held-back AJI above was scored under an earlier watershed rule: shipping scores it again "
                  f"(rule {WATERSHED_RULE})")
        print(f"{len(rows)} of {len(todo)} stages staged")
        print(time_left([st for st in todo if st not in rows], rows.values(), cpu_name()))
        return 0
    if a.retune_staged is not None:
        if a.data is None:
            p.error("--retune-staged tunes on the held-back images of --data: give it")
        print(f"{retune_staged(a.retune_staged, protocol, todo, a.data, a.commit)} stages tuned again", flush=True)
        return 0
    if a.ship_staged is not None:
        if a.shard != "0/1" or set(a.schemes) != {*UNSTRUCTURED_SCHEMES, *CHANNEL_SCHEMES}:
            p.error("--ship-staged ships the whole zoo: without --shard or --schemes")
        if a.retune and a.data is None:
            p.error("--retune tunes on the held-back images of --data: give it")
        ship_staged(a.ship_staged, protocol, todo, a.commit, a.data, a.retune)
        return 0
    if a.data is None or a.work is None:
        p.error("--data and --work are needed to build (or --plan)")
    dense = {b: load_model(b, "dense", 1) for b in ("semantic", "distance")}
    if a.ship:
        dense_held_back(a.data)
    staged = staged_rows(a.stage_into, protocol) if a.stage_into is not None else {}
    for scheme, cr in todo:
        if shipped_by(protocol, scheme, cr):
            if a.ship and shipped_stale(scheme, cr):  # no tuning of another rule stays beside dense's of this one
                note = retune_shipped(scheme, cr, a.data)
                if a.commit:
                    commit(scheme, cr, protocol, note)
                print(f"{scheme} CR{cr:g}: shipped by this protocol, watershed tuned again (rule {WATERSHED_RULE})",
                      flush=True)
                continue
            print(f"{scheme} CR{cr:g}: shipped by this protocol, skipped", flush=True)
            continue
        if (scheme, cr) in staged:  # its files back into --work: the ladder's next stage is cut from them
            restore_into_work(a.stage_into, a.work, scheme, cr)
            print(f"{scheme} CR{cr:g}: staged by this protocol, skipped", flush=True)
            continue
        here = a.work / scheme / f"cr{cr:g}"
        resumed = any((here / stage_file(b, scheme, cr)).is_file() or (here / b / "checkpoint.pt").is_file()
                      for b in ("semantic", "distance"))
        t0 = time.perf_counter()
        try:
            with building(a.work, scheme, cr):
                files = run_stage(dense, scheme, cr, a.data, a.work, protocol, threads=a.threads, device=a.device)
        except StageBusy as e:
            print(f"build_zoo: {e}", file=sys.stderr)
            return 2
        # seconds: this run's; a stage resumed from an earlier run's checkpoint or files took more
        row = {"scheme": scheme, "cr": cr, "seconds": round(time.perf_counter() - t0, 1), "resumed": resumed}
        if a.stage_into is not None:
            row.update(held_back_of(files, a.data))
            stage_into(a.stage_into, files, row, protocol, a.commit)
        if a.ship:
            note = ship_stage(files, scheme, cr, a.data)
            row.update(note)
            if a.commit:
                commit(scheme, cr, protocol, note)
        print(json.dumps({**row, "files": {b: str(f) for b, f in files.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
