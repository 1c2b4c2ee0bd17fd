#!/usr/bin/env bash
# Set up (if needed) and run the main job.
#   bash scripts/run.sh                    napari with the plugin docked and the synthetic sample open
#   bash scripts/run.sh IMAGE              the same with your H&E image
#   bash scripts/run.sh --headless [IMAGE] the headless equivalent: segment (dense and network-wide CR20)
#                                          and write labels, maps and a side-by-side PNG to out/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
if [ "${1:-}" = "--headless" ]; then
  shift
  python scripts/headless_demo.py --out out "$@"
else
  python scripts/launch_napari.py "$@"
fi
