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
import tempfile
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


def load_volume(path: Path, script: str) -> tuple[nib.Nifti1Image, np.ndarray]:
    """The NIfTI at ``path`` and its voxels as a 3-D array (trailing axes of one voxel dropped).

    Raises
    ------
    SystemExit
        With one line naming ``path`` where it is no NIfTI nibabel reads or holds more than one volume.
    """
    try:
        img = nib.load(path)
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, zlib and numpy errors for bad files
        raise SystemExit(f"{script}: {path}: not a NIfTI image nibabel can read ({exc})") from None
    while data.ndim > 3 and data.shape[-1] == 1:  # (x, y, z, 1): one volume
        data = data[..., 0]
    if data.ndim != 3:
        raise SystemExit(f"{script}: {path}: holds an image of shape {data.shape}, not one 3-D volume")
    return img, data


def is_ct(data: np.ndarray) -> bool:
    """A volume with a value below :data:`CT_BELOW_HU` holds air: a CT; any other is taken as labels."""
    return float(np.min(data)) < CT_BELOW_HU


def save_like(img: nib.Nifti1Image, data: np.ndarray, affine: np.ndarray, out: Path) -> None:
    """Write ``data`` (3-D) to ``out`` with ``affine`` and the rest of ``img``'s header (its sform and qform codes,
    units and description), stored as ``data``'s type without scaling."""
    header = img.header.copy()
    if not isinstance(header, nib.Nifti1Header):  # an Analyze or NIfTI-2 file: its fields are not NIfTI-1's
        header = None
    new = nib.Nifti1Image(data, affine, header)
    new.header.set_data_dtype(data.dtype)
    new.header.set_slope_inter(1.0, 0.0)
    new.header.set_data_shape(data.shape)
    if header is not None:
        new.set_sform(affine, int(header["sform_code"]) or 1)
        new.set_qform(affine, int(header["qform_code"]) or 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(new, out)


def thicken(path: Path, out: Path, mm: float) -> str:
    """Write ``path`` with slices ``mm`` thick to ``out``; returns what was done, for the log."""
    img, data = load_volume(path, "thicker_slices.py")
    affine = img.affine
    axis = int(np.argmax(np.abs(affine[2, :3]) / np.linalg.norm(affine[:3, :3], axis=0)))
    old_mm = float(np.linalg.norm(affine[:3, axis]))
    if mm <= old_mm:
        raise SystemExit(f"thicker_slices.py: {path}: slices of {old_mm:g} mm are not thinner than {mm:g} mm")
    weights, centres = slab_weights(data.shape[axis], old_mm, mm)
    if not len(centres):
        span = f"{data.shape[axis]} slices of {old_mm:g} mm"
        raise SystemExit(f"thicker_slices.py: {path}: {span} span less than {mm:g} mm")
    moved = np.moveaxis(data, axis, -1)
    if is_ct(data):
        new = np.moveaxis(np.round(moved.astype(np.float32) @ weights.T), -1, axis).astype(np.int16)
        what = "CT, slab mean"
    else:
        new = np.moveaxis(moved[..., np.clip(np.round(centres).astype(int), 0, data.shape[axis] - 1)], -1, axis)
        what = f"no value under {CT_BELOW_HU:g} HU: taken as labels, read at the slices' centres"
    affine = affine.copy()
    affine[:3, 3] += affine[:3, axis] * centres[0]
    affine[:3, axis] *= mm / old_mm
    save_like(img, np.ascontiguousarray(new), affine, out)
    return f"{path.name}: {data.shape} at {old_mm:g} mm -> {new.shape} at {mm:g} mm ({what})"


def remake_folder(src: Path, dst: Path, remake: Callable[[Path, Path], str], script: str) -> None:
    """Copy the labelled folder ``src`` to ``dst`` (which must not exist), each NIfTI through ``remake(path, out)``
    (which writes ``out`` and returns a line for the log), every other file as it is.

    The copy is made in a hidden folder beside ``dst`` and renamed to ``dst`` when every file is written: a run that
    stops half-way leaves no ``dst`` that looks whole.

    Raises
    ------
    SystemExit
        With one line where ``src`` is no folder, holds no NIfTI, or ``dst`` exists (or from ``remake``).
    """
    if not src.is_dir():
        raise SystemExit(f"{script}: {src}: {'not a folder' if src.exists() else 'no such folder'}")
    if dst.exists():
        raise SystemExit(f"{script}: {dst} exists: give a new folder")
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if not any(p.name.endswith((".nii", ".nii.gz")) for p in files):
        raise SystemExit(f"{script}: {src}: holds no NIfTI (.nii, .nii.gz) to make again")
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    try:
        for path in files:
            out = partial / path.relative_to(src)
            if path.name.endswith((".nii", ".nii.gz")):
                print(remake(path, out), flush=True)
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
        partial.rename(dst)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="a labelled folder (VerSe, TotalSegmentator or nnU-Net layout)")
    ap.add_argument("dst", type=Path, help="where the copy goes (must not exist)")
    ap.add_argument("--mm", type=float, default=5.0, help="slice thickness and spacing of the copy (mm)")
    args = ap.parse_args()
    if not np.isfinite(args.mm) or args.mm <= 0:
        raise SystemExit(f"thicker_slices.py: --mm {args.mm:g}: give a slice thickness above 0 mm")
    remake_folder(args.src, args.dst, lambda path, out: thicken(path, out, args.mm), "thicker_slices.py")


if __name__ == "__main__":
    main()
