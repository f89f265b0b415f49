"""BoneScreen logic on MRML nodes, without GUI: it runs in Slicer and headless with PyPI's slicer-core.

Imported only once the ``bonescreen`` core is installed (the module's widget imports it lazily).

Conversions:

- scalar volume node -> :class:`bonescreen.io.CTVolume` (IJK-to-RAS kept, HU in BoneScreen's orientation);
- vertebra map (DESIGN.md ids) -> segmentation node with one segment per vertebra (T12, L1..L5, S1 ...;
  names, colours, SNOMED CT terminology);
- segmentation node (after the user's edits and renamings) -> vertebra map on the volume grid;
- results -> table node (one row per level and an overall row) and a plot chart node.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial

import numpy as np
import slicer
import vtk

from bonescreen.errors import BoneScreenError
from bonescreen.io.identifiers import redact
from bonescreen.labels import lumbar_levels
from bonescreen.messages import users_naming_notes, users_naming_rule
from bonescreen.pipeline.levels import upside_down_note

#: Tag on each segment holding the vertebra id BoneScreen gave it (DESIGN.md: 1..5 = L1..L5, 6 = T12, 7 = sacrum, ...);
#: what a segment is classified as is its name as the user sees it (:func:`_segment_level`).
LEVEL_TAG = "BoneScreen.Level"
#: Segmentation node attribute: a digest of MS-Net's vertebra map as the node was made ("" for a user's segments).
MARK_DIGEST = "BoneScreen.MarkDigest"
#: Node attribute: the naming rule of BoneScreen's own label file, opened unedited (its rule once edited).
OWN_RULE = "BoneScreen.OwnRule"
#: Node attribute: the renamings BoneScreen's own label file kept (id then -> BoneScreen's id, JSON), which the label
#: maps Export writes carry on (review, helper-112: lost, a file renamed before came back as BoneScreen's names).
OWN_NAMED_FROM = "BoneScreen.OwnNamedFrom"
#: Table node attributes: the volume node whose results it holds, and the chart drawn from it.
TABLE_VOLUME = "BoneScreen.Volume"
TABLE_CHART = "BoneScreen.Chart"
#: Table node attribute: why its results no longer hold (a refused Classify, a new segmentation, names shifted);
#: the table's name and its chart's title say so too (helper-110: the earlier result stayed on screen as if it held).
TABLE_OUT_OF_DATE = "BoneScreen.OutOfDate"
OUT_OF_DATE_SUFFIX = " (out of date)"
CHART_TITLE = "BoneScreen: class probabilities per level"
#: Segmentation node attribute: "1" where BoneScreen split and named a mask the user gave (ids ``mask``).
SPLIT_MASK = "BoneScreen.SplitMask"
#: The segmentation node's attributes that say how BoneScreen made it (names given, rule, doubt, notes, the mark's
#: digests): kept in each segment's :data:`PROVENANCE_TAG` too, since a ``.seg.nrrd`` stores segment tags but not node
#: attributes (helper-110: saved and loaded again, an untouched MS-Net mark of a three-slice series read as the user's
#: checked work: its names certain, the withheld status given, the naming notes gone).
PROVENANCE = (
    "BoneScreen.NamesGiven",
    "BoneScreen.NamingRule",
    "BoneScreen.NamesCertain",
    "BoneScreen.Notes",
    MARK_DIGEST,
    OWN_RULE,
    OWN_NAMED_FROM,
    SPLIT_MASK,
    "BoneScreen.Evidence",
)
#: Segment tag holding :data:`PROVENANCE` (JSON, base64: a tag's value may hold no '|' or ':' in a .seg.nrrd header).
PROVENANCE_TAG = "BoneScreen.Provenance"

#: What Slicer tells a user whose segment holds several vertebral bodies (the core's advice names the command line's
#: option: helper-76), for a mask BoneScreen split and for other segmentations.
SPLIT_MASK_ADVICE = (
    "BoneScreen split this mask (ids 'mask': every id above 0 read as vertebral bone) and could not part them: if the "
    "map holds more than the spine (organs or ribs, as TotalSegmentator's and VerSe's maps do), open it with its own "
    "ids ('Label map ids:' totalseg or verse); else part them in the Segment Editor (Scissors, or Islands: split "
    "islands to segments) and name each"
)
SEGMENTS_ADVICE = (
    "Part them in the Segment Editor (Scissors, or Islands: split islands to segments) and name each, or open the map "
    "with 'Label map ids:' mask for BoneScreen to split and name the vertebrae"
)


_REGISTERED = []


def register_segmentation_converters() -> None:
    """Register the labelmap <-> closed-surface rules (Slicer does this at start-up; headless we must)."""
    if _REGISTERED:
        return
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())
    _REGISTERED.append(True)


def _matrix_to_numpy(m: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def _numpy_to_matrix(a: np.ndarray) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(a[r, c]))
    return m


def ijk_to_ras(volume_node) -> np.ndarray:
    """The node's 4x4 IJK-to-RAS matrix as an array."""
    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    return _matrix_to_numpy(m)


def add_ct_volume_node(scene, hu: np.ndarray, spacing, name: str, origin=(0.0, 0.0, 0.0)):
    """A scalar volume node of a CT in BoneScreen's orientation: ``hu`` (z, y, x) in HU, ``spacing`` (dz, dy, dx) mm.

    The IJK axes are L, P, S (x to the patient's left, y posterior, z superior), as the phantom and
    :class:`bonescreen.io.CTVolume` have them; values are stored as int16, air (-1024) at the lowest.
    """
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    dz, dy, dx = spacing
    node.SetSpacing(dx, dy, dz)
    node.SetOrigin(*origin)
    node.SetIJKToRASDirectionMatrix(_numpy_to_matrix(np.diag([-1.0, -1.0, 1.0, 1.0])))
    slicer.util.updateVolumeFromArray(node, np.maximum(hu, -1024).astype(np.int16))  # (k, j, i) = (z, y, x)
    return node


def set_volume_orientation(volume_node, codes: str) -> None:
    """State the orientation of a volume whose file had none (a NIfTI without qform and sform).

    The IJK-to-RAS directions become those of the axis codes (``LPS``: i runs to the patient's
    left, j posterior, k superior), as ``bonescreen screen --orientation`` does; spacing and origin
    are kept.

    Raises
    ------
    BoneScreenError
        If ``codes`` are not three axis codes.
    """
    from bonescreen.io.nifti import affine_from_codes

    direction = affine_from_codes(codes, (1.0, 1.0, 1.0))
    volume_node.SetIJKToRASDirectionMatrix(_numpy_to_matrix(direction))
    volume_node.SetAttribute("BoneScreen.Orientation", str(codes).upper())
    volume_node.Modified()


