#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: lint, manifest check, unit, data and GUI tests.
# GUI tests run on a virtual X server (pytest-xvfb). Data tests read ../shared/data or $PRUNUCLEI_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check src tests scripts bench
npe2 validate napari-prunuclei
python -m pytest -q -p no:cacheprovider "$@"
