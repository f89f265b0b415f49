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

from collections.abc import Callable

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


def grow_box(box: tuple[slice, ...], reach_mm: float, spacing, shape) -> tuple[slice, ...]:
    """``box`` (slices of an array of ``shape``) grown by ``reach_mm`` (mm) on every side along every axis, clipped.

    Every voxel within ``reach_mm`` (Euclidean, mm) of a voxel in ``box`` lies in the grown box, so a distance
    transform read in it is exact up to ``reach_mm`` (and at least ``reach_mm`` beyond).
    """
    grow = [int(np.ceil(reach_mm / d)) for d in spacing]
    return tuple(slice(max(b.start - g, 0), min(b.stop + g, size)) for b, g, size in zip(box, grow, shape, strict=True))


def label_centres(labels: np.ndarray, ids) -> list[tuple[float, ...]]:
    """Centre of mass (fractional voxel indices) of each of ``ids`` in an integer label map, as
    ``ndimage.center_of_mass(labels > 0, labels, ids)`` gives them (NaN for an id absent), each read in the id's own
    box (:func:`scipy.ndimage.find_objects`) rather than over the whole map once per call (seconds per call on a
    735-slice CT)."""
    ids = [int(v) for v in ids]
    boxes = ndimage.find_objects(labels, max_label=max(ids, default=0))
    out = []
    for v in ids:
        box = boxes[v - 1] if 0 < v <= len(boxes) else None
        if box is None:
            out.append(tuple(float("nan") for _ in labels.shape))
            continue
        centre = ndimage.center_of_mass(labels[box] == v)
        out.append(tuple(float(c + b.start) for c, b in zip(centre, box, strict=True)))
    return out


def within_mm(mask: np.ndarray, reach_mm: float, spacing) -> np.ndarray:
    """bool, the shape of ``mask`` (3-D bool): the voxels within ``reach_mm`` (mm, Euclidean) of a voxel of ``mask``.

    The distance transform is read only in the box of ``mask`` grown by ``reach_mm`` (:func:`grow_box`), not over
    the whole array (a 735-slice CT's box took seconds and gigabytes per transform).
    """
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask)
    if box is None:
        return out
    window = grow_box(box, reach_mm, spacing, mask.shape)
    out[window] = ndimage.distance_transform_edt(~mask[window], sampling=spacing) <= reach_mm
    return out


def _each_slice_edt(
    background_is_zero: np.ndarray, spacing_yx: tuple[float, float], use: Callable[[int, np.ndarray], None]
) -> None:
    """Call ``use(k, distance)`` with each slice's distance (mm) to the nearest zero of that slice.

    ``distance`` is inf everywhere on a slice without zeros. Contiguous runs of slices go to the cores
    in parallel (scipy's transform releases the GIL); ``use`` keeps what it needs of each transform,
    so no float volume is held (allocating one costs more than the transforms on large masks).
    """

    def run(part: slice) -> None:
        for k in range(part.start, part.stop):
            plane = background_is_zero[k]
            if plane.all():
                use(k, np.full(plane.shape, np.inf))
            else:
                use(k, ndimage.distance_transform_edt(plane, sampling=spacing_yx))

    thread_map(run, split_range(len(background_is_zero)))


def _padded(mask: np.ndarray) -> np.ndarray:
    """``mask`` as bool with one pixel of background around each slice (the array's edge is outside)."""
    return np.pad(np.asarray(mask, dtype=bool), ((0, 0), (1, 1), (1, 1)))