def volume_node_to_ct(volume_node):
    """A :class:`bonescreen.io.CTVolume` of a scalar volume node (values taken as HU); for a volume from
    Slicer's DICOM database, its acquisition (``KVP``, ``ContrastBolusAgent``) from the first file.

    The node's own IJK-to-RAS matrix is used: a parent transform other than the identity is refused (harden it
    first). Values that are not a CT's in HU are refused as the command line and napari refuse them
    (:func:`bonescreen.io.hu_scale.hu_scale_problem`: NaN or infinity, no fat, a label map).

    Raises
    ------
    BoneScreenError
        If there is no volume, it is a label map node, has a transform, or does not hold a CT in HU.
    """
    from bonescreen.io.hu_scale import hu_scale_problem
    from bonescreen.io.volume import volume_from_ijk

    if volume_node is None or volume_node.GetImageData() is None:
        raise BoneScreenError("select a CT volume first")
    if volume_node.IsA("vtkMRMLLabelMapVolumeNode"):  # (helper-60: segmented as a CT, "Segmented (none)")
        raise BoneScreenError(f"'{volume_node.GetName()}' is a label map, not a CT: select the CT volume")
    _refuse_a_transform(volume_node)
    kji = slicer.util.arrayFromVolume(volume_node).copy()  # the worker thread must not share the node's memory
    if kji.ndim != 3:
        raise BoneScreenError(f"volume '{volume_node.GetName()}' is not a 3-D scalar volume")
    volume = volume_from_ijk(kji.transpose(2, 1, 0), ijk_to_ras(volume_node), "slicer", None, volume_node.GetName())
    # (helper-76: random values, NaN, a label map loaded as a scalar volume were segmented and classified); the
    # reason says what the values are, as napari's "layer 'X': reason" does (helper-78: a lead of "is not a CT in
    # Hounsfield units" before it said so twice)
    if problem := hu_scale_problem(volume.hu, front_end="slicer"):
        raise BoneScreenError(f"the volume '{volume_node.GetName()}': {problem}")
    files = dicom_source_files(volume_node, limit=1)  # one header holds them: no database query per slice
    if files:  # a CT from Slicer's DICOM database: its tube voltage and contrast agent for the density calibration
        from bonescreen.io.dicom import read_acquisition, read_spacing_notes

        volume.description = _shown_name(volume_node, volume, files[0])
        try:
            volume.acquisition = read_acquisition(files[0])
            # what the command line notes of the series' spacing (helper-110: a single image without a thickness was
            # said to "cover 1 mm" in Slicer, while the command line noted the 1 mm as a guess)
            # along the node's k axis, as the series' slices run (review, helper-112: the reoriented z of a sagittal
            # series is another axis)
            step = float(np.linalg.norm(ijk_to_ras(volume_node)[:3, 2]))
            volume.notes.extend(read_spacing_notes(files[0], kji.shape[0], step))
        except BoneScreenError as exc:  # the volume is loaded; without its header the calibration flags "no kVp"
            why = redact(str(exc), volume.source.identifiers)
            logging.warning("BoneScreen: the tube voltage of '%s' is unknown: %s", volume.description, why)
    elif (path := _nifti_file_of(volume_node)) is not None:
        # what the command line reads beside and in a NIfTI (helper-60: Slicer asked for a sidecar it never read,
        # and a file without orientation went unflagged)
        from bonescreen.io.nifti import (
            file_geometry_doubt,
            orientation_unknown_flag,
            read_sidecar,
            states_no_orientation,
        )

        volume.acquisition = read_sidecar(path, volume.notes)
        if not volume_node.GetAttribute("BoneScreen.Orientation") and states_no_orientation(path):
            volume.flags.append(orientation_unknown_flag(volume.affine, "Slicer's"))
        # a qform and sform that disagree, flagged as the command line and napari flag them (helper-117: missing)
        elif doubt := file_geometry_doubt(path, ijk_to_ras(volume_node), kji.transpose(2, 1, 0), "Slicer"):
            volume.flags.append(doubt)
    return volume


def _refuse_a_transform(node, kind: str = "CT") -> None:
    """Refuse a CT or a segmentation under a parent transform (the identity aside).

    BoneScreen reads the CT's voxels on the node's own grid, and its segmentation would not follow the transform
    (helper-76: a flipped CT was segmented unflipped, without a word); a segmentation moved by a transform no longer
    lies where it was made or checked (helper-78: a 3 mm shift gave other numbers without a word, a flip was said to
    hold "no voxel of the CT").

    Parameters
    ----------
    node : vtkMRMLTransformableNode
        The CT's volume node or the segmentation node.
    kind : str
        What the message calls it, and what to right-click: ``CT`` or ``segmentation``.

    Raises
    ------
    BoneScreenError
        Naming the node and the transform, and how to harden it.
    """
    transform = node.GetParentTransformNode()
    if transform is None:
        return
    if transform.IsTransformToWorldLinear():
        m = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToWorld(m)
        if np.allclose(_matrix_to_numpy(m), np.eye(4), atol=1e-9):
            return
    raise BoneScreenError(
        f"the {kind} '{node.GetName()}' has a transform ('{transform.GetName()}'): harden it (Data module > "
        f"right-click the {kind} > Harden transform) first, or remove it"
    )


#: What result.json and report.png call a volume from DICOM whose header cannot be read: its node's name may hold
#: the patient's name, which only the header would let BoneScreen take out.
NAME_WITHHELD = (
    "a DICOM series (its name withheld: the header that would let BoneScreen take the patient's name out of it "
    "is unreadable)"
)


def _shown_name(volume_node, volume, first_file: str) -> str:
    """The node's name as result.json and report.png may show it, for a volume from Slicer's DICOM database.

    Slicer's DICOM loader names a node ``SeriesNumber: SeriesDescription``, and a description can hold the patient's
    name (helper-76: ``3: abdomen 3mm KRAMPUSINA`` in result.json's ``input`` and report.png's title): the header's
    name parts and IDs are written ``[patient]`` (:mod:`bonescreen.io.identifiers`, as the command line does), and
    ``volume.source.identifiers`` keeps them for the records.
    """
    from bonescreen.io.identifiers import patient_identifiers, read_header

    try:
        header = read_header(first_file)
    except BoneScreenError:
        return NAME_WITHHELD
    volume.source.identifiers = patient_identifiers(header)
    return redact(volume_node.GetName(), volume.source.identifiers)


def _nifti_file_of(volume_node) -> str | None:
    """The NIfTI file a volume node was loaded from (its storage node), or None."""
    from pathlib import Path

    from bonescreen.io.nifti import is_nifti_path

    storage = volume_node.GetStorageNode()
    path = storage.GetFileName() if storage is not None else None
    return path if path and is_nifti_path(path) and Path(path).is_file() else None


def _terminology(level: int) -> str:
    from bonescreen.labels_terminology import LEVEL_CATEGORY, vertebra_code

    cat, typ = LEVEL_CATEGORY, vertebra_code(level)
    return (
        "Segmentation category and type - 3D Slicer General Anatomy list"
        f"~{cat.scheme_designator}^{cat.value}^{cat.meaning}~{typ.scheme_designator}^{typ.value}^{typ.meaning}~^^"
        "~Anatomic codes - DICOM master list~^^~^^"
    )


def labels_to_segmentation(labels, volume, volume_node, segmentation_node=None):
    """Put a vertebra map (z, y, x on ``volume``; ids of DESIGN.md) into a segmentation node, one segment each.

    Segments are named ``L1``, ``T12``, ``S1``, ``unnamed 1`` ... with their colour, standard
    terminology and the id in the ``BoneScreen.Level`` tag. A new node is made unless
    ``segmentation_node`` is given; a given node's segments are replaced.
    """
    from bonescreen.labels import spine_rank, vertebra_color, vertebra_name

    register_segmentation_converters()
    scene = volume_node.GetScene()
    ijk = volume.to_source(np.asarray(labels, dtype=np.uint8))
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "BoneScreen temporary labels")
    try:
        labelmap.SetIJKToRASMatrix(_numpy_to_matrix(ijk_to_ras(volume_node)))
        slicer.util.updateVolumeFromArray(labelmap, np.ascontiguousarray(ijk.transpose(2, 1, 0)))
        if segmentation_node is None:
            # a name of its own (" vertebrae_1"): told apart from an earlier run's, which the user may have edited
            name = scene.GenerateUniqueName(f"{volume_node.GetName()} vertebrae")
            segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        segmentation = segmentation_node.GetSegmentation()
        segmentation.RemoveAllSegments()
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation_node):
            raise BoneScreenError(f"Slicer could not import the labels of {volume_node.GetName()} into a segmentation")
    finally:
        scene.RemoveNode(labelmap)
    for i in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(i)
        # the id each segment came from: its label value (helper-37: read from the name's digits, which Slicer
        # gives only when the map holds two ids or more, a map of T12 alone became "L1")
        level = int(segment.GetLabelValue())
        segment.SetName(vertebra_name(level))
        segment.SetColor(*(c / 255 for c in vertebra_color(level)))
        segment.SetTag(LEVEL_TAG, str(level))
        segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), _terminology(level))
    # listed head to tail (T11, T12, L1 ... S1), as napari lists them, not by id (helper-60: L1-L5, T12, S1, T11)
    order = sorted(
        (segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())),
        key=lambda sid: spine_rank(segmentation.GetSegment(sid).GetName()),
    )
    for index, sid in enumerate(order):
        segmentation.SetSegmentIndex(sid, index)
    return segmentation_node


