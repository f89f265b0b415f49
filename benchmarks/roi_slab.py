"""How the trabecular ROI's mid-body slab (``hu.ROI_HALF_HEIGHT_MM``) moves the HU of two label maps of one CT.

Stop 65 (2026-12-07) found MS-Net's mark reading 8.7 HU above TotalSegmentator's labels on TotalSegmentator's
example CT (L1-L5 +9 / +2 / +14 / +10 / +10 HU at the 6 mm half-slab): the mark's body reaches one slice further into
an endplate, so the slab takes one more end slice. QCT measures a slab of about 8-10 mm through the middle of the body
(hu.ROI_HALF_HEIGHT_MM's comment); a 4.5 mm half-slab made the gap +3.3 HU there, left the labels' reading unchanged
at 3 mm, and spread the first phantom's readings more (its texture thins in patches: over 30 cases SD 8.2 -> 11.2
HU, largest error 32 -> 37 HU); on the realistic phantom (seed 4000, benchmarks/vbmd.py) vBMD's MAE moved 4.87 ->
4.96 mg/cm3 on the true bodies and 5.90 -> 5.85 through the mark. This prints those figures for any CT, so that the
constant can be chosen on more than one scan. Stop 66 (the same day) chose 5 mm (a 10 mm slab, as QCT's; the same
slices as 4.5 mm at 3 mm spacing): helper-106 met the gap again (L3 118 HU through the mark, 104 on the labels).

Run:
    bonescreen screen CT --out MARK                        # MS-Net's mark: MARK/levels.nii.gz
    bonescreen screen CT --labels LABELS --label-scheme totalseg --out REF   # the reference: REF/levels.nii.gz
    .venv/bin/python benchmarks/roi_slab.py CT MARK/levels.nii.gz REF/levels.nii.gz --half-heights 6 4.5 3
    .venv/bin/python benchmarks/roi_slab.py --first-phantom 30    # the first phantom's spread (seed 11, 3 mm)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bonescreen import hu as hu_module
from bonescreen.hu import body_from_levels, trabecular_hu
from bonescreen.io import load_ct
from bonescreen.io.writers import read_labels_nifti
from bonescreen.labels import LEVEL_NAMES


def readings(ct: Path, maps: list[Path], half_heights: list[float]) -> None:
    """Trabecular HU per level of each map at each half-slab (mm), and each map's mean difference from the last."""
    volume = load_ct(ct)
    bodies = [body_from_levels(read_labels_nifti(volume, m), volume.spacing) for m in maps]
    for half in half_heights:
        hu_module.ROI_HALF_HEIGHT_MM = half  # read by hu.trabecular_roi at each call
        hus = [{lv: m["mean_hu"] for lv, m in trabecular_hu(volume.hu, b, volume.spacing).items()} for b in bodies]
        for path, by_level in zip(maps, hus, strict=True):
            said = "  ".join(f"{LEVEL_NAMES[lv]} {h:.0f}" for lv, h in by_level.items() if h is not None)
            print(f"{half:4.1f} mm  {path}: {said}")
        reference = hus[-1]
        for path, by_level in zip(maps[:-1], hus[:-1], strict=True):
            both = [lv for lv in by_level if by_level[lv] is not None and reference.get(lv) is not None]
            if both:
                gaps = [by_level[lv] - reference[lv] for lv in both]
                print(f"{half:4.1f} mm  {path} - {maps[-1]}: mean {np.mean(gaps):+.1f} HU over {len(both)} levels")


def first_phantom(cases: int, half_heights: list[float]) -> None:
    """The first phantom's readings against each level's set trabecular HU (seed 11, 3 mm slices)."""
    from bonescreen.phantom import PhantomConfig, make_case

    drawn = [make_case(11, i, PhantomConfig(thickness=3.0)) for i in range(cases)]
    for half in half_heights:
        hu_module.ROI_HALF_HEIGHT_MM = half
        errors = np.array(
            [
                m["mean_hu"] - c.trabecular_hu[LEVEL_NAMES[lv]]
                for c in drawn
                for lv, m in trabecular_hu(c.hu.astype(np.float32), c.body, c.spacing).items()
            ]
        )
        print(
            f"{half:4.1f} mm  first phantom, {cases} cases: bias {errors.mean():+.2f} HU, SD {errors.std():.2f}, "
            f"largest {np.abs(errors).max():.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ct", type=Path, nargs="?", help="the CT (NIfTI or DICOM folder)")
    ap.add_argument("maps", type=Path, nargs="*", help="lumbar level maps on its grid; the last is the reference")
    ap.add_argument("--half-heights", type=float, nargs="+", default=[6.0, hu_module.ROI_HALF_HEIGHT_MM])
    ap.add_argument("--first-phantom", type=int, default=0, help="also this many first-phantom cases")
    args = ap.parse_args()
    if args.ct is not None:
        if not args.maps:
            ap.error("give one or more label maps after the CT")
        readings(args.ct, args.maps, args.half_heights)
    if args.first_phantom:
        first_phantom(args.first_phantom, args.half_heights)


if __name__ == "__main__":
    main()
