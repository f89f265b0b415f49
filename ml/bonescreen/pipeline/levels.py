"""Split a vertebra mask into vertebrae at the discs and name the lumbar ones L1-L5.

Splitting: the vertebral bodies are the thick parts of the mask (3-D cores deeper
than :data:`CORE_DEPTH_MM`), which the discs keep apart even where they are
inclined (L5-S1) or narrowed; every mask voxel goes to a body by a watershed on
the depth, so posterior elements stay with their own vertebra.

Naming (documented rule, first that applies):

1. Sacrum in view: the lowest vertebra is the sacrum when the sacroiliac joints
   are beside it (the pieces below it, lower sacral segments and the coccyx, join
   it), or the iliac wings, or when it is much wider than the others (its alae),
   or somewhat wider and much taller (S1-S3 fused). The vertebra above it is L5;
   count up. A sacrum cut by the field of view and only somewhat wider is used
   only when no ribs count otherwise, and flagged.
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
from ..metal import metal_mask, without_metal

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
#: A body flattened by a fracture is searched for as a part of the mask this deep (mm), holding no core,
#: on the spine's axis (within this many mm of the line through the neighbouring cores).
FLAT_CORE_DEPTH_MM = 3.0
FLAT_AXIS_MM = 12.0
WAIST_RATIO = 0.6
#: Tallest vertebral body (mm, the axial extent of its core and 6 mm either side) and tallest whole
#: vertebra (mm) of one level: lumbar bodies are 23.5-32.4 mm (Clouthier et al. 2023), up to about 50 mm
#: of axial extent when tilted as L5; two bodies joined across a disc make 60 or more. The Visible Human's
#: L1, spinous process included, spans 62 mm (71 mm scaled to a large adult); the split may give a vertebra
#: the inferior articular processes of the one above, which reach down beside it (about 20 mm more).
MAX_BODY_MM = 60.0
TALL_BODY_RATIO = 1.4
MAX_VERTEBRA_MM = 95.0
#: The sacrum is searched among this many lowest pieces (S1, lower sacral segments, coccyx).
SACRAL_PIECES = 4
#: In-plane pixel size (mm) the split works at: finer slices are subsampled.
SPLIT_PIXEL_MM = 1.0
#: Cores whose slice ranges overlap by more than this share of the shorter are one vertebra.
SAME_LEVEL_OVERLAP = 0.6
#: A core whose centre lies this far (mm) to the side of the spine's axis is no vertebral body.
OFF_AXIS_MM = 55.0
#: The lowest vertebra is the sacrum when it is this much wider than the median of the others.
SACRUM_WIDTH_RATIO = 1.4
#: Ribs are searched this far (mm) lateral to the body's edge, no further than ``RIB_NEAR_MM`` from the
#: vertebra (a rib's head and neck meet the body and the transverse process), on both sides (see
#: :data:`RIB_SIDE_FRACTION`): the tip of a twelfth rib reaching down beside L1, a calcified vessel or a
#: transverse process seen on one side only made L1 or L2 "rib-bearing" on 1 in 6 phantom patients with
#: normal anatomy.
RIB_SEARCH_MM = (2.0, 45.0)
RIB_NEAR_MM = 40.0
#: Share of a body's slices with a rib on each side, separately (the pair need not run level).
RIB_SIDE_FRACTION = 0.075
#: Ribs are cortical bone: above enhanced kidney or vessels (150-250 HU).
RIB_MIN_HU = 300.0
#: Bone area (mm2) on one side that a rib's cross-section (about 8 x 12 mm, neck and head up to
#: about 3 cm2 beside the transverse process) gives in the rib window.
RIB_AREA_MM2 = (30.0, 450.0)
#: Share of a body's slices with a rib beside it that makes it rib-bearing (a rib's head and neck
#: span 10-15 mm of a 20-25 mm thoracic body).
RIB_FRACTION = 0.15
#: Iliac wings flank the sacrum and L5 on both sides: plates of cortex (300-1200 HU) round trabecular
#: bone, 60-150 mm long in an axial slice. Bone above ``ILIAC_MIN_HU`` up to ``ILIAC_SEARCH_MM`` to the
#: side of the body, of more than ``ILIAC_AREA_MM2`` on each side, on half of a body's slices.
ILIAC_SEARCH_MM = 130.0
ILIAC_MIN_HU = 250.0
ILIAC_AREA_MM2 = 500.0
#: Sacroiliac joints: bone above ``SI_MIN_HU`` (trabecular bone too) within ``SI_NEAR_MM`` of the mask
#: (the joint space is 2-4 mm wide), behind the front of the body, over ``SI_AREA_MM2`` on each side, on
#: ``SI_FRACTION`` of the body's slices. Iliac crests beside L5 stay further out (the iliolumbar
#: ligament lies between).
SI_NEAR_MM = 12.0
#: Rib heads and necks and the sacroiliac joints lie at least this far (mm) behind the body's middle (the
#: costovertebral joints are at its back corners); the aorta and the IVC against the spine, seen through
#: a search window that cuts them, centre no further back.
BEHIND_MM = 4.0
SI_MIN_HU = 150.0
SI_AREA_MM2 = 120.0
SI_FRACTION = 0.3
#: Cut by the field of view, the lowest vertebra is taken for the sacrum for certain only when it is
#: this much wider than the median of the others (lumbar transverse processes reach 1.4 times the width
#: of thoracic vertebrae).
SACRUM_CUT_WIDTH_RATIO = 1.6
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
    sacroiliac: bool = False
    name: str = "?"
    core_id: int = 0
    joined: list[int] = field(default_factory=list)  # cores of lower sacral segments and the coccyx

    def evidence(self, spacing: tuple[float, float, float]) -> dict:
        """What the naming saw of this vertebra (for result.json)."""
        return {
            "name": self.name,
            "slices": [int(self.slices[0]), int(self.slices[1])],
            "body_height_mm": round((self.body_slices[1] - self.body_slices[0] + 1) * spacing[0], 1),
            "width_mm": round(float(self.width_mm), 1),
            "ribs": bool(self.ribs),
            "iliac_bone_beside": bool(self.iliac),
            "sacroiliac_joints": bool(self.sacroiliac),
        }


@dataclass
class LevelSplit:
    """Result of :func:`split_levels`."""

    labels: np.ndarray
    vertebrae: list[Vertebra]
    rule: str
    certain: bool
    notes: list[str] = field(default_factory=list)
    #: uint8 (z, y, x): 1 + the index (from the lowest) of the vertebra of each mask voxel, 0 elsewhere
    vertebra_map: np.ndarray | None = None


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
    hu: np.ndarray,
    mask: np.ndarray,
    rows: slice,
    cols: slice,
    spacing_yx,
    within_mm: float | None = None,
    min_hu: float = RIB_MIN_HU,
    behind_row: float | None = None,
    near_to: np.ndarray | None = None,
    largest: bool = False,
) -> float:
    """Area of bone (HU above ``min_hu``) in a window of one slice, not within 2 pixels of the mask.

    With ``within_mm``, only bone at most that far from the mask counts (a rib meets its vertebra
    at the costovertebral and costotransverse joints, the ilium meets the sacrum at the sacroiliac
    joint; contrast in a kidney or bowel lies further out). With ``behind_row``, only pieces whose
    centre lies behind that row count: rib heads and necks and the sacroiliac joints lie behind the
    middle of the vertebral body, while the aorta, the IVC and the iliac vessels, which lie against
    the spine and enhance to bone-like HU, lie beside and in front of it (Gray's Anatomy, 42nd ed.).
    ``near_to`` (same shape as ``mask``) is what ``within_mm`` is measured from, when not the whole mask.
    With ``largest``, the area of the largest connected piece only (an iliac wing is one plate; the
    lower ribs crossing a slice beside T11 or T12 are several small pieces).
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
    if near_to is not None:
        context = near_to[R0 : r1 + pad, C0 : c1 + pad]
    bone = (hu[r0:r1, c0:c1] > min_hu) & ~near
    if within_mm is not None and bone.any():
        if not context.any():
            return 0.0
        bone &= ndimage.distance_transform_edt(~context, sampling=spacing_yx)[inner] <= within_mm
    if behind_row is not None and bone.any():
        pieces, n = ndimage.label(bone)
        rows = np.asarray(ndimage.center_of_mass(bone, pieces, range(1, n + 1)))[:, 0] + r0
        bone = np.isin(pieces, 1 + np.nonzero(rows > behind_row)[0])
    if largest and bone.any():
        pieces, _ = ndimage.label(bone)
        return float(np.bincount(pieces.ravel())[1:].max()) * spacing_yx[0] * spacing_yx[1]
    return float(bone.sum()) * spacing_yx[0] * spacing_yx[1]


def _lateral_bone(
    hu: np.ndarray,
    mask: np.ndarray,
    run: tuple[int, int],
    centres: np.ndarray,
    half_widths: np.ndarray,
    spacing,
    own: np.ndarray | None = None,
) -> tuple[bool, bool, bool]:
    """Ribs, and iliac bone, beside a vertebral body (bone not in the mask) on enough of its slices.

    ``centres[k]`` is the (row, col) of the deepest mask pixel of slice ``k`` and
    ``half_widths[k]`` its depth in mm (the body's half width). A rib is a small
    cross-section (:data:`RIB_AREA_MM2`) close beside the body; an iliac wing is a
    large plate (:data:`ILIAC_AREA_MM2`) further out. A slice with iliac bone
    counts for the pelvis, never for ribs, so iliac wings beside L5 or the sacrum
    are not taken for ribs.

    The sacroiliac joints are told apart from iliac crests beside L5: the ilium lies within
    :data:`SI_NEAR_MM` of the vertebra's own part of the mask (``own``, slices ``run``; the whole
    mask when None), behind the middle of the body, on both sides. L5's lower slices cut the top
    of the sacrum (the lumbosacral angle): the ilium beside the sacral alae is near the sacrum there,
    not near L5.

    Returns
    -------
    (bool, bool, bool)
        Ribs on :data:`RIB_FRACTION` of the body's slices; iliac bone on both sides on at least half;
        sacroiliac joints on both sides on :data:`SI_FRACTION` of them.
    """
    dy, dx = spacing[1], spacing[2]
    rib_hits = iliac_hits = joint_hits = 0
    side_hits = np.zeros(2, int)
    ks = range(run[0], run[1] + 1)
    for k in ks:
        if half_widths[k] <= 0:
            continue
        cy, cx = centres[k]
        body_half = max(half_widths[k], 1.0)
        # ribs lie beside and behind the body (rows: anterior -> posterior), iliac wings beside and behind too
        rows = slice(max(int(cy - 5 / dy), 0), int(cy + 50 / dy))
        wide_rows = slice(max(int(cy - 50 / dy), 0), int(cy + 80 / dy))
        back_rows = slice(max(int(cy - 10 / dy), 0), int(cy + 80 / dy))
        rib = []
        iliac, joint = [], []
        for side in (-1, 1):
            near = [cx + side * (body_half + RIB_SEARCH_MM[0]) / dx, cx + side * (body_half + RIB_SEARCH_MM[1]) / dx]
            far = [near[0], cx + side * (body_half + ILIAC_SEARCH_MM) / dx]
            near_cols = slice(max(int(min(near)), 0), max(int(max(near)), 0))
            far_cols = slice(max(int(min(far)), 0), max(int(max(far)), 0))
            iliac.append(
                _bone_area_mm2(hu[k], mask[k], wide_rows, far_cols, (dy, dx), min_hu=ILIAC_MIN_HU, largest=True)
                > ILIAC_AREA_MM2
            )
            area = _bone_area_mm2(
                hu[k],
                mask[k],
                rows,
                near_cols,
                (dy, dx),
                within_mm=RIB_NEAR_MM,
                behind_row=cy + BEHIND_MM / dy,
            )
            rib.append(RIB_AREA_MM2[0] < area < RIB_AREA_MM2[1])
            joint.append(
                _bone_area_mm2(
                    hu[k],
                    mask[k],
                    back_rows,
                    far_cols,
                    (dy, dx),
                    SI_NEAR_MM,
                    SI_MIN_HU,
                    cy + BEHIND_MM / dy,
                    None if own is None else own[k - run[0]],
                )
                > SI_AREA_MM2
            )
        iliac_hits += all(iliac)  # the pelvis is on both sides
        joint_hits += all(joint)
        if not any(iliac):
            rib_hits += any(rib)
            side_hits += np.array(rib, dtype=int)
    # ribs come in pairs: a rib on each side, on some of the slices each (the two seldom run level)
    ribs = rib_hits >= max(1, RIB_FRACTION * len(ks)) and bool(np.all(side_hits >= max(1, RIB_SIDE_FRACTION * len(ks))))
    pelvis = iliac_hits >= max(1, 0.5 * len(ks))
    return ribs and not pelvis, pelvis, joint_hits >= max(1, SI_FRACTION * len(ks))


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
            lo, hi = max(int(0.2 * len(area)), 1), min(int(np.ceil(0.8 * len(area))), len(area) - 1)
            if hi - lo < 1:
                continue
            # the deepest waist: smallest area relative to the largest areas below and above it
            below = np.maximum.accumulate(area)[lo - 1 : hi - 1]
            above = np.maximum.accumulate(area[::-1])[::-1][lo + 1 : hi + 1]
            ratio = area[lo:hi] / np.maximum(np.minimum(below, above), 1.0)
            k = lo + int(np.argmin(ratio))
            if ratio[k - lo] < WAIST_RATIO:
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


def _flattened_bodies(depth: np.ndarray, spacing, cores: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Cores for vertebral bodies too flat to hold one (a grade 3 fracture: 12-15 mm of body left).

    Such a body has no voxel :data:`CORE_DEPTH_MM` deep, so without this its vertebra would go to a
    neighbour and every name above it would shift. Along the spine's axis (the line through the cores,
    within :data:`FLAT_AXIS_MM`; facet joints and processes lie further back), a run of slices without a
    core where the mask is deeper than :data:`FLAT_CORE_DEPTH_MM`, apart from both neighbouring cores
    (shallower slices, the discs, on either side), is such a body: its deep voxels there become a core.
    """
    if n < 2:
        return cores, n
    centres = np.array(ndimage.center_of_mass(cores > 0, cores, range(1, n + 1)))
    centres = centres[np.argsort(centres[:, 0])]
    ks = np.arange(int(np.ceil(centres[0, 0])), int(centres[-1, 0]) + 1)
    if ks.size == 0:
        return cores, n
    rows, cols = np.indices(depth.shape[1:])
    has_core = cores.any(axis=(1, 2))
    near_axis = np.zeros(depth.shape, bool)
    for k in ks:
        y, x = np.interp(k, centres[:, 0], centres[:, 1]), np.interp(k, centres[:, 0], centres[:, 2])
        near_axis[k] = ((rows - y) * spacing[1]) ** 2 + ((cols - x) * spacing[2]) ** 2 < FLAT_AXIS_MM**2
    deep_voxels = near_axis & (depth > FLAT_CORE_DEPTH_MM)
    runs, _ = ndimage.label(deep_voxels.any(axis=(1, 2)) & ~has_core)
    for run in ndimage.find_objects(runs):
        start, stop = run[0].start, run[0].stop
        # a separate body: shallow slices (not a core's shell) on both sides of the run
        if start > ks[0] and stop <= ks[-1] and not has_core[start - 1] and not has_core[stop]:
            n += 1
            cores[start:stop][deep_voxels[start:stop] & (cores[start:stop] == 0)] = n
    return cores, n


def _merge_same_level(cores: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Cores side by side at one level (the sacrum's alae beside its body) are one vertebra.

    Two cores whose slice ranges overlap by more than :data:`SAME_LEVEL_OVERLAP` of the shorter one
    are merged; neighbouring vertebrae, even tilted as L5 on S1, overlap far less.
    """
    objs = ndimage.find_objects(cores)
    ranges = [(o[0].start, o[0].stop) if o is not None else None for o in objs]
    parent = list(range(n + 1))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(1, n + 1):
        for j in range(i + 1, n + 1):
            a, b = ranges[i - 1], ranges[j - 1]
            if a is None or b is None:
                continue
            overlap = min(a[1], b[1]) - max(a[0], b[0])
            if overlap > SAME_LEVEL_OVERLAP * min(a[1] - a[0], b[1] - b[0]):
                parent[root(j)] = root(i)
    roots = np.array([root(i) for i in range(n + 1)])
    if (roots == np.arange(n + 1)).all():
        return cores, n
    keep = roots == np.arange(n + 1)
    lut = np.zeros(n + 1, np.int32)
    lut[keep] = np.arange(int(keep.sum()))
    return lut[roots][cores], int(keep.sum()) - 1


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
    """Split a boolean vertebra mask (z, y, x) into vertebrae and label L1..L5 (see :func:`_split`).

    Fine pixels (dedicated spine CT, under :data:`SPLIT_PIXEL_MM`) are subsampled in-plane for the
    split, which needs no more than about 1 mm; the labels come back to every voxel of the mask.

    Metal (screws, rods; :func:`~bonescreen.metal.metal_mask`) changes neither the split nor the
    names: it is read as soft tissue where ribs and the pelvis are looked for (a rod beside the
    spine is no rib), and the labels hold no metal voxel (nor its streaked margin).
    """
    metal = metal_mask(hu, spacing) if hu is not None else None
    if metal is None or not metal.any():
        return _split_fine_or_coarse(mask, spacing, hu, top_level)
    # the mask keeps the metal while it is split (taking it out would cut pedicles from their bodies)
    split = _split_fine_or_coarse(mask, spacing, without_metal(hu, metal), top_level)
    split.labels[metal] = 0
    if split.vertebra_map is not None:
        split.vertebra_map[metal] = 0
    return split


def _split_fine_or_coarse(
    mask: np.ndarray, spacing: tuple[float, float, float], hu: np.ndarray | None, top_level: int | None
) -> LevelSplit:
    f = int(SPLIT_PIXEL_MM // min(spacing[1], spacing[2]))
    if f < 2:
        return _split(mask, spacing, hu, top_level)
    mask = np.asarray(mask, dtype=bool)
    coarse = _split(
        mask[:, ::f, ::f],
        (spacing[0], spacing[1] * f, spacing[2] * f),
        None if hu is None else hu[:, ::f, ::f],
        top_level,
    )

    def full(small: np.ndarray) -> np.ndarray:
        up = np.repeat(np.repeat(small, f, axis=1), f, axis=2)[:, : mask.shape[1], : mask.shape[2]]
        gaps = mask & (up == 0)
        if gaps.any():  # mask voxels whose block was sampled outside the mask: the label of a neighbouring block
            up = np.where(gaps, ndimage.grey_dilation(up, size=(1, f + 1, f + 1)), up)
        return np.where(mask, up, 0).astype(np.uint8)

    coarse.labels = full(coarse.labels)
    if coarse.vertebra_map is not None:
        coarse.vertebra_map = full(coarse.vertebra_map)
    return coarse


def _split(
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
    cores, n_cores = _relabel(cores, np.bincount(cores.ravel(), minlength=n_cores + 1) > 0)
    cores, n_cores = _flattened_bodies(depth, spacing, cores, n_cores)
    cores, n_cores = _merge_same_level(cores, n_cores)
    parts = watershed(-depth, markers=cores, mask=m)
    # order the vertebrae from the lowest: by the centre of their cores
    ids = list(range(1, n_cores + 1))
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
            own_part = np.zeros((run[1] - run[0] + 1, *mask.shape[1:]), bool)
            own_part[:, box[1], box[2]] = own
            v.ribs, v.iliac, v.sacroiliac = _lateral_bone(hu, mask, run, centres, radius, spacing, own_part)
        vertebrae.append(v)
    vertebrae = _join_sacrum(vertebrae)
    names, rule, certain, name_notes = _name(vertebrae, top_level, spacing[0], mask.shape[0])
    notes += name_notes
    lut = np.zeros(n_cores + 1, np.uint8)
    which = np.zeros(n_cores + 1, np.uint8)
    for v in vertebrae:
        v.name = names[v.index]
        lut[[v.core_id, *v.joined]] = level_id(v.name) or 0
        which[[v.core_id, *v.joined]] = min(v.index + 1, 255)
    labels[box] = lut[parts]
    vertebra_map = np.zeros(mask.shape, np.uint8)
    vertebra_map[box] = which[parts]
    return LevelSplit(labels, vertebrae, rule, certain, notes, vertebra_map)


def _join_sacrum(vertebrae: list[Vertebra]) -> list[Vertebra]:
    """One sacrum: the highest of the lowest vertebrae with sacroiliac joints is S1, and the pieces
    below it (lower sacral segments, split at their fused discs, and the coccyx) join it."""
    if len(vertebrae) < 2:
        return vertebrae
    median = float(np.median([v.width_mm for v in vertebrae]))
    # a sacral piece has sacroiliac joints and the iliac wings beside it, or is wider than the rest
    low = [
        v.index
        for v in vertebrae[:SACRAL_PIECES]
        if v.sacroiliac and (v.iliac or v.width_mm > SACRUM_TALL_WIDTH_RATIO * median)
    ]
    if not low or max(low) == 0:
        return vertebrae
    k = max(low)
    s1, below = vertebrae[k], vertebrae[:k]
    s1.slices = (min(v.slices[0] for v in vertebrae[: k + 1]), s1.slices[1])
    s1.width_mm = max(v.width_mm for v in vertebrae[: k + 1])
    s1.iliac = True
    s1.joined = [v.core_id for v in below] + [c for v in below for c in v.joined]
    rest = vertebrae[k:]
    for i, v in enumerate(rest):
        v.index = i
    return rest


def _count_up(n: int) -> dict[int, str]:
    """Names with the lowest vertebra the sacrum: S1, L5, L4, ..., T12, T11, ..."""
    return {i: "S1" if i == 0 else (f"L{6 - i}" if i <= 5 else f"T{18 - i}") for i in range(n)}


def _count_down(n: int, t12: int) -> dict[int, str]:
    """Names with vertebra ``t12`` (from the lowest) T12: L1 below it, T11 above it."""
    names = {}
    for i in range(n):
        offset = t12 - i  # 1 below T12 is L1
        names[i] = f"L{offset}" if 1 <= offset <= 5 else (f"T{12 + offset}" if offset <= 0 else "S?")
    return names


def _name(
    vertebrae: list[Vertebra], top_level: int | None, dz: float, nz: int
) -> tuple[dict[int, str], str, bool, list[str]]:
    """Names of the vertebrae (lowest first); (names, rule, certain, notes).

    A body taller than any single vertebra's (:data:`MAX_BODY_MM`) and than :data:`TALL_BODY_RATIO` times
    the median of the others (a tilted L5 reaches the first, not the second), or a vertebra spanning far
    more than one level (:data:`MAX_VERTEBRA_MM`), is two vertebrae joined or a bad mask: whatever the
    rule, the count is then in doubt and the names are flagged.
    """
    names, rule, certain, notes = _name_by_rules(vertebrae, top_level, nz)
    bodies = {i: (v.body_slices[1] - v.body_slices[0] + 1) * dz for i, v in enumerate(vertebrae) if names[i] != "S1"}
    typical = float(np.median(list(bodies.values()))) if len(bodies) >= 3 else 0.0
    for i, body in bodies.items():
        v = vertebrae[i]
        whole = (v.slices[1] - v.slices[0] + 1) * dz
        if (body > MAX_BODY_MM and body > TALL_BODY_RATIO * typical) or whole > MAX_VERTEBRA_MM:
            certain = False
            notes.append(
                f"the vertebra named {names[i]} is {max(body, whole):.0f} mm tall: two vertebrae may be joined "
                "or the mask is wrong; check the names"
            )
    return names, rule, certain, notes


def _name_by_rules(
    vertebrae: list[Vertebra], top_level: int | None, nz: int
) -> tuple[dict[int, str], str, bool, list[str]]:
    """Names of the vertebrae (lowest first) by the module's rules; (names, rule, certain, notes).

    Counted up from the sacrum, the names are flagged when the ribs count otherwise (the lowest
    vertebra with ribs is not T12) or when a whole vertebra named T12 shows no ribs: transitional
    anatomy (six or four lumbar vertebrae, ribs on L1, none on T12) or a rib pair not found.
    """
    n = len(vertebrae)
    notes: list[str] = []
    widths = np.array([v.width_mm for v in vertebrae])
    heights = np.array([v.body_slices[1] - v.body_slices[0] + 1 for v in vertebrae], float)
    lowest = vertebrae[0]
    cut = lowest.slices[0] == 0  # the field of view ends in the lowest vertebra
    wide = tall = pelvis = False
    ratio = 0.0
    if n >= 2:
        ratio = widths[0] / max(float(np.median(widths[1:])), 1e-6)
        wide = ratio > SACRUM_WIDTH_RATIO
        tall = ratio > SACRUM_TALL_WIDTH_RATIO and heights[0] > SACRUM_HEIGHT_RATIO * np.median(heights[1:])
        pelvis = lowest.iliac and ratio > SACRUM_TALL_WIDTH_RATIO
    strong_sacrum = n >= 2 and (
        lowest.sacroiliac or pelvis or ((wide or tall) and not cut) or ratio > SACRUM_CUT_WIDTH_RATIO
    )
    weak_sacrum = n >= 2 and wide and not strong_sacrum
    # ribs come in a run of consecutive vertebrae that reaches the top of the view; a lone hit lower
    # down (an iliac crest, contrast in a kidney) is not a rib
    run = _top_rib_run([v.ribs and not v.iliac for v in vertebrae])

    ribs_ok = bool(run) and max(run) >= n - 2
    t12 = min(run) if ribs_ok else None
    if strong_sacrum:
        names = _count_up(n)
        rule = "counted up from the sacrum (lowest vertebra: " + (
            "sacroiliac joints)"
            if lowest.sacroiliac
            else "iliac bone beside it)"
            if pelvis
            else "widest and tallest)"
            if tall
            else "widest)"
        )
        certain = True
        if t12 is not None and names[t12] != "T12":
            # transitional anatomy (six or four lumbar vertebrae, ribs on L1, none on T12) or a missed rib pair
            certain = False
            notes.append(
                f"the sacrum and the ribs count differently: the lowest vertebra with ribs is {names[t12]} counted "
                "up from the sacrum, T12 counted down from the ribs (six or four lumbar vertebrae, ribs on L1 or "
                "none on T12?); check the level names"
            )
        elif t12 is None and n >= 7 and (n > 7 or vertebrae[6].slices[1] < nz - 1):
            certain = False
            notes.append(
                f"no ribs found on the vertebrae named {names[n - 1]} to T12 although they are in view: a sixth "
                "lumbar vertebra, or ribs that were not found; check the level names"
            )
        return names, rule, certain, notes
    if t12 is not None:
        names = _count_down(n, t12)
        rule = "counted down from T12 (lowest vertebra of the run with ribs)"
        certain = True
        if t12 == 0:  # no vertebra without ribs below the run: the run may end above T12
            certain = False
            notes.append("the lowest vertebra in view has ribs: it may be T12 or one above it; check the names")
        if weak_sacrum and _count_up(n) != names:
            certain = False
            notes.append("the lowest vertebra is as wide as a sacrum but the ribs count otherwise: check the names")
        return names, rule, certain, notes
    if weak_sacrum:
        notes.append("the sacrum is only partly in view: check the level names")
        rule = "counted up from the sacrum (lowest vertebra, widest; cut by the field of view)"
        return _count_up(n), rule, False, notes
    top = top_level or 1
    rule = f"top vertebra in view taken as L{top} (no sacrum or ribs to count from)"
    certain = top_level is not None
    if not certain:
        notes.append("level names are uncertain: neither the sacrum nor ribs are in view")
    names = {i: (f"L{top + (n - 1 - i)}" if top + (n - 1 - i) <= 5 else "S?") for i in range(n)}
    return names, rule, certain, notes
