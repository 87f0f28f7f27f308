#!/usr/bin/env bash
# Create .venv (idempotent) and install remask with the given extras.
# torch is installed first with an exact pin: torch==2.13.0 is the CPU build;
# letting pip resolve "torch" alone may pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev,onnx}"
PY="${PYTHON:-python3}"
# onnxruntime and onnxruntime-gpu provide the same module: never both (see pyproject.toml)
has_extra() { case ",${EXTRAS}," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
if has_extra onnx && has_extra gpu; then
    echo "bootstrap: choose one of the extras 'onnx' (CPU) and 'gpu' (CUDA), not both" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# onnxruntime and onnxruntime-gpu provide the same module: remove the one not asked for
if has_extra gpu; then
    .venv/bin/python -m pip uninstall --quiet --yes onnxruntime || true
elif has_extra onnx; then
    .venv/bin/python -m pip uninstall --quiet --yes onnxruntime-gpu || true
fi
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"
# the playground's browser test (dev extra) drives the system's chromium (Playwright never
# downloads one): install Debian's when none is on PATH; without apt-get the test skips, so only warn
if has_extra dev && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
        { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
            || echo "bootstrap: warning: could not install chromium; the browser test will skip" >&2
    else
        echo "bootstrap: warning: no chromium on PATH and no apt-get; the browser test will skip" >&2
    fi
fi
