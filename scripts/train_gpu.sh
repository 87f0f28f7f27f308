#!/usr/bin/env bash
# One prepared run on a lent GPU machine (training/gpu_recipe.py): build a corpus from that
# machine's own Python installation, train the drafter and the warm-started refiner with
# bf16 autocast, evaluate both, write weights (safetensors shards <= 15 MB), cards and logs.
#
#   scripts/train_gpu.sh OUT_DIR [--pack DIR] [--minutes 9] [--preset gpu] [...]
#   scripts/train_gpu.sh OUT_DIR --cpu --preset tiny --minutes 0.3   # on the CPU (tests)
#
# Needs only torch, transformers, tokenizers, safetensors, numpy and tqdm: remask need not
# be installed. PYTHON picks the interpreter (default python3). Rerunning with the same
# OUT_DIR resumes. Exit 2: no GPU (and no --cpu). The log is also kept in OUT_DIR/recipe.log.
set -euo pipefail
if [[ $# -lt 1 || $1 == -* ]]; then
    echo "usage: $0 OUT_DIR [options]   (options: $0 OUT_DIR --help)" >&2
    exit 2
fi
out=$1
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$out"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
"${PYTHON:-python3}" -m training.gpu_recipe --out "$out" "$@" 2>&1 | tee -a "$out/recipe.log"