def inplane_edt(mask: np.ndarray, spacing_yx: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Per slice, the distance (mm) of each mask pixel to the nearest pixel outside it (0 outside).

    Pixels beyond the array's edge count as outside the mask.
    """
    out = np.empty(mask.shape)

    def keep(k: int, dist: np.ndarray) -> None:
        out[k] = dist[1:-1, 1:-1]

    _each_slice_edt(_padded(mask), spacing_yx, keep)
    return out


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
    z0, r0, c0 = box[0].start, box[1].start - 1, box[2].start - 1  # -1: the padding

    def deepest(k: int, dist: np.ndarray) -> None:
        i = int(dist.argmax())  # the zero border never wins, and raster order is the unpadded one's
        if dist.flat[i] > 0:
            radius[z0 + k] = dist.flat[i]
            row, col = divmod(i, dist.shape[1])
            centres[z0 + k] = (row + r0, col + c0)

    _each_slice_edt(_padded(mask[box]), spacing_yx, deepest)
    return radius, centres


def inscribed_radius(mask: np.ndarray, spacing_yx: tuple[float, float]) -> np.ndarray:
    """Per slice, the radius in mm of the largest disc inside ``mask`` (0 for empty slices)."""
    return deepest_points(mask, spacing_yx)[0]


def _eroded(mask: np.ndarray, radius_mm: float, spacing_yx: tuple[float, float]) -> np.ndarray:
    out = np.empty(mask.shape, dtype=bool)

    def threshold(k: int, dist: np.ndarray) -> None:
        out[k] = dist[1:-1, 1:-1] > radius_mm

    _each_slice_edt(_padded(mask), spacing_yx, threshold)
    return out


def central_part(mask: np.ndarray, fraction: float, min_depth_mm: float, spacing_yx: tuple[float, float]) -> np.ndarray:
    """Per slice, the voxels of ``mask`` at least ``max(min_depth_mm, fraction x the slice's deepest)`` mm
    from its edge (z, y, x boolean): the middle of each cross-section, its outline's shape scaled down
    (a thin appendage such as a pedicle, whose depth is far under the middle's, keeps nothing)."""
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return out
    part = out[box]  # a view: filled slice by slice

    def keep(k: int, dist: np.ndarray) -> None:
        dist = dist[1:-1, 1:-1]
        deepest = float(dist.max())
        if np.isfinite(deepest) and deepest > 0:
            part[k] = dist >= max(min_depth_mm, fraction * deepest)

    _each_slice_edt(_padded(mask[box]), spacing_yx, keep)
    return out


def open_(mask: np.ndarray, radius_mm: float, spacing_yx: tuple[float, float]) -> np.ndarray:
    """In-plane opening of ``mask`` by a disc of ``radius_mm`` (erosion, then dilation)."""
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return out
    eroded = _eroded(mask[box], radius_mm, spacing_yx)
    if eroded.any():
        opened = out[box]  # a view: filled slice by slice

        def dilate(k: int, dist: np.ndarray) -> None:
            opened[k] = dist <= radius_mm

        _each_slice_edt(~eroded, spacing_yx, dilate)
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


def bone_outline(
    mask: np.ndarray,
    hu: np.ndarray,
    threshold_hu: float,
    spacing_yx: tuple[float, float],
    close_mm: float,
    smooth_mm: float,
    margin_mm: float,
    edge_share: float,
) -> np.ndarray:
    """Per slice, ``mask`` without the rim of it that lies outside the bone's outline (z, y, x boolean).

    On each slice the CT, smoothed in-plane by a Gaussian of ``smooth_mm`` (noise), is thresholded at
    ``threshold_hu`` within ``close_mm`` of the section (a mask may leave out a stretch of the shell). The
    bright pixels (the cortical shell, and trabecular bone dense enough) are closed in-plane by a disc of
    ``close_mm`` (gaps in a thin shell, a vein's foramen) and their holes filled: the outline of the bone,
    inside which lies the marrow however dark it reads. Of the section (its holes kept: a body map may
    hold the arch round the spinal canal), the pixels outside the bone's outline *and* within ``margin_mm``
    of the section's edge are left out: a mask drawn that far outside the cortex. Deeper pixels stay
    whatever the CT shows, so a shell that does not close (too thin or too dark to trace) costs at most that
    band, never the marrow; and a slice whose edge lies outside the bone's outline for under ``edge_share``
    of its length is left whole (a mask drawn on the bone, whose shell may be open in places).

    Parameters
    ----------
    mask : ndarray
        bool (z, y, x): a body map's sections, which may run outside the bone (a hand-drawn label).
    hu : ndarray
        The CT in Hounsfield units, same shape.
    threshold_hu : float
        HU above which a smoothed pixel is bone (between soft tissue and cortex).
    spacing_yx : tuple of float
        (dy, dx) in mm.
    close_mm, smooth_mm, margin_mm : float
        Radius of the closing disc, SD of the smoothing Gaussian, and the widest rim left out, mm.
    edge_share : float
        Least share of a section's edge outside the bone's outline for its rim to be left out.

    Returns
    -------
    ndarray
        bool (z, y, x): per slice, the section less its rim outside the bone (a subset of ``mask``).
    """
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return out
    pad = max(1, int(np.ceil(close_mm / min(spacing_yx)))) + 1
    sections = np.pad(np.asarray(mask[box], dtype=bool), ((0, 0), (pad, pad), (pad, pad)))
    ct = np.pad(np.asarray(hu[box], dtype=np.float32), ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    sigma = (smooth_mm / spacing_yx[0], smooth_mm / spacing_yx[1])
    ry, rx = close_mm / spacing_yx[0], close_mm / spacing_yx[1]
    hy, hx = int(np.floor(ry)), int(np.floor(rx))
    yy, xx = np.mgrid[-hy : hy + 1, -hx : hx + 1]
    disc = (yy / max(ry, 1e-6)) ** 2 + (xx / max(rx, 1e-6)) ** 2 <= 1.0
    part = out[box]  # a view: filled slice by slice

    def trim(k: int) -> None:
        section = sections[k]
        if not section.any():
            return
        near = ndimage.binary_dilation(section, structure=disc)
        bright = near & (ndimage.gaussian_filter(ct[k], sigma) >= threshold_hu)
        bone = ndimage.binary_fill_holes(ndimage.binary_closing(bright, structure=disc))
        edge = section & ~ndimage.binary_erosion(section)
        if np.count_nonzero(edge & ~bone) < edge_share * np.count_nonzero(edge):
            part[k] = section[pad:-pad, pad:-pad]  # the section's edge is mostly on the bone: a mask on the bone
            return
        # the section's holes stay holes (a body map may hold the arch round the spinal canal)
        rim = section & (ndimage.distance_transform_edt(section, sampling=spacing_yx) <= margin_mm)
        part[k] = (section & ~(rim & ~bone))[pad:-pad, pad:-pad]

    thread_map(lambda r: [trim(k) for k in range(r.start, r.stop)], split_range(part.shape[0]))
    return out
