#!/usr/bin/env bash
# The main job on the embedded defaults: the shipped models under models/ (a tiny random
# refiner until they exist) through the refiner's fast path, printing its figures.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/remask bench sampler --json
