#!/usr/bin/env bash
# Second pruning pass (after scripts/build_zoo.sh): longer fine-tuning with distillation from the
# dense branch, continuing each ladder from its last CR that held within 2 % of dense.
#   network-wide: from CR 8 through CR 10, 16, 20;  layer-wise: from CR 2 through CR 4, 8, 16.
# Each stage: masks from the current weights, BatchNorm re-estimated, STEPS fixed-mask Adam steps
# (lr LR cosine to LR/20), loss = task loss + DISTILL * MSE(student, dense) on the sigmoid outputs.
# Then every fine-tuned pair gets watershed thresholds tuned on held-back train images, and the
# sweep re-measures everything (docs/pruning.md, registry metrics).
# Usage: bash scripts/refine_zoo.sh [DATA_ROOT] [STEPS] [LR] [DISTILL] [MORE_STEPS]  (re-run to resume)
set -euo pipefail
root=${1:-../shared/data}
steps=${2:-400}
lr=${3:-5e-4}
distill=${4:-1.0}
mkdir -p runs/refine runs/more
run() {  # scheme, start CR, CRs...
  local scheme=$1 from=$2; shift 2
  for branch in semantic distance; do
    prunuclei prune --branch "$branch" --scheme "$scheme" --cr "$@" --data "$root/monuseg2018" \
      --start "runs/prune/$branch-$scheme/cr$from/${branch}_${scheme}_cr$from.safetensors" \
      --out "runs/refine/$branch-$scheme" --finetune-steps "$steps" --lr "$lr" --distill "$distill" \
      --threads 1 --register > "runs/refine/$branch-$scheme.log" 2>&1 &
  done
  wait
}
run networkwide 8 10 16 20
run layerwise 2 4 8 16
# Third pass, at the two CRs the targets name (network-wide CR 10, layer-wise CR 4): each model
# continues from its own refined file, same mask, MORE_STEPS steps (lr 3e-4, distillation 0.5).
# All four run at once (register takes a lock on the registry).
more=${5:-800}
for sc in "networkwide 10" "layerwise 4"; do
  set -- $sc
  for branch in semantic distance; do
    prunuclei prune --branch "$branch" --scheme "$1" --cr "$2" --data "$root/monuseg2018" \
      --start "runs/refine/$branch-$1/cr$2/${branch}_$1_cr$2.safetensors" \
      --out "runs/more/$branch-$1" --finetune-steps "$more" --lr 3e-4 --distill 0.5 \
      --threads 1 --register > "runs/more/$branch-$1.log" 2>&1 &
  done
done
wait
# each fine-tuned pair's own watershed thresholds, on the 4 held-back train images (never test)
prunuclei tune-watershed --data "$root/monuseg2018" --scheme networkwide layerwise \
  --cr 2 4 5 8 10 16 20 32 50 100 --json docs/pruning/watershed_per_model.json
prunuclei sweep --data "$root" --update-registry
