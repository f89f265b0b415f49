"""The CT volume type shared by all of BoneScreen, and its orientation convention."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from ..errors import BoneScreenError, check_number

#: Axis codes (nibabel, RAS world) of the array in (x, y, z) index order after loading:
#: x (columns) runs patient right -> left, y (rows) anterior -> posterior, z inferior -> superior.
TARGET_AXCODES = ("L", "P", "S")

#: Lowest HU kept: outside-FOV padding (-3024, -2048) and anything below air becomes air.
AIR_HU = -1024.0


#: How the flag of a volume read without orientation begins (:attr:`CTVolume.flags`).
ORIENTATION_UNKNOWN = "orientation unknown"
#: Voxel sizes (mm, any axis) that CT has: 0.2-1 mm pixels and 0.5-10 mm slices clinically, with room on both
#: sides (micro-CT of specimens, thick old slabs). Outside it the affine is in the wrong unit or scaled (a file
#: written in cm reads 10x too small, one scaled by 1000 asked for a 2 TiB grid and failed with a traceback).
VOXEL_MM_RANGE = (0.05, 20.0)
#: Image axes more than this (degrees) off the patient's are flagged: BoneScreen reads the nearest patient axes
#: without resampling, so such slices are read as axial while they are oblique (a reformat, a tilted stack).
OBLIQUE_FLAG_DEG = 10.0


def flagged_orientation_unknown(flags: list[str]) -> bool:
    """Whether reading flags (:attr:`CTVolume.flags`, a napari layer's) say the orientation is unknown."""
    return any(f.startswith(ORIENTATION_UNKNOWN) for f in flags)


#: A voxel size within this many float32 steps of a value with at most :data:`SPACING_DECIMALS` decimals (mm) is that
#: value: a float32 affine (every NIfTI) turned off the axes gives 3.0000002 or 2.9999998 mm for a 3 mm grid, and the
#: mm rules of the split and the ROIs meet exact multiples of the voxel size (a 6 mm opening on 3 mm pixels): one
#: float32 step changed L1's trabecular ROI from 551 to 1,174 voxels and its HU from 123.9 to 111.6 (helper-96).
SPACING_SNAP_STEPS = 4
SPACING_DECIMALS = 6


def snap_spacing(spacing) -> tuple[float, float, float]:
    """(dz, dy, dx) voxel size in mm with float32 rounding taken out.

    Each size becomes the value with the fewest decimals (up to :data:`SPACING_DECIMALS`) within
    :data:`SPACING_SNAP_STEPS` float32 steps of it, so that the same voxels stored with a float32 or a rotated affine
    are measured alike; a size with no such value is kept (0.9765625 mm stays).
    """
    out = []
    for d in spacing:
        d = float(d)
        reach = SPACING_SNAP_STEPS * float(np.spacing(np.float32(abs(d))))
        near = [r for n in range(SPACING_DECIMALS + 1) if abs(d - (r := round(d, n))) <= reach]
        out.append(near[0] if near and near[0] > 0 else d)
    return tuple(out)


@dataclass
class CTVolume:
    """A CT volume in BoneScreen's convention (DESIGN.md).

    Attributes
    ----------
    hu : ndarray
        float32 (z, y, x) Hounsfield units; axial slices with rows anterior ->
        posterior and columns patient right -> left; z inferior -> superior.
    spacing : tuple of float
        (dz, dy, dx) in mm.
    affine : ndarray
        4x4 matrix from (x, y, z) voxel indices (column, row, slice) to RAS mm,
        as in NIfTI.
    source : SourceGrid
        What is needed to write labels back onto the file's own grid.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    source: SourceGrid
    description: str = ""
    #: What the reader did that the user should know (images skipped, tags repaired); shown, not doubts.
    notes: list[str] = field(default_factory=list)
    #: Doubts about the input that may make the result wrong (orientation unknown, positions from
    #: SliceLocation, HU corrected); every one marks the result uncertain with its reason.
    flags: list[str] = field(default_factory=list)
    #: What the header says of the acquisition, under DICOM attribute keywords: ``KVP`` (tube voltage, kV)
    #: and ``ContrastBolusAgent`` when the DICOM series or a NIfTI's JSON sidecar (dcm2niix, BIDS) gives
    #: them; the internal density calibration (:mod:`bonescreen.density`) reads them.
    acquisition: dict = field(default_factory=dict)

    @property
    def orientation_unknown(self) -> bool:
        """True when the file stated no orientation (a NIfTI without qform and sform: :data:`ORIENTATION_UNKNOWN`)."""
        return flagged_orientation_unknown(self.flags)

    def __post_init__(self) -> None:
        if np.ndim(self.hu) != 3:
            raise BoneScreenError(f"a CT volume is 3-D (z, y, x), got an array of shape {np.shape(self.hu)}")
        if len(self.spacing) != 3:
            raise BoneScreenError(f"spacing is (dz, dy, dx) in mm, got {self.spacing!r}")
        for name, value in zip(("dz", "dy", "dx"), self.spacing, strict=True):
            check_number(f"spacing {name} (mm)", float(value), 0.0, low_open=True)
        self.spacing = snap_spacing(self.spacing)  # float32 rounding of the affine is not a voxel size
        if np.shape(self.affine) != (4, 4):
            raise BoneScreenError(f"the affine is a 4x4 matrix, got shape {np.shape(self.affine)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(z, y, x) shape."""
        return tuple(self.hu.shape)

    def to_source(self, labels: np.ndarray) -> np.ndarray:
        """Bring a (z, y, x) label map back to the source array's (i, j, k) order."""
        return self.source.to_source(labels)

    def from_source(self, labels_ijk: np.ndarray) -> np.ndarray:
        """Bring an (i, j, k) array on the source grid into this volume's (z, y, x) order."""
        return self.source.from_source(labels_ijk)

    @property
    def nifti_grid(self) -> tuple[np.ndarray, tuple[int, int, int]]:
        """The (i, j, k) -> RAS affine and shape of the grid label NIfTI files are written on and read from.

        The source's own grid, except for a gantry-tilted DICOM series (:attr:`SourceGrid.slice_shift`): its
        sheared affine is refused by ITK-based tools (3D Slicer, ITK-SNAP: "ITK only supports orthonormal direction
        cosines"; helper-87), so its labels lie on the orthogonal grid it was read onto, in (x, y, z) order.
        """
        if self.source.slice_shift is None:
            return self.source.affine, tuple(self.source.shape)
        return self.affine, tuple(self.shape[::-1])

    def to_nifti(self, labels: np.ndarray) -> np.ndarray:
        """A (z, y, x) label map as an (i, j, k) array on :attr:`nifti_grid`."""
        if self.source.slice_shift is None:
            return self.to_source(labels)
        return np.asarray(labels).transpose(2, 1, 0)

    def from_nifti(self, labels_ijk: np.ndarray) -> np.ndarray:
        """An (i, j, k) array on :attr:`nifti_grid` in this volume's (z, y, x) order."""
        if self.source.slice_shift is None:
            return self.from_source(labels_ijk)
        return np.ascontiguousarray(np.asarray(labels_ijk).transpose(2, 1, 0))


def acquisition_fields(header) -> dict:
    """``KVP`` (float, kV) and ``ContrastBolusAgent`` (str) of a header keyed by DICOM keywords.

    ``header`` is a pydicom Dataset or a dict (a dcm2niix / BIDS JSON sidecar); values that are
    missing, empty, not a number or not positive are left out.
    """
    out: dict = {}
    try:
        kvp = float(header.get("KVP", None) or 0.0)
    except (TypeError, ValueError):  # a damaged or non-numeric KVP says nothing
        kvp = 0.0
    if kvp > 0:
        out["KVP"] = kvp
    agent = header.get("ContrastBolusAgent", None)
    if agent is not None and str(agent).strip():
        out["ContrastBolusAgent"] = str(agent).strip()
    return out


@dataclass
class SourceGrid:
    """The file's own voxel grid and the flips/permutation that led to :class:`CTVolume`.

    Attributes
    ----------
    kind : str
        ``dicom`` or ``nifti``.
    path : Path
        The file or folder read.
    shape : tuple of int
        Source array shape in (i, j, k) order (for DICOM: column, row, slice
        sorted along the slice normal).
    affine : ndarray
        Source (i, j, k) -> RAS mm.
    transform : ndarray
        nibabel orientation transform from the source array to (x, y, z) in
        :data:`TARGET_AXCODES`.
    dicom_files : list of Path
        DICOM only: the instance files in source slice order (k).
    dicom : dict
        DICOM only: study/series/frame-of-reference UIDs and series number.
    identifiers : tuple of str
        DICOM only: the patient's name parts and IDs, which no note or record repeats.
    slice_shift : tuple of float, optional
        A gantry-tilted DICOM series only: source slice ``k`` lies moved by ``round(k * s)`` voxels
        along (i, j) on the orthogonal grid the volume was read onto (:func:`shift_slices`); ``affine``
        stays the source's own, sheared one.
    """

    kind: str
    path: Path
    shape: tuple[int, int, int]
    affine: np.ndarray
    transform: np.ndarray
    dicom_files: list[Path] = field(default_factory=list)
    dicom: dict = field(default_factory=dict)
    #: DICOM only: the patient's name parts and IDs, kept out of notes and records (:mod:`bonescreen.io.identifiers`)
    identifiers: tuple[str, ...] = field(default=(), repr=False)
    slice_shift: tuple[float, float] | None = None
    #: NIfTI only: the file's own geometry, ``qform`` and ``sform`` (4x4, or None) with their codes and ``zooms``
    #: (pixdim, mm), which label maps written for it repeat, so that every viewer lays them over the CT as it lays
    #: the CT (helper-96: a file without qform and sform got labels with nibabel's axes stated as if the file's; a
    #: qform that disagreed with the sform was dropped from them)
    nifti_geometry: dict | None = None

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """(i, j, k) shape of the grid the volume was read onto: the source's, grown by a tilted series' shear."""
        if self.slice_shift is None:
            return tuple(self.shape)
        _, grow_i, grow_j = slice_offsets(self.shape[2], self.slice_shift)
        return (self.shape[0] + grow_i, self.shape[1] + grow_j, self.shape[2])

    def to_source(self, zyx: np.ndarray) -> np.ndarray:
        """(z, y, x) array -> source (i, j, k) array (a tilted series' slices moved back: labels, whole voxels)."""
        xyz = np.asarray(zyx).transpose(2, 1, 0)
        back = ornt_transform(axcodes2ornt(TARGET_AXCODES), io_orientation(self.affine))
        ijk = apply_orientation(xyz, back)
        if self.slice_shift is None:
            return ijk
        return shift_slices(ijk, self.slice_shift, 0, inverse=True, shape=self.shape[:2])

    def from_source(self, ijk: np.ndarray) -> np.ndarray:
        """Source (i, j, k) array -> (z, y, x) array (a tilted series' slices moved onto the orthogonal grid)."""
        ijk = np.asarray(ijk)
        if self.slice_shift is not None:
            ijk = shift_slices(ijk, self.slice_shift, 0)
        return np.ascontiguousarray(apply_orientation(ijk, self.transform).transpose(2, 1, 0))


def slice_offsets(n: int, shift: tuple[float, float]) -> tuple[np.ndarray, int, int]:
    """Whole-voxel (i, j) offsets of slices ``0..n-1`` moved by ``round(k * shift)``, and the grid's growth in i and j.

    Returns
    -------
    (ndarray, int, int)
        (n, 2) int offsets, non-negative (the grid grows so that no slice leaves it), and how many voxels
        the grid grows along i and along j.
    """
    steps = np.rint(np.arange(n)[:, None] * np.asarray(shift, dtype=float)[None, :]).astype(int)
    low = steps.min(axis=0)
    offsets = steps - low
    return offsets, int(offsets[:, 0].max()), int(offsets[:, 1].max())


def shift_slices(
    ijk: np.ndarray,
    shift: tuple[float, float],
    fill: float,
    inverse: bool = False,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Move slice ``k`` of an (i, j, k) array by ``round(k * shift)`` whole voxels in (i, j): a gantry tilt's shear.

    Slices of a series acquired with the gantry tilted lie moved in-plane against each other along the
    table's motion; moved back by whole voxels they stack on a grid orthogonal to the slices (the volume's
    grid). Whole voxels, not interpolated: HU are kept as measured and labels go back and forth exactly;
    the slices' placement is then within half a voxel.

    Parameters
    ----------
    ijk : ndarray
        (i, j, k) array: the source's slices, or with ``inverse`` the orthogonal grid's.
    shift : tuple of float
        (i, j) voxels per slice (:attr:`SourceGrid.slice_shift`).
    fill : float
        Value of the voxels no source slice covers (air, -1024 HU, for a CT; 0 for labels).
    inverse : bool
        From the orthogonal grid back to the source's slices, whose in-plane ``shape`` (i, j) is then given.

    Returns
    -------
    ndarray
        The moved array: on the grid grown by the slices' spread (forward), or of the source's in-plane shape.
    """
    n = ijk.shape[2]
    offsets, grow_i, grow_j = slice_offsets(n, shift)
    if inverse:
        ni, nj = shape
        out = np.empty((ni, nj, n), dtype=ijk.dtype)
        for k, (oi, oj) in enumerate(offsets):
            out[:, :, k] = ijk[oi : oi + ni, oj : oj + nj, k]
        return out
    ni, nj = ijk.shape[:2]
    out = np.full((ni + grow_i, nj + grow_j, n), fill, dtype=ijk.dtype)
    for k, (oi, oj) in enumerate(offsets):
        out[oi : oi + ni, oj : oj + nj, k] = ijk[:, :, k]
    return out


def reorient(data_ijk: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reorient an (i, j, k) array to BoneScreen's convention.

    Returns
    -------
    (ndarray, ndarray, ndarray)
        The (z, y, x) array, the new (x, y, z) -> RAS affine, and the
        orientation transform applied (for :class:`SourceGrid`).
    """
    transform = ornt_transform(io_orientation(affine), axcodes2ornt(TARGET_AXCODES))
    xyz = apply_orientation(data_ijk, transform)
    new_affine = affine @ inv_ornt_aff(transform, data_ijk.shape)
    return np.ascontiguousarray(xyz.transpose(2, 1, 0)), new_affine, transform


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """(dz, dy, dx) voxel size from an (x, y, z) -> RAS affine."""
    dx, dy, dz = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return float(dz), float(dy), float(dx)


def clip_padding(hu: np.ndarray) -> np.ndarray:
    """Set outside-FOV padding (for example -3024 or -2048 HU) and sub-air values to air, in place."""
    np.maximum(hu, AIR_HU, out=hu)
    return hu


def check_voxel_size(spacing: tuple[float, ...], path: Path | None, kind: str = "nifti") -> None:
    """Refuse a voxel size (mm) outside :data:`VOXEL_MM_RANGE` on any axis, naming the file and the size, with
    what to check for the reader ``kind`` (a DICOM series' slice positions and PixelSpacing; a file's affine).

    Raises
    ------
    BoneScreenError
        If a spacing is outside the range (its unit or scale is wrong).
    """
    lo, hi = VOXEL_MM_RANGE
    if all(lo <= d <= hi for d in spacing):
        return
    size = " x ".join(f"{d:.4g}" for d in spacing)
    check = (
        # (helper-66: a series with slices 24 mm apart was told to write its file with its voxel size in mm)
        "the series' slices lie that far apart (ImagePositionPatient: slices missing, or every few kept?) or its "
        "PixelSpacing is not in mm"
        if kind == "dicom"
        else "the affine or pixel spacing is in another unit (cm, m) or scaled; write the file with its voxel size "
        "in mm"
    )
    raise BoneScreenError(f"voxel size {size} mm is not a CT's ({lo:g}-{hi:g} mm on each axis): {check}", path)


def volume_from_ijk(
    data_ijk: np.ndarray, affine: np.ndarray, kind: str, path: Path | None, description: str, **source_fields
) -> CTVolume:
    """Make a :class:`CTVolume` from an (i, j, k) array of HU and its (i, j, k) -> RAS affine.

    The array is reoriented to BoneScreen's convention and padding is set to air;
    the source grid keeps what is needed to write labels back (``source_fields``
    go to :class:`SourceGrid`, e.g. ``dicom_files``).
    """
    data_ijk = np.asarray(data_ijk, dtype=np.float32)
    check_voxel_size(spacing_from_affine(affine), path, kind)
    hu, new_affine, transform = reorient(data_ijk, affine)
    clip_padding(hu)
    source = SourceGrid(kind=kind, path=path, shape=data_ijk.shape, affine=affine, transform=transform, **source_fields)
    volume = CTVolume(
        hu=hu, spacing=spacing_from_affine(new_affine), affine=new_affine, source=source, description=description
    )
    off = obliquity_deg(affine)
    if off > OBLIQUE_FLAG_DEG:
        volume.flags.append(
            f"the image axes are {off:.0f} degrees off the patient's axes (an oblique acquisition or reformat): its "
            "slices are read as axial, and the level split, the body heights and the trabecular ROI assume axial "
            "slices; resample it to axial slices for results to rely on"
        )
    return volume


def _unit_axes(affine: np.ndarray) -> np.ndarray:
    """The image axes of an (x, y, z) -> RAS affine as unit columns (3x3)."""
    return affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)


