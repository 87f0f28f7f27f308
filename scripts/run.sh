#!/usr/bin/env bash
# The main job on the embedded defaults: the shipped models under models/ run the three
# editing pipelines on the files in examples/ and print what they did, as JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
R=.venv/bin/remask
echo "== infill (hybrid: drafter, then refiner) examples/fill.py" >&2
$R infill examples/fill.py --json
echo "== compliance rules on examples/contract.txt" >&2
$R revise examples/contract.txt --rules examples/rules.yaml --json
echo "== repair examples/broken.py" >&2
$R repair examples/broken.py --json || true   # exit 1 means: could not make it parse
