"""Reader contribution: DICOM folders and files, NIfTI -> an image layer in HU."""

from __future__ import annotations

import re
from pathlib import Path

from bonescreen.errors import BoneScreenError
from bonescreen.io import CTVolume, load_ct
from bonescreen.io.dicom import DICOM_NAME_SUFFIXES, SeveralSeries, is_dicom_file
from bonescreen.io.folders import walk_folders
from bonescreen.io.nifti import is_nifti_path

from ._convert import image_layer_data


def _named_dicom(path: Path) -> bool:
    """A file named as DICOM (.dcm, .dicom, .ima), whatever it holds: an empty or damaged one is BoneScreen's to
    explain (helper-37: a damaged .IMA got napari's "no reader")."""
    return path.name.lower().endswith(DICOM_NAME_SUFFIXES)


def _handles(path: Path) -> bool:
    # files named .nii, .nii.gz or as DICOM are taken even when empty or damaged (helper-36: napari's generic "no
    # reader" stood where BoneScreen says what is wrong with the file)
    if is_nifti_path(path) or _named_dicom(path):
        return True
    try:
        if path.is_dir():
            files = list(_first_files(path))
            # an empty folder is taken too, so that the user reads why nothing opened (no file in it), not
            # napari's "no plugin found"; a folder of other files is left to the readers of those files
            return not files or any(_named_dicom(p) or is_dicom_file(p) for p in files)
        return path.is_file() and is_dicom_file(path)
    except OSError:  # a name too long for the system (helper-92: a traceback), a folder that cannot be listed
        return False


def _first_files(folder: Path, limit: int = 200):
    n = 0
    for root, _, files in walk_folders(folder):
        for name in files:
            yield root / name
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
            volume = load_ct(path)
            _say_input_flags(volume)
            return [image_layer_data(volume)]
        except SeveralSeries as several:
            if len(set(several.uids)) != len(several.uids) or "" in several.uids:
                raise  # series that their UIDs do not tell apart: the user splits the folder, as the error says
            # napari has no --series: each series is a layer of its own, and the user classifies the one they want
            volumes = _each_a_layer([load_ct(path, series=uid) for uid in several.uids])
            layers = [image_layer_data(volume) for volume in volumes]
            from napari.utils.notifications import show_info

            names = "; ".join(layer[1]["name"] for layer in layers)
            show_info(f"BoneScreen: the folder holds {len(layers)} CT series of as many slices, each a layer: {names}")
            return layers
    except BoneScreenError as exc:
        from napari.utils.notifications import show_error

        # the reason first: napari's pop-up shows one line, and a long path would hide it
        where = f" ({exc.path})" if exc.path else ""
        show_error(f"BoneScreen could not open the CT: {exc.problem}{where}")
        return [(None,)]  # napari's "nothing to add" sentinel


def _say_input_flags(volume: CTVolume) -> None:
    """A warning on opening a CT whose reading raised a doubt (helper-89: a damaged file of the series was in the
    layer's metadata only until Segment showed it): the first doubt, and how many more; all reach the results."""
    if not volume.flags:
        return
    from napari.utils.notifications import show_warning

    more = f" (and {len(volume.flags) - 1} more doubt(s))" if len(volume.flags) > 1 else ""
    doubt = f"{volume.flags[0]}{more}"
    show_warning(f"BoneScreen opened '{volume.description}' with a doubt that flags its results: {doubt}")


#: The note the core gives a series read with ``load_ct(..., series=...)`` (:mod:`bonescreen.io.dicom`): its label
#: (``series 3 (CT, 112 images)``) and the images of the folder's other series it left out.
_CHOSEN_NOTE = re.compile(
    r"read (?P<label>.+), the series chosen by the user"
    r"(?:; (?P<left>\d+) image\(s\) of other series in the folder not read)?"
)
#: The number of images at the end of a series' label: ``series 3 (CT, 112 images)``.
_LABEL_IMAGES = re.compile(r"\([^()]*, (?P<n>\d+) images?\)")


def _each_a_layer(volumes: list[CTVolume]) -> list[CTVolume]:
    """The series of as many slices of one folder, each read with ``series=``, as napari opens them: a layer each.

    Their descriptions (the layers' names) tell them apart (helper-78: two series with one SeriesNumber were two
    layers of one name, "DICOM series 3 (112 slices)" and "... [1]"): ``(series i of n)`` is added where two are
    alike. The core's note that the series was "the series chosen by the user", the others not read, is untrue
    where napari chose none and opened each: it becomes one that says so, the images of the folder's other series
    (a scout) still counted.

    Parameters
    ----------
    volumes : list of CTVolume
        The series, in the order :class:`~bonescreen.io.dicom.SeveralSeries` lists them; changed in place.

    Returns
    -------
    list of CTVolume
        ``volumes``.
    """
    n = len(volumes)
    names = [volume.description for volume in volumes]
    chosen = [next(filter(None, map(_CHOSEN_NOTE.fullmatch, volume.notes)), None) for volume in volumes]
    images = [_LABEL_IMAGES.search(m["label"]) if m else None for m in chosen]
    for i, (volume, read) in enumerate(zip(volumes, chosen, strict=True)):
        if names.count(names[i]) > 1:
            volume.description = f"{names[i]} (series {i + 1} of {n})"
        if read is None:
            continue
        note = (
            f"{read['label']}: series {i + 1} of {n} axial CT series of as many slices in the folder, each opened as "
            "a layer of its own"
        )
        if read["left"] and all(images):
            rest = int(read["left"]) - sum(int(m["n"]) for j, m in enumerate(images) if j != i)
            if rest > 0:
                note += f"; {rest} image(s) of other series in the folder not read"
        volume.notes = [note if old == read.string else old for old in volume.notes]
    return volumes