def obliquity_deg(affine: np.ndarray) -> float:
    """Largest angle (degrees) between an image axis (a column of ``affine``'s 3x3) and its nearest patient axis."""
    axes = _unit_axes(affine)
    return float(np.degrees(np.arccos(np.clip(np.abs(axes).max(axis=0), -1.0, 1.0))).max())


def axes_angle_deg(affine_a: np.ndarray, affine_b: np.ndarray) -> float:
    """Largest angle (degrees) between the image axes of two (x, y, z) -> RAS affines, axis by axis (a grid and its
    resampling onto the same slices' axes read 0; one axis of the pair reversed reads 180)."""
    a, b = _unit_axes(affine_a), _unit_axes(affine_b)
    return float(np.degrees(np.arccos(np.clip((a * b).sum(axis=0), -1.0, 1.0))).max())


def _grid_to_grid(affine: np.ndarray, target_affine: np.ndarray) -> np.ndarray:
    """4x4 from a target grid's (z, y, x) voxel indices to another grid's (z, y, x), both given by (x, y, z) -> RAS."""
    swap = np.eye(4)[[2, 1, 0, 3]]  # (z, y, x, 1) <-> (x, y, z, 1)
    return swap @ np.linalg.inv(affine) @ target_affine @ swap


def labels_onto_grid(
    labels: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, target_shape: tuple[int, int, int]
) -> np.ndarray:
    """A (z, y, x) label map carried onto another grid of the same patient space, nearest voxel.

    For the grids two readers make of one series: 3D Slicer reads a gantry-tilted series onto its slices' own axes
    (and resamples it there when its acquisition transform is hardened), while BoneScreen's reader moves each slice
    by whole pixels onto the grid along their normal (:func:`shift_slices`). Each voxel of the target grid takes the
    label at its centre's position (0 beyond ``labels``' grid); :func:`voxels_beyond_grid` counts what is lost.

    Parameters
    ----------
    labels : ndarray
        Integer or bool (z, y, x) label map on the grid of ``affine``.
    affine, target_affine : ndarray
        4x4 (x, y, z) voxel index -> RAS (mm) of the two grids (:attr:`CTVolume.affine`).
    target_shape : tuple of int
        (z, y, x) shape of the target grid.

    Returns
    -------
    ndarray
        The label map on the target grid, ``labels``' dtype (bool as uint8).
    """
    from scipy import ndimage

    to_source = _grid_to_grid(affine, target_affine)
    array = labels.view(np.uint8) if labels.dtype == bool else labels
    return ndimage.affine_transform(
        array, to_source[:3, :3], offset=to_source[:3, 3], output_shape=tuple(target_shape), order=0, cval=0
    )


def voxels_beyond_grid(
    labels: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, target_shape: tuple[int, int, int]
) -> int:
    """How many labelled voxels of ``labels`` (on the grid of ``affine``) have their centre outside the target grid:
    what :func:`labels_onto_grid` leaves out. Arguments as there."""
    to_target = np.linalg.inv(_grid_to_grid(affine, target_affine))
    zyx = np.argwhere(labels > 0)
    where = zyx @ to_target[:3, :3].T + to_target[:3, 3]
    inside = ((where > -0.5) & (where < np.asarray(target_shape) - 0.5)).all(axis=1)
    return int(np.count_nonzero(~inside))
