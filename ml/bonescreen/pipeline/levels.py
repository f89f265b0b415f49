"""Split a vertebra mask into vertebrae at the discs and name the lumbar ones L1-L5.

Splitting: on each slice, the radius of the largest disc inside the mask (from
a distance transform) is large through a vertebral body (about 15-20 mm) and
small at a disc level, where only thin posterior elements or nothing remain.
Runs of slices above ``body_radius_mm`` are vertebral bodies; every mask voxel
goes to the vertebra of the nearest body run (split at the middle of each disc).

Naming (documented rule, first that applies):

1. Sacrum in view: the lowest vertebra is the sacrum when it is much wider
   than the others (its alae). The vertebra above it is L5; count up.
2. Ribs in view: the lowest vertebra with ribs beside it (bone outside the mask,
   lateral to the body) is T12; the one below it is L1; count down.
3. Neither: the top vertebra in view is taken as L1 (or as ``top_level`` when the
   caller says so) and the naming is flagged as uncertain.

Vertebrae that are not L1-L5 (T12 and above, the sacrum) get label 0.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..inplane import bounding_box, deepest_points
from ..labels import level_id

#: In-plane radius (mm) of the largest inscribed disc above which a slice goes through a vertebral body.
BODY_RADIUS_MM = 7.0
#: Shortest run (mm) that counts as a vertebral body.
MIN_BODY_MM = 5.0
#: The lowest vertebra is the sacrum when it is this much wider than the median of the others.
SACRUM_WIDTH_RATIO = 1.4
#: Ribs are searched this far (mm) lateral to the body's edge.
RIB_SEARCH_MM = (4.0, 45.0)
#: Ribs are cortical bone: above enhanced kidney or vessels (150-250 HU).
RIB_MIN_HU = 300.0


@dataclass
class Vertebra:
    """A vertebra found in the mask: z range of its body and its name."""

    index: int
    body_slices: tuple[int, int]
    slices: tuple[int, int]
    width_mm: float
    ribs: bool = False
    name: str = "?"


@dataclass
class LevelSplit:
    """Result of :func:`split_levels`."""

    labels: np.ndarray
    vertebrae: list[Vertebra]
    rule: str
    certain: bool
    notes: list[str] = field(default_factory=list)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for k, f in enumerate(flags):
        if f and start is None:
            start = k
        if not f and start is not None:
            runs.append((start, k - 1))
            start = None
    if start is not None:
        runs.append((start, len(flags) - 1))
    return runs


def _clean(mask: np.ndarray, spacing: tuple[float, float, float], min_volume_mm3: float = 500.0) -> np.ndarray:
    """Drop specks: connected pieces smaller than ``min_volume_mm3``."""
    box = bounding_box(mask)
    if box is None:
        return mask
    comps, n = ndimage.label(mask[box], structure=ndimage.generate_binary_structure(3, 3))
    sizes = np.bincount(comps.ravel(), minlength=n + 1) * float(np.prod(spacing))
    keep = sizes >= min_volume_mm3
    if keep[1:].all():
        return mask  # no specks (the usual case)
    keep[0] = False
    out = np.zeros_like(mask)
    out[box] = keep[comps]
    return out


def _bone_area_mm2(hu: np.ndarray, mask: np.ndarray, rows: slice, cols: slice, spacing_yx) -> float:
    """Area of bone (HU above :data:`RIB_MIN_HU`) in a window of one slice, not within 2 pixels of the mask."""
    ny, nx = mask.shape
    r0, r1 = max(rows.start, 0), min(rows.stop, ny)
    c0, c1 = max(cols.start, 0), min(cols.stop, nx)
    if r1 <= r0 or c1 <= c0:
        return 0.0
    # the 2-pixel dilation of the mask needs 2 pixels of context around the window
    R0, C0 = max(r0 - 2, 0), max(c0 - 2, 0)
    near = ndimage.binary_dilation(mask[R0 : r1 + 2, C0 : c1 + 2], iterations=2)
    near = near[r0 - R0 : r0 - R0 + r1 - r0, c0 - C0 : c0 - C0 + c1 - c0]
    bone = (hu[r0:r1, c0:c1] > RIB_MIN_HU) & ~near
    return float(bone.sum()) * spacing_yx[0] * spacing_yx[1]


def _has_ribs(
    hu: np.ndarray, mask: np.ndarray, run: tuple[int, int], centres: np.ndarray, half_widths: np.ndarray, spacing
) -> bool:
    """Bone beside the vertebral body (not in the mask) on enough of the vertebra's slices.

    ``centres[k]`` is the (row, col) of the deepest mask pixel of slice ``k`` and
    ``half_widths[k]`` its depth in mm (the body's half width).
    """
    dy, dx = spacing[1], spacing[2]
    hits = 0
    ks = range(run[0], run[1] + 1)
    for k in ks:
        if half_widths[k] <= 0:
            continue
        cy, cx = centres[k]
        body_half = max(half_widths[k], 1.0)
        rows = slice(max(int(cy - 20 / dy), 0), int(cy + 60 / dy))
        windows = []
        for side in (-1, 1):
            x0 = cx + side * (body_half + RIB_SEARCH_MM[0]) / dx
            x1 = cx + side * (body_half + RIB_SEARCH_MM[1]) / dx
            windows.append(slice(max(int(min(x0, x1)), 0), max(int(max(x0, x1)), 0)))
        found = any(_bone_area_mm2(hu[k], mask[k], rows, cols, (dy, dx)) > 25.0 for cols in windows)
        hits += found
    return hits >= max(1, 0.3 * len(ks))


def split_levels(
    mask: np.ndarray, spacing: tuple[float, float, float], hu: np.ndarray | None = None, top_level: int | None = None
) -> LevelSplit:
    """Split a boolean vertebra mask (z, y, x) into vertebrae and label L1..L5.

    Parameters
    ----------
    mask : ndarray
        Boolean mark image stack (all vertebral bone).
    spacing : tuple of float
        (dz, dy, dx) in mm.
    hu : ndarray, optional
        The CT, for finding ribs (rule 2).
    top_level : int, optional
        Level id (1..5) of the top vertebra in view, when the user knows it;
        used only when neither sacrum nor ribs name the levels.

    Returns
    -------
    LevelSplit
        uint8 labels (0, 1..5), the vertebrae found, the rule used and notes.
    """
    mask = _clean(np.asarray(mask, dtype=bool), spacing)
    labels = np.zeros(mask.shape, np.uint8)
    radius, centres = deepest_points(mask, spacing[1:])
    runs = [
        r
        for r in _runs(radius > BODY_RADIUS_MM)
        if (r[1] - r[0] + 1) * spacing[0] >= MIN_BODY_MM or r[0] == 0 or r[1] == mask.shape[0] - 1
    ]
    if not runs:
        return LevelSplit(labels, [], "none", False, ["no vertebral body found in the mask"])
    # the in-plane box of the mask: the per-vertebra work below needs no more of each slice
    _, rows, cols = bounding_box(mask)
    boxed = mask[:, rows, cols]
    # split planes halfway between consecutive body runs (at the discs)
    bounds = [0] + [(a[1] + b[0] + 1) // 2 for a, b in itertools.pairwise(runs)] + [mask.shape[0]]
    vertebrae = []
    for i, run in enumerate(runs):
        z0, z1 = bounds[i], bounds[i + 1]
        xs = np.nonzero(boxed[run[0] : run[1] + 1].any(axis=(0, 1)))[0]
        width = (xs.max() - xs.min() + 1) * spacing[2] if xs.size else 0.0
        v = Vertebra(i, run, (z0, z1 - 1), width)
        if hu is not None:
            v.ribs = _has_ribs(hu, mask, run, centres, radius, spacing)
        vertebrae.append(v)
    notes: list[str] = []
    n = len(vertebrae)
    names: dict[int, str] = {}
    widths = np.array([v.width_mm for v in vertebrae])
    sacrum = n >= 2 and widths[0] > SACRUM_WIDTH_RATIO * np.median(widths[1:])
    rib_bearing = [v.index for v in vertebrae if v.ribs]
    if sacrum:
        rule, certain = "counted up from the sacrum (lowest, widest vertebra)", True
        names[0] = "S1"
        for i in range(1, n):
            level = 6 - i
            names[i] = f"L{level}" if level >= 1 else f"T{12 + level}"
    elif rib_bearing:
        t12 = min(rib_bearing)
        rule, certain = "counted down from T12 (lowest vertebra with ribs)", True
        for i in range(n):
            offset = t12 - i  # 1 below T12 is L1
            names[i] = (
                f"L{offset}"
                if 1 <= offset <= 5
                else ("T12" if offset == 0 else (f"T{12 + offset}" if offset < 0 else "S?"))
            )
    else:
        top = top_level or 1
        rule = f"top vertebra in view taken as L{top} (no sacrum or ribs to count from)"
        certain = top_level is not None
        if not certain:
            notes.append("level names are uncertain: neither the sacrum nor ribs are in view")
        for i in range(n):
            level = top + (n - 1 - i)
            names[i] = f"L{level}" if level <= 5 else "S?"
    for v in vertebrae:
        v.name = names[v.index]
        level = level_id(v.name)
        if level:
            z0, z1 = v.slices
            labels[z0 : z1 + 1, rows, cols][boxed[z0 : z1 + 1]] = level
    if sacrum and rib_bearing and names.get(min(rib_bearing)) not in ("T12", "T11", "T10"):
        notes.append(f"ribs seen beside {names[min(rib_bearing)]}: check the level names (transitional anatomy?)")
    return LevelSplit(labels, vertebrae, rule, certain, notes)
