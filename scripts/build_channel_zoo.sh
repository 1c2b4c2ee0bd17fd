#!/usr/bin/env bash
# The structured (channel) zoo: both channel schemes x both branches, one gradual ladder each
# (CR 2, 4, 8, 16, 32), the same protocol for every CR and scheme: cut to the planned channel
# counts (multiples of 8), BatchNorm re-estimated, STEPS Adam steps (lr LR cosine to LR/20) on the
# training images less the 4 held-back ones, loss = task loss + DISTILL * MSE(student, dense).
# The four ladders run in parallel; each registers its files in the package zoo when done.
# Usage: bash scripts/build_channel_zoo.sh [DATA_ROOT] [STEPS] [LR] [DISTILL] [DEVICE] [THREADS]  (re-run to resume)
# Usage adds THREADS (6th, default 1 per ladder). The shipped files: see docs/pruning.md for the machine.
set -euo pipefail
root=${1:-../shared/data}
steps=${2:-160}
lr=${3:-5e-4}
distill=${4:-1.0}
device=${5:-auto}
threads=${6:-1}
prunuclei=${PRUNUCLEI:-prunuclei}
mkdir -p runs/channels
for scheme in channel-layerwise channel-networkwide; do
  for branch in semantic distance; do
    $prunuclei prune --branch "$branch" --scheme "$scheme" --cr 2 4 8 16 32 --data "$root/monuseg2018" \
      --out "runs/channels/$branch-$scheme" --finetune-steps "$steps" --lr "$lr" --distill "$distill" \
      --device "$device" --threads "$threads" --register > "runs/channels/$branch-$scheme.log" 2>&1 &
  done
done
wait
