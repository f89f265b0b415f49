#!/usr/bin/env bash
# A real CT that is not in ../shared/data, to check BoneScreen on: the abdomen-pelvis example CT that
# TotalSegmentator ships with its tests (3 mm isotropic, T11 to the coccyx) and TotalSegmentator's own
# labels of it (its fast model's 'total' map: ids 25-33 sacrum, S1, L5-L1, T12, T11 are the vertebrae, the
# other ids organs), taken from its source package on the package
# index (pip download; the CT is not copied into BoneScreen). Licence: TotalSegmentator is Apache-2.0
# (Wasserthal et al., Radiol AI 2023); its LICENSE is copied beside the files.
#   bash scripts/get_totalseg_example.sh [OUT]      (default bench-out/totalseg-example)
#   .venv/bin/python benchmarks/real_ct.py --folder OUT --layout totalseg --json bench-out/totalseg-example.json
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$REPO/bench-out/totalseg-example}
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac  # a relative OUT is the caller's, not the repository's
PIP="$REPO/.venv/bin/python -m pip"
[ -x "$REPO/.venv/bin/python" ] || PIP="python3 -m pip"
# the output folder first: a folder that cannot be made costs no download
mkdir -p "$OUT/example_ct" 2>/dev/null || { echo "get_totalseg_example.sh: cannot create $OUT" >&2; exit 2; }
VERSION=2.18.0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$PIP download -q --no-deps --no-binary :all: "TotalSegmentator==$VERSION" -d "$tmp"
src="totalsegmentator-$VERSION"
ref="$src/tests/reference_files"
tar -xzf "$tmp/totalsegmentator-$VERSION.tar.gz" -C "$tmp" "$src/LICENSE" "$ref/example_ct.nii.gz" \
    "$ref/example_seg_fast_force_split.nii.gz" "$ref/spine_report/example_ct_report/spine_report.json"
cp "$tmp/$ref/example_ct.nii.gz" "$OUT/example_ct/ct.nii.gz"
cp "$tmp/$ref/example_seg_fast_force_split.nii.gz" "$OUT/example_ct/total.nii.gz"
cp "$tmp/$ref/spine_report/example_ct_report/spine_report.json" "$OUT/totalsegmentator_spine_report.json"
cp "$tmp/$src/LICENSE" "$OUT/LICENSE-TotalSegmentator.txt"
echo "wrote $OUT (TotalSegmentator $VERSION example CT, its labels and spine report)"
