"""Names and ids shared by every part of BoneScreen (see DESIGN.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import pairwise

import numpy as np

from .errors import BoneScreenError, check_number

#: Bone-condition classes, in this order everywhere (network outputs, tables, JSON).
CLASS_NAMES: tuple[str, ...] = ("normal", "low_bone_mass", "osteoporosis")

#: Human-readable class names for figures and GUIs.
CLASS_TITLES: dict[str, str] = {
    "normal": "Normal bone mass",
    "low_bone_mass": "Low bone mass",
    "osteoporosis": "Osteoporosis",
}

#: Level ids on label maps: 0 is background, 1..5 are L1..L5.
LEVEL_NAMES: dict[int, str] = {1: "L1", 2: "L2", 3: "L3", 4: "L4", 5: "L5"}

#: Vertebra ids of the all-vertebrae maps (spine.nii.gz, the editable layer) -> names (DESIGN.md).
VERTEBRA_NAMES: dict[int, str] = {
    1: "L1",
    2: "L2",
    3: "L3",
    4: "L4",
    5: "L5",
    6: "T12",
    7: "S1",
    8: "T11",
    9: "T10",
    10: "L6",
    **{11 + i: f"T{9 - i}" for i in range(9)},
}

#: First id of the vertebrae the naming could not name, counted from the lowest (DESIGN.md).
UNNAMED_FIRST = 21
#: Every id an all-vertebrae map may hold: background, the named vertebrae and the unnamed ones.
ALL_VERTEBRA_IDS: tuple[int, ...] = (0, *VERTEBRA_NAMES, *range(UNNAMED_FIRST, 256))
#: The usual vertebrae in anatomical order from the top (T1 .. S1).
SPINE_ORDER: tuple[str, ...] = (*(f"T{i}" for i in range(1, 13)), "L1", "L2", "L3", "L4", "L5", "S1")
#: Every name in anatomical order from the top: a sixth lumbar vertebra, where there is one, lies above S1.
ANATOMICAL_ORDER: tuple[str, ...] = (*SPINE_ORDER[:-1], "L6", SPINE_ORDER[-1])
#: The names "shift all names by one" moves: every one but S1, which names the sacrum, found by its own shape.
SHIFTED_NAMES: tuple[str, ...] = ANATOMICAL_ORDER[:-1]


def spine_rank(name: str) -> int:
    """Sort key of a vertebra's name as lists show them: T1 first down to S1 (:data:`ANATOMICAL_ORDER`, L6 above
    S1), then the unnamed vertebrae (``unnamed N``) by number; any other name last."""
    if name in ANATOMICAL_ORDER:
        return ANATOMICAL_ORDER.index(name)
    number = name.rsplit(" ", 1)[-1]
    return len(ANATOMICAL_ORDER) + (int(number) if name.startswith("unnamed ") and number.isdigit() else 1000)


#: Display colours (RGB, 0-255) for L1..L5, the same in napari and Slicer.
LEVEL_COLORS: dict[int, tuple[int, int, int]] = {
    1: (230, 25, 75),
    2: (60, 180, 75),
    3: (255, 225, 25),
    4: (0, 130, 200),
    5: (245, 130, 48),
}


def vertebra_color(vid: int) -> tuple[int, int, int]:
    """Display colour (RGB, 0-255) of an all-vertebrae id: L1..L5 as :data:`LEVEL_COLORS`, thoracic
    vertebrae alternating cyan and magenta (neighbours told apart at a glance, and from every lumbar colour:
    two blues were hard to tell apart in the report, helper-33), the sacrum purple, L6 brown, unnamed vertebrae
    spring green (napari, Slicer, the report). An unnamed vertebra was grey, which half-transparent over bone
    reads as bone (helper-71: a vertebra renamed unnamed in napari all but vanished); its colour is saturated, to
    show over white bone, and bright, for its name on dark tissue."""
    vid = int(vid)
    if vid in LEVEL_COLORS:
        return LEVEL_COLORS[vid]
    name = VERTEBRA_NAMES.get(vid, "")
    if name.startswith("T"):
        return (70, 240, 240) if int(name[1:]) % 2 == 0 else (240, 50, 230)
    return {"S1": (145, 30, 180), "L6": (170, 110, 40)}.get(name, UNNAMED_COLOR)


#: Display colour of an unnamed vertebra (ids 21-255): see :func:`vertebra_color`.
UNNAMED_COLOR: tuple[int, int, int] = (0, 255, 127)


def class_index(name: str) -> int:
    """Return the index of a class name in :data:`CLASS_NAMES`.

    Parameters
    ----------
    name : str
        One of ``normal``, ``low_bone_mass``, ``osteoporosis``.
    """
    try:
        return CLASS_NAMES.index(name)
    except ValueError:
        raise BoneScreenError(f"unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}") from None


def level_id(name: str) -> int | None:
    """Level id (1..5) of a level name such as ``L3``; None for any other name (``T12``, ``S1``)."""
    return next((k for k, v in LEVEL_NAMES.items() if v == name), None)


#: Other spellings of a vertebra's name that users and tools write: ``L3 vertebra`` (the SNOMED CT meaning that 3D
#: Slicer's terminology gives a segment's name, :mod:`bonescreen.labels_terminology`), ``vertebrae_L3``
#: (TotalSegmentator's file names), ``L 3``, ``L-3``, ``L03``, ``Th12`` (the thoracic abbreviation of European use).
_SPELLING = re.compile(
    r"^(?:vertebrae?[\s_-]*)?(?P<region>th|[tls])[\s_-]*0*(?P<number>\d{1,2})(?:[\s_-]*vertebrae?)?$", re.IGNORECASE
)


def vertebra_id(name: str) -> int | None:
    """Id of a vertebra name in the all-vertebrae maps (``L1`` 1, ``T12`` 6, ``S1`` 7, ...); None if unknown.

    ``sacrum`` is S1's id (7); ``unnamed N`` is 20 + N (:func:`vertebra_name`'s inverse). See DESIGN.md.
    Other spellings of a name count as it (:data:`_SPELLING`: ``L3 vertebra``, ``vertebrae_L3``, ``L 3``, ``L03``,
    ``Th12``; helper-110: the name Slicer's terminology gives a segment, "L3 vertebra", was left out as no vertebra's).
    """
    name = str(name).strip()
    if name.lower() in ("sacrum", "sacrum vertebra"):
        name = "S1"
    if spelled := _SPELLING.match(name):
        region = "T" if spelled["region"].lower() == "th" else spelled["region"].upper()
        name = f"{region}{int(spelled['number'])}"
    number = name[8:] if name.lower().startswith("unnamed ") else ""
    if number.isdigit() and UNNAMED_FIRST + int(number) - 1 <= 255 and int(number) >= 1:
        return UNNAMED_FIRST + int(number) - 1
    return next((k for k, v in VERTEBRA_NAMES.items() if v.lower() == name.lower()), None)


def vertebra_name(vid: int) -> str:
    """Name of an all-vertebrae id: ``L1`` ... ``S1``, ``T1`` ... ``T12``, ``L6``, or ``unnamed N`` (id 20 + N)."""
    vid = int(vid)
    if vid in VERTEBRA_NAMES:
        return VERTEBRA_NAMES[vid]
    if UNNAMED_FIRST <= vid <= 255:
        return f"unnamed {vid - UNNAMED_FIRST + 1}"
    raise BoneScreenError(f"{vid} is not a vertebra id (DESIGN.md: 1..19 named, 21..255 unnamed)")


def vertebra_ids(names: list[str]) -> list[int]:
    """Ids for vertebrae named ``names`` (lowest first): a known name keeps its id, the rest are unnamed.

    A name that is not a vertebra (``S?``) or that a lower vertebra already holds gets the next
    unnamed id (21, 22, ...), counted from the lowest.
    """
    out, used, unnamed = [], set(), UNNAMED_FIRST
    for name in names:
        vid = vertebra_id(name)
        if vid is None or vid in used:
            vid, unnamed = unnamed, min(unnamed + 1, 255)
        used.add(vid)
        out.append(vid)
    return out


def lumbar_levels(vertebrae: np.ndarray) -> np.ndarray:
    """The level labels (0, 1..5 = L1..L5) of an all-vertebrae map: every other vertebra becomes 0."""
    vertebrae = np.asarray(vertebrae)
    return np.where(vertebrae <= 5, vertebrae, 0).astype(np.uint8)


def rename_vertebra(vertebrae: np.ndarray, old: int, new: int) -> np.ndarray:
    """An all-vertebrae map with vertebra ``old`` given the id ``new`` (the user's correction of its name).

    Raises
    ------
    BoneScreenError
        If ``old`` is not in the map, ``new`` is not a vertebra id, or another vertebra holds ``new``.
    """
    vertebrae = np.asarray(vertebrae)
    # ``old`` may be an id of no vertebra (a painted 20): renaming gives it one (helper-115); the others must be
    as_level_labels(np.where(vertebrae == old, 0, vertebrae), "labels", ALL_VERTEBRA_IDS)
    vertebra_name(new)  # a valid id
    if old == new:
        return vertebrae.astype(np.uint8)
    present = set(np.unique(vertebrae).tolist())
    if old not in present:
        shown = vertebra_name(old) if old in ALL_VERTEBRA_IDS else "with that id"
        raise BoneScreenError(f"no vertebra {shown} (id {old}) in the labels")
    if new in present:
        raise BoneScreenError(
            f"another vertebra is already {vertebra_name(new)}: rename that one first (or shift all names)"
        )
    return np.where(vertebrae == old, np.uint8(new), vertebrae).astype(np.uint8)


def shift_names(vertebrae: np.ndarray, steps: int) -> np.ndarray:
    """Every named vertebra moved ``steps`` places along :data:`SHIFTED_NAMES` (+1: one lower, L1 -> L2).

    For a count that was off by one (T12 taken for L1: shift by -1). The sacrum (S1) and unnamed vertebrae keep
    their ids: S1 names the sacrum by its shape, not by a count (helper-64: "one up" named the sacrum L5); below
    L5 comes L6, a sixth lumbar vertebra above the sacrum.

    Raises
    ------
    BoneScreenError
        If a vertebra would leave T1..L6.
    """
    vertebrae = as_level_labels(vertebrae, "labels", ALL_VERTEBRA_IDS)
    check_number("steps", steps, whole=True)
    lut = np.arange(256, dtype=np.uint8)
    for vid in np.unique(vertebrae).tolist():
        name = VERTEBRA_NAMES.get(vid)
        if name not in SHIFTED_NAMES:
            continue
        k = SHIFTED_NAMES.index(name) + steps
        if not 0 <= k < len(SHIFTED_NAMES):
            raise BoneScreenError(f"{name} shifted by {steps} is beyond T1..L6 (S1, the sacrum, keeps its name)")
        lut[vid] = vertebra_id(SHIFTED_NAMES[k])
    return lut[vertebrae]


def vertebrae_in(labels) -> list[int]:
    """The vertebra ids (DESIGN.md: ALL_VERTEBRA_IDS but 0) a map holds, in the spine's order (:func:`spine_rank`).

    A uint8 map is counted per value (one pass, no sort: napari re-reads a layer's names after each edit); any other
    integer map through ``np.unique``.
    """
    data = np.asarray(labels)
    present = np.flatnonzero(np.bincount(data.ravel())) if data.dtype == np.uint8 else np.unique(data)
    ids = [int(k) for k in present if k and k in ALL_VERTEBRA_IDS]
    return sorted(ids, key=lambda k: spine_rank(vertebra_name(k)))


def levels_present(labels) -> list[int]:
    """Level ids (1..5) that occur in a (z, ...) label map, in order.

    Only the run of slices that holds labels is searched (one fast max per slice first).
    """
    values = np.asarray(labels)
    if values.size == 0:
        return []
    flat = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(1, -1)
    used = np.flatnonzero(flat.max(axis=1) > 0)
    if used.size == 0:
        return []
    run = flat[used[0] : used[-1] + 1]
    return [lv for lv in LEVEL_NAMES if (run == lv).any()]


def ct_image_problem(found: np.ndarray) -> str | None:
    """Why the values of a "label map" look like a CT image's, or None: more distinct values than any label map
    holds, or air (helper-33: the CT itself given as labels, refused with a list of 1,300 "label values").

    ``found``: the map's distinct values, sorted (``np.unique``).
    """
    if found.size > 256 or (found.size > 20 and found[0] <= -500):
        return (
            f"this looks like a CT image, not a vertebra label map ({found.size} distinct values from {found[0]:g} "
            f"to {found[-1]:g}); give the label map, or leave the labels out to let BoneScreen segment the CT"
        )
    return None


def as_level_labels(values, what: str = "labels", allowed: tuple[int, ...] = (0, *LEVEL_NAMES)) -> np.ndarray:
    """A label map handed back by a user as uint8 level ids, checked before any cast.

    Parameters
    ----------
    values : array_like
        Label values of any dtype (integer, signed, float).
    what : str
        How the error names the input (a file, a layer).
    allowed : tuple of int
        The ids that may occur: 0 and 1..5 (L1..L5) for ``levels.nii.gz`` (DESIGN.md).

    Returns
    -------
    ndarray
        uint8, same shape.

    Raises
    ------
    BoneScreenError
        If values are not whole numbers or not among ``allowed``, naming the values found
        (a cast to uint8 would wrap 256 to 0 and 259 to 3, silently merging levels).
    """

    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise BoneScreenError(f"{what}: label values of type {values.dtype} are not numbers")
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise BoneScreenError(f"{what}: label values include NaN or infinity")
    found = np.unique(values)
    if problem := ct_image_problem(found):
        raise BoneScreenError(f"{what}: {problem}")
    if values.dtype.kind == "f":
        fractional = values != np.round(values)
        if fractional.any():
            shown = ", ".join(f"{v:g}" for v in np.unique(values[fractional])[:8])
            raise BoneScreenError(f"{what}: label values must be whole numbers, found {shown}")
    bad = [v for v in found.tolist() if int(v) not in allowed or v != int(v)]
    if bad:
        shown = ", ".join(f"{v:g}" for v in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        if set(allowed) == set(ALL_VERTEBRA_IDS):
            names = "0 = background, 1-19 = named vertebrae (1-5 = L1-L5, 6 = T12, 7 = sacrum ...), 21-255 = unnamed"
        else:
            names = ", ".join(f"{k} = {LEVEL_NAMES.get(k, VERTEBRA_NAMES.get(k, 'background'))}" for k in allowed)
        where = ""
        if values.ndim == 3:  # where to find them, and what to do (helper-115: a painted 20 blocked Classify unsaid)
            ks = np.nonzero(np.isin(values, bad).any(axis=(1, 2)))[0]
            where = (
                f" on slice{'s' if ks.size > 1 else ''} {ks.min()}{f'-{ks.max()}' if ks.size > 1 else ''} (first axis, "
                "from 0); erase them, or paint them with a vertebra's id"
            )
        raise BoneScreenError(f"{what}: label values {shown} are not level ids (allowed: {names}){where}")
    return values.astype(np.uint8)


#: A piece of a level this far (mm) from the level's largest piece is reported as stray (a brush stroke in the
#: wrong place): a vertebra is one bone. Whatever its size: a piece of 565 voxels, 20 % of the level at 3 mm
#: voxels, 40 mm in front of the body moved BCC-Net's call and was not reported (helper-34) while the earlier
#: limit (pieces under 5 % of the level) held.
SPECK_DISTANCE_MM = 10.0
#: half the width (mm, left to right from the body's centre) of the laminae and spinous process, where a piece
#: parted from its body may be that vertebra's arch: the interpedicular distance is 20-30 mm in the lumbar spine,
#: and the laminae reach the facets just beyond it (Gray's Anatomy, 42nd ed.); transverse processes reach further,
#: as do the iliac bone and the ribs that a mark may wrongly hold
ARCH_HALF_WIDTH_MM = 25.0
#: how far behind its body an arch parted from it may lie: across the spinal canal, 15-20 mm deep in the lumbar
#: spine (Gray's Anatomy, 42nd ed.)
ARCH_REACH_MM = 20.0


def stray_specks(labels: np.ndarray, spacing: tuple[float, float, float]) -> list[str]:
    """Pieces of a level far from the rest of it, one line each (for the user to check).

    A piece behind the rest, within ``ARCH_HALF_WIDTH_MM`` of its centre left to right and ``ARCH_REACH_MM``
    of it, is where the vertebra's arch is: no stray piece.

    Parameters
    ----------
    labels : ndarray
        uint8 (z, y, x) level map.
    spacing : tuple of float
        (dz, dy, dx) in mm.
    """
    from scipy import ndimage

    out = []
    step = np.asarray(spacing, dtype=float)
    level_boxes = ndimage.find_objects(labels)
    for lv in levels_present(labels):
        # each level is read in its own box (labelling the whole volume per level took 14 s on a 735-slice CT)
        box = level_boxes[lv - 1]
        offset = np.array([s.start for s in box])
        pieces, n = ndimage.label(labels[box] == lv, structure=np.ones((3, 3, 3), bool))
        if n < 2:
            continue
        sizes = np.bincount(pieces.ravel())[1:]
        main = int(np.argmax(sizes)) + 1
        _z, body_row, body_col = np.add(ndimage.center_of_mass(pieces == main), offset)
        boxes = ndimage.find_objects(pieces)
        lo = (np.array([s.start for s in boxes[main - 1]]) + offset) * step
        hi = (np.array([s.stop - 1 for s in boxes[main - 1]]) + offset) * step
        for i, where in enumerate(boxes, start=1):
            if i == main:
                continue
            centre = (np.array([(s.start + s.stop - 1) / 2 for s in where]) + offset) * step
            gap = float(np.linalg.norm(np.maximum(0, np.maximum(lo - centre, centre - hi))))
            # behind the body, where its arch is: a process that a thin slab, a mask or the split parts from the
            # body (helper-37: the demo's own L2 spinous process was "a brush stroke in the wrong place?")
            arch = (
                centre[1] > body_row * step[1]
                and abs(centre[2] - body_col * step[2]) <= ARCH_HALF_WIDTH_MM
                and gap <= ARCH_REACH_MM
            )
            if gap > SPECK_DISTANCE_MM and not arch:
                out.append(
                    f"{LEVEL_NAMES[lv]} has a stray piece of {sizes[i - 1]} voxels {gap:.0f} mm from the rest of it "
                    f"(slice {int(centre[0] / step[0])}): a brush stroke in the wrong place?"
                )
    return out


def level_digests(labels: np.ndarray) -> dict[int, str]:
    """A digest of each vertebra's voxels in a label map, to tell later which vertebrae a user has edited.

    Parameters
    ----------
    labels : ndarray
        Integer label map (any shape; the same array layout each time it is digested), 0 background.

    Returns
    -------
    dict
        id -> BLAKE2b digest (hex) of the flat indices of that id's voxels, for each id present.
    """
    import hashlib

    flat = np.ravel(labels)
    where = np.flatnonzero(flat)
    ids = flat[where]
    return {
        int(v): hashlib.blake2b(where[ids == v].astype(np.int64).tobytes(), digest_size=16).hexdigest()
        for v in np.unique(ids)
    }


#: The digest kept for a vertebra edited before its map was opened (:func:`mark_digests`): it matches no voxels.
EDITED_BEFORE = "edited before it was opened"


def mark_digests(labels: np.ndarray, edited: Iterable[int] = ()) -> dict[int, str]:
    """:func:`level_digests` of MS-Net's mark as opened, its ``edited`` ids (edited in another tool since BoneScreen
    wrote it: :func:`bonescreen.io.writers.own_labels`) already counted as edited by :func:`edited_levels`."""
    return {**level_digests(labels), **dict.fromkeys((int(v) for v in edited), EDITED_BEFORE)}


def edited_levels(made: dict, labels: np.ndarray | None, now: dict[int, str] | None = None) -> list[int]:
    """The ids whose voxels differ in ``labels`` from those of every vertebra of the map whose
    :func:`level_digests` are ``made``, and the ids of vertebrae removed altogether.

    A vertebra painted over, partly erased, added or removed counts as edited; one left as it was does not,
    whatever was done to the others (helper-63: a stroke on the sacrum made MS-Net's whole mask count as checked
    by the user, and every lumbar body was read as drawn), and whatever it is called now: renaming changes the
    names, not the voxels (helper-66: "All names one down" made every vertebra the user's).

    Parameters
    ----------
    made : dict
        :func:`level_digests` of the map as made (keys may be str, as JSON stores them).
    labels : ndarray
        The map now, in the same layout.
    now : dict, optional
        :func:`level_digests` of ``labels``, where the caller has them already (``labels`` may then be None): a
        map of 80 M voxels takes a quarter of a second to digest.

    Returns
    -------
    list of int
        The ids edited, ascending (an id removed: its id in ``made``).
    """
    made = {int(k): v for k, v in made.items()}
    now = level_digests(labels) if now is None else now
    before, after = set(made.values()), set(now.values())
    changed = {v for v, digest in now.items() if digest not in before}
    removed = {v for v, digest in made.items() if digest not in after and v not in now}
    return sorted(changed | removed)


def renamed_levels(made: dict, labels: np.ndarray | None, now: dict[int, str] | None = None) -> dict[int, int]:
    """The vertebrae of ``labels`` whose voxels are, unchanged, those of another id in the map whose
    :func:`level_digests` are ``made`` (renamed: Rename, "shift all names", another tool): new id -> old id.

    Parameters and key types as :func:`edited_levels`.
    """
    made = {v: int(k) for k, v in made.items()}  # digest -> id as made
    now = level_digests(labels) if now is None else now
    return {vid: made[d] for vid, d in now.items() if d in made and made[d] != vid}


def original_names(
    made: dict, labels: np.ndarray | None, named_from: dict | None = None, now: dict[int, str] | None = None
) -> dict[int, int]:
    """The vertebrae of ``labels`` that BoneScreen named otherwise: id now -> the id BoneScreen gave it.

    ``made`` are the :func:`level_digests` of the map when it was made or saved, ``named_from`` what the map's ids
    were renamed from before that (id then -> BoneScreen's id; keys may be str). A vertebra renamed since (its
    voxels under another id, :func:`renamed_levels`) is traced through both; one whose voxels changed keeps its id's
    history. Empty when every name is BoneScreen's: a shift undone, or shifted back, gives the run's names back
    (helper-68: a map saved after "one down" and shifted back when opened again kept the names "the user's").
    ``now`` as in :func:`edited_levels`.
    """
    now = level_digests(labels) if now is None else now
    moved = renamed_levels(made, None, now)
    before = {int(k): int(v) for k, v in (named_from or {}).items()}
    out = {}
    for vid in now:  # the ids present
        saved = moved.get(vid, vid)
        first = before.get(saved, saved)
        if first != vid:
            out[vid] = first
    return out


#: Greatest gap (mm) along the spine between two vertebrae taken as lying next to each other: a disc is 5-15 mm;
#: a vertebra left out (about 25-30 mm of body) leaves more.
NEIGHBOUR_GAP_MM = 20.0


def name_gaps(vertebrae: np.ndarray, spacing: tuple[float, float, float]) -> list[str]:
    """Vertebrae lying next to each other whose names skip a vertebra (T11 above L1), one line each.

    A user's renaming can leave such a sequence (helper-63: T12 renamed L1 below T11 was classified without a word);
    two vertebrae apart by more than :data:`NEIGHBOUR_GAP_MM` along z (one left out of the labels) are not
    next to each other. L6 may be skipped (most spines have none); unnamed vertebrae are not read.

    Parameters
    ----------
    vertebrae : ndarray
        (z, y, x) map with the ids of DESIGN.md, z from the feet to the head.
    spacing : tuple of float
        (dz, dy, dx) in mm.
    """
    out = []
    order = ANATOMICAL_ORDER
    for (_, low, _, upper), (_, _, top, lower) in pairwise(_head_first(vertebrae, spacing)):
        if upper not in order or lower not in order:  # an unnamed vertebra between: no rule
            continue
        gap = order.index(lower) - order.index(upper)
        skipped = [n for n in order[order.index(upper) + 1 : order.index(lower)] if n != "L6"]  # L6 is rare
        if skipped and low - top <= NEIGHBOUR_GAP_MM:
            out.append(f"{upper} lies next to {lower}, with no {', '.join(skipped)} between them: check the names")
        elif gap < 1:
            out.append(f"{upper} lies above {lower}: their names run the wrong way; check the names")
    return out


def missing_levels(vertebrae: np.ndarray) -> list[str]:
    """A note for each lumbar level (L1-L5) that the labels lack between two they hold (L3 where L2 and L4 are): a
    vertebra the user deleted or renamed, or whose voxels were all erased, is then said to be left out (helper-110: it
    dropped out of the results without a word). ``vertebrae``: a map with the ids of DESIGN.md."""
    present = {int(v) for v in np.unique(vertebrae) if 1 <= v <= 5}
    if not present:
        return []
    out = []
    for lv in range(min(present) + 1, max(present)):
        if lv not in present:
            below, above = max(p for p in present if p < lv), min(p for p in present if p > lv)
            out.append(
                f"{LEVEL_NAMES[lv]} is not in the labels, between {LEVEL_NAMES[below]} and {LEVEL_NAMES[above]}: not "
                "classified (a vertebra deleted or renamed, or its voxels all erased?)"
            )
    return out


def names_reversed(vertebrae: np.ndarray, spacing: tuple[float, float, float]) -> tuple[str, str] | None:
    """The names at the top and at the bottom of the image when every named neighbour pair, three vertebrae or more,
    runs the wrong way (L5 above L4 above L3 ...): names given on an image whose head and feet are swapped; None
    otherwise. ``vertebrae`` and ``spacing`` as :func:`name_gaps` reads them.
    """
    names = [name for *_, name in _head_first(vertebrae, spacing) if name in ANATOMICAL_ORDER]
    ranks = [ANATOMICAL_ORDER.index(n) for n in names]
    if len(ranks) < 3 or any(b > a for a, b in pairwise(ranks)):
        return None
    return names[0], names[-1]


def _head_first(vertebrae: np.ndarray, spacing: tuple[float, float, float]) -> list[tuple[float, float, float, str]]:
    """(middle slice, lowest and highest slice in mm, name) of each vertebra of the map, head first (one pass)."""
    from scipy import ndimage

    named = []
    for vid, where in enumerate(ndimage.find_objects(vertebrae), start=1):
        if where is not None:
            low, top = where[0].start, where[0].stop - 1
            named.append(((low + top) / 2, low * spacing[0], top * spacing[0], vertebra_name(vid)))
    named.sort(reverse=True)
    return named
