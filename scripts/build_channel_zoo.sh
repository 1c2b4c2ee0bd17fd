#!/usr/bin/env bash
# The structured (channel) zoo: both channel schemes x both branches, one gradual ladder each
# (CR 2, 4, 8, 16, 32), the same protocol for every CR and scheme: cut to the planned channel
# counts (multiples of 8), BatchNorm re-estimated, STEPS Adam steps (lr LR cosine to LR/20) on the
# training images less the 4 held-back ones, loss = task loss + DISTILL * MSE(student, dense).
# The four ladders run in parallel; each registers its files in the package zoo when done.
# Usage: bash scripts/build_channel_zoo.sh [DATA_ROOT] [STEPS] [LR] [DISTILL] [DEVICE] [THREADS]  (re-run to resume)
# The shipped files: `bash scripts/build_channel_zoo.sh ../shared/data 50 5e-4 1.0 cpu 1` on this project's
# 2-core CPU (no GPU lent), 50 steps per CR: the budget that fitted a session, far below the unstructured
# zoo's (400-1200 steps per CR); 50 min wall, the four ladders side by side (see docs/pruning_channels.md).
# Then: prunuclei tune-watershed --scheme channel-layerwise channel-networkwide --cr 2 4 8 16 32 (wider grid).
set -euo pipefail
root=${1:-../shared/data}
steps=${2:-50}
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