def _segment_level(segment) -> int | None:
    """The vertebra id of a segment's name as the user sees it (``L1``, ``T12``, ``S1``, ``unnamed 2``), or None.

    The name alone counts: a segment the user renamed to something else (``junk``) is no vertebra, whatever
    BoneScreen's ``BoneScreen.Level`` tag says (helper-76: it was classified under its old level, unseen).
    """
    from bonescreen.labels import vertebra_id

    return vertebra_id(segment.GetName())


def _named(segment, renamed_only: bool = False) -> str:
    """A segment's name, quoted, and the vertebra BoneScreen named it where the user renamed it: ``'junk' (BoneScreen's
    L4)``; with ``renamed_only``, only where that vertebra is not the one the name says (``'L1' (BoneScreen's T12)``
    beside a plain ``'L1'``)."""
    from bonescreen.labels import vertebra_id, vertebra_name

    tag = vtk.mutable("")
    given = str(tag) if segment.GetTag(LEVEL_TAG, tag) else ""
    same = renamed_only and given.isdigit() and vertebra_id(segment.GetName()) == int(given)
    if given.isdigit() and 0 < int(given) <= 255 and not same:
        return f"{segment.GetName()!r} (BoneScreen's {vertebra_name(int(given))})"
    return repr(segment.GetName())


def import_label_map(path: str, scheme: str, volume_node, segmentation_node=None):
    """A vertebra label NIfTI on the CT's grid (this tool's ids, VerSe's or TotalSegmentator's) as segments.

    The map's ids go through the named scheme (:mod:`bonescreen.label_schemes`); its structures that are
    no vertebrae (ribs, organs) are left out. The names are the user's: taken as certain at Classify; but
    BoneScreen's own ``levels.nii.gz`` (:func:`~bonescreen.io.writers.own_labels`) keeps the naming rule and the
    doubt of the run that named it, and its vertebrae not edited since stay MS-Net's unchecked mark, as
    ``bonescreen screen --labels`` reads it.

    Raises
    ------
    BoneScreenError
        If the file is unreadable, not on the CT's grid, or holds values the scheme does not allow.
    """
    from bonescreen.io.writers import own_labels, read_labels_nifti
    from bonescreen.labels import ALL_VERTEBRA_IDS, mark_digests
    from bonescreen.pipeline.screener import own_labels_naming

    volume = volume_node_to_ct(volume_node)
    vertebrae = read_labels_nifti(volume, path, allowed=ALL_VERTEBRA_IDS, scheme=scheme)
    own = own_labels(path) if scheme == "bonescreen" else None
    node = labels_to_segmentation(vertebrae, volume, volume_node, segmentation_node)
    given = json.loads(_names_of(node))
    if own:  # the names BoneScreen gave: those the user changed before (own["named_from"]) read as renamed
        given = {sid: own["named_from"].get(vid, vid) if vid is not None else None for sid, vid in given.items()}
    node.SetAttribute("BoneScreen.NamesGiven", json.dumps(given))
    rule, notes = own_labels_naming({**own, "renamed": False}) if own else (f"given by the user ({scheme} ids)", [])
    node.SetAttribute("BoneScreen.NamingRule", rule)
    node.SetAttribute("BoneScreen.NamesCertain", "0" if own and not own["naming_certain"] else "1")
    node.SetAttribute("BoneScreen.Notes", "\n".join(notes))
    if own:  # MS-Net's mark as it came, vertebra by vertebra until edited, as napari and `screen --labels` read it
        node.SetAttribute(MARK_DIGEST, json.dumps(mark_digests(vertebrae, own["edited"])))
        node.SetAttribute(OWN_RULE, own["naming_rule"])
        node.SetAttribute(OWN_NAMED_FROM, json.dumps({str(k): int(v) for k, v in own["named_from"].items()}))
    keep_provenance(node)
    return node


def keep_provenance(segmentation_node) -> None:
    """Copy the node's :data:`PROVENANCE` attributes into every segment's :data:`PROVENANCE_TAG` (GUI thread), so that
    they survive the node's being saved to a ``.seg.nrrd`` and loaded again (:func:`restore_provenance`)."""
    import base64

    kept = {k: v for k in PROVENANCE if (v := segmentation_node.GetAttribute(k)) is not None}
    value = base64.urlsafe_b64encode(json.dumps(kept).encode()).decode("ascii")
    segmentation = segmentation_node.GetSegmentation()
    for i in range(segmentation.GetNumberOfSegments()):
        segmentation.GetNthSegment(i).SetTag(PROVENANCE_TAG, value)


def restore_provenance(segmentation_node) -> bool:
    """Set the node's :data:`PROVENANCE` attributes from its segments' tags where the node has none (a segmentation
    saved and loaded again): True when they were restored.

    Restored only where the tags are BoneScreen's segmentation's as a whole (review, helper-112: one segment copied
    from BoneScreen's into a segmentation the user drew made the whole of it BoneScreen's, its names in doubt): every
    tagged segment carries the same tag, those segments are at least half of the node's and of the segments BoneScreen
    made (``BoneScreen.NamesGiven``), each one of these, and the tag reads as BoneScreen writes it. Else the
    segmentation is the user's, as any other without BoneScreen's attributes.
    """
    import base64
    import binascii

    if any(segmentation_node.GetAttribute(k) is not None for k in PROVENANCE):
        return False
    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    tags = {}
    for sid in ids:
        tag = vtk.mutable("")
        if segmentation.GetSegment(sid).GetTag(PROVENANCE_TAG, tag):
            tags[sid] = str(tag)
    if not tags or len(set(tags.values())) != 1 or 2 * len(tags) < len(ids):
        return False
    try:
        kept = json.loads(base64.urlsafe_b64decode(next(iter(tags.values())).encode("ascii")))
        given = json.loads(kept["BoneScreen.NamesGiven"])
        made = kept.get(MARK_DIGEST) or ""
        digests = json.loads(made) if made.startswith("{") else {}
    except (ValueError, binascii.Error, KeyError, TypeError, AttributeError):
        return False
    if not isinstance(given, dict) or not isinstance(digests, dict) or not set(tags) <= set(given):
        return False
    if 2 * len(tags) < len(given) or not all(str(k).isdigit() and isinstance(v, str) for k, v in digests.items()):
        return False
    for key in PROVENANCE:
        if isinstance(kept.get(key), str):
            segmentation_node.SetAttribute(key, kept[key])
    return True


def _names_of(segmentation_node) -> str:
    """Each segment's vertebra id by segment ID, as JSON (to tell whether the user renamed one)."""

    segmentation = segmentation_node.GetSegmentation()
    return json.dumps(
        {
            segmentation.GetNthSegmentID(i): _segment_level(segmentation.GetNthSegment(i))
            for i in range(segmentation.GetNumberOfSegments())
        }
    )


def _renamed(segmentation_node) -> bool:
    """True when a segment BoneScreen made now has another vertebra's name (deleting or adding one is no renaming,
    nor is a name that is no vertebra's: that segment is left out, as if deleted)."""

    given = segmentation_node.GetAttribute("BoneScreen.NamesGiven")
    if not given:
        return False
    now = json.loads(_names_of(segmentation_node))
    return any(now.get(sid) is not None and now[sid] != vid for sid, vid in json.loads(given).items())


