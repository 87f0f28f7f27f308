#!/usr/bin/env bash
# Create .venv (idempotent) and install remask with the given extras.
# torch is installed first with an exact pin: torch==2.13.0 is the CPU build;
# letting pip resolve "torch" alone may pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev,onnx}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"
