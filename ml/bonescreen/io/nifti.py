"""Read CT volumes from NIfTI files."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import BoneScreenError
from .volume import CTVolume, volume_from_ijk

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True if the file name ends in .nii or .nii.gz."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def load_nifti(path: str | os.PathLike) -> CTVolume:
    """Read a 3-D NIfTI CT (values in HU) as a :class:`CTVolume`.

    Raises
    ------
    BoneScreenError
        If the file cannot be read, is not 3-D, or has a degenerate affine.
    """
    path = Path(path)
    try:
        img = nib.load(path)
        data = np.asarray(img.dataobj, dtype=np.float32)
        affine = np.asarray(img.affine, dtype=float)
    except Exception as exc:  # nibabel raises several types for damaged files
        raise BoneScreenError(
            f"unreadable NIfTI ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})", path
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise BoneScreenError(f"expected a 3-D volume, got shape {data.shape}", path)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise BoneScreenError("the NIfTI affine is degenerate (zero or non-finite voxel size)", path)
    if not np.all(np.isfinite(data)):
        raise BoneScreenError("the volume holds NaN or infinite values", path)
    return volume_from_ijk(data, affine, "nifti", path, f"NIfTI {path.name}")