def shift_segment_names(segmentation_node, steps: int) -> None:
    """Move the name of every vertebra segment ``steps`` places along the spine (-1: L1 becomes T12).

    For a count that was off by one; the names are the user's (taken as certain at Classify) while they differ
    from those BoneScreen gave.

    Raises
    ------
    BoneScreenError
        If a vertebra would leave T1..L6 (S1, the sacrum, keeps its name), or no segment is a vertebra (nothing
        to shift).
    """
    from bonescreen.labels import shift_names, vertebra_color, vertebra_name

    segmentation = segmentation_node.GetSegmentation()
    segments = [segmentation.GetNthSegment(i) for i in range(segmentation.GetNumberOfSegments())]
    ids = [_segment_level(s) for s in segments]
    if all(i is None for i in ids):  # (helper-60: "Names shifted", and the names marked the user's, on nothing)
        raise BoneScreenError(f"'{segmentation_node.GetName()}' has no vertebra segment whose name could be shifted")
    new = shift_names(np.array([0 if i is None else i for i in ids], np.uint8), steps)
    for segment, old, vid in zip(segments, ids, new.tolist(), strict=True):
        if old is None or old == vid:
            continue
        segment.SetName(vertebra_name(vid))
        segment.SetColor(*(c / 255 for c in vertebra_color(vid)))
        segment.SetTag(LEVEL_TAG, str(vid))
        segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), _terminology(vid))
    # the names are the user's while they differ from those BoneScreen gave (_renamed, read at Classify): shifted
    # back, they are BoneScreen's again with their doubt (helper-67: one down and one up left them "certain")
    segmentation_node.Modified()


def segmentation_to_labels(segmentation_node, volume_node, volume) -> np.ndarray:
    """The vertebra map (z, y, x on ``volume``; ids of DESIGN.md) of a segmentation node as the user left it.

    Each segment's id comes from its name (``L1``, ``T12``, ``S1``, ``unnamed 2``); other segments are
    ignored. Where segments overlap, the later segment wins.
    """
    register_segmentation_converters()
    scene = volume_node.GetScene()
    segmentation = segmentation_node.GetSegmentation()
    ids = vtk.vtkStringArray()
    levels = []
    for i in range(segmentation.GetNumberOfSegments()):
        level = _segment_level(segmentation.GetNthSegment(i))
        if level is not None:
            ids.InsertNextValue(segmentation.GetNthSegmentID(i))
            levels.append(level)
    labels = np.zeros(volume.shape, np.uint8)
    if not levels:
        return labels
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "BoneScreen temporary export")
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, ids, labelmap, volume_node
        )
        if not ok:
            raise BoneScreenError(f"Slicer could not export the segments of {segmentation_node.GetName()} as labels")
        values = slicer.util.arrayFromVolume(labelmap)  # 1..n in the order of ids
    finally:
        scene.RemoveNode(labelmap)
    lut = np.zeros(len(levels) + 1, np.uint8)
    lut[1:] = levels
    ijk = lut[np.asarray(values)].transpose(2, 1, 0)
    return volume.from_source(ijk)


def ct_digest(volume_node) -> str:
    """A digest of a volume node's voxels and geometry (shape, type, IJK-to-RAS matrix), to tell at Export whether
    the CT changed since it was classified."""
    import hashlib

    data = np.ascontiguousarray(slicer.util.arrayFromVolume(volume_node))
    digest = hashlib.blake2b(data.view(np.uint8).ravel(), digest_size=16)
    digest.update(f"{data.shape} {data.dtype}".encode())
    digest.update(np.ascontiguousarray(ijk_to_ras(volume_node), dtype=np.float64).tobytes())
    return digest.hexdigest()


def kept_as_edited(segmentation_node, volume_node, volume) -> str | None:
    """Why Segment must not replace the segments of ``segmentation_node`` (the user's work), or None where it holds
    BoneScreen's segmentation of this CT as it was made: no segment edited, renamed, added or removed since.

    Only a node BoneScreen made from MS-Net's mark carries what tells (its vertebrae's digests and the names it gave):
    any other (a segmentation of the user's, an imported map, a split mask) is kept (helper-76: with "New
    segmentation each run" unchecked, Segment overwrote the user's edited segmentation without asking).

    Returns
    -------
    str or None
        What was done to it, in plain words.
    """
    from bonescreen.labels import edited_levels

    restore_provenance(segmentation_node)  # (a segmentation saved and loaded again)
    made = segmentation_node.GetAttribute(MARK_DIGEST) or ""
    given = segmentation_node.GetAttribute("BoneScreen.NamesGiven")
    if not made.startswith("{") or not given:
        return "it is not a segmentation BoneScreen made, or not as made"
    if json.loads(_names_of(segmentation_node)) != json.loads(given):
        return "segments were renamed, added or removed since BoneScreen made it"
    if edited_levels(json.loads(made), segmentation_to_labels(segmentation_node, volume_node, volume)):
        return "segments were edited since BoneScreen made it"
    return None


def in_slicers_words(problem: str, split_mask: bool = False) -> str:
    """A message of the core with its advice as Slicer's panel gives it: no command-line option, and for a segment
    holding several vertebral bodies, what fits how the segmentation came (``split_mask``: BoneScreen's split of a
    mask the user gave, where reading the map as a mask was already chosen; helper-76).
    """
    from bonescreen.label_schemes import in_slicers_words as schemes_in_slicers_words
    from bonescreen.pipeline.levels import stacked_advice

    problem = problem.replace(stacked_advice(), SPLIT_MASK_ADVICE if split_mask else SEGMENTS_ADVICE)
    return schemes_in_slicers_words(problem)


def vertebra_segments(segmentation_node) -> list[str]:
    """The names of the segments that are vertebrae (by name), in the node's order."""
    segmentation = segmentation_node.GetSegmentation()
    segments = [segmentation.GetNthSegment(i) for i in range(segmentation.GetNumberOfSegments())]
    return [segment.GetName() for segment in segments if _segment_level(segment) is not None]


def _write_label_map(volume, held: np.ndarray, path, naming: dict | None = None) -> list[str]:
    """Write a vertebra map for Export (:func:`bonescreen.io.writers.write_labels_nifti`, with the naming of
    BoneScreen's labels where some are MS-Net's unedited mark, for the vertebrae this map holds:
    :func:`~bonescreen.io.writers.naming_of_map`); it carries no identifying tag."""
    from bonescreen.io.writers import naming_of_map, write_labels_nifti

    write_labels_nifti(volume, held, path, None if naming is None else naming_of_map(naming, held))
    return []


def dicom_source_files(volume_node, limit: int | None = None) -> list[str] | None:
    """The DICOM files a volume node was loaded from (Slicer's DICOM module: ``DICOM.instanceUIDs`` and
    the DICOM database), the first ``limit`` of them (all when None), or None for a volume that did not
    come from DICOM."""
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()[:limit]
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        return None
    files = [database.fileForInstance(uid) for uid in uids]
    return files if all(files) else None


