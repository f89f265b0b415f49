"""Read and write NIfTI files; read CT volumes from them.

Compressed files (``.nii.gz``) are inflated and deflated in one go with ISA-L
(``isal``), about twice zlib's speed for reading CT and fifty times for writing
label maps; nibabel parses and builds the images.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip

from ..atomic import atomic_path
from ..errors import BoneScreenError
from .folders import check_not_special
from .volume import ORIENTATION_UNKNOWN, CTVolume, acquisition_fields, volume_from_ijk

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True if the file name ends in .nii or .nii.gz."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


class _Collected(logging.Handler):
    """Keeps the messages nibabel logs while a header is read (it fixes some fields and says so on the console)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def read_nifti_logged(path: str | os.PathLike) -> tuple[nib.Nifti1Image | nib.Nifti2Image, list[str]]:
    """:func:`read_nifti` and what nibabel said while reading the header (``pixdim[1,2,3] should be non-zero;
    setting 0 dims to 1``, ...), kept off the console."""
    logger = logging.getLogger("nibabel.global")  # nibabel prints it with a handler of its own
    handler, saved, propagate = _Collected(), logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [handler], False
    try:
        return _read(path), handler.messages
    finally:
        logger.handlers, logger.propagate = saved, propagate


def read_nifti(path: str | os.PathLike) -> nib.Nifti1Image | nib.Nifti2Image:
    """The NIfTI-1 or NIfTI-2 image in ``path`` (``.nii`` or ``.nii.gz``), with its data in memory."""
    return read_nifti_logged(path)[0]


def _read(path: str | os.PathLike) -> nib.Nifti1Image | nib.Nifti2Image:
    path = Path(path)
    check_not_special(path)  # a named pipe would block the read
    if not str(path).lower().endswith(".gz"):
        return nib.load(path)
    data = igzip.decompress(path.read_bytes())
    try:
        return nib.Nifti1Image.from_bytes(data)
    except Exception:
        # a NIfTI-2 header is 540 bytes, not 348; raise the NIfTI-1 error if it is not that either
        if len(data) >= 4 and 540 in (int.from_bytes(data[:4], "little"), int.from_bytes(data[:4], "big")):
            return nib.Nifti2Image.from_bytes(data)
        raise


def save_nifti(img: nib.Nifti1Image, path: str | os.PathLike, compresslevel: int = 1) -> Path:
    """Write ``img`` to ``path`` through a temporary file; ``.gz`` names are compressed."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if str(path).lower().endswith(".gz"):
            tmp.write_bytes(igzip.compress(img.to_bytes(), compresslevel=compresslevel))
        else:
            nib.save(img, tmp)
    return path


def _hu_float32(img: nib.Nifti1Image) -> np.ndarray:
    """The image's values (slope and intercept applied) as float32, in one pass for stored integers."""
    proxy = img.dataobj
    if not hasattr(proxy, "get_unscaled"):
        return np.asarray(proxy, dtype=np.float32)
    data = np.asarray(proxy.get_unscaled()).astype(np.float32)  # keeps nibabel's Fortran order: no transpose
    # nibabel has already turned a missing, zero or non-finite slope into 1 and intercept into 0
    if proxy.slope != 1.0:
        data *= np.float32(proxy.slope)
    if proxy.inter != 0.0:
        data += np.float32(proxy.inter)
    return data


def _all_axis_codes() -> tuple[str, ...]:
    """The 48 orientations of a 3-D array (each axis one of R/L, A/P, S/I once), the usual ones of CT first."""
    from itertools import permutations, product

    common = ("LPS", "RAS", "LAS", "RPS", "LPI", "RAI", "LAI", "RPI")
    every = ("".join(p) for axes in permutations(("RL", "AP", "SI")) for p in product(*axes))
    return common + tuple(c for c in every if c not in common)


#: Orientations a user can state for a volume whose file had none (``--orientation``, the napari dock).
AXIS_CODES = _all_axis_codes()


