"""How MS-Net's mark and the level names hold on series acquired with the gantry tilted.

Spine CT is often acquired with the gantry tilted up to 30 degrees; BoneScreen reads such a series onto a grid
along the slices' normal (``bonescreen.io.dicom``), where MS-Net sees slices as oblique to the body as the tilt.
This makes phantom cases (the first phantom) at 0.5 mm and writes each as 3 mm series tilted by each angle asked,
0 included (``bonescreen.phantom.tilt``: each slice the mean of a 3 mm slab along its normal, so that no angle is
blurred by interpolating between thick slices), segments each with the bundled MS-Net and the level split, and
prints per angle: the Dice of the mark against the true L1-L5 on the grid, the levels named right (a level is
named right where most of it lies in the true level of that name), whether the names were certain, the trabecular
HU of L1-L4 as ``screen`` measures it (in the levels found, and in the true levels) against the untilted series',
and the time.

    .venv/bin/python benchmarks/gantry_tilt.py [--cases 3] [--tilts 0 10 20 30] [--work bench-out/tilt]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bonescreen.io import load_ct
from bonescreen.labelled_eval import vertebra_hu
from bonescreen.metrics import dice_score
from bonescreen.phantom import PhantomConfig, make_case
from bonescreen.phantom.tilt import levels_on_grid, write_tilted_series
from bonescreen.phantom.write import write_dicom_series
from bonescreen.pipeline import Screener

#: The phantom is made at this slice spacing (mm) and each series' slice is the mean of SUB of its planes: 3 mm.
FINE_MM = 0.5
SUB = 6


LEVELS = (1, 2, 3, 4)


def _shift(hu: dict, untilted: dict) -> dict:
    """Each level's HU less the untilted series' (None where either is)."""
    return {k: None if v is None or untilted.get(k) is None else round(v - untilted[k], 1) for k, v in hu.items()}


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


def _mean_abs(rows: list[dict], key: str) -> float:
    """Mean absolute HU shift over the rows' levels that have one."""
    values = [abs(v) for r in rows for v in r[key].values() if v is not None]
    return float(np.mean(values)) if values else float("nan")


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
        # made at 0.5 mm: every series, the axial one too, takes the mean of a 3 mm slab along its normal
        fine = make_case(seed=args.seed, index=i, config=PhantomConfig(thickness=FINE_MM))
        keep = fine.hu.shape[0] // SUB * SUB
        coarse = replace(
            fine,
            hu=fine.hu[:keep].reshape(-1, SUB, *fine.hu.shape[1:]).mean(axis=1),
            spacing=(FINE_MM * SUB, *fine.spacing[1:]),
        )
        root = args.work / f"case{i}"
        shutil.rmtree(root, ignore_errors=True)
        write_dicom_series(coarse, root / "template")
        write_dicom_series(fine, root / "fine")
        reference = load_ct(root / "fine")
        axial_hu = None
        for tilt in args.tilts:
            folder = root / f"tilt{tilt:g}"
            write_tilted_series(root / "template", reference, fine.levels, folder, tilt, FINE_MM * SUB)
            volume = load_ct(folder)
            (truth,) = levels_on_grid(volume, reference, fine.levels)
            t0 = time.perf_counter()
            seg = screener.segment(volume)
            seconds = time.perf_counter() - t0
            right, found = named_right(seg.labels, truth)
            # trabecular HU as screen measures it, in the levels MS-Net found and named, and in the true levels
            hu = {f"L{v}": vertebra_hu(volume, seg.labels == v) if (seg.labels == v).any() else None for v in LEVELS}
            true_hu = {f"L{v}": vertebra_hu(volume, truth == v) for v in LEVELS}
            if tilt == 0:
                axial_hu, axial_true_hu = hu, true_hu
            rows.append(
                {
                    "case": i,
                    "tilt_deg": tilt,
                    "dice": round(float(dice_score(seg.labels > 0, truth > 0)), 4),
                    "named_right": right,
                    "levels_found": found,
                    "certain": bool(seg.certain),
                    "trabecular_hu": hu,
                    "trabecular_hu_shift": _shift(hu, axial_hu),
                    "trabecular_hu_true_levels": true_hu,
                    "trabecular_hu_true_levels_shift": _shift(true_hu, axial_true_hu),
                    "seconds": round(seconds, 1),
                }
            )
            r = rows[-1]
            print(
                f"case {i} tilt {tilt:4.0f}: Dice {r['dice']:.3f}, {right} of {found} levels named right "
                f"({'certain' if r['certain'] else 'flagged'}), trabecular HU against the untilted series' "
                f"{r['trabecular_hu_shift']} (true levels {r['trabecular_hu_true_levels_shift']}), {seconds:.1f} s"
            )
    print(f"\n{platform.processor() or platform.machine()}; per tilt over {args.cases} cases:")
    for tilt in args.tilts:
        sel = [r for r in rows if r["tilt_deg"] == tilt]
        print(
            f"tilt {tilt:4.0f}: mean Dice {np.mean([r['dice'] for r in sel]):.3f}, named right "
            f"{sum(r['named_right'] for r in sel)} of {sum(r['levels_found'] for r in sel)}, certain "
            f"{sum(r['certain'] for r in sel)} of {len(sel)}; trabecular HU against untilted: mean absolute "
            f"{_mean_abs(sel, 'trabecular_hu_shift'):.1f} "
            f"(true levels {_mean_abs(sel, 'trabecular_hu_true_levels_shift'):.1f})"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