def export_dicom_sr(
    files: list[str], volume, labels, result: dict, out, notes: list[str] | None = None, naming: dict | None = None
) -> dict[str, list[str]]:
    """seg.dcm and sr.dcm in ``out`` for a classification of the CT read from ``files``; returns, per file, the
    identifying DICOM tags it carries (result.json's ``identifying_tags``, as ``screen`` writes them).

    ``naming`` is the naming of MS-Net's mark whose unedited vertebrae are the SEG's AUTOMATIC segments
    (:func:`bonescreen.io.writers.automatic_ids`; None: the user's own segmentation). The series is read again with
    BoneScreen's DICOM reader (the SEG and SR reference its images). ``labels``
    (z, y, x on ``volume``, the node's grid) are carried onto that reader's grid where the node lies on another
    grid of the same slices (:func:`_labels_onto_series`: a gantry-tilted series, which Slicer reads onto its
    slices' own axes), with a note appended to ``notes``.

    Raises
    ------
    BoneScreenError
        If the files are not one series, the node's grid is not one of its slices' (another orientation, or
        labels beyond the series), or a writer refuses.
    """
    from pathlib import Path

    from bonescreen.io import load_ct
    from bonescreen.io.identifiers import read_header
    from bonescreen.io.sr import write_dicom_sr
    from bonescreen.io.writers import automatic_ids, write_dicom_seg

    folders = {str(Path(f).parent) for f in files}
    if len(folders) != 1:
        raise BoneScreenError("the CT's DICOM files lie in several folders: export the SR with the command line")
    try:  # (through the core: the module imports nothing Slicer lacks, pydicom included)
        uid = str(read_header(files[0]).get("SeriesInstanceUID", "") or "")
    except BoneScreenError:  # unreadable: the reader below names the file and the problem
        uid = ""
    # the node's own series, not the folder's longest: a folder of two reconstructions (soft-tissue and bone
    # kernels) was refused, or its other series read and found off the node's grid
    source = load_ct(folders.pop(), recursive=False, series=uid or None)
    if source.shape != volume.shape or not np.allclose(source.affine, volume.affine, atol=1e-3):
        labels = _labels_onto_series(labels, volume, source, notes)
    seg_tags = write_dicom_seg(source, labels, Path(out) / "seg.dcm", automatic=automatic_ids(labels, naming))
    sr_tags = write_dicom_sr(source, Path(out) / "seg.dcm", result, Path(out) / "sr.dcm")
    return {"seg.dcm": seg_tags, "sr.dcm": sr_tags}


#: Most a grid of the node may be turned from the series' grid (degrees) for its labels to be carried onto the
#: series: Slicer keeps a tilted series' slice axes, so the two grids share their axes up to rounding.
MAX_GRID_TURN_DEG = 1.0
#: Most of the labelled voxels that may lie beyond the series' images and be left out of the SEG: Slicer's grid of a
#: tilted series may reach past its last image by the part of a slice step the tilt takes (a few percent of a
#: slice); a larger share is labels of another place (a node cropped or moved), refused.
MAX_LOST_SHARE = 0.01


def _labels_onto_series(labels, volume, source, notes: list[str] | None):
    """``labels`` (z, y, x on ``volume``, the node's grid) on the grid BoneScreen reads the series onto (``source``).

    3D Slicer reads a gantry-tilted series onto its slices' own axes, stacked along their normal, and resamples it
    there once its acquisition transform is hardened; BoneScreen moves each slice by whole pixels onto the grid
    along the normal, grown by the slices' spread (:func:`bonescreen.io.volume.shift_slices`). The two grids share
    their axes but not their corner, extent or slice step: each voxel of the series' grid takes the label at its
    centre (nearest voxel, :func:`bonescreen.io.volume.labels_onto_grid`), and a note says so.

    Raises
    ------
    BoneScreenError
        If the grids' axes differ by more than :data:`MAX_GRID_TURN_DEG`, or more than :data:`MAX_LOST_SHARE` of
        the labelled voxels lie beyond the series' images.
    """
    from bonescreen.io.volume import axes_angle_deg, labels_onto_grid, voxels_beyond_grid

    turn = axes_angle_deg(volume.affine, source.affine)
    if turn > MAX_GRID_TURN_DEG:
        raise BoneScreenError(
            f"the volume node's axes are {turn:.1f} degrees off the DICOM series' (resampled or reoriented since it "
            "was loaded?): cannot place the segmentation on the series' images for the SEG and SR"
        )
    labels = np.asarray(labels)
    moved = labels_onto_grid(labels, volume.affine, source.affine, source.shape)
    lost = voxels_beyond_grid(labels, volume.affine, source.affine, source.shape)
    labelled = int(np.count_nonzero(labels))
    if lost > MAX_LOST_SHARE * labelled:
        raise BoneScreenError(
            f"{lost} of {labelled} labelled voxels of the segmentation lie beyond the DICOM series' images (the volume "
            "node was cropped or moved since it was loaded?): cannot export the SEG and SR"
        )
    if notes is not None:
        beyond = f"; {lost} labelled voxels beyond the series' images left out" if lost else ""
        notes.append(
            "seg.dcm, sr.dcm: the volume node lies on another grid than BoneScreen reads the DICOM series onto (a "
            "gantry-tilted series, which Slicer reads onto its slices' own axes): the segmentation was carried onto "
            f"the series' images voxel by voxel (nearest voxel, within half a voxel){beyond}"
        )
    return moved


TABLE_COLUMNS = (
    "level",
    "p_normal",
    "p_low_bone_mass",
    "p_osteoporosis",
    "prediction",
    "trabecular_hu",
    "hu_category",
    "vbmd_mg_cm3",
    "vbmd_sd_mg_cm3",
    "acr_category",
    "genant_grade",
    "fracture_shape",
    "bone_status",
    "uncertain",
    "left_out",
    "reasons",
)


def results_to_table(result: dict, table_node):
    """Fill a table node: one row per level and an ``overall`` row, columns :data:`TABLE_COLUMNS`.

    A level's ``reasons`` are its flags; the overall row's are every flag and note of the result
    (:func:`bonescreen.messages.user_messages`). ``left_out`` says why a level is left out of the overall figures
    (:func:`bonescreen.messages.left_out_of_overall`; empty where it is used).
    """
    from bonescreen.messages import grade_text, left_out_of_overall, user_messages

    table_node.RemoveAllColumns()
    rows = [*result["levels"], {"name": "overall", **result["overall"]}]
    string_cols = {
        "level",
        "prediction",
        "hu_category",
        "acr_category",
        "genant_grade",
        "fracture_shape",
        "bone_status",
        "left_out",
        "reasons",
    }
    columns = {}
    for name in TABLE_COLUMNS:
        arr = (
            vtk.vtkStringArray()
            if name in string_cols
            else (vtk.vtkIntArray() if name == "uncertain" else vtk.vtkDoubleArray())
        )
        arr.SetName(name)
        columns[name] = arr
    for row in rows:
        p = row["probabilities"] or {}
        columns["level"].InsertNextValue(row["name"])
        for cls in ("normal", "low_bone_mass", "osteoporosis"):
            columns[f"p_{cls}"].InsertNextValue(float(p.get(cls, np.nan)))
        columns["prediction"].InsertNextValue(row["prediction"] or "")
        hu = row.get("trabecular_hu")
        columns["trabecular_hu"].InsertNextValue(float("nan") if hu is None else float(hu))
        columns["hu_category"].InsertNextValue(row.get("hu_category") or "")
        for key in ("vbmd_mg_cm3", "vbmd_sd_mg_cm3"):
            columns[key].InsertNextValue(float("nan") if row.get(key) is None else float(row[key]))
        columns["acr_category"].InsertNextValue(row.get("acr_category") or "")
        fracture = row.get("fracture") or {}
        # empty where not measured (the overall row, a body cut by the scan); "2?": the grade is in doubt
        columns["genant_grade"].InsertNextValue(grade_text(row.get("fracture")))
        columns["fracture_shape"].InsertNextValue(fracture.get("shape") or "")
        status = row.get("bone_status") or {}
        withheld = row.get("bone_status_withheld")  # (the overall row: no status, and why)
        said = f"{status['class']} ({status['basis']})" if status else f"none ({withheld})" if withheld else ""
        columns["bone_status"].InsertNextValue(said)
        columns["uncertain"].InsertNextValue(int(bool(row["uncertain"])))
        out = None if row["name"] == "overall" else left_out_of_overall(result["overall"], row["name"])
        columns["left_out"].InsertNextValue(out or "")
        # the overall row carries every flag and note of the result (naming, input), as the CLI prints them
        reasons = user_messages(result) if row["name"] == "overall" else row.get("reasons", [])
        columns["reasons"].InsertNextValue("; ".join(reasons))
    for name in TABLE_COLUMNS:
        table_node.AddColumn(columns[name])
    table_node.Modified()
    return table_node


