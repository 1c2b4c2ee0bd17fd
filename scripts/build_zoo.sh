#!/usr/bin/env bash
# Build the pruned-model zoo from the shipped dense weights, then run the sweep that documents it.
# Gradual magnitude pruning: each (branch, scheme) walks CR 2 -> 100 in one resumable run
# (masks from the current weights, BatchNorm re-estimated, fixed-mask fine-tuning at every CR).
# Usage: bash scripts/build_zoo.sh [DATA_ROOT] [STEPS_PER_CR]     (re-run to resume)
set -euo pipefail
root=${1:-../shared/data}
steps=${2:-100}
crs="2 4 5 8 10 16 20 32 50 100"
mkdir -p runs/prune
for scheme in networkwide layerwise; do
  for branch in semantic distance; do
    prunuclei prune --branch "$branch" --scheme "$scheme" --cr $crs --data "$root/monuseg2018" \
      --finetune-steps "$steps" --threads 1 --register > "runs/prune/$branch-$scheme.log" 2>&1 &
  done
  wait
done
prunuclei sweep --data "$root" --update-registry
