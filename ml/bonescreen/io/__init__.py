"""CT input and output: DICOM series, NIfTI, DICOM SEG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import BoneScreenError, check_number
from .dicom import DICOM_NAME_SUFFIXES, is_dicom_file, load_dicom
from .folders import cannot_be_read, check_not_special, listing_problem, open_problem
from .hu_scale import MAX_HU_OFFSET, hu_scale_problem
from .identifiers import redact
from .nifti import is_nifti_path, load_nifti
from .volume import CTVolume, SourceGrid, clip_padding


def load_ct(
    path: str | os.PathLike,
    hu_offset: float | None = None,
    orientation: str | None = None,
    recursive: bool = True,
    series: str | None = None,
) -> CTVolume:
    """Read a CT from a DICOM folder, a single DICOM file or a NIfTI file, and check that it holds HU.

    Parameters
    ----------
    path : str or PathLike
        Folder of DICOM files (searched recursively unless ``recursive`` is False), one DICOM file, or
        ``.nii`` / ``.nii.gz``.
    hu_offset : float, optional
        Added to every value before the check, for stored values read without their
        rescale (the user's correction; recorded in :attr:`CTVolume.notes`).
    orientation : str, optional
        Axis codes of the file's array axes (i, j, k), such as ``LPS`` or ``RAS``
        (each letter: the direction the axis runs towards), for a NIfTI without
        qform and sform. Without it such a file is read with nibabel's default
        axes and flagged.
    recursive : bool
        Search a DICOM folder's subfolders too (the default); ``False`` reads only the files
        directly in it (``bonescreen batch``: each folder of an archive is its own study).
    series : str, optional
        The DICOM series to read, by SeriesNumber or SeriesInstanceUID, where a folder holds several (by
        default the axial CT series with the most slices).

    Returns
    -------
    CTVolume
        HU as float32 (z, y, x) in BoneScreen's orientation, spacing in mm.

    Raises
    ------
    BoneScreenError
        Naming the file and the problem, also when the values are not Hounsfield
        units (:func:`~.hu_scale.hu_scale_problem`).
    """
    path = Path(path)
    if hu_offset is not None:
        check_number("hu_offset", hu_offset, -MAX_HU_OFFSET, MAX_HU_OFFSET)
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long for the system (helper-92: a traceback)
        raise BoneScreenError(cannot_be_read(exc), path) from None
    if not exists:
        raise BoneScreenError("no such file or folder", path)
    check_not_special(path)
    why = listing_problem(path) if path.is_dir() else open_problem(path)
    if why is not None:  # (helper-92: a file without read permission was "damaged, or another format")
        raise BoneScreenError(why, path)
    if path.is_file() and path.stat().st_size == 0:  # (helper-34: "not gzip-compressed" of an empty file)
        raise BoneScreenError("the file is empty (0 bytes): an interrupted copy or download?", path)
    if orientation is not None and not is_nifti_path(path):
        raise BoneScreenError("an orientation can be given for a NIfTI file only (DICOM states its own)", path)
    if series is not None and is_nifti_path(path):
        raise BoneScreenError("a series can be chosen in a DICOM folder only (a NIfTI file holds one)", path)
    if path.is_dir() or (not is_nifti_path(path) and is_dicom_file(path)):
        volume = load_dicom(path, recursive, series)
    elif is_nifti_path(path):
        volume = load_nifti(path, orientation)
    elif path.name.lower().endswith(DICOM_NAME_SUFFIXES):  # .dcm, .dicom, .ima (helper-37: a damaged .IMA)
        raise BoneScreenError(
            "named as DICOM but does not read as DICOM (neither the 'DICM' preamble nor a DICOM element at its "
            "start): damaged, or another format",
            path,
        )
    else:
        raise BoneScreenError("not a DICOM file nor a NIfTI file (.nii/.nii.gz)", path)
    if hu_offset:
        volume.hu += np.float32(hu_offset)
        clip_padding(volume.hu)
        volume.notes.append(f"{hu_offset:+g} added to every value (given by the user)")
    problem = hu_scale_problem(volume.hu, hu_offset or 0.0)
    if problem:  # the path as the reader's own errors name it: the patient's name and IDs taken out (helper-90)
        ids = volume.source.identifiers
        raise BoneScreenError(redact(problem, ids), redact(str(path), ids) if ids else path)
    return volume


__all__ = ["BoneScreenError", "CTVolume", "SourceGrid", "load_ct"]
