"""BoneScreen on real CT with vertebra labels: Dice of the mark, levels found and named, trabecular HU, time;
the reference tissues of the density calibration and each vertebra's body heights.

Runs the pipeline (MS-Net mark, split at the discs, naming, trabecular HU) on every labelled
real image in ../shared/data, or on a folder of your own labelled CT, and prints per image:
Dice of the mark against the given vertebra labels (all vertebrae; where the labels hold only some vertebrae,
the vertebrae found that cover them), Dice per given vertebra, the vertebrae found and
their names against the given ones, the trabecular HU of each vertebra found, and the time.

    .venv/bin/python benchmarks/real_ct.py [--seg-weights W] [--json OUT.json] [--figure docs/real_ct.png]
    .venv/bin/python benchmarks/real_ct.py --folder /data/verse --layout verse      # your own labelled CT

Layouts of a folder (see :mod:`bonescreen.data.labelled`): ``verse`` (VerSe 2020 rawdata/derivatives,
ids 1-24 = C1-L5, 25 = L6, 26 = sacrum), ``totalseg`` (TotalSegmentator v2 ``ct.nii.gz`` with
``segmentations/vertebrae_*.nii.gz`` or a combined ``total`` map), ``nnunet`` (imagesTr/ + labelsTr/,
with ``--label-scheme verse|totalseg``).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import numpy as np

from bonescreen.data.labelled import LAYOUTS, builtin_real_cases, find_labelled, only, unpaired
from bonescreen.errors import BoneScreenError
from bonescreen.labelled_eval import evaluate_labelled_case, found_text, mean_dice_text, row_lines, scored_found
from bonescreen.pipeline import Screener

#: Width of one image's column in the figure (inches).
COLUMN_IN = 4.2


def _fit(text: str, width_in: float, points: float) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``points`` (a character up to 0.6 em wide)."""
    return textwrap.fill(text, max(20, int(width_in * 72 / (0.6 * points))))


def _given(found: dict, partial: bool) -> str:
    """What the labels call a vertebra found, where not its name: " (given T9)"; " (not labelled)" where the labels
    hold some vertebrae only, " (given nothing)" where they hold all in view; "" where it is named as given. The text
    and the figure say the same (helper-83: the figure said "(given None)")."""
    if found["truth"] is None:
        return " (not labelled)" if partial else " (given nothing)"
    return f" (given {found['truth']})" if found["truth"] != found["name"] else ""


