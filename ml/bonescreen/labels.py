"""Names and ids shared by every part of BoneScreen (see DESIGN.md)."""

from __future__ import annotations

import numpy as np

from .errors import BoneScreenError

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

#: Display colours (RGB, 0-255) for L1..L5, the same in napari and Slicer.
LEVEL_COLORS: dict[int, tuple[int, int, int]] = {
    1: (230, 25, 75),
    2: (60, 180, 75),
    3: (255, 225, 25),
    4: (0, 130, 200),
    5: (245, 130, 48),
}


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
    from .errors import BoneScreenError

    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise BoneScreenError(f"{what}: label values of type {values.dtype} are not numbers")
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)):
            raise BoneScreenError(f"{what}: label values include NaN or infinity")
        fractional = values != np.round(values)
        if fractional.any():
            shown = ", ".join(f"{v:g}" for v in np.unique(values[fractional])[:8])
            raise BoneScreenError(f"{what}: label values must be whole numbers, found {shown}")
    found = np.unique(values)
    bad = [v for v in found.tolist() if int(v) not in allowed or v != int(v)]
    if bad:
        shown = ", ".join(f"{v:g}" for v in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        names = ", ".join(f"{k} = {LEVEL_NAMES.get(k, VERTEBRA_NAMES.get(k, 'background'))}" for k in allowed)
        raise BoneScreenError(f"{what}: label values {shown} are not level ids (allowed: {names})")
    return values.astype(np.uint8)


#: A piece of a level this far (mm) from the level's largest piece, and smaller than :data:`SPECK_FRACTION`
#: of the level, is reported as a stray speck (a brush stroke in the wrong place).
SPECK_DISTANCE_MM = 10.0
SPECK_FRACTION = 0.05


def stray_specks(labels: np.ndarray, spacing: tuple[float, float, float]) -> list[str]:
    """Small pieces of a level far from the rest of it, one line each (for the user to check).

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
    for lv in levels_present(labels):
        pieces, n = ndimage.label(labels == lv, structure=np.ones((3, 3, 3), bool))
        if n < 2:
            continue
        sizes = np.bincount(pieces.ravel())[1:]
        main = int(np.argmax(sizes)) + 1
        boxes = ndimage.find_objects(pieces)
        lo = np.array([s.start for s in boxes[main - 1]]) * step
        hi = np.array([s.stop - 1 for s in boxes[main - 1]]) * step
        total = sizes.sum()
        for i, where in enumerate(boxes, start=1):
            if i == main or sizes[i - 1] >= SPECK_FRACTION * total:
                continue
            centre = np.array([(s.start + s.stop - 1) / 2 for s in where]) * step
            gap = float(np.linalg.norm(np.maximum(0, np.maximum(lo - centre, centre - hi))))
            if gap > SPECK_DISTANCE_MM:
                out.append(
                    f"{LEVEL_NAMES[lv]} has a stray piece of {sizes[i - 1]} voxels {gap:.0f} mm from the rest of it "
                    f"(slice {int(centre[0] / step[0])}): a brush stroke in the wrong place?"
                )
    return out
