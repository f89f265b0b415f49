"""Reader contribution: DICOM folders and files, NIfTI -> an image layer in HU."""

from __future__ import annotations

import os
from pathlib import Path

from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct
from bonescreen.io.dicom import DICOM_NAME_SUFFIXES, SeveralSeries, is_dicom_file
from bonescreen.io.nifti import is_nifti_path

from ._convert import image_layer_data


def _named_dicom(path: Path) -> bool:
    """A file named as DICOM (.dcm, .dicom, .ima), whatever it holds: an empty or damaged one is BoneScreen's to
    explain (helper-37: a damaged .IMA got napari's "no reader")."""
    return path.name.lower().endswith(DICOM_NAME_SUFFIXES)


def _handles(path: Path) -> bool:
    if path.is_dir():
        try:
            files = list(_first_files(path))
            # an empty folder is taken too, so that the user reads why nothing opened (no file in it), not
            # napari's "no plugin found"; a folder of other files is left to the readers of those files
            return not files or any(_named_dicom(p) or is_dicom_file(p) for p in files)
        except OSError:
            return False
    # files named .nii, .nii.gz or as DICOM are taken even when empty or damaged (helper-36: napari's generic "no
    # reader" stood where BoneScreen says what is wrong with the file)
    return is_nifti_path(path) or _named_dicom(path) or (path.is_file() and is_dicom_file(path))


def _first_files(folder: Path, limit: int = 200):
    n = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            yield Path(root) / name
            n += 1
            if n >= limit:
                return


def get_reader(path: str | list[str]):
    """Return a reader for a DICOM folder, DICOM file or NIfTI file; None for anything else."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_ct if _handles(Path(path)) else None


def read_ct(path: str | list[str]) -> list[tuple]:
    """Read the CT as one image layer (a folder with several CT series of as many slices: a layer each); a bad file
    gives a notification, not a traceback."""
    if isinstance(path, list):
        path = path[0]
    try:
        try:
            return [image_layer_data(load_ct(path))]
        except SeveralSeries as several:
            if len(set(several.uids)) != len(several.uids) or "" in several.uids:
                raise  # series that their UIDs do not tell apart: the user splits the folder, as the error says
            # napari has no --series: each series is a layer of its own, and the user classifies the one they want
            layers = [image_layer_data(load_ct(path, series=uid)) for uid in several.uids]
            from napari.utils.notifications import show_info

            names = ", ".join(layer[1]["name"] for layer in layers)
            show_info(f"BoneScreen: the folder holds {len(layers)} CT series of as many slices, each a layer: {names}")
            return layers
    except BoneScreenError as exc:
        from napari.utils.notifications import show_error

        # the reason first: napari's pop-up shows one line, and a long path would hide it
        where = f" ({exc.path})" if exc.path else ""
        show_error(f"BoneScreen could not open the CT: {exc.problem}{where}")
        return [(None,)]  # napari's "nothing to add" sentinel
