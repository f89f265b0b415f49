#!/usr/bin/env bash
# Full-width MS-Net (the paper's 67 M parameters) on a lent GPU machine, in one command.
# Only the working tree travels there: this script makes its own training data (the realistic
# phantom's slices and the first phantom's cases), trains with the paper's schedule, and writes
# the weights and their validation figures under $OUT (default ./gpu-out).
#   bash scripts/train_full_gpu.sh [OUT] [EPOCHS]
# Resumable: rerun with RESUME=1 to continue from the last epoch in $OUT/msnet.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-out}
EPOCHS=${2:-150}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name(0))"
export PYTHONPATH=$PWD/ml${PYTHONPATH:+:$PYTHONPATH}
W=$(nproc)
$PY -m bonescreen synth-slices "$OUT/synth" --scenes 3000 --seed 11 --workers "$W"
$PY -m bonescreen phantom "$OUT/phantom" --cases 150 --seed 1000
$PY -m bonescreen train-seg "$OUT/phantom" --slices "$OUT/synth" --out "$OUT/msnet" --model msnet \
    --epochs "$EPOCHS" --batch-size 64 --slices-per-case 36 --val-fraction 0.1 --seed 0 --device cuda \
    --workers 4 ${RESUME:+--resume}
$PY benchmarks/real_ct.py --seg-weights "$OUT/msnet" --device cuda --json "$OUT/real_ct.json"
