"""Repairs of MS-Net's mark that its slice-by-slice inference calls for.

MS-Net marks each axial slice on its own (the paper's 2-D network), so nothing keeps its mark
consistent from one slice to the next. On real CT it sometimes leaves out a whole section of a
vertebral body on one slice while marking the slices above and below (TotalSegmentator's
abdomen-pelvis example CT, 3 mm: L2's middle slice empty; resampled to 1.5 mm, its two middle slices). The
level split then finds two bodies there and every name above shifts by one.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from scipy import ndimage

# DISC_SMOOTH_MM: the CT smoothed in-plane before discs are read (one noisy pixel is no endplate)
from ..hu import DISC_SMOOTH_MM, smooth_within

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

#: A dropped section is at most this thick (mm), in as many slices as fit (one at 2-3 mm, two at 1.5 mm, three at
#: 1 mm): the example CT's L2 lost one 3 mm slice, and the same CT resampled to 1.5 mm slices lost the two slices
#: of that section, which split L2 in two and shifted every name above it (helper-96, stop 63). A disc is thicker
#: (5-15 mm in the lumbar spine, Gray's Anatomy) and darker than its endplates.
MAX_DROPPED_MM = 3.0


def bridge_dropped_sections(
    mark: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float]
) -> tuple[np.ndarray, int]:
    """Fill sections of the mark left out on a few slices between two marked slices, where the CT is bone.

    A connected region of pixels marked on slices ``k - 1`` and ``k + n`` but on none of the ``n`` slices between
    (``n`` up to :data:`MAX_DROPPED_MM` thick, at least one slice), of at least :data:`MIN_DROPPED_MM2`, is added to
    the mark on those slices when its means on the two marked slices differ by at most :data:`MAX_STEP_HU` and its
    mean on each slice between is no more than :data:`MAX_DARKER_HU` below theirs. A disc is not filled this way:
    it is darker than the endplates marked on both sides of it, and where the mark holds a disc slice on one side,
    the endplate on the other reads far brighter.

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
    filled = np.zeros(mark.shape[0], dtype=bool)
    longest = max(1, int(MAX_DROPPED_MM / float(spacing[0]) + 1e-6))
    for n in range(1, longest + 1):  # the shortest gaps first: a longer one is what they leave
        for k in range(1, mark.shape[0] - n):
            gap = out[k - 1] & out[k + n] & ~out[k : k + n].any(axis=0)
            if np.count_nonzero(gap) < min_pixels:
                continue
            regions, count = ndimage.label(gap)
            sizes = np.bincount(regions.ravel(), minlength=count + 1)
            for r in np.nonzero(sizes >= min_pixels)[0]:
                if r == 0:
                    continue
                where = regions == r
                here = min(float(hu[j][where].mean()) for j in range(k, k + n))
                below, above = float(hu[k - 1][where].mean()), float(hu[k + n][where].mean())
                if abs(above - below) <= MAX_STEP_HU and here >= (below + above) / 2 - MAX_DARKER_HU:
                    if out is mark:
                        out = mark.copy()
                    out[k : k + n] |= where
                    filled[k : k + n] = True
    return out, int(np.count_nonzero(filled))


#: A disc left out of the mark is at least this broad (mm2, projected on the axial plane): a lumbar
#: disc is 1,000-2,000 mm2 (Gray's Anatomy); smaller sets are noise between trabeculae or a facet's cleft.
MIN_DISC_MM2 = 100.0

#: The mark may leave one slice of a disc it otherwise fills unmarked (the slice-by-slice mark is uneven
#: at the disc's edge); a wider gap is a disc the mark already leaves out, with nothing to trim.
MAX_GAP_SLICES = 1


