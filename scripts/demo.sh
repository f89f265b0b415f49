#!/usr/bin/env bash
# The main job on sample data with the bundled weights:
#   1. a synthetic lumbar CT (the project's phantom, written as a DICOM series) is screened end to end;
#   2. the real Pancreas-CT slice (upper lumbar level, JPEG 2000) from ../shared/data is screened too, if present.
set -euo pipefail
cd "$(dirname "$0")/.."
BS=.venv/bin/bonescreen
OUT=demo-out
mkdir -p "$OUT"
if [ ! -d "$OUT/sample/dicom" ]; then
    .venv/bin/python -m bonescreen.sample "$OUT/sample"
fi
$BS screen "$OUT/sample/dicom" --out "$OUT/phantom"
REAL=../shared/data/real/pancreasct-slice/explicit_VR-UN.dcm
if [ -f "$REAL" ]; then
    $BS screen "$REAL" --out "$OUT/pancreas-slice"
else
    echo "(the real Pancreas-CT slice is skipped: $REAL is not here; it comes with the project's shared data folder)"
fi
echo
echo "Open $OUT/phantom/report.png and $OUT/phantom/result.json (truth: $OUT/sample/truth.json)."
