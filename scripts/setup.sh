#!/usr/bin/env bash
# Set up everything on a fresh Debian machine (idempotent): system libraries for Qt/OpenGL under
# Xvfb, a virtual environment in .venv, the CPU build of torch, and this package with its extras.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f .venv/.apt-done ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends xvfb xauth libgl1 libgl1-mesa-dri libegl1 libglib2.0-0 \
      libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
      libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 \
      libxcb-xkb1 libxkbcommon0 >/dev/null
  fi
  mkdir -p .venv && touch .venv/.apt-done
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# the CPU build of torch first: any other torch spec can pull a multi-GB CUDA build
python -c "import torch" 2>/dev/null || pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
pip install -q -e ".[testing]" 2>&1 | grep -v "^WARNING: Location" || true
python -c "import torch, napari, napari_prunuclei; print('torch', torch.__version__, '| napari', napari.__version__)"
