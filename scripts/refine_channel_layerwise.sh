#!/usr/bin/env bash
# The shipped channel-layerwise CR 2 and 4 pairs: the channel ladder (same protocol as
# scripts/build_channel_zoo.sh: cut to multiples of 8, BatchNorm re-estimated, Adam with cosine lr,
# distillation from the dense branch, the 4 held-back images kept out) from dense through CR 2 and 4
# with a larger budget: STEPS steps per CR at lr LR. Both branches side by side, one thread each;
# each registers its two files in the package zoo when done (re-run to resume).
# The shipped files: `bash scripts/refine_channel_layerwise.sh ../shared/data 1200 1e-3` on this
# project's 2-core CPU, about 70 minutes wall (run logs: runs/channels_long/*.log).
# Then: prunuclei tune-watershed --data DATA/monuseg2018 --scheme channel-layerwise --cr 2 4
#   --fg 0.3 0.4 0.5 0.6 --marker 0.15 0.2 0.3 0.4 0.5 --min-size 10 --json docs/pruning/channels/watershed_per_model.json
# Usage: bash scripts/refine_channel_layerwise.sh [DATA_ROOT] [STEPS] [LR] [DEVICE]
set -euo pipefail
root=${1:-../shared/data}
steps=${2:-1200}
lr=${3:-1e-3}
device=${4:-cpu}
prunuclei=${PRUNUCLEI:-prunuclei}
mkdir -p runs/channels_long
for branch in semantic distance; do
  $prunuclei prune --branch "$branch" --scheme channel-layerwise --cr 2 4 --data "$root/monuseg2018" \
    --out "runs/channels_long/$branch-channel-layerwise" --finetune-steps "$steps" --lr "$lr" --distill 1.0 \
    --device "$device" --threads 1 --register > "runs/channels_long/$branch-channel-layerwise.log" 2>&1 &
done
wait