def trim_filled_discs(
    vertebra_map: np.ndarray,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    valley_hu: float,
    max_hu: float,
    side_mm: float,
    metal: np.ndarray | None = None,
    within: np.ndarray | None = None,
    smooth_mm: float = DISC_SMOOTH_MM,
) -> np.ndarray:
    """The voxels of discs that the mark fills between two vertebrae: bool (z, y, x).

    MS-Net, marking each axial slice on its own, fills the interior of the slices through a disc
    inside the ring of the endplates (real CT at 1.5-3 mm slices: 150-1,500 voxels a slice on
    TotalSegmentator's T11-T12 series and the VerSe L2-L4 crop), which no vertebra label holds.
    Along each column of voxels (z at one y, x) where the level split passes from one vertebra to
    the next (directly, or across :data:`MAX_GAP_SLICES` unmarked), the brightest voxel of each
    vertebra within ``side_mm`` of that passage is its endplate; the run of marked voxels through
    the passage that read at least ``valley_hu`` below both endplates and no brighter than
    ``max_hu`` is the disc. Only where two different vertebrae meet, and only through the passage:
    a body flattened by a fracture has both its endplates in one vertebra and keeps its interior
    however dark, and dark trabecular bone beyond an unmarked disc (the mark already leaves that
    disc out) is not reached. Sets of such voxels under :data:`MIN_DISC_MM2` across are left alone.

    Where the split passes at an endplate rather than inside the disc, the disc is not found
    (measured on the realistic phantom with a filled L3-L4 disc: 15 % of the filled voxels left
    out, 1 % of the left-out voxels bone); reaching past the endplate found more of the disc but
    took 8 % bone, so it is not done.

    Parameters
    ----------
    vertebra_map : ndarray
        uint8 (z, y, x): 1 + the index of each marked voxel's vertebra, 0 elsewhere.
    hu : ndarray
        The CT in Hounsfield units, same shape.
    spacing : tuple of float
        (dz, dy, dx) in mm.
    valley_hu, max_hu, side_mm : float
        :class:`~.level_settings.LevelSettings` ``disc_valley_hu``, ``disc_max_hu``, ``disc_side_mm``
        (the same disc that the split looks for inside a core).
    metal : ndarray, optional
        bool (z, y, x): metal and its margin (:func:`~bonescreen.metal.metal_mask`); columns through it
        are not read.
    within : ndarray, optional
        bool (z, y, x): where discs may be (the split's ``body_zone``: near the bodies); where two vertebrae meet
        elsewhere (posterior elements, whose marrow reads darker than their cortex) nothing is taken.
    smooth_mm : float
        In-plane Gaussian (sigma, mm) the CT is read through: :data:`~bonescreen.hu.DISC_SMOOTH_MM`, more on a noisy
        CT (:func:`bonescreen.noise.disc_smoothing_mm`), then over the marked voxels only.

    Returns
    -------
    ndarray
        bool (z, y, x), True on the disc voxels to leave out of the mark.
    """
    trim = np.zeros(vertebra_map.shape, bool)
    marked = vertebra_map > 0
    if vertebra_map.shape[0] < 3 or not marked.any():
        return trim
    nz = vertebra_map.shape[0]
    w = max(1, round(side_mm / spacing[0]))
    under, over = vertebra_map[:-1], vertebra_map[1:]
    ys, xs = np.nonzero(((under > 0) & (over > 0) & (under != over)).any(axis=0))  # where two vertebrae meet
    if ys.size == 0:
        return trim
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad = int(np.ceil(3 * smooth_mm / min(spacing[1:])))
    ya, xa = max(0, y0 - pad), max(0, x0 - pad)
    window = (slice(None), slice(ya, y1 + pad), slice(xa, x1 + pad))
    sigma = (0.0, smooth_mm / spacing[1], smooth_mm / spacing[2])
    if smooth_mm > DISC_SMOOTH_MM:  # a noisy CT's wider smoothing keeps to the mark (the routine one as tuned)
        smooth = smooth_within(hu[window], marked[window], sigma)
    else:
        smooth = ndimage.gaussian_filter(hu[window].astype(np.float32), sigma)
    if metal is not None:
        smooth[metal[window]] = np.nan
    for y, x in zip(ys, xs, strict=True):
        labels = vertebra_map[:, y, x]
        values = smooth[:, y - ya, x - xa]
        if np.isnan(values[labels > 0]).any():  # metal in the column: not read
            continue
        # passages: one vertebra's voxel below the next one's, at most MAX_GAP_SLICES unmarked between
        zs = np.nonzero(labels)[0]
        for i, j in pairwise(zs):
            if labels[i] == labels[j] or j - i > 1 + MAX_GAP_SLICES:
                continue
            low = [k for k in range(max(0, i - w), i + 1) if labels[k] == labels[i]]
            high = [k for k in range(j, min(nz, j + w + 1)) if labels[k] == labels[j]]
            k_low = low[int(np.argmax(values[low]))]
            k_high = high[int(np.argmax(values[high]))]
            ceiling = min(values[k_low] - valley_hu, values[k_high] - valley_hu, max_hu)
            # the disc: the run of dark voxels through the passage, between the two endplates
            if any(values[k] > ceiling for k in range(i + 1, j)):
                continue
            a, b = i + 1, j - 1  # the disc's lowest and highest voxels, grown from the passage
            while a - 1 > k_low and labels[a - 1] > 0 and values[a - 1] <= ceiling:
                a -= 1
            while b + 1 < k_high and labels[b + 1] > 0 and values[b + 1] <= ceiling:
                b += 1
            trim[a : b + 1, y, x] = True
    if within is not None:
        trim &= within
    regions, n = ndimage.label(trim, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return trim
    min_columns = MIN_DISC_MM2 / float(spacing[1] * spacing[2])
    keep = np.zeros(n + 1, bool)
    for r, box in enumerate(ndimage.find_objects(regions), start=1):
        columns = np.count_nonzero((regions[box] == r).any(axis=0))
        keep[r] = columns >= min_columns
    return keep[regions] & marked  # not the unmarked gap
