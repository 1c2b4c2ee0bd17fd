#!/usr/bin/env bash
# Ship zoo v2 and make its figures again, unattended: docs/models.md "Protocol v2", steps 1-5, the timed ones
# (3, 5) right after the sweep they need, the long training of step 4 last. Run it in the background once
# `build_zoo.py --status` counts 30 of 30 and no training job is left:
#
#     mkdir -p ../runs/ship_v2 && setsid nohup bash scripts/ship_zoo.sh >> ../runs/ship_v2/ship.log 2>&1 &
#
# Resumable: a step's work leaves STEP.ran in $WORK, its commit (its own paths only) STEP.done, so a session's
# end costs one step at most, and a failed commit only the commit; run the same command again to go on. Left
# to a person: the prose of docs/models.md, docs/pruning*.md's reading and README's zoo line (the card's zoo
# table is made again in place, not committed).
set -euo pipefail

DATA=${DATA:-../shared/data}
WORK=${WORK:-../runs/ship_v2}
PROTOCOL=(--steps 1000 --ladder gradual --version 2)
registry=src/napari_prunuclei/models/weights/registry.json

step() {  # step NAME FUNCTION MESSAGE [PATH...]: run FUNCTION unless it ran before, then commit PATHs
    local name=$1 run=$2 msg=$3
    shift 3
    if [[ -e "$WORK/$name.done" ]]; then echo "== $name: finished before, skipped"; return; fi
    if [[ -e "$WORK/$name.ran" ]]; then
        echo "== $name: ran before, committing"
    else
        echo "== $name: $run ($(date -u +%FT%TZ))"
        local t0=$SECONDS
        "$run"
        echo "== $name: ran in $((SECONDS - t0)) s ($(date -u +%FT%TZ))"
        touch "$WORK/$name.ran"
    fi
    if [[ $# -gt 0 ]]; then commit "$msg" "$@"; fi
    touch "$WORK/$name.done"
}

commit() {  # commit MESSAGE PATH...: these paths alone (a person may be editing others), tried again while
    # another commit holds git's index lock; on giving up, the paths leave the index again
    local msg=$1 try
    shift
    for try in 1 2 3 4 5 6; do
        if git add -- "$@" && { git diff --cached --quiet -- "$@" || git commit -q -m "$msg" -- "$@"; }; then
            echo "committed (or nothing to commit): $msg"
            return
        fi
        sleep 10
    done
    git reset -q -- "$@" || true
    echo "could not commit: $msg" >&2
    return 1
}

ship() {  # 1: replaces the v1 zoo in one commit of its own (dense's held-back AJI and thresholds tuned again
    # under rule 3); run again after shipping, it does nothing
    python scripts/build_zoo.py "${PROTOCOL[@]}" --data "$DATA/monuseg2018" --ship-staged staging/zoo_v2 --commit
}

sweep_unstructured() {  # 2: both cores
    prunuclei sweep --data "$DATA" --update-registry
}

sweep_channels() {  # 3: accuracy and time in one run, nothing else on the machine
    prunuclei sweep --data "$DATA" --schemes channel-layerwise channel-networkwide --cr 2 4 8 16 32 \
        --variants fine-tuned --time --time-repeat 5 --include docs/pruning/sweep.json --out docs/pruning/channels \
        --report docs/pruning_channels.md --update-registry
}

benches() {  # 5: the figures that read the zoo's weights or the watershed, quiet machine
    python bench/profile_floor.py --json docs/performance/network_floor_cpu.json
    python bench/profile_floor.py --compile --json docs/performance/network_floor_cpu_compiled.json
    python bench/bench_watershed.py --data "$DATA/monuseg2018" --repeat 3 --json docs/performance/watershed_cpu_rule3.json
    python bench/labels_hashes.py --data "$DATA/monuseg2018" --write bench/labels_hashes.json
}

second_seed() {  # 4, last: the longest (a stage of training per scheme), resumable stage by stage, not timed;
    # one job per core, one unstructured and one channel scheme each, so both end at about the same time
    local a b first other rc=0
    python scripts/second_seed.py --data "$DATA/monuseg2018" --work ../runs/seed2_v2 \
        --schemes layerwise channel-networkwide >> "$WORK/second_seed_a.log" 2>&1 &
    a=$!
    python scripts/second_seed.py --data "$DATA/monuseg2018" --work ../runs/seed2_v2 \
        --schemes networkwide channel-layerwise >> "$WORK/second_seed_b.log" 2>&1 &
    b=$!
    trap 'kill "$a" "$b" 2>/dev/null' EXIT  # this script killed: its jobs with it
    wait -n -p first "$a" "$b" || rc=$?
    if [[ $first == "$a" ]]; then other=$b; else other=$a; fi
    if [[ $rc -ne 0 ]]; then  # one failed: the other's hours are not spent on a step that fails anyway
        kill "$other" 2>/dev/null || true
        wait "$other" 2>/dev/null || true
    else
        wait "$other" || rc=$?
    fi
    trap - EXIT
    tail -n 5 "$WORK/second_seed_a.log" "$WORK/second_seed_b.log"
    return "$rc"
}

main() {
    cd "$(dirname "$0")/.."
    if [[ -z "${VIRTUAL_ENV:-}" && -f .venv/bin/activate ]]; then . .venv/bin/activate; fi  # scripts/setup.sh's
    mkdir -p "$WORK"
    exec 9>>"$WORK/ship.lock"  # one run at a time: two would ship, sweep and commit the same things at once
    if ! flock -n 9; then echo "ship_zoo.sh: another run holds $WORK/ship.lock; nothing done" >&2; exit 2; fi
    export OMP_NUM_THREADS=1
    step 1-ship ship "(ship commits itself)"
    step 2-sweep sweep_unstructured \
        "Zoo v2 sweep (unstructured): docs/pruning.md and the registry's metrics from prunuclei sweep" \
        docs/pruning.md docs/pruning "$registry"
    step 3-sweep-channels sweep_channels \
        "Zoo v2 channel sweep: docs/pruning_channels.md, accuracy and time in one run, the registry's metrics" \
        docs/pruning_channels.md docs/pruning/channels "$registry"
    step 5-benches benches \
        "Zoo v2: the networks' floor, the watershed's timing under rule 3 and the labels' fingerprints again" \
        docs/performance/network_floor_cpu.json docs/performance/network_floor_cpu_compiled.json \
        docs/performance/watershed_cpu_rule3.json bench/labels_hashes.json
    step 4-second-seed second_seed \
        "Zoo v2 training noise: CR 2 of each scheme with seed 2 (scripts/second_seed.py)" \
        docs/training/second_seed.json
    prunuclei models --markdown --into docs/models.md  # not committed: the card's prose goes with it
    echo "== all steps done; docs/models.md's zoo table made again, to commit with the prose ($(date -u +%FT%TZ))"
}

main "$@"
exit