def results_to_chart(table_node, chart_node=None):
    """A bar chart of the class probabilities per level (one series per class) from :func:`results_to_table`."""
    scene = table_node.GetScene()
    if chart_node is None:
        chart_node = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "BoneScreen probabilities")
    old = [chart_node.GetNthPlotSeriesNode(i) for i in range(chart_node.GetNumberOfPlotSeriesNodes())]
    chart_node.RemoveAllPlotSeriesNodeIDs()
    for series in old:  # the last run's series go with it (helper-60: three more per run)
        if series is not None:
            scene.RemoveNode(series)
    colors = {"normal": (0.30, 0.69, 0.29), "low_bone_mass": (1.0, 0.5, 0.0), "osteoporosis": (0.89, 0.10, 0.11)}
    for cls, color in colors.items():
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"p({cls})")
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName("level")
        series.SetYColumnName(f"p_{cls}")
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeBar)
        series.SetLabelColumnName("level")
        series.SetColor(*color)
        chart_node.AddAndObservePlotSeriesNodeID(series.GetID())
    chart_node.SetTitle(CHART_TITLE)
    chart_node.SetXAxisTitle("level")
    chart_node.SetYAxisTitle("probability")
    return chart_node


def mark_results_out_of_date(table_node, why: str) -> None:
    """Say on a results table, and on its chart, that its results no longer hold, and why.

    The table keeps its rows (the user may still read or export them as they were), its name gains
    :data:`OUT_OF_DATE_SUFFIX` and its chart's title the reason; :meth:`BoneScreenLogic.classify_outputs` clears both.
    A table node no longer in a scene (deleted by the user) is left alone.
    """
    if table_node is None or table_node.GetScene() is None:
        return
    if not table_node.GetName().endswith(OUT_OF_DATE_SUFFIX):
        table_node.SetName(table_node.GetName() + OUT_OF_DATE_SUFFIX)
    table_node.SetAttribute(TABLE_OUT_OF_DATE, why)
    chart_id = table_node.GetAttribute(TABLE_CHART)
    chart = table_node.GetScene().GetNodeByID(chart_id) if chart_id else None
    if chart is not None:
        chart.SetTitle(f"BoneScreen: out of date ({why})")


def _mark_results_current(table_node) -> None:
    """Undo :func:`mark_results_out_of_date`: the table holds a result just made."""
    name = table_node.GetName()
    if name.endswith(OUT_OF_DATE_SUFFIX):
        table_node.SetName(name[: -len(OUT_OF_DATE_SUFFIX)])
    table_node.RemoveAttribute(TABLE_OUT_OF_DATE)


@dataclass
class ClassifyInputs:
    """What classification reads from MRML before the network runs."""

    volume: object  # bonescreen.io.CTVolume
    labels: np.ndarray
    certain: bool
    notes: list[str]
    rule: str = "given by the user"
    #: False while the segmentation is MS-Net's mark as it came (no edit, no rename): its fractures are unchecked;
    #: the ids of the vertebrae the user has edited since (the others MS-Net's as it came)
    checked: bool | list[int] = True
    #: whether the ids are the user's (edited, renamed, or a segmentation of their own): a vertebra left unnamed is
    #: then said to be left out, as on the command line (:meth:`bonescreen.pipeline.Screener.classify`)
    users_labels: bool = True
    #: :func:`ct_digest` of the CT node as read: Export refuses once it differs (the CT changed since)
    ct_digest: str = ""
    #: the segmentation is BoneScreen's split of a mask the user gave (:data:`SPLIT_MASK`)
    split_mask: bool = False
    #: how BoneScreen named the labels, kept in the label maps Export writes
    #: (:func:`bonescreen.io.writers.write_labels_nifti`'s ``naming``): None for labels that are all the user's
    naming: dict | None = None
    #: the naming's evidence of each vertebra (result.json's ``segmentation.evidence``), where BoneScreen split them
    evidence: list | None = None
    #: result.json's ``segmentation.source``: ``bonescreen``, ``user mask`` or ``user``
    source: str = "user"


