"""Whether a user's vertebra labels sit on the bone of the CT they are classified with.

Labels of another scan, or of this scan read in another orientation (axes swapped or flipped),
can have the CT's grid and pass every check of shape and affine; everything measured through them
is then meaningless. A vertebra's labels hold bone: their rim lies on the cortex and a good share of
their voxels reads as bone. Labels that lie on soft tissue show neither.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .labels import vertebra_name

#: Least median HU of a vertebra's labelled rim (its outermost voxels in each slice). Measured on labels
#: that fit: the true labels of 3 realistic phantoms at 1 and 3 mm, 269-1290 HU; the real images with their
#: given labels: TotalSegmentator's T11-T12 262-288, the VerSe L2-L4 crop 374-410, TotalSegmentator's
#: example CT 178-285 (the sacrum 178); but hand labels drawn outside the bone read soft tissue at their rim
#: (the dcmqi three-slice series: 9 HU). The same labels swapped in x and y, or flipped left-right or front to
#: back where that moves them off the spine: -95 to 90 HU.
MIN_RIM_HU = 120.0
#: HU above which a voxel counts as bone for :data:`MIN_BONE_SHARE` (cortex, and trabecular bone of
#: normal density; below the 250-300 HU of a thin cortex at 3 mm slices).
BONE_HU = 200.0
#: Least share of a vertebra's labelled voxels above :data:`BONE_HU`. Labels that fit: 0.28-0.76 (the
#: dcmqi hand labels 0.57); swapped or flipped off the spine: 0.00-0.26.
MIN_BONE_SHARE = 0.30


def off_bone(hu: np.ndarray, labels: np.ndarray, ids: list[int] | None = None) -> dict[int, str]:
    """The vertebrae whose labels do not sit on bone, each with the reason in words.

    A vertebra is off bone when both the median HU of its rim (the labelled voxels on the edge of its
    section in each slice) is under :data:`MIN_RIM_HU` and under :data:`MIN_BONE_SHARE` of its voxels
    read above :data:`BONE_HU`. Requiring both passes hand labels drawn a little outside the bone (their
    rim is soft tissue, their share of bone high) and a low-density sacrum (share 0.28, rim 178 HU); every
    misplaced label measured fails both.

    Parameters
    ----------
    hu : ndarray
        float (z, y, x) CT in HU.
    labels : ndarray
        uint8 (z, y, x) vertebra ids (DESIGN.md), on the CT's grid.
    ids : list of int, optional
        The ids to check; default every id present.

    Returns
    -------
    dict
        id -> reason, for the vertebrae off bone only.
    """
    ids = [int(k) for k in np.unique(labels) if k] if ids is None else ids
    section = np.ones((1, 3, 3), bool)  # in each slice: the rim of a thin slab is its section's edge
    out = {}
    objects = ndimage.find_objects(labels)
    for vid in ids:
        box = objects[vid - 1] if vid - 1 < len(objects) else None
        if box is None:
            continue
        own = labels[box] == vid
        values = hu[box]
        rim = own & ~ndimage.binary_erosion(own, section)
        rim_hu = float(np.median(values[rim])) if rim.any() else float(np.median(values[own]))
        share = float(np.mean(values[own] > BONE_HU))
        if rim_hu < MIN_RIM_HU and share < MIN_BONE_SHARE:
            out[vid] = (
                f"the labels of {vertebra_name(vid)} do not sit on bone: their rim reads {rim_hu:.0f} HU (a "
                f"vertebra's cortex: over {MIN_RIM_HU:.0f}) and {100 * share:.0f}% of their voxels read above "
                f"{BONE_HU:.0f} HU (a vertebra's: over {100 * MIN_BONE_SHARE:.0f}%); are they labels of this "
                "CT, in this orientation? Check them over the image"
            )
    return out
