"""The level split and naming on a phantom set: levels named right and per-level Dice, from MS-Net's marks or truth.

MS-Net's mark of each case is made once (as ``bonescreen screen`` makes it: the network, then the dropped sections
bridged) and kept in ``--cache``, so that a change of the split (:mod:`bonescreen.pipeline.levels`) is measured in
a few minutes without running the network again. ``--truth-masks`` splits the phantom's true spine mask instead
(every vertebra, no network): what the split and the naming do on a perfect mark.

A true level counts as named right as ``bonescreen evaluate --pipeline`` counts it: most of its voxels that the
split labels carry its id. Per-level Dice is the mean over the true levels of each case, then over the cases.

    .venv/bin/python benchmarks/level_split.py DATA --cache DIR [--truth-masks] [--cases N] [--json OUT]
        [--split-slice-mm MM]

DATA is a case set of ``bonescreen phantom`` (with ``spine.nii.gz`` for ``--truth-masks``). The cache's marks are
the bundled weights' (or ``--seg-weights``); delete the folder after changing the network.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bonescreen.data.cases import load_case_set
from bonescreen.evaluate import levels_named_right
from bonescreen.metrics import segmentation_metrics
from bonescreen.pipeline import Screener
from bonescreen.pipeline.level_settings import LevelSettings
from bonescreen.pipeline.levels import split_levels
from bonescreen.pipeline.mark_repair import bridge_dropped_sections
from bonescreen.pipeline.progress import drive
from bonescreen.pipeline.segment import iter_mark_volume


def mark_of(screener: Screener, volume, cache: Path, case_id: str) -> np.ndarray:
    """MS-Net's mark of one case as ``screen`` makes it (bool z, y, x), from the cache when it is there."""
    path = cache / f"{case_id}.npz"
    if path.is_file():
        return np.load(path)["mark"]
    settings = screener.settings
    mark = drive(
        iter_mark_volume(
            screener.model("segmentation"),
            volume.hu,
            volume.spacing,
            screener.device,
            settings.batch_size(screener.device),
            settings=settings,
            stats=screener.stats,
        ),
        None,
    )
    mark, _bridged = bridge_dropped_sections(mark, volume.hu, volume.spacing)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, mark=mark)
    return mark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="a case set of `bonescreen phantom`")
    ap.add_argument("--cache", type=Path, default=Path("bench-out/marks"), help="where MS-Net's marks are kept")
    ap.add_argument("--truth-masks", action="store_true", help="split the true spine masks (no network)")
    ap.add_argument("--seg-weights", type=Path, default=None)
    ap.add_argument("--cases", type=int, default=None, help="the first N cases only")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--split-slice-mm",
        type=float,
        default=None,
        help="LevelSettings.split_slice_mm for this run (0.1: the split reads every slice, as before 2026-12-06)",
    )
    args = ap.parse_args()
    records = load_case_set(args.data)[: args.cases]
    screener = None if args.truth_masks else Screener(seg_weights=args.seg_weights, device="cpu")
    settings = LevelSettings() if args.split_slice_mm is None else LevelSettings(split_slice_mm=args.split_slice_mm)
    rows, t0 = [], time.perf_counter()
    for rec in records:
        volume, truth = rec.load(("levels", "spine"))
        if args.truth_masks:
            if "spine" not in truth:
                raise SystemExit(f"level_split.py: {rec.folder} has no spine.nii.gz for --truth-masks")
            mark = truth["spine"] > 0
        else:
            mark = mark_of(screener, volume, args.cache, rec.case_id)
        t = time.perf_counter()
        split = split_levels(mark, volume.spacing, volume.hu, settings=settings)
        seconds = time.perf_counter() - t
        levels = truth["levels"]
        named = levels_named_right(split.labels, levels)
        dice = [v["dice"] for v in segmentation_metrics(split.labels, levels)["levels"].values()]
        row = {
            "case_id": rec.case_id,
            "named": int(sum(named)),
            "levels": len(named),
            "per_level_dice": float(np.mean(dice)) if dice else 0.0,
            "found": [v.name for v in split.vertebrae],
            "rule": split.rule,
            "certain": split.certain,
            "split_s": round(seconds, 2),
        }
        rows.append(row)
        if row["named"] < row["levels"]:
            print(f"{rec.case_id}: {row['named']} of {row['levels']} named; found {', '.join(row['found'])}")
    named, total = sum(r["named"] for r in rows), sum(r["levels"] for r in rows)
    mean_dice = float(np.mean([r["per_level_dice"] for r in rows])) if rows else 0.0
    source = "true spine masks" if args.truth_masks else "MS-Net's marks"
    print(
        f"{len(rows)} cases, {source}: {named} of {total} levels named right; per-level Dice {mean_dice:.4f}; "
        f"split {np.mean([r['split_s'] for r in rows]):.1f} s a case; {time.perf_counter() - t0:.0f} s in all"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {"named": named, "levels": total, "per_level_dice": mean_dice}
        args.json.write_text(json.dumps({"source": source, "summary": summary, "cases": rows}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
