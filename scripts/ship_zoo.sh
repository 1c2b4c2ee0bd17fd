#!/usr/bin/env bash
# Ship zoo v2 and make its figures again, unattended: docs/models.md "Protocol v2", steps 1-5, the timed ones
# (3, 5) right after the sweep they need, the long training of step 4 last. Run it in the background once
# `build_zoo.py --status` counts 30 of 30 and no training job is left:
#
#     setsid nohup bash scripts/ship_zoo.sh >> ../runs/ship_v2/ship.log 2>&1 &
#
# Resumable: each finished step leaves STEP.done in $WORK and commits what it made (its own paths only), so a
# session's end costs one step at most; run the same command again to go on. What is left to a person: the prose
# of docs/models.md, docs/pruning*.md's reading and README's zoo line (the zoo table is left in $WORK/models.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${VIRTUAL_ENV:-}" && -f .venv/bin/activate ]]; then . .venv/bin/activate; fi  # scripts/setup.sh's
DATA=${DATA:-../shared/data}
WORK=${WORK:-../runs/ship_v2}
PROTOCOL=(--steps 1000 --ladder gradual --version 2)
mkdir -p "$WORK"
export OMP_NUM_THREADS=1

step() {  # step NAME COMMAND...: run it unless it finished before
    local name=$1; shift
    if [[ -e "$WORK/$name.done" ]]; then echo "== $name: finished before, skipped"; return; fi
    echo "== $name: $* ($(date -u +%FT%TZ))"
    local t0=$SECONDS
    "$@"
    echo "== $name: done in $((SECONDS - t0)) s ($(date -u +%FT%TZ))"
    touch "$WORK/$name.done"
}

commit() {  # commit MESSAGE PATH...: commit these paths alone (a person may be editing others)
    local msg=$1; shift
    git add -- "$@"
    if git diff --cached --quiet -- "$@"; then echo "(nothing to commit for: $msg)"; return; fi
    local try
    for try in 1 2 3 4 5; do  # another commit at the same moment holds git's index lock: wait and try again
        if git commit -q -m "$msg" -- "$@"; then echo "committed: $msg"; return; fi
        sleep 5
    done
    echo "could not commit: $msg" >&2; return 1
}

registry=src/napari_prunuclei/models/weights/registry.json

ship() {  # 1: replaces the v1 zoo in one commit (dense's held-back AJI and thresholds tuned again under rule 3)
    python scripts/build_zoo.py "${PROTOCOL[@]}" --data "$DATA/monuseg2018" --ship-staged staging/zoo_v2 --commit
}

sweep_unstructured() {  # 2: both cores
    prunuclei sweep --data "$DATA" --update-registry
    commit "Zoo v2 sweep (unstructured): docs/pruning.md and the registry's metrics from prunuclei sweep" \
        docs/pruning.md docs/pruning "$registry"
}

second_seed() {  # 4, last: the longest step (about 4 stages of training), resumable stage by stage, and not timed;
    # one job per core, one unstructured and one channel scheme each, so both end at about the same time
    python scripts/second_seed.py --data "$DATA/monuseg2018" --work ../runs/seed2_v2 \
        --schemes layerwise channel-networkwide > "$WORK/second_seed_a.log" 2>&1 &
    local a=$!
    python scripts/second_seed.py --data "$DATA/monuseg2018" --work ../runs/seed2_v2 \
        --schemes networkwide channel-layerwise > "$WORK/second_seed_b.log" 2>&1 &
    local b=$!
    local rc=0
    wait "$a" || rc=$?
    wait "$b" || rc=$?
    cat "$WORK/second_seed_a.log" "$WORK/second_seed_b.log"
    [[ $rc -eq 0 ]] || return "$rc"
    commit "Zoo v2 training noise: CR 2 of each scheme with seed 2 (scripts/second_seed.py)" \
        docs/training/second_seed.json
}

sweep_channels() {  # 3: accuracy and time in one run, nothing else on the machine
    prunuclei sweep --data "$DATA" --schemes channel-layerwise channel-networkwide --cr 2 4 8 16 32 \
        --variants fine-tuned --time --time-repeat 5 --include docs/pruning/sweep.json --out docs/pruning/channels \
        --report docs/pruning_channels.md --update-registry
    commit "Zoo v2 channel sweep: docs/pruning_channels.md, accuracy and time in one run, registry's metrics" \
        docs/pruning_channels.md docs/pruning/channels "$registry"
}

benches() {  # 5: the figures that read the zoo's weights or the watershed, quiet machine
    python bench/profile_floor.py --json docs/performance/network_floor_cpu.json
    python bench/profile_floor.py --compile --json docs/performance/network_floor_cpu_compiled.json
    python bench/bench_watershed.py --data "$DATA/monuseg2018" --repeat 3 --json docs/performance/watershed_cpu_rule3.json
    python bench/labels_hashes.py --data "$DATA/monuseg2018" --write bench/labels_hashes.json
    commit "Zoo v2: the networks' floor, the watershed's timing under rule 3 and the labels' fingerprints again" \
        docs/performance/network_floor_cpu.json docs/performance/network_floor_cpu_compiled.json \
        docs/performance/watershed_cpu_rule3.json bench/labels_hashes.json
}

step 1-ship ship
step 2-sweep sweep_unstructured
step 3-sweep-channels sweep_channels
step 5-benches benches
step 4-second-seed second_seed
prunuclei models --markdown > "$WORK/models.md"
echo "== all steps done; the zoo table for docs/models.md is in $WORK/models.md ($(date -u +%FT%TZ))"
