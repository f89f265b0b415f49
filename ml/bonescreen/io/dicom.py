"""Read axial CT series from DICOM files and folders.

Rules:

- Slices are sorted by ImagePositionPatient projected on the slice normal
  (ImageOrientationPatient row x column), never by InstanceNumber or file name.
- HU = stored value * RescaleSlope + RescaleIntercept; outside-FOV padding
  becomes air (-1024 HU).
- Slice spacing comes from the positions. Spacing that varies by more than 10%
  (a missing slice) and gantry tilt over 1 degree are refused with a message.
- A folder with several series: the candidates are the CT series that are axial
  (slice normal within 30 degrees of the body axis) and not localizers. The one
  with the most slices is taken, and its number and description are logged; if
  two candidates tie, the error lists the series to choose from.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ..errors import BoneScreenError
from .volume import AIR_HU, CTVolume, volume_from_ijk

log = logging.getLogger(__name__)

_SPACING_TOLERANCE = 0.10
_MAX_TILT_DEG = 1.0
_AXIAL_MAX_DEG = 30.0


def is_dicom_file(path: Path) -> bool:
    """True if ``path`` starts like a DICOM Part 10 file (preamble and 'DICM')."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _read(path: Path, headers_only: bool) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=headers_only, force=False)
    except Exception as exc:  # pydicom raises many types for damaged files
        raise BoneScreenError(f"not a readable DICOM file ({_short(exc)})", path) from None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


def _floats(ds: Dataset, keyword: str, n: int, path: Path) -> np.ndarray:
    try:
        value = ds.get(keyword)
        arr = np.array([float(v) for v in value], dtype=float) if value is not None else None
    except Exception:
        arr = None
    if arr is None or arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise BoneScreenError(f"missing or malformed {keyword} (need {n} numbers)", path)
    return arr


class _Slice:
    """Header facts of one instance."""

    def __init__(self, path: Path, ds: Dataset) -> None:
        self.path = path
        self.modality = str(ds.get("Modality", "") or "")
        self.series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        self.series_number = ds.get("SeriesNumber", "")
        self.description = str(ds.get("SeriesDescription", "") or "")
        image_type = ds.get("ImageType", []) or []
        self.localizer = "LOCALIZER" in [
            str(t).upper()
            for t in (
                image_type if isinstance(image_type, list | tuple | pydicom.multival.MultiValue) else [image_type]
            )
        ]
        self.ds = ds

    def geometry(self) -> None:
        ds, path = self.ds, self.path
        iop = _floats(ds, "ImageOrientationPatient", 6, path)
        self.row_cos, self.col_cos = iop[:3], iop[3:]
        for v in (self.row_cos, self.col_cos):
            if abs(np.linalg.norm(v) - 1) > 0.05:
                raise BoneScreenError("ImageOrientationPatient does not hold unit vectors", path)
        self.normal = np.cross(self.row_cos, self.col_cos)
        if np.linalg.norm(self.normal) < 0.9:
            raise BoneScreenError("ImageOrientationPatient row and column directions are not perpendicular", path)
        self.position = _floats(ds, "ImagePositionPatient", 3, path)
        self.pixel_spacing = _floats(ds, "PixelSpacing", 2, path)
        if np.any(self.pixel_spacing <= 0):
            raise BoneScreenError(f"PixelSpacing {self.pixel_spacing.tolist()} is not positive", path)
        try:
            self.rows, self.cols = int(ds.Rows), int(ds.Columns)
        except Exception:
            raise BoneScreenError("missing Rows/Columns", path) from None
        self.distance = float(self.position @ self.normal)

    @property
    def axial(self) -> bool:
        return abs(self.normal[2]) >= np.cos(np.radians(_AXIAL_MAX_DEG))


def _collect(folder: Path) -> list[_Slice]:
    slices = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or name.upper() == "DICOMDIR" or not is_dicom_file(path):
                continue
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception as exc:
                log.warning("skipping %s: %s", path.name, _short(exc))
                continue
            try:
                slices.append(_Slice(path, ds))
            except Exception as exc:
                log.warning("skipping %s: %s", path.name, _short(exc))
    return slices


def _series_label(group: list[_Slice]) -> str:
    s = group[0]
    desc = f" '{s.description}'" if s.description else ""
    return f"series {s.series_number}{desc} ({s.modality or 'no modality'}, {len(group)} images)"


