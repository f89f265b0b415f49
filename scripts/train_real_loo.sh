#!/usr/bin/env bash
# Fine-tune the bundled MS-Net with the labelled real images of ../shared/data/real beside the phantoms, and
# measure it honestly: leave-one-out (each real image is scored by weights fine-tuned without it), then the
# weights fine-tuned on all of them (those a release would bundle; their real figures are the leave-one-out ones).
#   bash scripts/train_real_loo.sh [DATA_DIR]        (default /work/data; RESUME=1 continues a stopped run)
# Needs: DATA_DIR/train (bonescreen phantom ... --cases 60 --seed 1000) and the realistic shards made below.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-/work/data}
BS=.venv/bin/bonescreen
REAL=../shared/data/real
EPOCHS=${EPOCHS:-1}
[ -d "$DATA/train" ] || $BS phantom "$DATA/train" --cases 60 --seed 1000
OMP_NUM_THREADS=1 $BS synth-slices "$DATA/synth-train10" --scenes 200 --seed 10 --workers 2
finetune() {  # OUT [--leave-out NAME]
    local out=$1; shift
    OMP_NUM_THREADS=2 $BS train-seg "$DATA/train" --slices "$DATA/synth-train10" \
        --labelled "$REAL" --layout shared --labelled-repeat 10 "$@" \
        --init-weights ml/bonescreen/weights/msnet-small.safetensors --out "$out" --model msnet-small \
        --epochs "$EPOCHS" --batch-size 8 --lr 0.0001 --slices-per-case 12 --val-fraction 0.2 --seed 0 --device cpu \
        ${RESUME:+--resume}
}
for name in totalseg-t11t12-dicom tptbox-l3-crop dcmqi-ct3slice; do
    finetune "$DATA/msnet-loo-$name" --leave-out "$name"
    .venv/bin/python benchmarks/real_ct.py --seg-weights "$DATA/msnet-loo-$name" --only "$name" \
        --json "$DATA/real_ct_loo_$name.json"
done
finetune "$DATA/msnet-realft"
