"""A folder of labelled CT made again with thicker axial slices, for measuring BoneScreen across acquisitions.

Users' scans come at 0.5-5 mm slices (issue "Real CT"); the labelled real CT at hand are 1.5-3 mm. This writes a
copy of a labelled folder (any layout that ``benchmarks/real_ct.py --folder`` reads: the same relative paths)
whose CT volumes have slices ``--mm`` thick: each new slice the mean of the old ones it spans, weighted by their
overlap (a slab as a scanner reconstructs it, within the old slices' own thickness), and each label map read at
the new slice's centre (nearest old slice). A NIfTI holding values under -100 is taken as CT, any other as
labels; other files are copied. The slice axis is the voxel axis nearest the patient's head-feet axis.

    .venv/bin/python benchmarks/thicker_slices.py SRC DST --mm 5
    .venv/bin/python benchmarks/real_ct.py --folder DST --layout totalseg
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

#: A NIfTI with a value below this holds air: a CT, not labels.
CT_BELOW_HU = -100.0


def slab_weights(n_old: int, old_mm: float, new_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights (n_new, n_old) of the old slices in each new one, and each new slice's centre in old indices.

    The new slices tile the old range from its first slice's lower edge; the last partial slab is dropped.
    """
    n_new = int(n_old * old_mm // new_mm)
    lower = np.arange(n_new) * new_mm / old_mm  # in old slice widths, from the first old slice's lower edge
    upper = lower + new_mm / old_mm
    edges = np.arange(n_old)
    overlap = np.clip(np.minimum(upper[:, None], edges + 1) - np.maximum(lower[:, None], edges), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True), (lower + upper) / 2 - 0.5


def thicken(path: Path, out: Path, mm: float) -> str:
    """Write ``path`` with slices ``mm`` thick to ``out``; returns what was done, for the log."""
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    axis = int(np.argmax(np.abs(img.affine[2, :3]) / np.linalg.norm(img.affine[:3, :3], axis=0)))
    old_mm = float(np.linalg.norm(img.affine[:3, axis]))
    if mm <= old_mm:
        raise SystemExit(f"thicker_slices.py: {path}: slices of {old_mm:g} mm are not thinner than {mm:g} mm")
    weights, centres = slab_weights(data.shape[axis], old_mm, mm)
    moved = np.moveaxis(data, axis, -1)
    if float(np.min(data)) < CT_BELOW_HU:
        new = np.moveaxis(np.round(moved.astype(np.float32) @ weights.T), -1, axis).astype(np.int16)
        what = "CT, slab mean"
    else:
        new = np.moveaxis(moved[..., np.clip(np.round(centres).astype(int), 0, data.shape[axis] - 1)], -1, axis)
        what = "labels, at the slices' centres"
    affine = img.affine.copy()
    affine[:3, 3] += affine[:3, axis] * centres[0]
    affine[:3, axis] *= mm / old_mm
    out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(new.astype(new.dtype), affine), out)
    return f"{path.name}: {data.shape} at {old_mm:g} mm -> {new.shape} at {mm:g} mm ({what})"


def remake_folder(src: Path, dst: Path, remake: Callable[[Path, Path], str], script: str) -> None:
    """Copy the labelled folder ``src`` to ``dst`` (which must not exist), each NIfTI through ``remake(path, out)``
    (which writes ``out`` and returns a line for the log), every other file as it is."""
    if dst.exists():
        raise SystemExit(f"{script}: {dst} exists: give a new folder")
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        out = dst / path.relative_to(src)
        if path.name.endswith((".nii", ".nii.gz")):
            print(remake(path, out))
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="a labelled folder (VerSe, TotalSegmentator or nnU-Net layout)")
    ap.add_argument("dst", type=Path, help="where the copy goes (must not exist)")
    ap.add_argument("--mm", type=float, default=5.0, help="slice thickness and spacing of the copy (mm)")
    args = ap.parse_args()
    remake_folder(args.src, args.dst, lambda path, out: thicken(path, out, args.mm), "thicker_slices.py")


if __name__ == "__main__":
    main()