def affine_from_codes(codes: str, zooms) -> np.ndarray:
    """(i, j, k) -> RAS affine for array axes running towards ``codes`` (e.g. ``LPS``) with voxel sizes ``zooms``.

    Raises
    ------
    BoneScreenError
        If ``codes`` is not three letters naming each of the axes R/L, A/P, S/I once.
    """
    codes = str(codes).upper()
    pairs = {"R": (0, 1.0), "L": (0, -1.0), "A": (1, 1.0), "P": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}
    if len(codes) != 3 or any(c not in pairs for c in codes) or len({pairs[c][0] for c in codes}) != 3:
        raise BoneScreenError(
            f"orientation {codes!r} is not three axis codes, one of R/L, A/P and S/I each (for example LPS or RAS)"
        )
    affine = np.eye(4)
    affine[:3, :3] = 0
    for i, c in enumerate(codes):
        axis, sign = pairs[c]
        affine[axis, i] = sign * float(zooms[i])
    return affine


#: The first two bytes of every gzip stream (RFC 1952).
GZIP_MAGIC = b"\x1f\x8b"


def why_unreadable(path: Path, exc: BaseException) -> str:
    """Why nibabel could not read ``path`` (a CT or a label map), in words: a ``.gz`` name on a file that is
    not gzip, a compressed file cut short, or the exception's type and message."""
    if path.is_file() and path.stat().st_size == 0:
        return "the file is empty (0 bytes): an interrupted copy or download?"
    if path.name.endswith(".gz"):
        try:
            with open(path, "rb") as f:
                head = f.read(2)
        except OSError:
            head = GZIP_MAGIC
        if head != GZIP_MAGIC:
            return "named .gz but not gzip-compressed: it is not a NIfTI file, or it was renamed"
        if isinstance(exc, EOFError):
            return "the compressed file ends early: it was cut short (an interrupted copy or download?)"
    if isinstance(exc, nib.filebasedimages.ImageFileError):  # (helper-39: "ImageFileError: Cannot work out ...")
        return "no NIfTI header: it is not a NIfTI file, or it was renamed"
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}"


def load_nifti(path: str | os.PathLike, orientation: str | None = None) -> CTVolume:
    """Read a 3-D NIfTI CT (values in HU) as a :class:`CTVolume`.

    A file whose qform and sform codes are both 0 says nothing about its orientation:
    it is read with ``orientation`` (axis codes of i, j, k, e.g. ``LPS``) when the user
    gives one, else with nibabel's default axes and a flag in :attr:`CTVolume.flags`.

    Raises
    ------
    BoneScreenError
        If the file cannot be read, is not 3-D, or has a degenerate affine.
    """
    path = Path(path)
    try:
        img, said = read_nifti_logged(path)
        data = _hu_float32(img)
        affine = np.asarray(img.affine, dtype=float)
        unknown = int(img.header["qform_code"]) == 0 and int(img.header["sform_code"]) == 0
        zooms = img.header.get_zooms()[:3]
        geometry = nifti_geometry(img.header)
    except Exception as exc:  # nibabel raises several types for damaged files
        raise BoneScreenError(f"unreadable NIfTI ({why_unreadable(path, exc)})", path) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise BoneScreenError(f"expected a 3-D volume, got shape {data.shape}", path)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise BoneScreenError("the NIfTI affine is degenerate (zero or non-finite voxel size)", path)
    if img.get_data_dtype().kind == "f" and not np.all(np.isfinite(data)):
        raise BoneScreenError("the volume holds NaN or infinite values", path)
    if unknown and any("pixdim" in m and "non-zero" in m for m in said):
        # without qform and sform the voxel size is pixdim's alone, and nibabel has set its zeros to 1 mm
        raise BoneScreenError(
            "voxel size 0 in the header (pixdim) and no qform or sform: the spacing is unknown; write the file "
            "with its voxel size",
            path,
        )
    given = None
    if unknown and orientation:
        affine = affine_from_codes(orientation, zooms)
        given = f"orientation {orientation.upper()} given by the user (the file has no qform or sform)"
    # a name that is not UTF-8 (Latin-1 from an old archive) shown with U+FFFD for its odd bytes: matplotlib and
    # Qt refuse the surrogates Python reads them as (helper-94: report.png failed)
    shown = os.fsencode(path.name).decode("utf-8", "replace")
    volume = volume_from_ijk(data, affine, "nifti", path, f"NIfTI {shown}", nifti_geometry=geometry)
    if doubt := qform_sform_doubt(geometry):
        volume.flags.append(doubt)
    if given:
        volume.notes.append(given)
    elif unknown:
        volume.flags.append(orientation_unknown_flag(affine, "nibabel's"))
    elif orientation:
        volume.notes.append(f"orientation {orientation.upper()} ignored: the file states its own")
    volume.acquisition = read_sidecar(path, volume.notes)
    return volume


