"""Split a vertebra mask into vertebrae at the discs and name the lumbar ones L1-L5.

Splitting: the vertebral bodies are the thick parts of the mask (3-D cores deeper
than :data:`CORE_DEPTH_MM`), which the discs keep apart even where they are
inclined (L5-S1) or narrowed; every mask voxel goes to a body by a watershed on
the depth, so posterior elements stay with their own vertebra.

Naming (documented rule, first that applies):

1. Sacrum in view: the lowest vertebra is the sacrum when it is much wider
   than the others (its alae), or somewhat wider and much taller (S1-S3 fused).
   The vertebra above it is L5; count up.
2. Ribs in view: ribs are small pieces of bone outside the mask, beside and
   behind the body and near the vertebra, with no iliac plate beside it; they
   come in a run of vertebrae from the top. The lowest vertebra of that run is
   T12; the one below it is L1; count down.
3. Neither: the top vertebra in view is taken as L1 (or as ``top_level`` when the
   caller says so) and the naming is flagged as uncertain.

Vertebrae that are not L1-L5 (T12 and above, the sacrum) get label 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..inplane import bounding_box, deepest_points
from ..labels import level_id

#: In-plane radius (mm) of the largest inscribed disc above which a slice goes through a vertebral body.
BODY_RADIUS_MM = 7.0
#: Depth (mm, 3-D distance to the mask's edge) above which a voxel is in a vertebral body's core:
#: bodies are 25-45 mm across and 20-30 mm tall (Clouthier et al., J Biomech 2023: body height 23.5-32.4 mm),
#: posterior elements are under 12 mm thick.
CORE_DEPTH_MM = 6.0
#: Smallest core (mm3) that counts as a vertebral body, and smallest share of the median core.
MIN_CORE_MM3 = 300.0
MIN_CORE_FRACTION = 0.2
#: A core this much taller than the median is two bodies joined if it has a waist: an axial area
#: under ``WAIST_RATIO`` of the largest area above and below it.
MERGED_HEIGHT_RATIO = 1.5
WAIST_RATIO = 0.6
#: A core whose centre lies this far (mm) to the side of the spine's axis is no vertebral body.
OFF_AXIS_MM = 40.0
#: The lowest vertebra is the sacrum when it is this much wider than the median of the others.
SACRUM_WIDTH_RATIO = 1.4
#: Ribs are searched this far (mm) lateral to the body's edge, and no further than this from the vertebra.
RIB_SEARCH_MM = (2.0, 45.0)
RIB_NEAR_MM = 10.0
#: Ribs are cortical bone: above enhanced kidney or vessels (150-250 HU).
RIB_MIN_HU = 300.0
#: Bone area (mm2) on one side that a rib's cross-section (about 8 x 12 mm, neck and head up to
#: about 3 cm2 beside the transverse process) gives in the rib window.
RIB_AREA_MM2 = (40.0, 450.0)
#: The pelvis is searched this far (mm) lateral to the body's edge; an iliac wing's cross-section
#: (a plate of 5-15 mm over 60-150 mm) gives more than this area (mm2) on one side.
ILIAC_SEARCH_MM = 130.0
ILIAC_AREA_MM2 = 600.0
#: The lowest vertebra is also the sacrum when it is this much wider than the median of the others
#: and its body this much taller (S1-S3 are fused: 50-60 mm against 25-30 mm for a lumbar body).
SACRUM_TALL_WIDTH_RATIO = 1.15
SACRUM_HEIGHT_RATIO = 1.5


@dataclass
class Vertebra:
    """A vertebra found in the mask: z range of its body and its name."""

    index: int
    body_slices: tuple[int, int]
    slices: tuple[int, int]
    width_mm: float
    ribs: bool = False
    iliac: bool = False
    name: str = "?"
    core_id: int = 0

    def evidence(self, spacing: tuple[float, float, float]) -> dict:
        """What the naming saw of this vertebra (for result.json)."""
        return {
            "name": self.name,
            "slices": [int(self.slices[0]), int(self.slices[1])],
            "body_height_mm": round((self.body_slices[1] - self.body_slices[0] + 1) * spacing[0], 1),
            "width_mm": round(float(self.width_mm), 1),
            "ribs": bool(self.ribs),
            "iliac_bone_beside": bool(self.iliac),
        }


@dataclass
class LevelSplit:
    """Result of :func:`split_levels`."""

    labels: np.ndarray
    vertebrae: list[Vertebra]
    rule: str
    certain: bool
    notes: list[str] = field(default_factory=list)


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


def _bone_area_mm2(
    hu: np.ndarray, mask: np.ndarray, rows: slice, cols: slice, spacing_yx, within_mm: float | None = None
) -> float:
    """Area of bone (HU above :data:`RIB_MIN_HU`) in a window of one slice, not within 2 pixels of the mask.

    With ``within_mm``, only bone at most that far from the mask counts (a rib meets its vertebra
    at the costovertebral and costotransverse joints; contrast in a kidney or bowel lies further out).
    """
    ny, nx = mask.shape
    r0, r1 = max(rows.start, 0), min(rows.stop, ny)
    c0, c1 = max(cols.start, 0), min(cols.stop, nx)
    if r1 <= r0 or c1 <= c0:
        return 0.0
    # the mask's dilation (2 pixels, or within_mm) needs that much context around the window
    pad = 2 if within_mm is None else max(2, int(np.ceil(within_mm / min(spacing_yx))) + 1)
    R0, C0 = max(r0 - pad, 0), max(c0 - pad, 0)
    context = mask[R0 : r1 + pad, C0 : c1 + pad]
    inner = (slice(r0 - R0, r1 - R0), slice(c0 - C0, c1 - C0))
    near = ndimage.binary_dilation(context, iterations=2)[inner]
    bone = (hu[r0:r1, c0:c1] > RIB_MIN_HU) & ~near
    if within_mm is not None and bone.any():
        if not context.any():
            return 0.0
        bone &= ndimage.distance_transform_edt(~context, sampling=spacing_yx)[inner] <= within_mm
    return float(bone.sum()) * spacing_yx[0] * spacing_yx[1]


def _lateral_bone(
    hu: np.ndarray, mask: np.ndarray, run: tuple[int, int], centres: np.ndarray, half_widths: np.ndarray, spacing
) -> tuple[bool, bool]:
    """Ribs, and iliac bone, beside a vertebral body (bone not in the mask) on enough of its slices.

    ``centres[k]`` is the (row, col) of the deepest mask pixel of slice ``k`` and
    ``half_widths[k]`` its depth in mm (the body's half width). A rib is a small
    cross-section (:data:`RIB_AREA_MM2`) close beside the body; an iliac wing is a
    large plate (:data:`ILIAC_AREA_MM2`) further out. A slice with iliac bone
    counts for the pelvis, never for ribs, so iliac wings beside L5 or the sacrum
    are not taken for ribs.

    Returns
    -------
    (bool, bool)
        Ribs on at least 30% of the body's slices; iliac bone on both sides on at least half.
    """
    dy, dx = spacing[1], spacing[2]
    rib_hits = iliac_hits = 0
    ks = range(run[0], run[1] + 1)
    for k in ks:
        if half_widths[k] <= 0:
            continue
        cy, cx = centres[k]
        body_half = max(half_widths[k], 1.0)
        # ribs lie beside and behind the body (rows: anterior -> posterior), iliac wings beside and behind too
        rows = slice(max(int(cy - 5 / dy), 0), int(cy + 50 / dy))
        wide_rows = slice(max(int(cy - 50 / dy), 0), int(cy + 80 / dy))
        rib = False
        iliac = []
        for side in (-1, 1):
            near = [cx + side * (body_half + RIB_SEARCH_MM[0]) / dx, cx + side * (body_half + RIB_SEARCH_MM[1]) / dx]
            far = [near[0], cx + side * (body_half + ILIAC_SEARCH_MM) / dx]
            near_cols = slice(max(int(min(near)), 0), max(int(max(near)), 0))
            far_cols = slice(max(int(min(far)), 0), max(int(max(far)), 0))
            iliac.append(_bone_area_mm2(hu[k], mask[k], wide_rows, far_cols, (dy, dx)) > ILIAC_AREA_MM2)
            area = _bone_area_mm2(hu[k], mask[k], rows, near_cols, (dy, dx), within_mm=RIB_NEAR_MM)
            rib |= RIB_AREA_MM2[0] < area < RIB_AREA_MM2[1]
        iliac_hits += all(iliac)  # the pelvis is on both sides
        rib_hits += rib and not any(iliac)
    ribs = rib_hits >= max(1, 0.3 * len(ks))
    pelvis = iliac_hits >= max(1, 0.5 * len(ks))
    return ribs and not pelvis, pelvis


def _top_rib_run(ribs: list[bool]) -> list[int]:
    """Indices (from the lowest vertebra) of the run of rib-bearing vertebrae that holds the highest one.

    One vertebra without a rib hit inside the run is allowed (a short twelfth rib, a missed slice).
    """
    hits = [i for i, r in enumerate(ribs) if r]
    if not hits:
        return []
    run = [hits[-1]]
    for i in reversed(hits[:-1]):
        if run[-1] - i > 2:
            break
        run.append(i)
    return sorted(run)


def _cores(m: np.ndarray, spacing, depth: np.ndarray) -> tuple[np.ndarray, int]:
    """Vertebral-body cores: mask voxels deeper than :data:`CORE_DEPTH_MM`, as 3-D components.

    Components much smaller than the median (a thick spot of a process, an osteophyte)
    are dropped unless they touch the top or bottom of the volume (a vertebra cut by the
    field of view); components much taller than the median are split at their narrowest
    slice when it is a real waist (two bodies joined across a narrowed disc).
    """
    comps, n = ndimage.label(depth > CORE_DEPTH_MM)
    voxel = float(np.prod(spacing))
    comps, n = _relabel(comps, np.bincount(comps.ravel(), minlength=n + 1) * voxel >= MIN_CORE_MM3)
    if n == 0:
        return comps, 0
    comps, n = _split_merged(comps, n, spacing)
    sizes = np.bincount(comps.ravel(), minlength=n + 1) * voxel
    objs = ndimage.find_objects(comps)
    edge = np.array([False] + [o is not None and (o[0].start == 0 or o[0].stop == m.shape[0]) for o in objs])
    floor = max(MIN_CORE_MM3, MIN_CORE_FRACTION * float(np.median(sizes[1:])))
    return _relabel(comps, (sizes >= floor) | (edge & (sizes >= MIN_CORE_MM3)))


def _relabel(comps: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep the components where ``keep[id]`` (index 0 is the background), numbered 1..n."""
    keep = keep.copy()
    keep[0] = False
    lut = np.zeros(len(keep), np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return lut[comps], int(keep.sum())


def _split_merged(comps: np.ndarray, n: int, spacing) -> tuple[np.ndarray, int]:
    """Split cores far taller than the median at a waist (axial area under :data:`WAIST_RATIO` of both sides)."""
    for _ in range(4):
        objs = ndimage.find_objects(comps)
        heights = np.array([(o[0].stop - o[0].start) * spacing[0] if o is not None else 0.0 for o in objs])
        if n < 3:
            return comps, n
        median = float(np.median(heights[heights > 0]))
        split = False
        for i, o in enumerate(objs):
            if o is None or heights[i] < MERGED_HEIGHT_RATIO * median:
                continue
            sub = comps[o] == i + 1
            area = sub.sum(axis=(1, 2)).astype(float)
            lo, hi = int(0.2 * len(area)), int(np.ceil(0.8 * len(area)))
            if hi - lo < 1:
                continue
            k = lo + int(np.argmin(area[lo:hi]))
            if area[k] < WAIST_RATIO * min(area[:k].max(initial=0), area[k + 1 :].max(initial=0)):
                view = comps[o]
                view[k][sub[k]] = 0  # the waist slice joins neither core; the watershed gives it out
                upper = np.zeros_like(sub)
                upper[k + 1 :] = sub[k + 1 :]
                n += 1
                view[upper] = n
                split = True
        if not split:
            break
    return comps, n


def _off_axis(cores: np.ndarray, n: int, spacing) -> set[int]:
    """Cores too far from the spine's axis to be vertebral bodies (a femoral head, an iliac crest)."""
    if n < 3:
        return set()
    centres = np.array(ndimage.center_of_mass(cores > 0, cores, range(1, n + 1)))
    lateral = centres[:, 2] * spacing[2]
    axis = np.median(lateral)
    return {i + 1 for i in range(n) if abs(lateral[i] - axis) > OFF_AXIS_MM}


def split_levels(
    mask: np.ndarray, spacing: tuple[float, float, float], hu: np.ndarray | None = None, top_level: int | None = None
) -> LevelSplit:
    """Split a boolean vertebra mask (z, y, x) into vertebrae and label L1..L5.

    Vertebral bodies are found in 3-D as the parts of the mask deeper than
    :data:`CORE_DEPTH_MM` (from a distance transform in mm): the discs between
    bodies, inclined as at L5-S1 or narrowed, leave the cores apart, while thin
    posterior elements have none. Every mask voxel then goes to a core by a
    watershed on the depth (scikit-image), so each vertebra keeps its own
    pedicles, laminae and processes, which meet their neighbours only at thin
    facet contacts. Cores far off the spine's axis are dropped with a note.

    Parameters
    ----------
    mask : ndarray
        Boolean mark image stack (all vertebral bone).
    spacing : tuple of float
        (dz, dy, dx) in mm.
    hu : ndarray, optional
        The CT, for finding ribs and iliac bone (rule 2, rule 1).
    top_level : int, optional
        Level id (1..5) of the top vertebra in view, when the user knows it;
        used only when neither sacrum nor ribs name the levels.

    Returns
    -------
    LevelSplit
        uint8 labels (0, 1..5), the vertebrae found, the rule used and notes.
    """
    from skimage.segmentation import watershed

    mask = _clean(np.asarray(mask, dtype=bool), spacing)
    labels = np.zeros(mask.shape, np.uint8)
    box = bounding_box(mask)
    if box is None:
        return LevelSplit(labels, [], "none", False, ["no vertebral body found in the mask"])
    m = mask[box]
    z_off = box[0].start
    depth = ndimage.distance_transform_edt(m, sampling=spacing).astype(np.float32)
    cores, n_cores = _cores(m, spacing, depth)
    notes: list[str] = []
    dropped = _off_axis(cores, n_cores, spacing)
    if dropped:
        notes.append(f"{len(dropped)} thick piece(s) of the mask far from the spine's axis left out (not vertebrae)")
        for i in dropped:
            cores[cores == i] = 0
    if not cores.any():
        return LevelSplit(labels, [], "none", False, ["no vertebral body found in the mask"])
    parts = watershed(-depth, markers=cores, mask=m)
    # order the vertebrae from the lowest: by the centre of their cores
    ids = [i for i in range(1, n_cores + 1) if i not in dropped]
    zc = ndimage.center_of_mass(cores > 0, cores, ids)
    order = [ids[j] for j in np.argsort([c[0] for c in zc])]
    radius, centres = deepest_points(mask, spacing[1:])
    vertebrae = []
    objs = ndimage.find_objects(parts)
    core_objs = ndimage.find_objects(cores)
    for index, cid in enumerate(order):
        zs, _ys, _xs = objs[cid - 1]
        czs = core_objs[cid - 1][0]
        pad = round(CORE_DEPTH_MM / spacing[0])
        run = (max(czs.start - pad, 0) + z_off, min(czs.stop - 1 + pad, m.shape[0] - 1) + z_off)
        own = parts[run[0] - z_off : run[1] - z_off + 1] == cid
        cols = np.nonzero(own.any(axis=(0, 1)))[0]
        width = (cols.max() - cols.min() + 1) * spacing[2] if cols.size else 0.0
        v = Vertebra(index, run, (zs.start + z_off, zs.stop - 1 + z_off), width)
        v.core_id = cid
        if hu is not None:
            v.ribs, v.iliac = _lateral_bone(hu, mask, run, centres, radius, spacing)
        vertebrae.append(v)
    n = len(vertebrae)
    names: dict[int, str] = {}
    widths = np.array([v.width_mm for v in vertebrae])
    heights = np.array([v.body_slices[1] - v.body_slices[0] + 1 for v in vertebrae], float)
    # rule 1: the sacrum is the lowest vertebra, much wider (alae), or wider and much taller (S1-S3 fused)
    sacrum = n >= 2 and (
        widths[0] > SACRUM_WIDTH_RATIO * np.median(widths[1:])
        or (
            widths[0] > SACRUM_TALL_WIDTH_RATIO * np.median(widths[1:])
            and heights[0] > SACRUM_HEIGHT_RATIO * np.median(heights[1:])
        )
    )
    # rule 2: ribs come in a run of consecutive vertebrae from the top; a lone hit lower down
    # (an iliac crest, contrast in a kidney) is not a rib
    rib_bearing = _top_rib_run([v.ribs and not v.iliac for v in vertebrae])
    if sacrum:
        rule, certain = "counted up from the sacrum (lowest, widest vertebra)", True
        names[0] = "S1"
        for i in range(1, n):
            level = 6 - i
            names[i] = f"L{level}" if level >= 1 else f"T{12 + level}"
    elif rib_bearing:
        t12 = min(rib_bearing)
        rule, certain = "counted down from T12 (lowest vertebra of the run with ribs)", True
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
    lut = np.zeros(n_cores + 1, np.uint8)
    for v in vertebrae:
        v.name = names[v.index]
        lut[v.core_id] = level_id(v.name) or 0
    labels[box] = lut[parts]
    if sacrum and rib_bearing and names.get(min(rib_bearing)) not in ("T12", "T11", "T10"):
        notes.append(f"ribs seen beside {names[min(rib_bearing)]}: check the level names (transitional anatomy?)")
    return LevelSplit(labels, vertebrae, rule, certain, notes)