class BoneScreenLogic:
    """Segment and classify MRML volumes with the ``bonescreen`` core (no GUI).

    Parameters
    ----------
    device : str
        ``auto``, ``cpu``, ``cuda`` ...
    seg_weights, cls_weights : str, optional
        Weights of your own; the bundled ones by default.
    """

    def __init__(self, device: str = "auto", seg_weights: str | None = None, cls_weights: str | None = None) -> None:
        self.device, self.seg_weights, self.cls_weights = device, seg_weights, cls_weights
        self._screener = None
        self.last_result: dict | None = None
        self._last_volume_id: str | None = None  # the volume node classified last
        self._last_ct_digest = ""  # and its voxels and geometry as classified (ct_digest)
        self._last_naming: dict | None = None  # how BoneScreen named the labels classified (ClassifyInputs.naming)
        self._last_seg_naming: dict | None = None  # the same for the DICOM SEG's AUTOMATIC segments ({}: unedited)
        #: what the last Export did beside writing (result.json's ``output_notes``: an earlier run's files set aside)
        self.last_export_notes: list[str] = []

    @property
    def screener(self):
        """The core's screener, made on first use."""
        if self._screener is None:
            from bonescreen.pipeline import Screener

            self._screener = Screener(self.seg_weights, self.cls_weights, self.device)
        return self._screener

    def segmentation_node(self, seg, volume, volume_node, segmentation_node=None, network: bool = True):
        """Put a :class:`bonescreen.pipeline.Segmentation` of ``volume`` into a segmentation node (GUI thread).

        With ``network`` (MS-Net's mark, not a user's mask split by BoneScreen), the node remembers the vertebra map
        it was made with: until the user edits or renames a segment, classification takes it as unchecked, as
        ``bonescreen screen`` and napari do (helper-60: Slicer graded fractures on the unchecked mark as checked).
        """
        node = labels_to_segmentation(seg.vertebra_labels(), volume, volume_node, segmentation_node)
        node.SetAttribute("BoneScreen.NamesGiven", _names_of(node))
        node.SetAttribute("BoneScreen.NamingRule", seg.rule)
        node.SetAttribute("BoneScreen.NamesCertain", "1" if seg.certain else "0")
        node.SetAttribute("BoneScreen.Notes", "\n".join(seg.notes))
        # what the naming saw of each vertebra, for result.json's segmentation.evidence (helper-117: missing)
        node.SetAttribute("BoneScreen.Evidence", json.dumps(seg.evidence(volume.spacing, volume.hu.shape[0])))
        from bonescreen.labels import level_digests

        # the map as made, vertebra by vertebra (an edit of one leaves the others MS-Net's): Slicer's conversion gives
        # it back voxel for voxel (tests/slicer), no export needed here
        made = json.dumps(level_digests(seg.vertebra_labels())) if network else ""
        node.SetAttribute(MARK_DIGEST, made)
        node.SetAttribute(SPLIT_MASK, "" if network else "1")
        keep_provenance(node)
        return node

    def segment(self, volume_node, segmentation_node=None, progress=None):
        """Segment ``volume_node`` into a segmentation node with a segment per vertebra (T12, L1..L5, S1 ...).

        A given ``segmentation_node`` is replaced only while it holds BoneScreen's segmentation as made
        (:func:`kept_as_edited`); else a new node is made, the given one kept as it is. The module's panel runs the
        same steps with the network on a worker thread (:class:`BoneScreenLib.controller.PanelController`).
        """
        volume = volume_node_to_ct(volume_node)
        seg = self.screener.segment(volume, progress)
        if segmentation_node is not None and kept_as_edited(segmentation_node, volume_node, volume):
            segmentation_node = None  # the user's work is never overwritten
        return self.segmentation_node(seg, volume, volume_node, segmentation_node)

    def classify_inputs(self, volume_node, segmentation_node) -> ClassifyInputs:
        """The CT, the level labels of the segmentation as the user left it, and its naming flag (GUI thread).

        Raises
        ------
        BoneScreenError
            If two segments have one vertebra's name (each vertebra is classified on its own), the CT is unusable, or
            the segmentation is under a transform.
        """
        from bonescreen.io.writers import labels_digest
        from bonescreen.labels import edited_levels, original_names, vertebra_name
        from bonescreen.pipeline.screener import own_labels_changes_note, own_labels_edited

        volume = volume_node_to_ct(volume_node)
        _refuse_a_transform(segmentation_node, "segmentation")  # as the CT is (helper-78)
        restore_provenance(segmentation_node)  # saved to a .seg.nrrd and loaded again: how BoneScreen made it
        digest = ct_digest(volume_node)
        segmentation = segmentation_node.GetSegmentation()
        segments = [segmentation.GetNthSegment(i) for i in range(segmentation.GetNumberOfSegments())]
        by_level: dict[int, list[str]] = {}
        for segment in segments:
            if (level := _segment_level(segment)) is not None:
                by_level.setdefault(level, []).append(_named(segment, renamed_only=True))
        twice = {level: names for level, names in by_level.items() if len(names) > 1}
        if twice:  # merged into one id they read as one vertebra over several bodies (helper-60: a --label-scheme hint)
            level, names = next(iter(twice.items()))
            # each with the name BoneScreen gave it where the user renamed it (helper-110: which 'L1' was T12?)
            raise BoneScreenError(
                f"segments {', '.join(names)} of '{segmentation_node.GetName()}' are all "
                f"{vertebra_name(level)}: give each vertebra its own name in the Segment Editor (or shift all names)"
            )
        labels = segmentation_to_labels(segmentation_node, volume_node, volume)
        # names the user changed (Segment Editor, shift) are the user's: taken as certain
        renamed = _renamed(segmentation_node)
        certain = renamed or segmentation_node.GetAttribute("BoneScreen.NamesCertain") != "0"
        notes = segmentation_node.GetAttribute("BoneScreen.Notes") or ""
        rule = segmentation_node.GetAttribute("BoneScreen.NamingRule") or "given by the user"
        notes = [n for n in notes.split("\n") if n]
        # MS-Net's mark as it came is not checked by anyone; the vertebrae the user edited are (helper-63: one
        # stroke anywhere made the whole mark checked, in napari as here)
        made = segmentation_node.GetAttribute(MARK_DIGEST) or ""
        if not made:
            checked = True
        elif made.startswith("{"):
            checked = edited_levels(json.loads(made), labels)
        else:  # a scene saved before the digests were kept vertebra by vertebra: any edit checks the whole mark
            checked = made != labels_digest(labels)
        own_rule = segmentation_node.GetAttribute(OWN_RULE)
        if own_rule and (checked or renamed):  # BoneScreen's own file, edited or renamed since: no longer
            # "unedited" (before a rename's wording, which keeps BoneScreen's rule beside the user's: helper-64)
            rule, notes = own_labels_edited(own_rule, notes)
            # which, as `screen --labels` says it (helper-117: Slicer never said it)
            if isinstance(checked, list) and (said := own_labels_changes_note(checked, labels)):
                notes.append(said)
        if renamed:
            rule, notes = users_naming_rule(rule), users_naming_notes(notes)
        unnamed = [_named(segment) for segment in segments if _segment_level(segment) is None]
        if unnamed:  # (helper-60: a segment the user drew anew was dropped without a word)
            notes.append(
                f"segment(s) {', '.join(unnamed)} left out: not named as a vertebra (L1-L5, T12, S1, T1-T11, L6, "
                "'unnamed N'); rename to have them classified"
            )
        users = bool(checked) or renamed
        split = segmentation_node.GetAttribute(SPLIT_MASK) == "1"
        naming = None
        if made.startswith("{") and isinstance(checked, list):  # MS-Net's mark, but for the vertebrae edited
            # as napari's writer keeps it (napari_bonescreen._convert.mark_naming): given back to `screen --labels`,
            # napari or Slicer, the unedited vertebrae stay MS-Net's with the names' doubt, the renamed ones the user's
            naming = {
                "naming_rule": own_rule or segmentation_node.GetAttribute("BoneScreen.NamingRule") or "",
                "naming_certain": segmentation_node.GetAttribute("BoneScreen.NamesCertain") != "0",
                "edited": checked,
                # through the renamings the imported file kept (as napari's renamed_from reads its own["named_from"])
                "named_from": original_names(
                    json.loads(made), labels, json.loads(segmentation_node.GetAttribute(OWN_NAMED_FROM) or "{}")
                ),
                "renamed": renamed,
                "upside_down": upside_down_note((segmentation_node.GetAttribute("BoneScreen.Notes") or "").split("\n")),
            }
        return ClassifyInputs(
            volume,
            labels,
            certain,
            notes,
            rule,
            checked,
            users_labels=users,
            ct_digest=digest,
            split_mask=split,
            naming=naming,
            evidence=json.loads(segmentation_node.GetAttribute("BoneScreen.Evidence") or "null"),
            # as `screen` says it for the same labels: MS-Net's mark as it came (no edit, no rename; not a file of
            # BoneScreen's given back), a mask BoneScreen split, else the user's (helper-118: an unedited mark, whose
            # edited ids are an empty list, was "user")
            source="user mask"
            if split
            else "bonescreen"
            if made and not checked and not renamed and not own_rule
            else "user",
        )

    def classify_outputs(self, result: dict, inputs: ClassifyInputs, volume_node, table_node=None, chart_node=None):
        """Results of :meth:`Screener.classify <bonescreen.pipeline.Screener.classify>` into a table and a chart.

        Returns
        -------
        (dict, table node, chart node)
        """
        # as the command line's result.json says it: whose the segmentation is, how the names were found, whether they
        # are certain, every vertebra, the naming's evidence and settings (helper-117: the last four were missing)
        from bonescreen.pipeline.screener import given_names, segmentation_record

        source = inputs.source
        evidence = inputs.evidence if source != "user" else None
        result["segmentation"] = segmentation_record(
            source,
            inputs.rule,
            inputs.certain,
            inputs.notes,
            given_names(inputs.labels),
            self.screener.level_settings,
            evidence,
        )
        result = {**self.screener.run_record(), **result}
        scene = volume_node.GetScene()
        if table_node is not None and table_node.GetAttribute(TABLE_VOLUME) not in (None, volume_node.GetID()):
            table_node = None  # another CT's results: kept, this CT's go into a table of their own (helper-60)
        if table_node is None:
            table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{volume_node.GetName()} BoneScreen results")
        table_node.SetAttribute(TABLE_VOLUME, volume_node.GetID())
        _mark_results_current(table_node)
        results_to_table(result, table_node)
        if chart_node is None and (chart_id := table_node.GetAttribute(TABLE_CHART)):
            chart_node = scene.GetNodeByID(chart_id)  # the table's own chart, drawn again (not one more per run)
        chart_node = results_to_chart(table_node, chart_node)
        table_node.SetAttribute(TABLE_CHART, chart_node.GetID())
        from bonescreen.pipeline.screener import RESULT_SCHEMA_VERSION
        from bonescreen.screen import input_record

        # the NIfTI file the node was loaded from, as `screen` and napari name their input (helper-117: the node's
        # name alone could not be joined to the file); else the name as volume_node_to_ct gave it: a DICOM node's
        # with the patient's name and IDs taken out
        record = input_record(inputs.volume, _nifti_file_of(volume_node) or inputs.volume.description)
        self.last_result = {
            "schema_version": RESULT_SCHEMA_VERSION,
            "input": record.pop("input"),
            **result,
            "models": self.screener.models(),
            **record,
        }
        self._last = (inputs.volume, inputs.labels)
        self._last_naming = inputs.naming
        # MS-Net's mark as it came: every vertebra an AUTOMATIC segment of the DICOM SEG (automatic_ids)
        self._last_seg_naming = {} if inputs.checked is False else inputs.naming
        self._last_volume_id = volume_node.GetID()
        self._last_ct_digest = inputs.ct_digest
        return self.last_result, table_node, chart_node

    def run_classify(self, inputs: ClassifyInputs, progress=None) -> dict:
        """:meth:`bonescreen.pipeline.Screener.classify` on what :meth:`classify_inputs` read (no MRML access: the
        controller runs it in a worker thread).

        Raises
        ------
        BoneScreenError
            As the core does, its advice in Slicer's words (:func:`in_slicers_words`).
        """
        import time

        started = time.perf_counter()
        try:
            result = self.screener.classify(
                inputs.volume,
                inputs.labels,
                progress,
                names_certain=inputs.certain,
                mask_checked=inputs.checked,
                users_labels=inputs.users_labels,
                upside_down=upside_down_note(inputs.notes),  # the split found the sacrum at the top
                naming_rule=inputs.rule,  # names guessed on too short a series: no bone status either
            )
        except BoneScreenError as exc:
            raise BoneScreenError(in_slicers_words(exc.problem, inputs.split_mask), exc.path) from None
        return {**result, "timings_s": {"classify": round(time.perf_counter() - started, 3)}}

    def classify(self, volume_node, segmentation_node, table_node=None, chart_node=None, progress=None):
        """Classify the levels of the (corrected) segmentation; results into a table and a chart node.

        Returns
        -------
        (dict, table node, chart node)
        """
        inputs = self.classify_inputs(volume_node, segmentation_node)
        result = self.run_classify(inputs, progress)
        return self.classify_outputs(result, inputs, volume_node, table_node, chart_node)

    def export(self, folder: str, volume_node=None, segmentation_node=None) -> list[str]:
        """Write result.json and report.png of the last classification into ``folder``; for a CT that came
        from Slicer's DICOM database (``volume_node``), also seg.dcm and sr.dcm (TID 1500 Measurement Report).

        As ``bonescreen screen`` writes its folder: an earlier run's outputs there go first (a levels.nii.gz the
        user may have edited is kept under a new name; :func:`bonescreen.screen.clear_earlier_run`), each output is
        written on its own, so that one that fails is named and the others are still written, and result.json comes
        last with ``outputs``, ``output_errors`` and ``output_notes``.

        Parameters
        ----------
        folder : str
            Where to write; made if missing.
        volume_node, segmentation_node : MRML nodes, optional
            The CT and the segmentation now selected: they must be the ones classified, as they were (helper-60:
            an export after a rename wrote the results of the names before it).

        Returns
        -------
        list of str
            The files written.

        Raises
        ------
        BoneScreenError
            If nothing was classified, the CT or its segmentation changed since, either is under a transform, the
            folder cannot be written, or an output failed (after the others were written; each named
            with its reason).
        """
        from pathlib import Path

        from bonescreen.atomic import write_text_atomic
        from bonescreen.report import render_report
        from bonescreen.screen import clear_earlier_run, output_record, write_output

        if self.last_result is None:
            raise BoneScreenError("classify first")
        self.last_export_notes = []
        volume, vertebrae = self._last
        if volume_node is not None and volume_node.GetID() != self._last_volume_id:
            raise BoneScreenError(
                f"the results are those of '{self.last_result['input']}', not of the CT selected "
                f"('{volume_node.GetName()}'): classify it first"
            )
        # put under a transform since (stop 55: not noticed; the exports would place the results where the CT no
        # longer lies), refused as Segment and Classify refuse it
        if volume_node is not None:
            _refuse_a_transform(volume_node, "CT")
        # its voxels or geometry changed (a threshold, a mask, new spacing; helper-76: exported the old results, and
        # a new spacing was blamed on the segmentation)
        if volume_node is not None and self._last_ct_digest and ct_digest(volume_node) != self._last_ct_digest:
            raise BoneScreenError(
                f"the CT '{volume_node.GetName()}' changed since it was classified (its voxels, or its spacing, origin "
                "or orientation): classify again, then export"
            )
        if segmentation_node is not None and volume_node is not None:
            # moved by a transform since, it was said to have changed "(an edit or a rename)" (helper-78)
            _refuse_a_transform(segmentation_node, "segmentation")
            now = segmentation_to_labels(segmentation_node, volume_node, volume)
            if not np.array_equal(now, vertebrae):
                raise BoneScreenError(
                    f"the segmentation '{segmentation_node.GetName()}' changed since it was classified (an edit or a "
                    "rename): classify again, then export"
                )
        out = Path(folder)
        try:
            out.mkdir(parents=True, exist_ok=True)
            earlier = clear_earlier_run(out, None)
        except OSError as exc:
            raise BoneScreenError(f"cannot write into the folder ({exc.strerror or exc})", out) from None
        outputs, errors, notes, exports = {}, {}, list(earlier.notes), {}

        # the corrected labels, as `screen` writes them (helper-110: Slicer exported no label map, and its own
        # "Export to labelmap" numbers segments in their order, T12 = 1, which `screen --labels` reads as L1)
        naming = self._last_naming
        for key, name, held in (
            ("levels", "levels.nii.gz", lumbar_levels(vertebrae)),
            ("vertebrae", "vertebrae.nii.gz", vertebrae),
        ):
            write_output(
                out,
                key,
                name,
                partial(_write_label_map, volume, held, naming=naming),
                outputs,
                errors,
                exports,
            )
        files = dicom_source_files(volume_node) if volume_node is not None else None
        if files and self.last_result["levels"]:
            levels, last = lumbar_levels(vertebrae), self.last_result
            write_output(
                out,
                "seg",
                "seg.dcm",
                lambda _: exports.update(
                    export_dicom_sr(files, volume, levels, last, out, notes, self._last_seg_naming)
                ),
                outputs,
                errors,
                exports,
            )
            if "seg" in outputs:
                outputs["sr"] = "sr.dcm"  # written with the SEG it points at
        result = {**self.last_result, "output_errors": errors, "output_notes": notes}

        def report(path) -> None:
            render_report(
                volume.hu,
                lumbar_levels(vertebrae),
                volume.spacing,
                result,
                path,
                title=self.last_result["input"],
                vertebrae=vertebrae,
            )

        write_output(out, "report", "report.png", report, outputs, errors, exports)
        result = {**result, **output_record(out, outputs, errors, notes, earlier, exports)}
        try:
            write_text_atomic(out / "result.json", json.dumps(result, indent=2) + "\n")
        except OSError as exc:
            errors["result.json"] = exc.strerror or str(exc)
        self.last_export_notes = list(result.get("output_notes") or [])  # shown beside the files written
        made = {"result.json", *outputs.values()} - set(errors)
        order = ("result.json", "report.png", "levels.nii.gz", "vertebrae.nii.gz", "seg.dcm", "sr.dcm")
        written = [str(out / name) for name in order if name in made]
        if errors:
            failed = "; ".join(f"{name}: {why}" for name, why in errors.items())
            raise BoneScreenError(f"not written: {failed} (written: {', '.join(map(str, written)) or 'nothing'})", out)
        return written
