"""In-plane (per axial slice) morphology on (z, y, x) masks, computed on the mask's bounding box.

Every function treats each slice on its own (2-D Euclidean distance transforms,
one per slice; a single 3-D transform with a huge z sampling gives the same
numbers but is about ten times slower). Working on the mask's bounding box
keeps the cost proportional to the mask, not to the 512x512 slices.

Erosion and opening by a disc of radius ``r`` mm are thresholds of distance
transforms: a pixel survives erosion when its nearest background pixel is
farther than ``r``; the opening is the set of pixels within ``r`` of an eroded
pixel. These equal scipy's binary erosion/opening with a disc structuring
element of that radius (pixels inside the disc ``dy**2 + dx**2 <= r**2``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .threads import split_range, thread_map


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice, slice] | None:
    """Slices of the smallest (z, y, x) box holding the non-zero voxels of ``mask``, or None if there are none.

    The box is grown in-plane by ``margin`` pixels (clipped to the array), not along z.
    """
    nz, ny, nx = mask.shape
    zs = np.flatnonzero(mask.reshape(nz, -1).any(axis=1))
    if zs.size == 0:
        return None
    sub = mask[zs[0] : zs[-1] + 1]
    ys = np.flatnonzero(sub.any(axis=(0, 2)))
    xs = np.flatnonzero(sub.any(axis=(0, 1)))
    return (
        slice(int(zs[0]), int(zs[-1]) + 1),
        slice(max(int(ys[0]) - margin, 0), min(int(ys[-1]) + 1 + margin, ny)),
        slice(max(int(xs[0]) - margin, 0), min(int(xs[-1]) + 1 + margin, nx)),
    )


def _slice_edt(background_is_zero: np.ndarray, spacing_yx: tuple[float, float]) -> np.ndarray:
    """Per-slice distance (mm) to the nearest zero of the same slice; inf where a slice has none."""
    dist = np.full(background_is_zero.shape, np.inf)

    def run(part: slice) -> None:
        for k in range(part.start, part.stop):
            plane = background_is_zero[k]
            if not plane.all():
                dist[k] = ndimage.distance_transform_edt(plane, sampling=spacing_yx)

    # scipy's transform releases the GIL: contiguous runs of slices go to the cores in parallel
    thread_map(run, split_range(len(background_is_zero)))
    return dist


def inplane_edt(mask: np.ndarray, spacing_yx: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Per slice, the distance (mm) of each mask pixel to the nearest pixel outside it (0 outside).

    Pixels beyond the array's edge count as outside the mask.
    """
    padded = np.pad(np.asarray(mask, dtype=bool), ((0, 0), (1, 1), (1, 1)))
    return _slice_edt(padded, spacing_yx)[:, 1:-1, 1:-1]


def deepest_points(mask: np.ndarray, spacing_yx: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per slice, the largest disc inside ``mask``: its radius in mm and its centre (row, col).

    Returns
    -------
    radius : ndarray
        (z,) radii; 0 for empty slices.
    centres : ndarray
        (z, 2) integer row and column of the deepest pixel (the first in raster order on ties);
        (0, 0) for empty slices.
    """
    radius = np.zeros(mask.shape[0])
    centres = np.zeros((mask.shape[0], 2), dtype=int)
    box = bounding_box(mask)
    if box is None:
        return radius, centres
    # the transform of the padded box, searched as it is (its zero border never wins): no copy of a strided view
    padded = np.pad(np.asarray(mask[box], dtype=bool), ((0, 0), (1, 1), (1, 1)))
    flat = _slice_edt(padded, spacing_yx).reshape(padded.shape[0], -1)
    deepest = flat.argmax(axis=1)
    depth = flat[np.arange(flat.shape[0]), deepest]
    rows, cols = np.unravel_index(deepest, padded.shape[1:])
    found = np.stack([rows - 1 + box[1].start, cols - 1 + box[2].start], axis=1)
    radius[box[0]] = depth
    centres[box[0]] = np.where((depth > 0)[:, None], found, 0)
    return radius, centres


def inscribed_radius(mask: np.ndarray, spacing_yx: tuple[float, float]) -> np.ndarray:
    """Per slice, the radius in mm of the largest disc inside ``mask`` (0 for empty slices)."""
    return deepest_points(mask, spacing_yx)[0]


def erode(mask: np.ndarray, radius_mm: float, spacing_yx: tuple[float, float]) -> np.ndarray:
    """In-plane erosion of ``mask`` by a disc of ``radius_mm``."""
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask)
    if box is not None:
        out[box] = inplane_edt(mask[box], spacing_yx) > radius_mm
    return out


def open_(mask: np.ndarray, radius_mm: float, spacing_yx: tuple[float, float]) -> np.ndarray:
    """In-plane opening of ``mask`` by a disc of ``radius_mm`` (erosion, then dilation)."""
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return out
    eroded = inplane_edt(mask[box], spacing_yx) > radius_mm
    if eroded.any():
        out[box] = _slice_edt(~eroded, spacing_yx) <= radius_mm
    return out


def thickest_piece(mask: np.ndarray, spacing_yx: tuple[float, float]) -> np.ndarray:
    """Per slice, the 8-connected piece of ``mask`` that holds its deepest pixel (largest inscribed disc)."""
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return out
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # connectivity within a slice only
    pieces, _ = ndimage.label(mask[box], structure=structure)
    radius, centres = deepest_points(mask[box], spacing_yx)
    ks = np.flatnonzero(radius > 0)
    out[box] = np.isin(pieces, pieces[ks, centres[ks, 0], centres[ks, 1]])
    return out