def nifti_geometry(header) -> dict:
    """A NIfTI header's geometry as :attr:`~.volume.SourceGrid.nifti_geometry` keeps it: ``qform`` and ``sform``
    (4x4 arrays, None where the code is 0), ``qform_code``, ``sform_code`` and ``zooms`` (pixdim, mm)."""
    q_code, s_code = int(header["qform_code"]), int(header["sform_code"])
    return {
        "qform": np.asarray(header.get_qform(), float) if q_code else None,
        "qform_code": q_code,
        "sform": np.asarray(header.get_sform(), float) if s_code else None,
        "sform_code": s_code,
        "zooms": tuple(float(z) for z in header.get_zooms()[:3]),
    }


def qform_sform_doubt(geometry: dict, reader: str = "nibabel") -> str | None:
    """The flag of a NIfTI whose qform and sform state different orientations (axis codes): one of the two is wrong,
    and tools that prefer the other show the CT otherwise (helper-96: used without a word). None when they agree or
    one is missing.

    BoneScreen's reader takes the sform, as nibabel does; ``reader`` names another reader, and ``geometry["prefer"]``
    ``"qform"`` says it took the qform (:func:`file_geometry_doubt`; 3D Slicer's: helper-117, the flag was missing
    there).
    """
    q, s = geometry.get("qform"), geometry.get("sform")
    if q is None or s is None:
        return None
    q_axes, s_axes = "".join(nib.orientations.aff2axcodes(q)), "".join(nib.orientations.aff2axcodes(s))
    if q_axes == s_axes:
        return None
    used, other = ("qform", "sform") if geometry.get("prefer") == "qform" else ("sform", "qform")
    return (
        f"the NIfTI's qform and sform state different orientations (qform {q_axes}, sform {s_axes}): read with the "
        f"{used}, as {reader} does; tools that prefer the {other} show the CT otherwise. Check which is right (the "
        "names count along the axes read) and write the file with one geometry"
    )


def _read_with(candidate: np.ndarray, stored: np.ndarray, read_with: np.ndarray, values: np.ndarray) -> float:
    """The share of sampled voxels of another reader's volume (``values``, (i, j, k), placed by the voxel-to-RAS
    matrix ``read_with``) that hold the file's own value (``stored``) at the voxel ``candidate`` (the file's qform or
    sform) places at the same point: 1 for the geometry that reader took, whatever order it stores the voxels in."""
    rng = np.random.default_rng(0)
    ijk = np.stack([rng.integers(0, n, 2000) for n in values.shape], axis=1)
    points = np.c_[ijk, np.ones(len(ijk))] @ np.asarray(read_with, float).T
    theirs = np.rint((points @ np.linalg.inv(np.asarray(candidate, float)).T)[:, :3]).astype(int)
    inside = np.all((theirs >= 0) & (theirs < np.array(stored.shape[:3])), axis=1)
    if not inside.any():
        return 0.0
    a = values[tuple(ijk[inside].T)]
    b = stored[tuple(theirs[inside].T)]
    return float(np.mean(a == b)) * float(inside.mean())


