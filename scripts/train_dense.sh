#!/usr/bin/env bash
# Train both dense branches in parallel (one thread each), resumable: re-run to continue.
# Usage: bash scripts/train_dense.sh DATA_DIR [STEPS]
set -euo pipefail
data=${1:-../shared/data/monuseg2018}
steps=${2:-3000}
mkdir -p runs
for b in semantic distance; do
  prunuclei train --branch "$b" --data "$data" --out "runs/$b" --steps "$steps" --threads 1 --resume \
    > "runs/$b.log" 2>&1 &
done
wait
