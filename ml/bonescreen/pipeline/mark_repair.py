"""Repairs of MS-Net's mark that its slice-by-slice inference calls for.

MS-Net marks each axial slice on its own (the paper's 2-D network), so nothing keeps its mark
consistent from one slice to the next. On real CT it sometimes leaves out a whole section of a
vertebral body on one slice while marking the slices above and below (TotalSegmentator's
abdomen-pelvis example CT, 3 mm: L2's middle slice empty). The level split then finds two bodies
there and every name above shifts by one.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: A dropped section is at least this large (mm2): a lumbar body's section is 1,000-2,000 mm2, a thoracic
#: one 600-1,000 (Gray's Anatomy); smaller differences between neighbouring slices are the mark's
#: ordinary edge, left alone.
MIN_DROPPED_MM2 = 100.0

#: The dropped section's CT may read at most this many HU below the mean of the same pixels on the
#: slices above and below: inside a body the trabecular bone is continuous, while a disc between two
#: marked endplates reads 100 HU or more below them (70-110 HU against 200-300 HU at 3 mm slices).
#: The means are over at least MIN_DROPPED_MM2, so noise (10-60 HU a pixel) averages out.
MAX_DARKER_HU = 30.0

#: ...and the slices above and below must read alike (one tissue through the three slices): trabecular
#: bone changes by less than this over two slices (TotalSegmentator's example CT: 29 HU at 3 mm), while
#: an endplate, an osteophyte or cement on one side and a disc on the other differ by 400-1,200 HU (the
#: realistic phantom, where the mark also holds some disc slices).
MAX_STEP_HU = 100.0


def bridge_dropped_sections(
    mark: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float]
) -> tuple[np.ndarray, int]:
    """Fill sections of the mark left out on one slice between two marked slices, where the CT is bone.

    A connected region of pixels marked on slices ``k - 1`` and ``k + 1`` but not on ``k``, of at least
    :data:`MIN_DROPPED_MM2`, is added to the mark when its means on the two neighbouring slices differ by
    at most :data:`MAX_STEP_HU` and its mean on slice ``k`` is no more than :data:`MAX_DARKER_HU` below
    theirs. A disc is not filled this way: it is darker than the endplates marked on both sides of it,
    and where the mark holds a disc slice on one side, the endplate on the other reads far brighter.

    Parameters
    ----------
    mark : ndarray
        bool (z, y, x): MS-Net's mark of vertebral bone.
    hu : ndarray
        The CT in Hounsfield units, same shape.
    spacing : tuple of float
        (dz, dy, dx) in mm.

    Returns
    -------
    (ndarray, int)
        The repaired mark (a copy when anything was filled, else ``mark`` itself) and the number of
        slices where a section was filled.
    """
    if mark.shape[0] < 3:
        return mark, 0
    pixel_mm2 = float(spacing[1] * spacing[2])
    min_pixels = max(1, int(np.ceil(MIN_DROPPED_MM2 / pixel_mm2)))
    out = mark
    slices = 0
    for k in range(1, mark.shape[0] - 1):
        gap = mark[k - 1] & mark[k + 1] & ~mark[k]
        if np.count_nonzero(gap) < min_pixels:
            continue
        regions, n = ndimage.label(gap)
        sizes = np.bincount(regions.ravel(), minlength=n + 1)
        filled = False
        for r in np.nonzero(sizes >= min_pixels)[0]:
            if r == 0:
                continue
            where = regions == r
            here = float(hu[k][where].mean())
            below, above = float(hu[k - 1][where].mean()), float(hu[k + 1][where].mean())
            if abs(above - below) <= MAX_STEP_HU and here >= (below + above) / 2 - MAX_DARKER_HU:
                if out is mark:
                    out = mark.copy()
                out[k] |= where
                filled = True
        slices += filled
    return out, slices
