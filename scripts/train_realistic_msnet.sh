#!/usr/bin/env bash
# Retrain the bundled MS-Net (width 1/4) on the realistic phantom plus the first phantom, on this CPU.
# Resumable: shards already written are kept, and a rerun with RESUME=1 continues from the last epoch.
#   bash scripts/train_realistic_msnet.sh [DATA_DIR]        (default /work/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-/work/data}
BS=.venv/bin/bonescreen
OMP_NUM_THREADS=1 $BS synth-slices "$DATA/synth-train" --scenes 400 --seed 1 --workers 2
OMP_NUM_THREADS=1 $BS synth-slices "$DATA/synth-train2" --scenes 300 --seed 2 --workers 2
$BS phantom "$DATA/train-old" --cases 24 --seed 1000
OMP_NUM_THREADS=2 $BS train-seg "$DATA/train-old" --slices "$DATA/synth-train" \
    --slices "$DATA/synth-train2" --init-weights ml/bonescreen/weights/msnet-small.safetensors --out "$DATA/msnet-real" --model msnet-small \
    --epochs 2 --batch-size 8 --lr 0.0003 --slices-per-case 12 --val-fraction 0.2 --seed 0 --device cpu \
    ${RESUME:+--resume}