def file_geometry_doubt(path: str | os.PathLike, read_with: np.ndarray, values: np.ndarray, reader: str) -> str | None:
    """:func:`qform_sform_doubt` of the NIfTI file at ``path`` as another reader (``reader``) read it: its voxels
    ``values`` ((i, j, k)) placed by the voxel-to-RAS matrix ``read_with``; the file's geometry it took is the one
    under which the file's own voxels land where that reader has them (helper-118: ITK stores the slices of a file
    whose sform runs feet-first in reverse, which axis codes alone took for the qform). None for a file that cannot
    be read (the reader that loaded it has said what it could)."""
    try:
        img = nib.load(path)
        geometry = nifti_geometry(img.header)
        if geometry.get("qform") is None or geometry.get("sform") is None:
            return qform_sform_doubt(geometry)
        stored = np.asanyarray(img.dataobj)
        while stored.ndim > 3 and stored.shape[-1] == 1:
            stored = stored[..., 0]
        if geometry["qform"] is not None and _read_with(geometry["qform"], stored, read_with, values) > _read_with(
            geometry["sform"], stored, read_with, values
        ):
            geometry["prefer"] = "qform"
    except Exception:  # not ours to judge here
        return None
    return qform_sform_doubt(geometry, reader=reader)


def orientation_unknown_flag(affine: np.ndarray, reader: str) -> str:
    """The flag of a NIfTI that states no orientation (qform and sform codes 0), read with ``reader``'s default axes.

    Parameters
    ----------
    affine : ndarray
        4x4 voxel-to-RAS matrix the file was read with.
    reader : str
        Whose default it is (``"nibabel's"``, ``"Slicer's"``).
    """
    axes = "".join(nib.orientations.aff2axcodes(affine))
    return (
        f"{ORIENTATION_UNKNOWN}: the NIfTI has neither qform nor sform (both codes 0), so it was read with "
        f"{reader} default axes ({axes}); if the spine is upside down or mirrored the level names are wrong, and "
        "if the file's axes are in another order (sagittal planes read as axial) nothing is found. "
        "State the orientation: --orientation LPS (for example) on the command line, 'file orientation' in the "
        "napari Segment dock or the Slicer module"
    )


def states_no_orientation(path: str | os.PathLike) -> bool:
    """Whether a NIfTI's header has neither qform nor sform (both codes 0); False for a file that cannot be read."""
    try:
        header = nib.load(path).header
        return int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0
    except Exception:  # not ours to judge here: the reader that loaded it has said what it could
        return False


def file_type_suffix(path: str | os.PathLike) -> str:
    """A file's type suffix, ``.nii.gz`` whole (any case): ``ct.v2.nii.gz`` -> ``.nii.gz``, ``seg.dcm`` -> ``.dcm``."""
    name = Path(path).name
    return name[-7:] if name.lower().endswith(".nii.gz") else Path(name).suffix


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar dcm2niix and BIDS put beside a NIfTI: ``ct.nii.gz`` -> ``ct.json``."""
    path = Path(path)
    return path.with_name(path.name[: len(path.name) - len(file_type_suffix(path))] + ".json")


def read_sidecar(path: str | os.PathLike, notes: list[str]) -> dict:
    """``KVP`` and ``ContrastBolusAgent`` from a NIfTI's JSON sidecar (dcm2niix's keys: DICOM keywords).

    A missing sidecar gives ``{}``; an unreadable one gives ``{}`` and a line in ``notes`` naming the
    file, as does a ``KVP`` that is no tube voltage (the scan is still read: the sidecar is optional).
    """
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"{side.name}: sidecar not read ({type(exc).__name__}: {exc}); tube voltage unknown")
        return {}
    if not isinstance(meta, dict):
        notes.append(f"{side.name}: sidecar not read (not a JSON object); tube voltage unknown")
        return {}
    out = acquisition_fields(meta)
    if meta.get("KVP") is not None and "KVP" not in out:
        notes.append(f"{side.name}: KVP {meta['KVP']!r} is not a tube voltage; tube voltage unknown")
    return out