def _choose_series(folder: Path, slices: list[_Slice]) -> list[_Slice]:
    groups: dict[str, list[_Slice]] = defaultdict(list)
    for s in slices:
        groups[s.series_uid].append(s)
    candidates = []
    for group in groups.values():
        if group[0].modality != "CT" or all(s.localizer for s in group):
            continue
        try:
            group[0].geometry()
        except BoneScreenError:
            continue
        if group[0].axial:
            candidates.append([s for s in group if not s.localizer])
    listing = "; ".join(_series_label(g) for g in groups.values())
    if not candidates:
        modalities = sorted({s.modality or "none" for s in slices})
        if "CT" not in modalities:
            raise BoneScreenError(
                f"no CT images in the folder (modality {', '.join(modalities)}); found {listing}", folder
            )
        raise BoneScreenError(f"no axial CT series in the folder; found {listing}", folder)
    candidates.sort(key=len, reverse=True)
    if len(candidates) > 1 and len(candidates[0]) == len(candidates[1]):
        raise BoneScreenError(
            "several axial CT series with the same number of slices; pass one series folder: "
            + "; ".join(_series_label(g) for g in candidates),
            folder,
        )
    if len(groups) > 1:
        log.info(
            "%s holds %d series; using the axial CT series with most slices: %s",
            folder.name,
            len(groups),
            _series_label(candidates[0]),
        )
    return candidates[0]


def _check_series(slices: list[_Slice]) -> tuple[list[_Slice], np.ndarray]:
    """Sort along the normal and check sizes, orientation, spacing and tilt; return slices and the 4x4 LPS affine."""
    for s in slices:
        s.geometry()
    first = slices[0]
    for s in slices[1:]:
        if (s.rows, s.cols) != (first.rows, first.cols):
            raise BoneScreenError(
                f"mixed image sizes in the series: {s.rows}x{s.cols} here, "
                f"{first.rows}x{first.cols} in {first.path.name}",
                s.path,
            )
        if not (np.allclose(s.row_cos, first.row_cos, atol=1e-3) and np.allclose(s.col_cos, first.col_cos, atol=1e-3)):
            raise BoneScreenError(f"image orientation differs from {first.path.name} in the same series", s.path)
        if not np.allclose(s.pixel_spacing, first.pixel_spacing, rtol=1e-3):
            raise BoneScreenError(f"pixel spacing differs from {first.path.name} in the same series", s.path)
    slices = sorted(slices, key=lambda s: s.distance)
    dist = np.array([s.distance for s in slices])
    dr, dc = first.pixel_spacing  # row spacing, column spacing
    affine = np.eye(4)
    affine[:3, 0] = first.row_cos * dc
    affine[:3, 1] = first.col_cos * dr
    affine[:3, 3] = slices[0].position
    if len(slices) == 1:
        thickness = _slice_thickness(first.ds)
        affine[:3, 2] = first.normal * thickness
        return slices, affine
    steps = np.diff(dist)
    if np.any(steps < 1e-3):
        i = int(np.argmin(steps))
        raise BoneScreenError(
            f"two images at the same position ({slices[i].path.name}, {slices[i + 1].path.name}); "
            "the folder may mix series",
            slices[i].path.parent,
        )
    mean_step = float(np.median(steps))
    if np.max(np.abs(steps - mean_step)) > _SPACING_TOLERANCE * mean_step:
        i = int(np.argmax(np.abs(steps - mean_step)))
        raise BoneScreenError(
            f"uneven slice spacing: {steps[i]:.2f} mm between {slices[i].path.name} and {slices[i + 1].path.name}, "
            f"{mean_step:.2f} mm elsewhere (missing slices?)",
            slices[0].path.parent,
        )
    span = slices[-1].position - slices[0].position
    tilt = np.degrees(np.arccos(np.clip(abs(span @ first.normal) / np.linalg.norm(span), -1, 1)))
    if tilt > _MAX_TILT_DEG:
        raise BoneScreenError(
            f"gantry tilt of {tilt:.1f} degrees is not supported; resample the series to untilted slices first",
            slices[0].path.parent,
        )
    affine[:3, 2] = span / (len(slices) - 1)
    return slices, affine


