"""Whether a CT's vertebra labels hold every vertebra in view, or some of them only.

Research groups often label the levels they measure (L1-L5, or L1-L4 for bone density) on scans that show T12 and
the sacrum too. Scored as a complete map, such labels make the mark's T12 and sacrum false marks; trained on, they
teach MS-Net that those vertebrae are background (helper-83: a TotalSegmentator map holding the sacrum alone was
scored as complete, Dice 0.136). Only a TotalSegmentator ``segmentations`` folder with fewer files than its tool
writes said so; a combined map (nnU-Net's, VerSe's, TotalSegmentator's ``total.nii.gz``) did not.

The CT itself tells: from the middle of the highest (lowest) labelled vertebra outward, its footprint holds a
vertebra's worth more unlabelled bone than inward where a vertebra the labels do not hold lies beyond it. And the
names tell: a named vertebra missing between two given ones (L1 and L3 given, L2 not). Training leaves out the
slices from the middle of a labelled vertebra toward one the labels leave out: the neighbour's articular processes
and an oblique disc (the lumbosacral angle) put it in the same axial slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from scipy import ndimage

from ..labels import ANATOMICAL_ORDER, vertebra_name

#: How far past a labelled end the CT is read for the next vertebra (mm): past the disc (5-15 mm at the lumbar spine;
#: Gray's Anatomy, 42nd ed.) into the next body, 25-30 mm tall. Where the CT holds less than
#: :data:`BEYOND_MIN_MM` past the end, what lies there is not in view.
BEYOND_MM = 25.0
BEYOND_MIN_MM = 6.0
#: Bone: cortex and posterior elements read 300-1200 HU even where an osteoporotic body's trabecular bone reads
#: 50 HU; a disc reads 60-110 HU (issue "Real CT").
BONE_HU = 200.0
#: The end's footprint (its labelled voxels seen along z) is widened by this much (mm): the next vertebra sits on
#: it, shifted a few mm by lordosis or a listhesis.
FOOTPRINT_WIDEN_MM = 5.0
#: The spine continues past a labelled end where its footprint holds this much more unlabelled bone (cm3) from the
#: end vertebra's middle outward (to :data:`BEYOND_MM` past it) than from its middle inward. Reading outward from
#: the middle, not from the last labelled slice, finds the sacrum beside L5: the lumbosacral angle puts the top of
#: S1 up to 27 mm above L5's lowest voxel (realistic phantom). The inward half measures what the labels leave out of
#: labelled vertebrae (ribs' heads, bits of cortex), so that only a vertebra's worth more counts: a lumbar
#: vertebra's bone above :data:`BONE_HU` is 10-80 cm3 (TotalSegmentator's example CT at 3 mm: 19 cm3 of T12 above
#: L1's middle and 29 cm3 of the sacrum below L5's, against under 1 cm3 inward; complete maps of the realistic
#: phantom: inward and outward within 3 cm3 of each other or less outward).
CONTINUES_CM3 = 3.0


@dataclass
class LabelCoverage:
    """What a label map holds of the spine in view.

    ``unlabelled`` says, one line each, where a vertebra in view is not labelled; ``trainable`` marks the slices
    (bool per z) whose vertebrae are all labelled as far as can be told: those with a given vertebra, less those from
    the middle of a given vertebra toward one the labels do not hold.
    """

    unlabelled: list[str] = field(default_factory=list)
    trainable: np.ndarray | None = None

    @property
    def partial(self) -> bool:
        """The labels hold some of the vertebrae in view only."""
        return bool(self.unlabelled)


def _middle_slice(own: np.ndarray) -> int:
    """The slice through a vertebra's centre of mass (``own``, bool (z, y, x))."""
    return int(np.rint(ndimage.center_of_mass(own)[0]))


def _end_continues(hu: np.ndarray, truth: np.ndarray, vid: int, spacing, upward: bool) -> bool | None:
    """Whether an unlabelled vertebra lies past one end of the labelled vertebra ``vid`` (``truth``, BoneScreen ids
    (z, y, x)): True, False, or None where the CT holds less than :data:`BEYOND_MIN_MM` past it."""
    dz, dy, dx = spacing
    own = truth == vid
    zs = np.flatnonzero(own.any(axis=(1, 2)))
    middle = _middle_slice(own)
    reach = int(BEYOND_MM / dz)
    if upward:
        stop = min(int(zs[-1]) + reach + 1, hu.shape[0])
        outward, inward, past = slice(middle, stop), slice(int(zs[0]), middle), stop - 1 - int(zs[-1])
    else:
        start = max(int(zs[0]) - reach, 0)
        outward, inward, past = slice(start, middle + 1), slice(middle + 1, int(zs[-1]) + 1), int(zs[0]) - start
    if past * dz < BEYOND_MIN_MM:
        return None  # the CT ends: what lies past this vertebra is not in view
    footprint = ndimage.distance_transform_edt(~own.any(axis=0), sampling=(dy, dx)) <= FOOTPRINT_WIDEN_MM

    def unlabelled_cm3(zs: slice) -> float:
        return np.count_nonzero((hu[zs] > BONE_HU) & (truth[zs] == 0) & footprint) * dz * dy * dx / 1000.0

    return unlabelled_cm3(outward) - unlabelled_cm3(inward) >= CONTINUES_CM3


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
    top = max(spans, key=lambda v: spans[v][1])
    bottom = min(spans, key=lambda v: spans[v][0])
    for vid, upward in ((top, True), (bottom, False)):
        name = vertebra_name(vid)
        if name == "S1" and not upward:
            continue  # the coccyx below the sacrum is no labelled vertebra in any scheme
        if _end_continues(hu, truth, vid, spacing, upward):
            where = "above" if upward else "below"
            out.unlabelled.append(
                f"a vertebra {where} {name} is in view and not labelled (its bone within {BEYOND_MM:.0f} mm)"
            )
            middle = _middle_slice(truth == vid)
            if upward:
                trainable[middle:] = False
            else:
                trainable[: middle + 1] = False
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
        middles = sorted(_middle_slice(truth == v) for v in (upper, lower))
        trainable[middles[0] : middles[1] + 1] = False
    return out
