"""Whether a CT's vertebra labels hold every vertebra in view, or some of them only.

Research groups often label the levels they measure (L1-L5, or L1-L4 for bone density) on scans that show T12 and
the sacrum too. Scored as a complete map, such labels make the mark's T12 and sacrum false marks; trained on, they
teach MS-Net that those vertebrae are background (helper-83: a TotalSegmentator map holding the sacrum alone was
scored as complete, Dice 0.136). Only a TotalSegmentator ``segmentations`` folder with fewer files than its tool
writes said so; a combined map (nnU-Net's, VerSe's, TotalSegmentator's ``total.nii.gz``) did not.

The CT itself tells: past the last labelled slice of the highest (lowest) vertebra, beyond the disc, bone continues
where that vertebra ends if a vertebra the labels do not hold lies there. And the names tell: a named vertebra
missing between two given ones (L1 and L3 given, L2 not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from scipy import ndimage

from ..labels import ANATOMICAL_ORDER, vertebra_name

#: Where the next vertebra is looked for beyond a labelled end (mm past its last labelled slice): past the disc
#: (5-15 mm at the lumbar spine; Gray's Anatomy, 42nd ed.) into the next body, 25-30 mm tall.
BEYOND_MM = (6.0, 30.0)
#: Bone in an axial slice: cortex and posterior elements read 300-1200 HU even where an osteoporotic body's
#: trabecular bone reads 50 HU; a disc reads 60-110 HU (issue "Real CT").
BONE_HU = 200.0
#: The end's footprint: its labelled voxels over its last this many mm, widened by :data:`FOOTPRINT_WIDEN_MM`
#: (the next body sits on the endplate, shifted a few mm by lordosis or a listhesis).
FOOTPRINT_END_MM = 10.0
FOOTPRINT_WIDEN_MM = 5.0
#: The spine continues where bone in the footprint covers at least this area (mm2) on at least
#: :data:`CONTINUES_SLICES` of the slices looked at (the disc takes the first ones): a vertebral body's cortical ring
#: alone, 1 mm thick round 80-150 mm of outline (T1 to L5), and its arch. Past the end of the spine lies no such bone
#: but the coccyx (not read) and the skull; a share of the end's own bone would not do: the sacrum's top with its alae
#: holds 5-10 times the bone of L5's section (first phantom: 3,000 against 300-700 mm2).
CONTINUES_MM2 = 100.0
CONTINUES_SLICES = 1 / 3
#: Slices of a vertebra next to one the labels do not hold that are left out of training (mm from its outer end):
#: the disc lies outside the labelled slices already, but the superior articular processes of the vertebra below
#: rise past it beside the inferior ones of the vertebra above, and an oblique disc (lordosis, the lumbosacral
#: angle) puts the neighbour's endplate in the same axial slices, over about 10 mm of the vertebra's height (an
#: estimate: a single labelled vertebra between two unlabelled ones keeps its middle 5-15 mm).
NEIGHBOUR_REACH_MM = 10.0


@dataclass
class LabelCoverage:
    """What a label map holds of the spine in view.

    ``unlabelled`` says, one line each, where a vertebra in view is not labelled; ``trainable`` marks the slices
    (bool per z) whose vertebrae are all labelled as far as can be told: those with a given vertebra, less
    :data:`NEIGHBOUR_REACH_MM` next to a vertebra the labels do not hold.
    """

    unlabelled: list[str] = field(default_factory=list)
    trainable: np.ndarray | None = None

    @property
    def partial(self) -> bool:
        """The labels hold some of the vertebrae in view only."""
        return bool(self.unlabelled)


def _end_continues(hu: np.ndarray, own: np.ndarray, spacing, upward: bool) -> bool | None:
    """Whether bone continues past one end of a labelled vertebra (``own``, bool (z, y, x)) where it ends: True,
    False, or None where the CT stops before :data:`BEYOND_MM` shows enough of what lies there."""
    dz, dy, dx = spacing
    zs = np.flatnonzero(own.any(axis=(1, 2)))
    step = 1 if upward else -1
    end = int(zs[-1] if upward else zs[0])
    n_end = max(1, round(FOOTPRINT_END_MM / dz))
    ends = [k for k in range(end, end - step * n_end, -step) if 0 <= k < own.shape[0] and own[k].any()]
    footprint = own[ends].any(axis=0)
    footprint = ndimage.distance_transform_edt(~footprint, sampling=(dy, dx)) <= FOOTPRINT_WIDEN_MM
    near, far = max(1, int(np.ceil(BEYOND_MM[0] / dz))), max(2, int(BEYOND_MM[1] / dz))
    beyond = [k for k in (end + step * n for n in range(near, far + 1)) if 0 <= k < hu.shape[0]]
    if len(beyond) < 2 or len(beyond) * dz < BEYOND_MM[0]:
        return None  # the CT ends: what lies past this vertebra is not in view
    areas = np.array([np.count_nonzero((hu[k] > BONE_HU) & footprint) for k in beyond]) * dy * dx
    return bool(np.count_nonzero(areas >= CONTINUES_MM2) >= CONTINUES_SLICES * len(beyond))


def label_coverage(hu: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float]) -> LabelCoverage:
    """Whether a vertebra label map holds every vertebra the CT shows, and the slices to train on.

    Parameters
    ----------
    hu : ndarray
        CT in Hounsfield units, (z, y, x), z from the feet to the head (DESIGN.md).
    truth : ndarray
        The labels on the CT's grid, BoneScreen vertebra ids (DESIGN.md), same shape.
    spacing : tuple of float
        (dz, dy, dx) in mm.

    Returns
    -------
    LabelCoverage
        A line for each end of the labelled run past which bone continues (:data:`BEYOND_MM`, :data:`BONE_HU`:
        the vertebra beyond is not labelled; past the sacrum lies the coccyx, which no scheme labels, so that end
        is not read), and for each named vertebra missing between two given ones (L6 may be missing: most spines
        have none); and the slices to train on.
    """
    spans = {}  # id -> (lowest, highest slice)
    for vid, where in enumerate(ndimage.find_objects(truth), start=1):
        if where is not None:
            spans[vid] = (where[0].start, where[0].stop - 1)
    trainable = truth.any(axis=(1, 2))
    out = LabelCoverage(trainable=trainable)
    if not spans:
        return out
    reach = int(np.ceil(NEIGHBOUR_REACH_MM / spacing[0]))
    top = max(spans, key=lambda v: spans[v][1])
    bottom = min(spans, key=lambda v: spans[v][0])
    for vid, upward in ((top, True), (bottom, False)):
        name = vertebra_name(vid)
        if name == "S1" and not upward:
            continue  # the coccyx below the sacrum is no labelled vertebra in any scheme
        if _end_continues(hu, truth == vid, spacing, upward):
            where = "above" if upward else "below"
            out.unlabelled.append(
                f"the CT shows bone {BEYOND_MM[0]:.0f}-{BEYOND_MM[1]:.0f} mm {where} {name} where it ends: a vertebra "
                f"{where} it is in view and not labelled"
            )
            end = spans[vid][1] if upward else spans[vid][0]
            lo, hi = (end - reach + 1, end) if upward else (end, end + reach - 1)
            trainable[max(lo, 0) : hi + 1] = False
    named = sorted(
        ((ANATOMICAL_ORDER.index(n), vid) for vid in spans if (n := vertebra_name(vid)) in ANATOMICAL_ORDER),
    )
    for (rank_a, upper), (rank_b, lower) in pairwise(named):
        missing = [n for n in ANATOMICAL_ORDER[rank_a + 1 : rank_b] if n != "L6"]
        if not missing:
            continue
        out.unlabelled.append(
            f"{', '.join(missing)} between the given {vertebra_name(upper)} and {vertebra_name(lower)} "
            f"{'is' if len(missing) == 1 else 'are'} not labelled"
        )
        lo, hi = min(spans[upper][0], spans[lower][1]), max(spans[upper][0], spans[lower][1])
        trainable[max(lo - reach + 1, 0) : hi + reach] = False
    return out