def _slice_thickness(ds: Dataset) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = float(ds.get(keyword))
            if value > 0:
                return value
        except (TypeError, ValueError):
            continue
    return 1.0


def _pixels_hu(path: Path) -> np.ndarray:
    try:
        return _decode_hu(path)
    except BoneScreenError:
        raise
    except Exception as exc:  # pydicom parses lazily: a damaged element raises on first access
        raise BoneScreenError(f"cannot read the image ({_short(exc)})", path) from None


def _decode_hu(path: Path) -> np.ndarray:
    ds = _read(path, headers_only=False)
    if "PixelData" not in ds:
        raise BoneScreenError("no pixel data (or the file is truncated before it)", path)
    _check_pixel_length(ds, path)
    try:
        raw = ds.pixel_array
    except Exception as exc:
        raise BoneScreenError(f"cannot decode the pixel data ({_short(exc)})", path) from None
    if raw.ndim != 2:
        raise BoneScreenError(f"expected one 2-D frame per file, got pixel array of shape {raw.shape}", path)
    try:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        raise BoneScreenError("malformed RescaleSlope/RescaleIntercept", path) from None
    hu = raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    padding = ds.get("PixelPaddingValue")
    if isinstance(padding, int):
        hu[raw == padding] = AIR_HU
    return hu


def _check_pixel_length(ds: Dataset, path: Path) -> None:
    """Name truncation plainly for uncompressed pixel data."""
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID", None)
    if syntax is None or syntax.is_compressed:
        return
    try:
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * int(ds.BitsAllocated) // 8
    except Exception:
        raise BoneScreenError("missing Rows, Columns or BitsAllocated", path) from None
    if len(ds.PixelData) < expected:
        raise BoneScreenError(f"pixel data is truncated ({len(ds.PixelData)} of {expected} bytes)", path)


def load_dicom(path: str | os.PathLike) -> CTVolume:
    """Read a DICOM folder (any depth) or a single DICOM file as a :class:`CTVolume`.

    Raises
    ------
    BoneScreenError
        Naming the file and the problem: not DICOM, not CT, no pixel data, no
        DICOM in the folder, truncated file, mixed sizes, uneven spacing, tilt.
    """
    try:
        return _load_dicom(Path(path))
    except BoneScreenError:
        raise
    except Exception as exc:  # a damaged header element raises on first access, wherever that is
        raise BoneScreenError(f"damaged DICOM data ({_short(exc)})", path) from None


def _load_dicom(path: Path) -> CTVolume:
    if path.is_dir():
        found = _collect(path)
        if not found:
            raise BoneScreenError("no DICOM files in the folder", path)
        slices = _choose_series(path, found)
    else:
        ds = _read(path, headers_only=True)
        try:
            s = _Slice(path, ds)
        except Exception as exc:
            raise BoneScreenError(f"damaged DICOM header ({_short(exc)})", path) from None
        if not s.modality:
            raise BoneScreenError("no Modality: not a CT image, or the file is truncated", path)
        if s.modality != "CT":
            raise BoneScreenError(f"not a CT image (Modality is {s.modality})", path)
        slices = [s]
    slices, lps = _check_series(slices)
    rows, cols = slices[0].rows, slices[0].cols
    stack = np.empty((len(slices), rows, cols), dtype=np.float32)
    for k, s in enumerate(slices):
        hu = _pixels_hu(s.path)
        if hu.shape != (rows, cols):
            raise BoneScreenError(f"pixel data is {hu.shape[0]}x{hu.shape[1]}, header says {rows}x{cols}", s.path)
        stack[k] = hu
    data = stack.transpose(2, 1, 0)  # (i=column, j=row, k=slice), a view: no copy
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    first = slices[0].ds
    number = first.get("SeriesNumber", None)
    desc = f"DICOM series{'' if number is None else ' ' + str(number)} ({len(slices)} slices)"
    return volume_from_ijk(
        data,
        ras,
        "dicom",
        path,
        desc,
        dicom_files=[s.path for s in slices],
        dicom={
            "StudyInstanceUID": str(first.get("StudyInstanceUID", "")),
            "SeriesInstanceUID": str(first.get("SeriesInstanceUID", "")),
            "FrameOfReferenceUID": str(first.get("FrameOfReferenceUID", "")),
            "SeriesNumber": number,
        },
    )
