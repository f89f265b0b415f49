"""Metal in the CT: pedicle screws, rods, cages, and the streaks around them.

Compact bone stays below about 2000 HU at 80-140 kVp (cortex of long bones, 1800-2000
HU at 120 kVp); titanium reads about 3000 HU and steel or cobalt-chromium saturate
the 12-bit scale at 3071 HU (Boas and Fleischmann, Imaging Med 2012;4:229). Voxels
above :data:`METAL_HU` are metal; within :data:`METAL_MARGIN_MM` of it the CT is
streaked and blurred (the same source) and is not read as anatomy either.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Lowest HU taken for metal.
METAL_HU = 2500.0
#: In-plane margin (mm) around metal that is left out with it (blooming and the brightest streaks).
METAL_MARGIN_MM = 3.0
#: Soft-tissue HU written over metal and its margin where the level split looks for ribs and the pelvis.
SOFT_TISSUE_HU = 40.0


def metal_mask(hu: np.ndarray, spacing: tuple[float, float, float], margin_mm: float = METAL_MARGIN_MM) -> np.ndarray:
    """Boolean (z, y, x) mask of metal and the in-plane margin around it.

    Parameters
    ----------
    hu : ndarray
        (z, y, x) Hounsfield units.
    spacing : tuple of float
        (dz, dy, dx) in mm.
    margin_mm : float
        In-plane dilation (mm).
    """
    metal = hu > METAL_HU
    if not metal.any() or margin_mm <= 0:
        return metal
    ry, rx = (max(1, round(margin_mm / s)) for s in spacing[1:])
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    disc = (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2 <= margin_mm**2
    ks = np.nonzero(metal.any(axis=(1, 2)))[0]
    out = np.zeros_like(metal)
    for k in ks:
        out[k] = ndimage.binary_dilation(metal[k], disc)
    return out


def without_metal(hu: np.ndarray, metal: np.ndarray) -> np.ndarray:
    """``hu`` with metal and its margin read as soft tissue (:data:`SOFT_TISSUE_HU`); ``hu`` itself if no metal."""
    if not metal.any():
        return hu
    out = hu.copy()
    out[metal] = SOFT_TISSUE_HU
    return out