def figure(rows: list[dict], path: Path) -> None:
    """One column per image: an axial slice and (volumes) a sagittal slice, mark in red, labels in green."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(rows), figsize=(COLUMN_IN * len(rows), 8.4), squeeze=False)
    for col, row in enumerate(rows):
        hu, mark, truth = row["_volume"].hu, row["_mark"], row["_truth"] > 0
        dz, dy, dx = row["_volume"].spacing
        k = int(np.argmax(truth.sum(axis=(1, 2))))
        ax = axes[0, col]
        ax.imshow(hu[k], cmap="gray", vmin=-250, vmax=1250, aspect=dy / dx)
        ax.contour(truth[k], [0.5], colors="lime", linewidths=1.0)
        ax.contour(mark[k], [0.5], colors="red", linewidths=0.8)
        ax.set_title(f"{row['case']}\naxial {k}: Dice {row['dice']:.3f}", fontsize=9)
        ax.axis("off")
        ax = axes[1, col]
        if hu.shape[0] >= 8:
            x = int(np.argmax(truth.sum(axis=(0, 1))))
            given = np.nonzero(truth.any(axis=(0, 2)))[0]
            pad = int(40 / dy)
            ys = slice(max(given.min() - pad, 0), given.max() + pad + 1)  # the spine and 4 cm around it
            ax.imshow(hu[::-1, ys, x], cmap="gray", vmin=-250, vmax=1250, aspect=dz / dy)
            ax.contour(truth[::-1, ys, x], [0.5], colors="lime", linewidths=1.0)
            ax.contour(mark[::-1, ys, x], [0.5], colors="red", linewidths=0.8)
            names = ", ".join(f["name"] + _given(f, row["partial"]) for f in row["found"])
            ax.set_title(_fit(f"sagittal: {names or 'nothing found'}", COLUMN_IN, 8), fontsize=8)
        else:
            ax.text(0.5, 0.5, f"{hu.shape[0]} slices: no sagittal view", ha="center", va="center")
        ax.axis("off")
    # wrapped to the figure's width (one image: 4.2 inches, narrower than the title's one line)
    title = "BoneScreen mark (red) against the given vertebra labels (green)"
    fig.suptitle(_fit(title, COLUMN_IN * len(rows), 11), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seg-weights", type=Path, default=None, help="MS-Net weights (default: the bundled ones)")
    ap.add_argument("--folder", type=Path, default=None, help="your own labelled CT (default: ../shared/data)")
    ap.add_argument("--layout", choices=sorted(LAYOUTS), default=None)
    ap.add_argument("--label-scheme", choices=["verse", "totalseg"], default="verse", help="nnU-Net label ids")
    ap.add_argument(
        "--only", action="append", default=[], help="measure only this image (its name in the output); repeatable"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where the figures go (default bench-out/real_ct.json; with --folder, bench-out/real_ct_FOLDERNAME.json, "
        "so that a user's folder does not overwrite the bundled images' figures)",
    )
    ap.add_argument("--figure", type=Path, default=None, help="PNG of the marks (docs/real_ct.png)")
    args = ap.parse_args()
    try:
        cases = find_labelled(args.folder, args.layout, args.label_scheme) if args.folder else builtin_real_cases()
        if args.only:
            cases = only(cases, args.only, args.folder)
        if args.folder is None and not cases:
            raise BoneScreenError("../shared/data/real is missing: give --folder with your own labelled CT")
        screener = Screener(seg_weights=args.seg_weights, device=args.device)
        screener.model("segmentation")  # bad weights or an absent device: one line, before any image
    except BoneScreenError as exc:  # bad input: one line and exit code 2, as `bonescreen evaluate` (helper-70: 1)
        print(f"real_ct.py: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for line in unpaired(args.folder, args.layout) if args.folder else []:
        print(line)
    rows, skipped = [], 0
    for case in cases:
        try:
            row = evaluate_labelled_case(screener, case)
        except BoneScreenError as exc:  # one unreadable image does not lose the others
            print(f"{case.name}: skipped: {exc}")
            skipped += 1
            continue
        rows.append(row)
        named = found_text(row, lambda f, partial=row["partial"]: f["name"] + _given(f, partial))
        hus = ", ".join(f"{f['name']} {f['trabecular_hu']}" for f in row["found"])
        scope, each = row_lines(row)
        print(
            f"{row['case']}: Dice {row['dice']:.3f}{scope}; given {', '.join(row['given'])}; found {named} "
            f"({row['named_right']} of {len(scored_found(row))} named as given; {row['given_found']} of "
            f"{len(row['given'])} given vertebrae found as vertebrae of their own); naming: {row['rule']}, "
            f"{'certain' if row['certain'] else 'flagged uncertain'}; trabecular HU {hus}; {row['seconds']:.1f} s"
        )
        print(f"    {each}")
        for note in row["notes"]:
            print(f"    note: {note}")
        for note in row["label_notes"]:
            print(f"    labels: {note}")
        cal = row["calibration"]
        tissues = ", ".join(f"{k} {t['hu']:.0f} HU ({t['voxels']} voxels)" for k, t in cal["reference_tissues"].items())
        heights = "; ".join(
            f"{f['name']} {h['anterior']:.0f}/{h['middle']:.0f}/{h['posterior']:.0f} mm"
            for f in row["found"]
            if (h := f["heights_mm"])
        )
        contrast = "contrast-enhanced" if cal["contrast_enhanced"] else "no contrast found"
        print(
            f"    reference tissues (round {row['calibration_scope']}): {tissues or 'none'}; "
            f"kVp {cal['kvp'] or 'not in the header'}; effective energy "
            f"{cal['effective_energy_kev']} keV; {contrast}; "
            f"lumbar body heights anterior/middle/posterior, as screen measures them: {heights or 'none'}"
        )
        for flag in cal["flags"]:
            print(f"    calibration: {flag}")
    if rows:
        print(mean_dice_text(rows))
    if args.json is None:  # (helper-83: a user's folder wrote over bench-out/real_ct.json)
        args.json = Path("bench-out") / (
            f"real_ct_{args.folder.resolve().name}.json" if args.folder else "real_ct.json"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    meta = screener.models()
    args.json.write_text(json.dumps({"weights": meta, "cases": clean}, indent=1, default=str), encoding="utf-8")
    print(f"wrote {args.json}")
    if args.figure and rows:
        figure(rows, args.figure)
        print(f"wrote {args.figure}")
    if skipped:  # as `bonescreen evaluate`: exit code 1 when a case could not be scored (helper-70: 0)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
