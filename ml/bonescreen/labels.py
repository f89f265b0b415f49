"""Names and ids shared by every part of BoneScreen (see DESIGN.md)."""

from __future__ import annotations

import numpy as np

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
        raise ValueError(f"unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}") from None


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
