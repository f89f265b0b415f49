"""Read and write NIfTI files; read CT volumes from them.

Compressed files (``.nii.gz``) are inflated and deflated in one go with ISA-L
(``isal``), about twice zlib's speed for reading CT and fifty times for writing
label maps; nibabel parses and builds the images.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip

from ..atomic import atomic_path
from ..errors import BoneScreenError
from .volume import CTVolume, volume_from_ijk

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True if the file name ends in .nii or .nii.gz."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: str | os.PathLike) -> nib.Nifti1Image | nib.Nifti2Image:
    """The NIfTI-1 or NIfTI-2 image in ``path`` (``.nii`` or ``.nii.gz``), with its data in memory."""
    path = Path(path)
    if not str(path).lower().endswith(".gz"):
        return nib.load(path)
    data = igzip.decompress(path.read_bytes())
    try:
        return nib.Nifti1Image.from_bytes(data)
    except Exception:
        # a NIfTI-2 header is 540 bytes, not 348; raise the NIfTI-1 error if it is not that either
        if len(data) >= 4 and 540 in (int.from_bytes(data[:4], "little"), int.from_bytes(data[:4], "big")):
            return nib.Nifti2Image.from_bytes(data)
        raise


def save_nifti(img: nib.Nifti1Image, path: str | os.PathLike, compresslevel: int = 1) -> Path:
    """Write ``img`` to ``path`` through a temporary file; ``.gz`` names are compressed."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if str(path).lower().endswith(".gz"):
            tmp.write_bytes(igzip.compress(img.to_bytes(), compresslevel=compresslevel))
        else:
            nib.save(img, tmp)
    return path


def _hu_float32(img: nib.Nifti1Image) -> np.ndarray:
    """The image's values (slope and intercept applied) as float32, in one pass for stored integers."""
    proxy = img.dataobj
    if not hasattr(proxy, "get_unscaled"):
        return np.asarray(proxy, dtype=np.float32)
    data = np.asarray(proxy.get_unscaled()).astype(np.float32)  # keeps nibabel's Fortran order: no transpose
    # nibabel has already turned a missing, zero or non-finite slope into 1 and intercept into 0
    if proxy.slope != 1.0:
        data *= np.float32(proxy.slope)
    if proxy.inter != 0.0:
        data += np.float32(proxy.inter)
    return data


def load_nifti(path: str | os.PathLike) -> CTVolume:
    """Read a 3-D NIfTI CT (values in HU) as a :class:`CTVolume`.

    Raises
    ------
    BoneScreenError
        If the file cannot be read, is not 3-D, or has a degenerate affine.
    """
    path = Path(path)
    try:
        img = read_nifti(path)
        data = _hu_float32(img)
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
    if img.get_data_dtype().kind == "f" and not np.all(np.isfinite(data)):
        raise BoneScreenError("the volume holds NaN or infinite values", path)
    return volume_from_ijk(data, affine, "nifti", path, f"NIfTI {path.name}")
