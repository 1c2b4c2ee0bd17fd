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
# Third pass, at the CRs the targets name (network-wide CR 10, layer-wise CR 4): each model
# continues from its own refined file, same mask, MORE steps (lr 3e-4, distillation 0.5).
# Then budget-matched partners for the crossover at CR 4 and 10: network-wide CR 4 (from CR 2) and
# layer-wise CR 10 (from CR 8) get the same two stages (400 steps as above, then MORE steps).
# register takes a lock on the registry, so parallel runs may register.
more=${5:-800}
again() {  # branch, scheme, CR: continue that CR's refined model
  prunuclei prune --branch "$1" --scheme "$2" --cr "$3" --data "$root/monuseg2018" \
    --start "runs/refine/$1-$2/cr$3/$1_$2_cr$3.safetensors" --out "runs/more/$1-$2" \
    --finetune-steps "$more" --lr 3e-4 --distill 0.5 --threads 1 --register > "runs/more/$1-$2-cr$3.log" 2>&1
}
chain() {  # branch, scheme, CR, start file: the refine stage, then again
  prunuclei prune --branch "$1" --scheme "$2" --cr "$3" --data "$root/monuseg2018" --start "$4" \
    --out "runs/refine/$1-$2" --finetune-steps "$steps" --lr "$lr" --distill "$distill" --threads 1 \
    > "runs/refine/$1-$2-cr$3.log" 2>&1 && again "$1" "$2" "$3"
}
for branch in semantic distance; do
  again "$branch" networkwide 10 &
  again "$branch" layerwise 4 &
done
wait
for branch in semantic distance; do
  chain "$branch" networkwide 4 "runs/prune/$branch-networkwide/cr2/${branch}_networkwide_cr2.safetensors" &
  chain "$branch" layerwise 10 "runs/refine/$branch-layerwise/cr8/${branch}_layerwise_cr8.safetensors" &
done
wait
# each fine-tuned pair's own watershed thresholds, on the 4 held-back train images (never test)
prunuclei tune-watershed --data "$root/monuseg2018" --scheme networkwide layerwise \
  --cr 2 4 5 8 10 16 20 32 50 100 --json docs/pruning/watershed_per_model.json
prunuclei sweep --data "$root" --update-registry
