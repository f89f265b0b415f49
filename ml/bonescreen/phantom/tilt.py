"""A phantom's axial DICOM series re-acquired with the gantry tilted, to test and measure reading such series.

A scanner with a tilted gantry images planes tilted about the patient's left-right axis and stacks them along the
table: ImagePositionPatient moves along z only, ImageOrientationPatient's column direction tilts by the angle
(GantryDetectorTilt). Here each plane is sampled from a reference CT of the same patient (linear interpolation of
HU, averaged over the slice's thickness when asked; nearest for labels) and written as a copy of the axial image
it replaces, with the tilted geometry.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
from scipy import ndimage

from ..io.volume import CTVolume, labels_onto_grid


def _world_to_voxel(affine: np.ndarray, ras: np.ndarray) -> np.ndarray:
    """(n, 3) RAS mm -> (3, n) (z, y, x) voxel coordinates of a volume with (x, y, z) -> RAS ``affine``."""
    xyz = (np.linalg.inv(affine) @ np.c_[ras, np.ones(len(ras))].T)[:3]
    return xyz[::-1]


def write_tilted_series(
    axial: str | os.PathLike,
    reference: CTVolume,
    levels: np.ndarray,
    out: str | os.PathLike,
    tilt_deg: float,
    thickness_mm: float | None = None,
) -> np.ndarray:
    """Write ``axial``'s series as if acquired with the gantry tilted by ``tilt_deg`` (degrees).

    Parameters
    ----------
    axial : path
        A folder of one axial DICOM series, one file per slice (:func:`~bonescreen.phantom.write.write_dicom_series`):
        the template of each plane (its tags, its centre along the table).
    reference : CTVolume
        The CT sampled (:func:`bonescreen.io.load_ct`): HU (z, y, x) and its affine, that series or a finer one of
        the same patient.
    levels : ndarray
        Labels on ``reference``'s grid (z, y, x), sampled onto the tilted planes.
    out : path
        The new folder (created): one file per axial file, same names, each plane centred where its axial one was.
    tilt_deg : float
        The tilt about the patient's left-right axis; planes beyond the reference's range read air (-1024 HU).
    thickness_mm : float, optional
        Each plane's HU the mean over this thickness along its normal (planes ``reference``'s slice spacing apart),
        as a scanner's slice integrates its slab: from a finer reference, a slice as thick as the axial series' is
        made without the blur of interpolating between thick slices. By default the plane itself (linear
        interpolation).

    Returns
    -------
    ndarray
        ``levels`` sampled (nearest) on each written plane, (k, rows, columns) in file order.
    """
    out = Path(out)
    out.mkdir(parents=True)
    t = np.radians(tilt_deg)
    row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(t), np.sin(t)])  # LPS
    normal = np.cross(row, col)
    files = sorted(Path(axial).iterdir())
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    ny, nx = int(first.Rows), int(first.Columns)
    dy, dx = (float(v) for v in first.PixelSpacing)
    x0, y0 = (float(v) for v in first.ImagePositionPatient[:2])
    r, c = np.mgrid[0:ny, 0:nx]
    n_sub = 1 if thickness_mm is None else max(1, round(thickness_mm / reference.spacing[0]))
    offsets = [0.0] if n_sub == 1 else ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * thickness_mm  # sub-plane centres
    truths = []
    for f in files:
        ds = pydicom.dcmread(f)
        z = float(ds.ImagePositionPatient[2]) - (ny - 1) / 2 * dy * np.sin(t)  # the plane's centre at the axial's z
        corner = np.array([x0, y0 + (ny - 1) / 2 * dy * (1 - np.cos(t)), z])
        lps = corner + (c.reshape(-1, 1) * dx) * row + (r.reshape(-1, 1) * dy) * col
        to_ras = np.array([-1.0, -1.0, 1.0])
        hu = np.zeros(ny * nx)
        for offset in offsets:  # the slab's planes along the normal
            at = _world_to_voxel(reference.affine, (lps + offset * normal) * to_ras)
            hu += ndimage.map_coordinates(reference.hu, at, order=1, cval=-1024.0)
        hu = (hu / len(offsets)).reshape(ny, nx)
        at = _world_to_voxel(reference.affine, lps * to_ras)
        truths.append(ndimage.map_coordinates(levels, at, order=0, cval=0).reshape(ny, nx))
        ds.ImageOrientationPatient = [*row.tolist(), *[round(v, 6) for v in col]]
        ds.ImagePositionPatient = [round(v, 4) for v in corner]
        ds.GantryDetectorTilt = tilt_deg
        ds.PixelData = (np.rint(hu).astype(np.int32) + 1024).astype(np.int16).tobytes()
        ds.save_as(out / f.name)
    return np.stack(truths)


def levels_on_grid(volume: CTVolume, reference: CTVolume, *arrays: np.ndarray) -> list[np.ndarray]:
    """Arrays on ``reference``'s grid sampled (nearest; 0 outside it) at the voxels of ``volume``'s grid.

    Returns one (z, y, x) uint8 array per array given (:func:`bonescreen.io.volume.labels_onto_grid`).
    """
    return [
        labels_onto_grid(np.asarray(a).astype(np.uint8, copy=False), reference.affine, volume.affine, volume.shape)
        for a in arrays
    ]


def seg_levels_on_images(seg_path: str | os.PathLike, files: list[str | os.PathLike]) -> np.ndarray:
    """The lumbar levels a DICOM SEG holds on each of a series' images, read frame by frame with highdicom.

    For checking a SEG against the truth on the series' own images (:func:`write_tilted_series` returns it) without
    BoneScreen's grids: each image's frames are looked up by its SOPInstanceUID.

    Parameters
    ----------
    seg_path : path
        The DICOM SEG (segments labelled L1-L5).
    files : list of path
        The series' images, in the order of the rows of the result.

    Returns
    -------
    ndarray
        uint8 (k, rows, columns): 1-5 for L1-L5, 0 where no segment has a frame.
    """
    import highdicom as hd

    seg = hd.seg.segread(seg_path)
    heads = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    out = np.zeros((len(heads), int(heads[0].Rows), int(heads[0].Columns)), np.uint8)
    for number in seg.segment_numbers:
        level = {"L1": 1, "L2": 2, "L3": 3, "L4": 4, "L5": 5}[seg.get_segment_description(number).SegmentLabel]
        for k, ds in enumerate(heads):
            try:
                frame = seg.get_pixels_by_source_instance([ds.SOPInstanceUID], segment_numbers=[number])[0, :, :, 0]
            except (ValueError, KeyError, IndexError):  # no frame of this segment on that image
                continue
            out[k][frame > 0] = level
    return out
