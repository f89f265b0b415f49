"""CT input and output: DICOM series, NIfTI, DICOM SEG."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BoneScreenError
from .dicom import is_dicom_file, load_dicom
from .nifti import is_nifti_path, load_nifti
from .volume import CTVolume, SourceGrid


def load_ct(path: str | os.PathLike) -> CTVolume:
    """Read a CT from a DICOM folder, a single DICOM file or a NIfTI file.

    Parameters
    ----------
    path : str or PathLike
        Folder of DICOM files (searched recursively), one DICOM file, or
        ``.nii`` / ``.nii.gz``.

    Returns
    -------
    CTVolume
        HU as float32 (z, y, x) in BoneScreen's orientation, spacing in mm.

    Raises
    ------
    BoneScreenError
        Naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise BoneScreenError("no such file or folder", path)
    if path.is_dir():
        return load_dicom(path)
    if is_nifti_path(path):
        return load_nifti(path)
    if is_dicom_file(path):
        return load_dicom(path)
    raise BoneScreenError("not a DICOM file (no 'DICM' header) nor a NIfTI file (.nii/.nii.gz)", path)


__all__ = ["BoneScreenError", "CTVolume", "SourceGrid", "load_ct"]
