"""Where MS-Net's mark differs from the phantom's true vertebrae, by kind, on the slices of the lumbar levels.

Against every true vertebra (``spine.nii.gz``: T12, L1-L5 and the sacrum, so that bone of a neighbour on a lumbar
slice is no error), summed over the cases: voxels right, extra and missed; of the extra ones, those one voxel
outside the true surface (partial volume: a voxel that the slab half fills); of the missed ones, those inside a
hole of the mark (filled by filling each slice's holes). Prints the Dice on this measure and what filling the holes
would give. The marks are made once and cached, as ``benchmarks/level_split.py`` makes them (the same ``--cache``).

    .venv/bin/python benchmarks/mark_errors.py DATA --cache DIR [--cases N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from level_split import mark_of
from scipy import ndimage

from bonescreen.data.cases import load_case_set
from bonescreen.pipeline import Screener


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="a case set of `bonescreen phantom` (with spine.nii.gz)")
    ap.add_argument("--cache", type=Path, default=Path("bench-out/marks"), help="where MS-Net's marks are kept")
    ap.add_argument("--seg-weights", type=Path, default=None)
    ap.add_argument("--cases", type=int, default=None, help="the first N cases only")
    args = ap.parse_args()
    screener = Screener(seg_weights=args.seg_weights, device="cpu")
    totals = dict.fromkeys(("right", "extra", "missed", "extra_one_voxel_out", "missed_in_holes"), 0)
    for rec in load_case_set(args.data)[: args.cases]:
        volume, truth = rec.load(("levels", "spine"))
        if "spine" not in truth:
            raise SystemExit(f"mark_errors.py: {rec.folder} has no spine.nii.gz")
        mark = mark_of(screener, volume, args.cache, rec.case_id)
        zs = np.nonzero((truth["levels"] > 0).any(axis=(1, 2)))[0]
        lumbar = slice(int(zs.min()), int(zs.max()) + 1)
        m, t = mark[lumbar], truth["spine"][lumbar] > 0
        holes = np.stack([ndimage.binary_fill_holes(s) for s in m]) & ~m
        extra, missed = m & ~t, t & ~m
        totals["right"] += int((m & t).sum())
        totals["extra"] += int(extra.sum())
        totals["missed"] += int(missed.sum())
        totals["extra_one_voxel_out"] += int((extra & ndimage.binary_dilation(t)).sum())
        totals["missed_in_holes"] += int((missed & holes).sum())
    right, extra, missed = totals["right"], totals["extra"], totals["missed"]
    dice = 2 * right / max(2 * right + extra + missed, 1)
    filled = 2 * (right + totals["missed_in_holes"]) / max(2 * right + extra + missed, 1)
    print(", ".join(f"{k} {v:,}" for k, v in totals.items()))
    print(f"Dice on the lumbar slices against every true vertebra {dice:.3f}; the mark's holes filled {filled:.3f}")


if __name__ == "__main__":
    main()
