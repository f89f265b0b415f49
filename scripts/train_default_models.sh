#!/usr/bin/env bash
# Reproduce the bundled default weights (ml/bonescreen/weights/). CPU-only, about an hour on 2 cores.
# Usage: scripts/train_default_models.sh [WORKDIR]   (default /tmp/bonescreen-train)
set -euo pipefail
W=${1:-/tmp/bonescreen-train}
BS=${BONESCREEN:-bonescreen}
mkdir -p "$W"
# training phantoms (seed 1000) and held-out test phantoms (seed 2000), never seen in training
[ -f "$W/train/cases.csv" ] || $BS phantom "$W/train" --cases 60 --seed 1000
[ -f "$W/test/cases.csv" ] || $BS phantom "$W/test" --cases 30 --seed 2000
# MS-Net, width 1/4; paper schedule shape (constant 2/3 of the epochs, then linear to 0), base lr scaled to batch 8
OMP_NUM_THREADS=1 $BS train-seg "$W/train" --out "$W/msnet-small" --model msnet-small --epochs 24 \
    --batch-size 8 --lr 0.001 --slices-per-case 12 --val-fraction 0.2 --seed 0 --device cpu &
# BCC-Net with the paper's SGD schedule and batch 64
OMP_NUM_THREADS=1 $BS train-cls "$W/train" --out "$W/bccnet" --arch bccnet --epochs 10 \
    --batch-size 64 --crops-per-case 144 --val-fraction 0.2 --seed 0 --device cpu &
wait
$BS evaluate "$W/test" --out "$W/eval" --seg-weights "$W/msnet-small" --cls-weights "$W/bccnet" --device cpu
# the whole pipeline in 3-D on the held-out phantoms (segmentation Dice, level naming, per-level and per-case calls)
$BS evaluate "$W/test" --out "$W/eval-pipeline" --pipeline --seg-weights "$W/msnet-small" --cls-weights "$W/bccnet" --device cpu
# copy into the package with fp16 storage and the held-out figures
python scripts/bundle_weights.py "$W/msnet-small" msnet-small --eval "$W/eval-pipeline/pipeline_metrics.json"
python scripts/bundle_weights.py "$W/bccnet" bccnet --eval "$W/eval-pipeline/pipeline_metrics.json"
