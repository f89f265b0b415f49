"""How MS-Net's mark and the level names hold on series acquired with the gantry tilted.

Spine CT is often acquired with the gantry tilted up to 30 degrees; BoneScreen reads such a series onto a grid
along the slices' normal (``bonescreen.io.dicom``), where MS-Net sees slices as oblique to the body as the tilt.
This writes phantom cases (the first phantom, 3 mm slices) as axial DICOM series and again tilted by each angle
asked (``bonescreen.phantom.tilt``), segments each with the bundled MS-Net and the level split, and prints per
angle: the Dice of the mark against the true L1-L5 on the grid, the levels named right (a level is named right
where most of it lies in the true level of that name), whether the names were certain, the trabecular HU of
L1-L4 against the axial series', and the time.

    .venv/bin/python benchmarks/gantry_tilt.py [--cases 3] [--tilts 0 10 20 30] [--work bench-out/tilt]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from bonescreen.io import load_ct
from bonescreen.metrics import dice_score
from bonescreen.phantom import PhantomConfig, make_case
from bonescreen.phantom.tilt import levels_on_grid, write_tilted_series
from bonescreen.phantom.write import write_dicom_series
from bonescreen.pipeline import Screener


def named_right(labels: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """Levels (1..5) in ``labels`` whose voxels lie mostly in the true level of that id, and levels found."""
    right = found = 0
    for level in range(1, 6):
        own = labels == level
        if not own.any():
            continue
        found += 1
        ids, counts = np.unique(truth[own], return_counts=True)
        right += int(ids[np.argmax(counts)] == level)
    return right, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--seed", type=int, default=5300)
    ap.add_argument("--tilts", type=float, nargs="+", default=[0.0, 10.0, 20.0, 30.0])
    ap.add_argument("--work", type=Path, default=Path("bench-out/tilt"))
    ap.add_argument("--json", type=Path, default=Path("bench-out/gantry_tilt.json"))
    args = ap.parse_args()
    screener = Screener(device="cpu")
    rows = []
    for i in range(args.cases):
        case = make_case(seed=args.seed, index=i, config=PhantomConfig(thickness=3.0))
        root = args.work / f"case{i}"
        shutil.rmtree(root, ignore_errors=True)
        write_dicom_series(case, root / "axial")
        reference = load_ct(root / "axial")
        axial_hu = None
        for tilt in args.tilts:
            folder = root / "axial" if tilt == 0 else root / f"tilt{tilt:g}"
            if tilt != 0:
                write_tilted_series(root / "axial", reference, case.levels, folder, tilt)
            volume = load_ct(folder)
            truth = levels_on_grid(volume, reference, case.levels)
            t0 = time.perf_counter()
            seg = screener.segment(volume)
            seconds = time.perf_counter() - t0
            right, found = named_right(seg.labels, truth)
            hu = {}
            for level in range(1, 5):
                own = seg.labels == level
                hu[f"L{level}"] = round(float(np.median(volume.hu[own])), 1) if own.any() else None
            if tilt == 0:
                axial_hu = hu
            rows.append(
                {
                    "case": i,
                    "tilt_deg": tilt,
                    "dice": round(float(dice_score(seg.labels > 0, truth > 0)), 4),
                    "named_right": right,
                    "levels_found": found,
                    "certain": bool(seg.certain),
                    "median_hu_of_mark": hu,
                    "hu_shift_vs_axial": {
                        k: (None if v is None or axial_hu.get(k) is None else round(v - axial_hu[k], 1))
                        for k, v in hu.items()
                    },
                    "seconds": round(seconds, 1),
                }
            )
            r = rows[-1]
            print(
                f"case {i} tilt {tilt:4.0f}: Dice {r['dice']:.3f}, {right} of {found} levels named right "
                f"({'certain' if r['certain'] else 'flagged'}), median HU of each level's mark vs axial "
                f"{r['hu_shift_vs_axial']}, {seconds:.1f} s"
            )
    print(f"\n{platform.processor() or platform.machine()}; per tilt over {args.cases} cases:")
    for tilt in args.tilts:
        sel = [r for r in rows if r["tilt_deg"] == tilt]
        print(
            f"tilt {tilt:4.0f}: mean Dice {np.mean([r['dice'] for r in sel]):.3f}, named right "
            f"{sum(r['named_right'] for r in sel)} of {sum(r['levels_found'] for r in sel)}, certain "
            f"{sum(r['certain'] for r in sel)} of {len(sel)}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
