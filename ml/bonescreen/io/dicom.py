"""Read axial CT series from DICOM files and folders.

Rules:

- Every file is judged on its own. Files that are not axial CT images of a series
  (localizers, secondary captures, dose reports and other non-image objects, other
  modalities, images of another orientation) are skipped and named in
  :attr:`CTVolume.notes`; the series is never judged by its first file.
- ACR-NEMA style files (no 128-byte preamble and 'DICM' prefix, often implicit VR
  without a file meta header) are read when they start with a DICOM group 0008 or
  0002 element.
- Multi-frame CT (Enhanced CT, Legacy Converted Enhanced CT): positions,
  orientation, pixel spacing and rescale come from the per-frame and shared
  functional groups (DICOM PS3.3 C.7.6.16); a file is one series.
- Slices are sorted by ImagePositionPatient projected on the slice normal
  (ImageOrientationPatient row x column), never by InstanceNumber or file name.
  Where ImagePositionPatient is missing, SliceLocation (the position along the
  normal, PS3.3 C.7.6.2.1.2) places the slice and the volume is flagged; where
  ImageOrientationPatient is missing on some images, the orientation of the
  others is taken (flagged); on all of them, the series is refused naming the tag.
- HU = stored value * RescaleSlope + RescaleIntercept; outside-FOV padding
  becomes air (-1024 HU).
- Slice spacing comes from the positions. Spacing that varies by more than 10%
  (a missing slice) is refused with a message.
- Gantry tilt (slices stacked along the table, off their normal; up to 35 degrees): each slice is
  moved in-plane by whole pixels onto a grid along the normal (:func:`volume.shift_slices`), the
  source grid keeps the shift so that labels go back onto the series' own images, and a note says so.
- A folder with several series: the candidates are the axial CT image sets; the
  one with the most slices is taken, and its number is logged (not its description: free text);
  if two candidates tie, the error lists the series to choose from.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, UID_dictionary

from ..errors import BoneScreenError
from .folders import CANNOT_BE_READ, open_problem, special_file, walk_folders
from .identifiers import patient_identifiers, redact, without_header_values
from .volume import AIR_HU, CTVolume, acquisition_fields, shift_slices, slice_offsets, volume_from_ijk

log = logging.getLogger(__name__)

_SPACING_TOLERANCE = 0.10
_MAX_TILT_DEG = 1.0
#: CT gantries tilt up to 30 degrees (GantryDetectorTilt); slices stacked further off their normal have wrong positions
_MAX_GANTRY_TILT_DEG = 35.0
#: a single image that states no thickness is given this one (mm), with a note saying so
_UNKNOWN_THICKNESS_MM = 1.0
#: an image whose normal lies within this of the body's axis is axial: a tilted gantry's images too (helper-87: at
#: 30 degrees, the limit was this one's, 30-35 degree series were refused as "no axial CT series")
_AXIAL_MAX_DEG = _MAX_GANTRY_TILT_DEG
#: SOP classes of multi-frame CT read through their functional groups.
MULTIFRAME_CT = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT",
}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
#: SOP class UID of a single-frame CT image (DICOM PS3.4, Annex B.5).
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: Named skipped files in a note; the rest are counted.
_NAMED_SKIPS = 5


#: Endings of DICOM file names (case-insensitive): files so named that do not read as DICOM are reported.
DICOM_NAME_SUFFIXES = (".dcm", ".dicom", ".ima")


def dicom_kind(path: Path) -> str | None:
    """``part10`` (preamble and 'DICM'), ``raw`` (ACR-NEMA style: starts with a group 0002/0008 element) or None
    (also for a named pipe or device, which is never opened: :func:`~.folders.special_file`)."""
    if special_file(path) is not None:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return None
    if len(head) == 132 and head[128:] == b"DICM":
        return "part10"
    # a dataset without preamble starts with its first element: group 0x0008 (or the file meta's 0x0002),
    # little endian, followed by an element number, then a VR (explicit) or a 4-byte length (implicit)
    if len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x02\x00") and head[3] == 0:
        return "raw"
    return None


def is_dicom_file(path: Path) -> bool:
    """True if ``path`` looks like a DICOM file, with the Part 10 header or without it (ACR-NEMA style)."""
    return dicom_kind(Path(path)) is not None


@contextmanager
def quiet_pydicom():
    """pydicom's and highdicom's warnings and log lines kept in: they quote a header's values (a damaged one's raw
    bytes, a malformed date), which can be the patient's; BoneScreen's own error or note says what matters, once."""
    loggers = [logging.getLogger(name) for name in ("pydicom", "highdicom")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def read_quietly(path: str | os.PathLike, **dcmread_options) -> Dataset:
    """``pydicom.dcmread(path, **dcmread_options)`` with every value, the file meta's too, converted under
    :func:`quiet_pydicom`: pydicom converts on first access and warns then with the raw bytes of a damaged element,
    which can hold the patient's name (helper-89: a SOPClassUID whose length ran over the next elements printed
    PatientName and PatientID to stderr).

    Raises
    ------
    Exception
        Whatever pydicom raises for a damaged or missing file (many types): the caller names the file.
    """
    with quiet_pydicom():
        ds = pydicom.dcmread(path, **dcmread_options)
        ds.walk(lambda _ds, _elem: None)
        if getattr(ds, "file_meta", None) is not None:  # its SOP class and instance UIDs too
            ds.file_meta.walk(lambda _ds, _elem: None)
    return ds


def _read(path: Path, headers_only: bool) -> Dataset:
    # a damaged file's reading warnings (pydicom's warnings and its log, "End of file reached before delimiter"):
    # the error or note that BoneScreen gives says it in one line
    try:
        ds = read_quietly(path, stop_before_pixels=headers_only, force=dicom_kind(path) == "raw")
    except Exception as exc:  # pydicom raises many types for damaged files
        raise BoneScreenError(f"not a readable DICOM file ({_short(exc)})", path) from None
    _add_transfer_syntax(ds)
    return ds


def read_acquisition(path: str | os.PathLike) -> dict:
    """``KVP`` (kV) and ``ContrastBolusAgent`` of one DICOM file's header (pixels are not read).

    Parameters
    ----------
    path : path-like
        A DICOM file of the series (for instance the first file of a volume in Slicer's DICOM database).

    Returns
    -------
    dict
        What :func:`bonescreen.io.volume.acquisition_fields` finds; empty when the header has neither.

    Raises
    ------
    BoneScreenError
        The file is missing or not readable as DICOM; the message names the file.
    """
    return acquisition_fields(_acquisition_header(_read(Path(path), headers_only=True)))


def spacing_notes(ds: Dataset, slices: int, step_mm: float) -> list[str]:
    """What a series' slice spacing leaves unknown or unimaged, as notes of the input (result.json ``input_notes``).

    - Slices thinner (``SliceThickness``) than their spacing: the gaps between them were not imaged (helper-66: every
      third slice of a 3 mm series, 9 mm apart, was read without a word on the gaps).
    - One image without ``SliceThickness`` or ``SpacingBetweenSlices``: its extent along the body's axis is a guess
      (helper-65: a Pancreas-CT image with an empty SliceThickness was said to "cover 1 mm" without a word).

    Parameters
    ----------
    ds : Dataset
        A header of the series (its first image's).
    slices : int
        Slices in the volume.
    step_mm : float
        Their spacing along the body's axis (mm).
    """
    notes = []
    thickness = header_float(ds, "SliceThickness")
    if slices > 1 and thickness is not None and 0 < thickness and step_mm - thickness > max(0.5, 0.1 * step_mm):
        notes.append(
            f"slices {thickness:g} mm thick (SliceThickness) and {step_mm:.1f} mm apart: {step_mm - thickness:.1f} mm "
            "between each two were not imaged"
        )
    if slices == 1 and _slice_thickness(ds) is None:
        notes.append(
            f"one image with no SliceThickness or SpacingBetweenSlices: taken as {_UNKNOWN_THICKNESS_MM:g} mm thick, "
            "so lengths along the body's axis are not known"
        )
    return notes


#: The source series' UIDs that a DICOM SEG and SR reference: Type 1 in the General Study, General Series and Frame of
#: Reference modules (DICOM PS3.3 C.7.2.1, C.7.3.1, C.7.4.1).
REFERENCED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")


def missing_referenced_uids(dicom: dict | None) -> list[str]:
    """The :data:`REFERENCED_UIDS` a series read (its :attr:`~.volume.SourceGrid.dicom`) lacks or holds empty; [] for
    a series that has them all, or for a volume not read from DICOM (``dicom`` None)."""
    if dicom is None:
        return []
    return [k for k in REFERENCED_UIDS if not str(dicom.get(k, "") or "").strip()]


def read_spacing_notes(path: str | os.PathLike, slices: int, step_mm: float) -> list[str]:
    """:func:`spacing_notes` of one DICOM file's header (pixels are not read): for a volume another program loaded
    from the series (Slicer's DICOM database), whose headers BoneScreen did not read.

    Raises
    ------
    BoneScreenError
        The file is missing or not readable as DICOM; the message names the file.
    """
    return spacing_notes(_read(Path(path), headers_only=True), slices, step_mm)


#: Where an Enhanced CT or Legacy Converted Enhanced CT file keeps what a single-frame CT image holds at its top
#: level: the CT X-Ray Details functional group (DICOM PS3.3 C.8.15.3.9: KVP) and the converted attributes a legacy
#: conversion could not assign to a group (PS3.3 C.7.6.16.2.25: highdicom puts KVP there).
_GROUP_ITEMS = (
    "CTXRayDetailsSequence",
    "UnassignedSharedConvertedAttributesSequence",
    "UnassignedPerFrameConvertedAttributesSequence",
)


def _acquisition_header(ds: Dataset) -> dict:
    """``KVP`` and ``ContrastBolusAgent`` of a header, single- or multi-frame, for
    :func:`~bonescreen.io.volume.acquisition_fields`.

    Read at the top level first; a multi-frame file's shared functional groups, then its first frame's, give what
    the top level lacks (helper-72: the KVP of Enhanced CT files was not found, so the calibration took a prior
    without it and vBMD read 4 mg/cm3 low, flagged as "no tube voltage"). An Enhanced CT names its contrast agent
    by a code (ContrastBolusAgentSequence, PS3.3 C.7.6.4b), whose CodeMeaning is taken.
    """
    header = {"KVP": ds.get("KVP"), "ContrastBolusAgent": ds.get("ContrastBolusAgent")}
    groups = [
        *(ds.get("SharedFunctionalGroupsSequence") or [])[:1],
        *(ds.get("PerFrameFunctionalGroupsSequence") or [])[:1],
    ]
    for group in groups:
        for keyword in _GROUP_ITEMS:
            for item in group.get(keyword) or []:
                for key in header:
                    if header[key] in (None, "") and item.get(key) not in (None, ""):
                        header[key] = item.get(key)
    agents = ds.get("ContrastBolusAgentSequence")
    if header["ContrastBolusAgent"] in (None, "") and agents:
        header["ContrastBolusAgent"] = agents[0].get("CodeMeaning")
    return header


def _add_transfer_syntax(ds: Dataset) -> None:
    """A file without a file meta header: record the encoding pydicom read it with, so pixels decode."""
    meta = ds.file_meta if hasattr(ds, "file_meta") else None
    if meta is not None and meta.get("TransferSyntaxUID"):
        return
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit is None:
        implicit = True
    syntax = (
        pydicom.uid.ImplicitVRLittleEndian
        if implicit
        else (pydicom.uid.ExplicitVRLittleEndian if little is not False else pydicom.uid.ExplicitVRBigEndian)
    )
    if meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax


def _short(exc: BaseException) -> str:
    """An exception as one line: every line of its message joined (helper-72: pydicom's "no plugin can decode"
    names the missing packages on the lines after the first, which were cut), at most 400 characters, without what
    may be the header's values (:func:`~.identifiers.without_header_values`; a damaged header's bytes can be the
    patient's name) or a traceback."""
    text = " ".join(line.strip() for line in without_header_values(str(exc)).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}"[:400]


def _floats(ds: Dataset, keyword: str, n: int) -> np.ndarray | None:
    """``n`` finite numbers from ``keyword``, or None if absent or malformed."""
    try:
        value = ds.get(keyword)
        arr = np.array([float(v) for v in value], dtype=float) if value is not None else None
    except Exception:
        return None
    if arr is None or arr.shape != (n,) or not np.all(np.isfinite(arr)):
        return None
    return arr


def header_float(ds: Dataset, keyword: str) -> float | None:
    """The one finite number that ``keyword`` holds (a DS or IS value), or None if absent or malformed."""
    try:
        with quiet_pydicom():  # a malformed value's warning would quote it
            value = float(ds.get(keyword))
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _image_types(ds: Dataset) -> list[str]:
    value = ds.get("ImageType", []) or []
    if isinstance(value, str):
        value = value.split("\\")
    return [str(t).upper() for t in value]


@dataclass
class _Frame:
    """One image plane: a single-frame file, or one frame of a multi-frame file."""

    path: Path
    ds: Dataset
    frame: int | None  # index in a multi-frame file's pixel data; None for a single-frame file
    orientation: np.ndarray | None  # ImageOrientationPatient (6)
    position: np.ndarray | None  # ImagePositionPatient (3)
    slice_location: float | None
    pixel_spacing: np.ndarray | None
    rows: int
    cols: int
    slope: float = 1.0
    intercept: float = 0.0
    rescale_given: bool = True  # RescaleIntercept is in the file (a missing slope alone is flagged, not filled)
    slope_given: bool = True

    @property
    def row_cos(self) -> np.ndarray:
        return self.orientation[:3]

    @property
    def col_cos(self) -> np.ndarray:
        return self.orientation[3:]

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_cos, self.col_cos)

    @property
    def distance(self) -> float:
        return float(self.position @ self.normal)


def _orientation_problem(iop: np.ndarray) -> str | None:
    for v in (iop[:3], iop[3:]):
        if abs(np.linalg.norm(v) - 1) > 0.05:
            return "ImageOrientationPatient does not hold unit vectors"
    if np.linalg.norm(np.cross(iop[:3], iop[3:])) < 0.9:
        return "ImageOrientationPatient row and column directions are not perpendicular"
    return None


def _is_axial(iop: np.ndarray) -> bool:
    return abs(np.cross(iop[:3], iop[3:])[2]) >= np.cos(np.radians(_AXIAL_MAX_DEG))


def _plane_name(iop: np.ndarray) -> str:
    normal = np.abs(np.cross(iop[:3], iop[3:]))
    axis = int(np.argmax(normal))
    if axis == 2 and not _is_axial(iop):  # (helper-87: "not an axial CT image (axial image)")
        off = float(np.degrees(np.arccos(np.clip(normal[2] / np.linalg.norm(normal), -1.0, 1.0))))
        return f"oblique ({off:.0f} degrees from axial, more than a gantry tilts)"
    return ("sagittal", "coronal", "axial")[axis]


def _file_size(path: Path) -> int:
    """The file's size in bytes (0 when it cannot be read)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _size(path: Path) -> str:
    """The file's size in bytes, for messages about a file that ends early."""
    try:
        return f"{path.stat().st_size} bytes"
    except OSError:
        return "size unknown"


#: A UID as DICOM PS3.5 9.1 writes it: numeric components separated by dots, at most 64 characters.
_UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")
#: A file larger than this whose header breaks off is damaged inside, not cut short: a CT image's header ends within
#: a few kilobytes, its pixels take hundreds.
_HEADER_BYTES = 65536
#: A DICOM file smaller than this without an image and with a SOP class that is not registered (PS3.6 Annex A) is
#: one cut inside its header (helper-89: cut inside its SOPClassUID, "1.2.840.1000", it was "not an image"); private
#: non-image objects (a vendor's) are kilobytes long.
_SHORT_FILE_BYTES = 2048
#: The first bytes of formats that are not DICOM but end up named as it (a preview exported beside the series).
_OTHER_FORMATS = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive",
    b"\x1f\x8b": "a gzip archive",
}


def _uid(value) -> tuple[str, bool]:
    """A header's UID value as text, and whether one was there but malformed (a damaged file's length field can run a
    UID into the elements after it, raw bytes that may hold the patient's name): ("", True) then, never its text."""
    text = str(value or "").strip()
    if not text:
        return "", False
    if len(text) <= 64 and _UID_PATTERN.fullmatch(text):
        return text, False
    return "", True


def _printable(value, limit: int = 16) -> str:
    """A short header value (Modality, SeriesNumber) as messages may show it, or "unreadable": a damaged element's
    value can hold the raw bytes of the elements after it."""
    text = str(value or "").strip()
    return text if len(text) <= limit and text.isprintable() else "unreadable"


def _other_format(path: Path) -> str | None:
    """What a file that is not DICOM is, by its first bytes (:data:`_OTHER_FORMATS`; "text" for printable text), or
    None when they tell nothing (a damaged DICOM file, or something else)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    for magic, kind in _OTHER_FORMATS.items():
        if head.startswith(magic):
            return kind
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "text"
    return None


class _Instance:
    """Header facts of one file, and why it is not an axial CT image (``skip``) if it is not."""

    def __init__(self, path: Path, ds: Dataset) -> None:
        self.path = path
        self.ds = ds
        self.modality = str(ds.get("Modality", "") or "")
        self.series_uid, series_malformed = _uid(ds.get("SeriesInstanceUID"))
        self.series_number = ds.get("SeriesNumber", "")
        self.sop_class, sop_malformed = _uid(
            ds.get("SOPClassUID", "") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", "")
        )
        self.sop_instance = _uid(ds.get("SOPInstanceUID"))[0]
        #: which UID is malformed: the file is damaged (its values run into each other)
        self.malformed = "SOPClassUID" if sop_malformed else "SeriesInstanceUID" if series_malformed else None
        try:
            self.frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            self.frames = 1
        self.multiframe = self.sop_class in MULTIFRAME_CT or self.frames > 1
        self.skip = self._why_not()

    @property
    def damaged(self) -> bool:
        """Whether the file is a damaged one (cut short, or its values running into each other), not another kind."""
        return bool(self.skip) and self.skip.startswith(("truncated", "damaged"))

    def _why_not(self) -> str | None:
        ds = self.ds
        if self.malformed:
            return f"damaged: its {self.malformed} is unreadable ({_size(self.path)})"
        if "Rows" not in ds or "Columns" not in ds:
            if self.sop_class == CT_IMAGE_STORAGE or self.sop_class in MULTIFRAME_CT:
                # a CT image's header without its image attributes: the file stops before them, or breaks off inside
                size = _size(self.path)
                if _file_size(self.path) > _HEADER_BYTES:
                    return f"damaged: a CT image whose header breaks off before its Rows and Columns ({size})"
                return f"truncated: a CT image whose file ends before its Rows and Columns ({size})"
            if not self.sop_class:  # every DICOM object states its SOP class: this file stops before it, or is garbled
                return (
                    f"damaged: a DICOM file without a readable SOPClassUID, cut short or garbled ({_size(self.path)})"
                )
            known = self.sop_class in UID_dictionary
            if not known and _file_size(self.path) < _SHORT_FILE_BYTES:  # a registered SOP class's beginning, cut
                return f"truncated: a DICOM file that ends inside its header ({_size(self.path)})"
            return f"not an image ({UID(self.sop_class).name})"
        if self.sop_class.startswith(_SECONDARY_CAPTURE):
            return "secondary capture"
        if self.modality != "CT":
            if self.modality and _printable(self.modality) == "unreadable":  # a length field run over (helper-90)
                return f"damaged: its Modality is unreadable ({_size(self.path)})"
            return f"modality {self.modality or 'missing'}"
        if "LOCALIZER" in _image_types(ds):
            return "localizer"
        if self.multiframe and self.sop_class not in MULTIFRAME_CT and "PerFrameFunctionalGroupsSequence" not in ds:
            return f"multi-frame image without functional groups ({self.frames} frames)"
        iop = _floats(ds, "ImageOrientationPatient", 6)
        if iop is not None and _orientation_problem(iop) is None and not _is_axial(iop):
            return f"{_plane_name(iop)} image"
        return None

    def frame(self) -> _Frame:
        """The single frame of this file (ImagePositionPatient and orientation may be None)."""
        ds = self.ds
        try:
            rows, cols = int(ds.Rows), int(ds.Columns)
        except Exception:
            raise BoneScreenError("missing or malformed Rows/Columns", self.path) from None
        frame = _Frame(
            self.path,
            ds,
            None,
            _floats(ds, "ImageOrientationPatient", 6),
            _floats(ds, "ImagePositionPatient", 3),
            header_float(ds, "SliceLocation"),
            _floats(ds, "PixelSpacing", 2),
            rows,
            cols,
        )
        frame.slope, frame.intercept = _rescale(ds, self.path)
        frame.rescale_given = "RescaleIntercept" in ds
        frame.slope_given = ds.get("RescaleSlope") is not None
        return frame


def _shown_name(path: Path, folder: Path) -> str:
    """How notes name a file found under ``folder``: its name, or its path from the folder when it lies in a subfolder
    (helper-89: a damaged other/IM1 was named "IM1" beside the folder's own, intact IM1)."""
    try:
        return path.name if path.parent == folder else str(path.relative_to(folder))
    except ValueError:
        return path.name


def _collect(folder: Path, recursive: bool = True) -> tuple[list[_Instance], list[tuple[str, str]]]:
    """Every DICOM file under ``folder`` (headers only; in its subfolders too when ``recursive``), and the files
    that could not be read as DICOM, (name, reason): ``unreadable`` for one that may be damaged DICOM (named as DICOM,
    or without a suffix beside DICOM files without one, as scanners write them), ``not DICOM (...)`` for another
    format named as DICOM (a preview image, a text file), ``not a file (...)`` for a named pipe, socket or device
    (never opened: reading one blocks)."""
    found, unreadable, plain, skipped = [], [], [], []
    for root, dirs, files in walk_folders(folder, skipped=skipped):  # linked series folders too
        if not recursive:
            dirs[:] = []
        for name in files:
            path = root / name
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            shown = _shown_name(path, folder)
            if not is_dicom_file(path):
                # a file that does not open (no permission: helper-92) may be an image as a damaged one may, by the
                # same rule: named as DICOM, or without a suffix beside images without one (helper-94: a report.pdf
                # without permission was counted as an image of the series)
                why = open_problem(path)
                if name.lower().endswith(DICOM_NAME_SUFFIXES):  # named as DICOM, unreadable as it: said, not skipped
                    # silently (helper-37: a damaged bad.dcm beside a good series)
                    other = None if why else _other_format(path)
                    unreadable.append((shown, why or (f"not DICOM ({other})" if other else "unreadable")))
                elif not path.suffix and (why is not None or _other_format(path) is None):
                    plain.append((shown, why or "unreadable"))  # said below if the series' own files have no suffix
                continue
            try:
                found.append(_Instance(path, _read(path, headers_only=True)))
            except Exception as exc:
                # (the file's name may carry the patient's: named in the series' notes, redacted there)
                log.debug("skipping a file: %s", type(exc).__name__)
                unreadable.append((shown, "unreadable"))
    if plain and any(not i.path.suffix for i in found):  # (helper-89: IM0078 cut to 0 bytes was passed over)
        unreadable += plain
    unreadable += [(_shown_name(path, folder), why) for path, why in skipped]
    return found, unreadable


def _skips_by_reason(skipped: list[tuple[str, str]]) -> list[str]:
    """Skipped files (name, reason), one ``reason: name, name ... and N more`` per reason (helper-88: an error listed
    a 40-degree series' reason once per file)."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for name, reason in skipped:
        by_reason[reason].append(name)
    parts = []
    for reason, names in by_reason.items():
        shown = ", ".join(names[:_NAMED_SKIPS]) + (
            f" and {len(names) - _NAMED_SKIPS} more" if len(names) > _NAMED_SKIPS else ""
        )
        parts.append(f"{reason}: {shown}")
    return parts


def _skip_note(skipped: list[tuple[str, str]]) -> str | None:
    """One line naming the skipped files by reason: ``skipped 2 files that are not axial CT images: ...``."""
    if not skipped:
        return None
    parts = _skips_by_reason(skipped)
    n = len(skipped)
    files = f"{n} files that are" if n > 1 else "1 file that is"
    return f"skipped {files} not part of the axial CT series ({'; '.join(parts)})"


def _damaged(
    found: list[_Instance], unreadable: list[tuple[str, str]], series: _Series, folder: Path
) -> list[tuple[str, str]]:
    """The files that may be images of ``series`` but could not be read (name, reason): damaged DICOM files
    (:attr:`_Instance.damaged`) whose SeriesInstanceUID is the series', unknown, or cut inside it (a beginning of it),
    and are no copy of an image read (their SOPInstanceUID is none of the series'); and files that do not read as
    DICOM at all and are no other format (their series unknown)."""
    read = {str(f.ds.get("SOPInstanceUID", "") or "") for f in series.frames}
    uid = series.uid
    cut = [
        (_shown_name(i.path, folder), i.skip)
        for i in found
        if i.damaged and (not i.series_uid or uid.startswith(i.series_uid)) and i.sop_instance not in read - {""}
    ]
    return cut + [(name, why) for name, why in unreadable if why == "unreadable" or why.startswith(CANNOT_BE_READ)]


def _damaged_flag(damaged: list[tuple[str, str]], images: int) -> str:
    """The flag of a series of ``images`` images read beside damaged files that may be its images: a slice missing
    inside a series of three or more stops the read (uneven spacing), so any missing image lies beyond its first or
    last; two images read show no gap between them (helper-92: the middle one of three, unreadable, was said to lie
    beyond the ends)."""
    n = len(damaged)
    if all(why.startswith(CANNOT_BE_READ) for _, why in damaged):  # no permission: not damaged (helper-92)
        what = "files or folders that cannot be read" if n > 1 else "file or folder that cannot be read"
        files = f"{n} {what} may hold images"
    else:
        what = "damaged files in the folder may be images" if n > 1 else "damaged file in the folder may be an image"
        files = f"{n} {what}"
    left = "were" if n > 1 else "was"
    return (
        f"{files} of this series and {left} left out ({'; '.join(_skips_by_reason(damaged))}): if so, the series "
        + (
            "lacks slices beyond its first or last image, where a vertebra may be cut or missed"
            if images > 2
            else "lacks slices, between its images or beyond them (with two images read, a gap cannot show)"
        )
    )


@dataclass
class _Series:
    """Frames chosen for one volume, with what the reader had to assume."""

    frames: list[_Frame]
    label: str
    notes: list[str]
    flags: list[str]
    uid: str = ""  # SeriesInstanceUID
    #: Files of the folder that could not be read as images and may be this series' (name, reason): a truncated CT
    #: image of this series or of none stated, a file that does not read as DICOM (:func:`_damaged`)
    damaged: list[tuple[str, str]] = field(default_factory=list)


class SeveralSeries(BoneScreenError):
    """A folder holds several axial CT series with as many slices, and none was chosen: ``uids`` holds their
    SeriesInstanceUIDs (each readable with ``series=``), in the order the message names them."""

    def __init__(self, message: str, path: str | os.PathLike, uids: list[str]) -> None:
        super().__init__(message, path)
        self.uids = uids


def _series_label(inst: _Instance, n: int) -> str:
    """How notes and errors name a series: its SeriesNumber (else its first file's name), modality and size.

    Not its SeriesDescription: free text, which may carry a name (DICOM PS3.15 Annex E removes it), and notes
    reach result.json, the report and the screen (helper-38: "series 'ZZYZX TESTPATIENT abdomen'").
    """
    given = inst.series_number not in (None, "")
    number = _printable(inst.series_number) if given else f"without a SeriesNumber ({inst.path.name})"
    modality = _printable(inst.modality) if inst.modality else "no modality"
    return f"series {number} ({modality}, {n} image{'s' if n != 1 else ''})"


def _place_frames(group: list[_Instance]) -> _Series | str:
    """Frames of one series' single-frame CT images, with orientation and positions repaired where the
    standard allows; a string says why the group cannot be a volume."""
    frames = [inst.frame() for inst in group]  # a broken image of the series is refused by name, never dropped
    skipped, flags = [], []
    # orientation: the one most images share; images without it take it (flagged)
    known = [f for f in frames if f.orientation is not None and _orientation_problem(f.orientation) is None]
    if not known:
        bad = [f for f in frames if f.orientation is not None]
        if bad:
            raise BoneScreenError(_orientation_problem(bad[0].orientation), bad[0].path)
        raise BoneScreenError(
            f"ImageOrientationPatient is missing in all {len(frames)} images of the series, so the orientation "
            "of the slices is unknown",
            frames[0].path,
        )
    counts = Counter(tuple(np.round(f.orientation, 3)) for f in known)
    majority = np.array(counts.most_common(1)[0][0])
    reference = next(f for f in known if np.allclose(f.orientation, majority, atol=1e-3))
    kept, borrowed = [], []
    for f in frames:
        if f.orientation is None or _orientation_problem(f.orientation) is not None:
            f.orientation = reference.orientation
            borrowed.append(f.path.name)
        elif not np.allclose(f.orientation, reference.orientation, atol=1e-3):
            skipped.append((f.path.name, "orientation differs from the rest of the series"))
            continue
        kept.append(f)
    frames = kept
    if borrowed:
        flags.append(
            f"ImageOrientationPatient missing or malformed in {len(borrowed)} image(s) (first: {borrowed[0]}); "
            "the orientation of the other images of the series was taken"
        )
    # positions: ImagePositionPatient; where one is missing, SliceLocation for every image (two position
    # references mixed would misplace slices), flagged; else refused naming the image
    missing = [f for f in frames if f.position is None]
    if missing:
        if all(f.slice_location is not None for f in frames):
            origin = next((f.position for f in frames if f.position is not None), np.zeros(3))
            for f in frames:
                n = f.normal
                f.position = origin - (origin @ n) * n + f.slice_location * n
            flags.append(
                f"ImagePositionPatient missing or malformed (3 numbers) in {len(missing)} image(s) (first: "
                f"{missing[0].path.name}); the slices "
                "were placed by SliceLocation along the slice normal: check the slice order and spacing"
            )
        elif len(missing) == len(frames) and all(f.slice_location is None for f in frames):
            raise BoneScreenError(
                "ImagePositionPatient and SliceLocation are missing in all images of the series, "
                "so the order and spacing of the slices are unknown",
                missing[0].path,
            )
        else:
            unplaced = next((f for f in missing if f.slice_location is None), missing[0])
            raise BoneScreenError(
                "ImagePositionPatient is missing (or malformed: it needs 3 numbers) and SliceLocation cannot place "
                "the image (it is missing here or on other images of the series)",
                unplaced.path,
            )
    bare = [f for f in frames if not f.rescale_given]
    given = {(f.slope, f.intercept) for f in frames if f.rescale_given}
    if bare and len(given) == 1:
        # the scanner's rescale is one per series in practice: a file without it takes the others' (flagged)
        slope, intercept = next(iter(given))
        for f in bare:
            f.slope, f.intercept = slope, intercept
        flags.append(
            f"RescaleSlope/RescaleIntercept missing in {len(bare)} image(s) (first: {bare[0].path.name}); "
            f"the rest of the series' values ({slope:g}, {intercept:g}) were used"
        )
    elif bare and given:
        raise BoneScreenError(
            "RescaleIntercept is missing here while the other images of the series give different values, "
            "so this image's HU are unknown",
            bare[0].path,
        )
    flags += _rescale_assumed(frames, "image")
    if not _is_axial(frames[0].orientation):
        return f"{_plane_name(frames[0].orientation)} images"
    note = _skip_note(skipped)
    return _Series(frames, _series_label(group[0], len(frames)), [note] if note else [], flags)


def _multiframe_frames(path: Path, ds: Dataset) -> tuple[list[_Frame], bool]:
    """The frames of an Enhanced CT or Legacy Converted Enhanced CT file, from its functional groups, and whether
    a frame's rescale was read from the file's top level instead (helper-72: refused as "RescaleIntercept
    missing?" while the file gives it there, not in its Pixel Value Transformation group)."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else Dataset()
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    try:
        n = int(ds.get("NumberOfFrames", 0) or 0)
        rows, cols = int(ds.Rows), int(ds.Columns)
    except Exception:
        raise BoneScreenError("missing or malformed NumberOfFrames, Rows or Columns", path) from None
    if n < 1 or len(per_frame) != n:
        raise BoneScreenError(
            f"PerFrameFunctionalGroupsSequence has {len(per_frame)} items for {n} frames (NumberOfFrames)", path
        )

    def item(fg: Dataset, keyword: str) -> Dataset | None:
        for source in (fg, shared):
            seq = source.get(keyword)
            if seq:
                return seq[0]
        return None

    frames, from_top = [], False
    for i, fg in enumerate(per_frame):
        pos, ori = item(fg, "PlanePositionSequence"), item(fg, "PlaneOrientationSequence")
        measures, rescale = item(fg, "PixelMeasuresSequence"), item(fg, "PixelValueTransformationSequence")
        if rescale is None and "RescaleIntercept" in ds:
            rescale, from_top = ds, True
        frame = _Frame(
            path,
            ds,
            i,
            _floats(ori, "ImageOrientationPatient", 6) if ori is not None else None,
            _floats(pos, "ImagePositionPatient", 3) if pos is not None else None,
            None,
            _floats(measures, "PixelSpacing", 2) if measures is not None else None,
            rows,
            cols,
        )
        if rescale is not None:
            frame.slope, frame.intercept = _rescale(rescale, path)
        frame.rescale_given = rescale is not None and "RescaleIntercept" in rescale
        frame.slope_given = rescale is not None and rescale.get("RescaleSlope") is not None
        for keyword, value in (
            ("ImageOrientationPatient", frame.orientation),
            ("ImagePositionPatient", frame.position),
        ):
            if value is None:
                raise BoneScreenError(
                    f"frame {i + 1}: {keyword} missing from the per-frame and shared functional groups", path
                )
        if frame.pixel_spacing is None:
            raise BoneScreenError(f"frame {i + 1}: PixelSpacing missing from the functional groups", path)
        frames.append(frame)
    return frames, from_top


def _multiframe_series(inst: _Instance) -> _Series:
    frames, from_top = _multiframe_frames(inst.path, inst.ds)
    for f in frames:
        problem = _orientation_problem(f.orientation)
        if problem:
            raise BoneScreenError(f"frame {f.frame + 1}: {problem}", inst.path)
        if not _is_axial(f.orientation):
            raise BoneScreenError(f"the frames are {_plane_name(f.orientation)} images, not axial", inst.path)
    kind = MULTIFRAME_CT.get(inst.sop_class, "multi-frame CT")
    notes = [f"read {'an' if kind[0] in 'AEIOU' else 'a'} {kind} file of {len(frames)} frames"]
    if from_top:
        notes.append(
            "RescaleSlope and RescaleIntercept read from the file's top level (a multi-frame CT keeps them in its "
            "Pixel Value Transformation functional group)"
        )
    return _Series(frames, f"{kind} {_series_label(inst, len(frames))}", notes, _rescale_assumed(frames, "frame"))


def _rescale_assumed(frames: list[_Frame], unit: str) -> list[str]:
    """Flags for a rescale taken as the default where the files do not give it.

    RescaleSlope and RescaleIntercept are Type 1 in the CT Image module (DICOM PS3.3 C.8.2.1) and in the Pixel
    Value Transformation functional group. Without them the stored values are read as HU (slope 1, intercept 0);
    :func:`bonescreen.io.hu_scale.hu_scale_problem` refuses values whose fat is off by an offset, but a slope
    other than 1 would not show there, and every HU, vBMD and class rests on it, so the user is told.
    """
    if not any(f.rescale_given for f in frames):
        return [
            f"RescaleSlope and RescaleIntercept are missing in every {unit}: the stored values were taken as "
            "Hounsfield units with a slope of 1 (the check on fat finds a missing offset, not a slope other "
            "than 1): check the HU"
        ]
    bare = [f for f in frames if f.rescale_given and not f.slope_given]
    if not bare:
        return []
    first = bare[0].path.name if bare[0].frame is None else f"frame {bare[0].frame + 1}"
    where = (
        f"every {unit} (RescaleIntercept given)"
        if len(bare) == len(frames)
        else f"{len(bare)} {unit}(s) that give RescaleIntercept (first: {first})"
    )
    return [
        f"RescaleSlope is missing in {where}; taken as 1, the value CT images use: check the HU if the "
        "exporter scaled them"
    ]


def _is_series(inst: _Instance, series: str) -> bool:
    """Whether ``inst`` belongs to the series the user asked for: its SeriesNumber or its SeriesInstanceUID."""
    number = "" if inst.series_number in (None, "") else str(inst.series_number).strip()
    asked = series.strip()
    if asked.isdigit() and number.lstrip("-").isdigit():  # "03" is series 3 (helper-78)
        return int(asked) == int(number)
    return asked in {number, inst.series_uid} - {""}


def _choose_series(
    folder: Path, found: list[_Instance], unreadable: list[tuple[str, str]], series: str | None = None
) -> _Series:
    skipped = [(_shown_name(i.path, folder), i.skip) for i in found if i.skip]
    skipped += unreadable
    images, copies = _without_copies([i for i in found if not i.skip])
    if series is not None:  # the user's choice among the folder's series: the others are not read
        if not series.strip():
            raise BoneScreenError("--series is empty: give a SeriesNumber or a SeriesInstanceUID", folder)
        asked = [i for i in images if _is_series(i, series)]
        if not asked:
            other = [i for i in found if i.skip and _is_series(i, series)]
            if other:  # there, but not an axial CT image (helper-78: a localizer's series was said to be absent)
                raise BoneScreenError(
                    f"series {series} holds no axial CT image: {other[0].skip} ({len(other)} file(s))", folder
                )
            numbers = sorted({_series_label(i, 0).split(" (")[0] for i in images})
            raise BoneScreenError(
                f"no image of series {series} (SeriesNumber or SeriesInstanceUID) in the folder; it holds "
                f"{', '.join(numbers) or 'no image'}",
                folder,
            )
        if len({i.series_uid for i in asked}) > 1:
            raise BoneScreenError(
                f"{len({i.series_uid for i in asked})} series are numbered {series} in the folder (from several "
                "studies?): give the SeriesInstanceUID of the one to read instead",
                folder,
            )
        left = len(images) - len(asked)
        images = asked
    groups: dict[str, list[_Instance]] = defaultdict(list)
    candidates: list[_Series] = []
    rejected: list[str] = []
    for inst in images:
        if inst.multiframe:
            try:
                candidates.append(_multiframe_series(inst))
                candidates[-1].uid = inst.series_uid
            except BoneScreenError as exc:
                rejected.append(f"{inst.path.name}: {exc.problem}")
        else:
            groups[inst.series_uid].append(inst)
    errors: list[BoneScreenError] = []
    for group in groups.values():
        try:
            placed = _place_frames(group)
        except BoneScreenError as exc:  # this series cannot be read; another one may
            errors.append(exc)
            placed = f"{exc.problem} ({Path(exc.path).name})" if exc.path else exc.problem
        if isinstance(placed, str):
            rejected.append(f"{_series_label(group[0], len(group))}: {placed}")
        else:
            placed.uid = group[0].series_uid
            candidates.append(placed)
    if not candidates and len(errors) == 1 and len(rejected) == 1:
        raise errors[0]  # the folder's one series, refused for a reason that names its file
    if not candidates:
        readable = [i for i in found if not i.damaged]
        modalities = sorted({_printable(i.modality) if i.modality else "none" for i in readable})
        listing = "; ".join(rejected + _skips_by_reason(skipped))
        if not readable:  # (helper-90: "modality none" where every header's Modality was swallowed by damage)
            raise BoneScreenError(f"no readable image in the folder: every DICOM file is damaged ({listing})", folder)
        if "CT" not in modalities:
            raise BoneScreenError(
                f"no CT images in the folder (modality {', '.join(modalities)}); found {listing}", folder
            )
        raise BoneScreenError(f"no axial CT series in the folder; found {listing}", folder)
    candidates.sort(key=lambda s: len(s.frames), reverse=True)
    if len(candidates) > 1 and len(candidates[0].frames) == len(candidates[1].frames):
        tied = [s for s in candidates if len(s.frames) == len(candidates[0].frames)]
        labels = [s.label for s in candidates]
        if len(set(labels)) < len(labels):  # one SeriesNumber, or none: only the UIDs tell them apart (helper-78)
            labels = [f"{s.label}, SeriesInstanceUID {s.uid or 'none'}" for s in candidates]
        raise SeveralSeries(
            "several axial CT series with the same number of slices: choose one with --series and its SeriesNumber "
            "or SeriesInstanceUID (bonescreen screen), or put one series' files in a folder of their own and pass "
            "that folder: " + "; ".join(labels),
            folder,
            [s.uid for s in tied],
        )
    chosen = candidates[0]
    others = [s.label for s in candidates[1:]] + rejected
    if series is not None:
        chosen.notes.append(
            f"read {chosen.label}, the series chosen by the user"
            + (f"; {left} image(s) of other series in the folder not read" if left else "")
        )
    elif others:
        chosen.notes.append(
            f"used the axial CT series with most slices, {chosen.label}; also in the folder: {'; '.join(others)}"
        )
        log.info(
            "using the axial CT series with most slices, %s", chosen.label
        )  # (not the folder: it may name the patient)
    chosen.damaged = _damaged(found, unreadable, chosen, folder)
    if len(chosen.damaged) > len(chosen.frames):  # (helper-89: 1 image read beside 77 damaged was screened)
        raise BoneScreenError(
            f"more damaged files than images read: {len(chosen.damaged)} damaged files may be images of the "
            f"series, {len(chosen.frames)} image(s) read ({'; '.join(_skips_by_reason(chosen.damaged))}): the "
            "series is mostly unreadable, copy it again",
            folder,
        )
    if chosen.damaged:
        chosen.flags.append(_damaged_flag(chosen.damaged, len(chosen.frames)))
        skipped = [s for s in skipped if s not in chosen.damaged]
    note = _skip_note(skipped)
    if note:
        chosen.notes.append(note)
    if copies:
        shown = ", ".join(f"{copy} (of {kept})" for copy, kept in copies[:_NAMED_SKIPS])
        more = f" and {len(copies) - _NAMED_SKIPS} more" if len(copies) > _NAMED_SKIPS else ""
        chosen.notes.append(
            f"left out {len(copies)} {'copy' if len(copies) == 1 else 'copies'} of images read (the same "
            f"SOPInstanceUID and position): {shown}{more}"
        )
    return chosen


def _without_copies(images: list[_Instance]) -> tuple[list[_Instance], list[tuple[str, str]]]:
    """The images with copies of an image left out, and (copy, image kept) file names.

    One SOPInstanceUID is one image (DICOM PS3.3 C.12.1.1.1): two single-frame files with the same UID and the same
    ImagePositionPatient are one image twice (helper-72: a file copied within the folder was refused as "two images
    at the same position"); the one with the shortest name is kept ("IM0061.dcm", not "IM0061 (1).dcm"). Files
    that share a UID at different positions are not copies (an anonymizer that gave every image one UID, helper-73):
    all are kept, and the geometry decides.
    """
    by_key: dict[tuple, list[_Instance]] = defaultdict(list)
    for inst in images:
        uid = str(inst.ds.get("SOPInstanceUID", "") or "")
        position = _floats(inst.ds, "ImagePositionPatient", 3)
        if uid and position is not None and not inst.multiframe:
            by_key[(uid, *np.round(position, 3))].append(inst)
    dropped: dict[int, str] = {}
    for same in by_key.values():
        kept = min(same, key=lambda i: (len(i.path.name), str(i.path)))
        dropped.update({id(i): kept.path.name for i in same if i is not kept})
    copies = [(i.path.name, dropped[id(i)]) for i in images if id(i) in dropped]
    return [i for i in images if id(i) not in dropped], copies


def _check_series(frames: list[_Frame]) -> tuple[list[_Frame], np.ndarray, tuple[float, float] | None]:
    """Sort along the normal and check sizes, orientation, spacing and tilt.

    Returns the sorted frames, the 4x4 LPS affine of a grid along the slices' normal, and for a gantry-tilted
    series the in-plane shift (column, row voxels) of each slice against the one before (None if untilted).
    """
    first = frames[0]
    for f in frames:
        if f.pixel_spacing is None:
            raise BoneScreenError("missing or malformed PixelSpacing (need 2 numbers)", f.path)
        if np.any(f.pixel_spacing <= 0):
            raise BoneScreenError(f"PixelSpacing {f.pixel_spacing.tolist()} is not positive", f.path)
    for f in frames[1:]:
        if (f.rows, f.cols) != (first.rows, first.cols):
            raise BoneScreenError(
                f"mixed image sizes in the series: {f.rows}x{f.cols} here, "
                f"{first.rows}x{first.cols} in {first.path.name}",
                f.path,
            )
        if not np.allclose(f.orientation, first.orientation, atol=1e-3):
            raise BoneScreenError(f"image orientation differs from {first.path.name} in the same series", f.path)
        if not np.allclose(f.pixel_spacing, first.pixel_spacing, rtol=1e-3):
            raise BoneScreenError(f"pixel spacing differs from {first.path.name} in the same series", f.path)
    frames = sorted(frames, key=lambda f: f.distance)
    dist = np.array([f.distance for f in frames])
    dr, dc = first.pixel_spacing  # row spacing, column spacing
    affine = np.eye(4)
    affine[:3, 0] = first.row_cos * dc
    affine[:3, 1] = first.col_cos * dr
    affine[:3, 3] = frames[0].position
    if len(frames) == 1:
        affine[:3, 2] = first.normal * (_slice_thickness(first.ds) or _UNKNOWN_THICKNESS_MM)
        return frames, affine, None
    steps = np.diff(dist)
    if np.any(steps < 1e-3):
        i = int(np.argmin(steps))
        a, b = frames[i], frames[i + 1]
        names = f"frames {a.frame + 1} and {b.frame + 1}" if a.frame is not None else f"{a.path.name}, {b.path.name}"
        if np.ptp(dist) < 1e-3:  # (helper-66: every image at [0, 0, 0] was read as a folder of mixed series)
            raise BoneScreenError(
                f"every image states the same ImagePositionPatient ({', '.join(f'{v:g}' for v in a.position)}): the "
                "tag is wrong, so the order and spacing of the slices are unknown",
                a.path.parent,
            )
        if a.frame is None and a.path.name == b.path.name:  # in two subfolders (helper-72: "IM0001.dcm, IM0001.dcm")
            common = Path(os.path.commonpath([a.path, b.path]))
            names = f"{a.path.relative_to(common)}, {b.path.relative_to(common)} under {common.name or common}"
        acquisitions = {str(f.ds.get("AcquisitionNumber", "") or "") for f in (a, b)}
        why = (
            f"two acquisitions in one series (AcquisitionNumber {' and '.join(sorted(acquisitions))}): put each in "
            "a folder of its own"
            if len(acquisitions) == 2 and "" not in acquisitions
            else "the folder may mix series"
        )
        raise BoneScreenError(f"two images at the same position ({names}); {why}", a.path.parent)
    mean_step = float(np.median(steps))
    if np.max(np.abs(steps - mean_step)) > _SPACING_TOLERANCE * mean_step:
        i = int(np.argmax(np.abs(steps - mean_step)))
        a, b = frames[i], frames[i + 1]

        def name(f):
            return f"frame {f.frame + 1}" if f.frame is not None else f.path.name

        odd = np.abs(steps - mean_step) > _SPACING_TOLERANCE * mean_step
        if np.count_nonzero(odd) > 1:  # more than one gap: say how many, and where they run (helper-118: the second of
            # two was left unsaid; helper-116: a series 3 mm, then 6 mm from half-way, was told of one gap "between" two
            # images)
            lo, hi = int(np.argmax(odd)), len(odd) - int(np.argmax(odd[::-1]))  # the frames the odd gaps run between
            others = ", ".join(f"{v:.2f}" for v in np.unique(np.round(steps[odd], 2))[:4])
            said = (
                f"uneven slice spacing: {np.count_nonzero(odd)} of {len(steps)} gaps differ from the "
                f"{mean_step:.2f} mm of the others ({others} mm), from {name(frames[lo])} to {name(frames[hi])}: "
                "slices missing, or a series reconstructed at two spacings? Screen a series of one spacing"
            )
        else:
            names = (
                f"frames {a.frame + 1} and {b.frame + 1}" if a.frame is not None else f"{a.path.name} and {b.path.name}"
            )
            said = (
                f"uneven slice spacing: {steps[i]:.2f} mm between {names}, {mean_step:.2f} mm elsewhere "
                "(missing slices?)"
            )
        raise BoneScreenError(said, a.path.parent if a.frame is None else a.path)
    step = _mean_step(frames)
    along = float(step @ first.normal)  # > 0: sorted along the normal
    tilt = _tilt_deg(step, along)
    if tilt <= _MAX_TILT_DEG:
        affine[:3, 2] = step
        return frames, affine, None
    where = frames[0].path.parent if first.frame is None else first.path
    if tilt > _MAX_GANTRY_TILT_DEG:
        raise BoneScreenError(
            f"the slices are stacked {tilt:.1f} degrees off their normal, more than a gantry tilts "
            f"({_MAX_GANTRY_TILT_DEG:g}): ImagePositionPatient or ImageOrientationPatient is wrong",
            where,
        )
    line = frames[0].position + np.arange(len(frames))[:, None] * step
    off = np.linalg.norm(np.array([f.position for f in frames]) - line, axis=1)
    if off.max() > 0.5 * min(dr, dc):
        f = frames[int(np.argmax(off))]
        name = f"frame {f.frame + 1}" if f.frame is not None else f.path.name
        raise BoneScreenError(
            f"a gantry tilt of {tilt:.1f} degrees whose slices do not lie on one line ({name} is {off.max():.1f} mm "
            "off it): the slices cannot be stacked",
            where,
        )
    # (gantry tilt) the table moves along the body's axis, not along the slices' normal: each slice lies moved
    # in-plane against the one before; read onto a grid along the normal, moved back (volume.shift_slices)
    inplane = step - along * first.normal
    shift = (float(inplane @ first.row_cos) / dc, float(inplane @ first.col_cos) / dr)
    affine[:3, 2] = along * first.normal
    return frames, affine, shift


def _mean_step(frames: list[_Frame]) -> np.ndarray:
    """The mean step (LPS mm) from one sorted slice's ImagePositionPatient to the next's."""
    return (frames[-1].position - frames[0].position) / (len(frames) - 1)


def _tilt_deg(step: np.ndarray, along: float) -> float:
    """Degrees between the slices' stacking ``step`` and their normal (``along``: the step's part along it)."""
    return float(np.degrees(np.arccos(np.clip(along / np.linalg.norm(step), -1, 1))))


def _tilt_note(frames: list[_Frame], lps: np.ndarray) -> str:
    """What reading a gantry-tilted series did, for :attr:`CTVolume.notes` (``lps``: its grid along the normal)."""
    step = _mean_step(frames)
    along = float(np.linalg.norm(lps[:3, 2]))
    tilt = _tilt_deg(step, along)
    stated = header_float(frames[0].ds, "GantryDetectorTilt")
    for group in frames[0].ds.get("SharedFunctionalGroupsSequence", []):  # Enhanced CT: CT Acquisition Details
        for item in group.get("CTAcquisitionDetailsSequence", []):
            stated = header_float(item, "GantryDetectorTilt") if stated is None else stated
    moved = float(np.linalg.norm(step - along * frames[0].normal))
    if stated is None:
        said = ""
    elif abs(abs(stated) - tilt) <= 1.0:
        said = f" (GantryDetectorTilt {stated:g})"
    else:  # (helper-87: a stack tilted about the front-back axis read "(GantryDetectorTilt 0)" without a word)
        said = f" (GantryDetectorTilt says {stated:g}: the positions and orientations were read)"
    return (
        f"gantry tilt of {tilt:.1f} degrees"
        + said
        + f": each slice lies {moved:.2f} mm in-plane from the one before; read moved back by whole pixels onto a "
        f"grid along the slices' normal ({along:.2f} mm apart, each slice placed within half a pixel, HU not "
        "interpolated), and labels are written back onto the series' own images"
    )


def _slice_thickness(ds: Dataset) -> float | None:
    """A single image's extent along its normal (mm), or None when neither attribute gives a positive number."""
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = header_float(ds, keyword)
        if value is not None and value > 0:
            return value
    return None


def _pixels(path: Path) -> tuple[Dataset, np.ndarray]:
    """The dataset and its decoded pixel array, with BoneScreenError for every way this fails."""
    try:
        ds = _read(path, headers_only=False)
        if "PixelData" not in ds:
            image = _image_bytes(ds, bits_default=16)  # a file as large as its image: garbled, not cut (helper-90)
            if image is not None and _file_size(path) >= image:
                raise BoneScreenError(f"no pixel data found: the header is garbled ({_size(path)})", path)
            raise BoneScreenError(f"no pixel data: the file ({_size(path)}) may end before or inside it", path)
        _check_pixel_length(ds, path)
        try:
            return ds, ds.pixel_array
        except Exception as exc:
            raise BoneScreenError(f"cannot decode the pixel data ({_short(exc)})", path) from None
    except BoneScreenError:
        raise
    except Exception as exc:  # pydicom parses lazily: a damaged element raises on first access
        raise BoneScreenError(f"cannot read the image ({_short(exc)})", path) from None


def _rescale(ds: Dataset, path: Path) -> tuple[float, float]:
    try:
        slope = float(ds.get("RescaleSlope", 1) if ds.get("RescaleSlope") is not None else 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        raise BoneScreenError("malformed RescaleSlope/RescaleIntercept", path) from None
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope <= 0:
        raise BoneScreenError(f"RescaleSlope {slope:g} cannot turn stored values into HU (it must be positive)", path)
    return slope, intercept


def _to_hu(raw: np.ndarray, slope: float, intercept: float, padding) -> np.ndarray:
    hu = raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    if isinstance(padding, int):
        hu[raw == padding] = AIR_HU
    return hu


def _image_bytes(ds: Dataset, bits_default: int | None = None) -> int | None:
    """The bytes of the uncompressed image a header describes (frames x rows x columns x samples x bits / 8), or None
    when Rows, Columns or BitsAllocated (``bits_default`` when given) cannot be read."""
    try:
        bits = ds.get("BitsAllocated", bits_default) if bits_default is not None else ds.BitsAllocated
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        return frames * int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * int(bits) // 8
    except Exception:
        return None


def _check_pixel_length(ds: Dataset, path: Path) -> None:
    """Name truncation plainly for uncompressed pixel data."""
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID", None)
    if syntax is None or syntax.is_compressed:
        return
    expected = _image_bytes(ds)
    if expected is None:
        raise BoneScreenError("missing Rows, Columns or BitsAllocated", path)
    if len(ds.PixelData) < expected:
        raise BoneScreenError(f"pixel data is truncated ({len(ds.PixelData)} of {expected} bytes)", path)


def _stack(frames: list[_Frame]) -> np.ndarray:
    """HU of the sorted frames as float32 (slice, row, column)."""
    rows, cols = frames[0].rows, frames[0].cols
    stack = np.empty((len(frames), rows, cols), dtype=np.float32)
    if frames[0].frame is not None:  # one multi-frame file
        ds, raw = _pixels(frames[0].path)
        raw = raw[None] if raw.ndim == 2 else raw
        if raw.shape != (len(frames), rows, cols):
            raise BoneScreenError(
                f"pixel data is {raw.shape}, header says {len(frames)} frames of {rows}x{cols}", frames[0].path
            )
        padding = ds.get("PixelPaddingValue")
        for k, f in enumerate(frames):
            stack[k] = _to_hu(raw[f.frame], f.slope, f.intercept, padding)
        return stack
    for k, f in enumerate(frames):
        ds, raw = _pixels(f.path)
        if raw.ndim != 2:
            raise BoneScreenError(f"expected one 2-D frame per file, got pixel array of shape {raw.shape}", f.path)
        if raw.shape != (rows, cols):
            raise BoneScreenError(f"pixel data is {raw.shape[0]}x{raw.shape[1]}, header says {rows}x{cols}", f.path)
        stack[k] = _to_hu(raw, f.slope, f.intercept, ds.get("PixelPaddingValue"))
    return stack


def load_dicom(path: str | os.PathLike, recursive: bool = True, series: str | None = None) -> CTVolume:
    """Read a DICOM folder (any depth; only the files directly in it when not ``recursive``) or a single
    DICOM file as a :class:`CTVolume`.

    Without ``series``, a folder's axial CT series with the most slices is read (two with as many: an error);
    ``series`` (a SeriesNumber or a SeriesInstanceUID) reads that series only.

    Raises
    ------
    BoneScreenError
        Naming the file and the problem: not DICOM, not CT, no pixel data, no
        DICOM in the folder, truncated file, a tag needed for the geometry
        missing in every image, mixed sizes, uneven spacing, tilt; no series ``series``, or
        several numbered so.
    """
    ids: list[str] = []  # the patient's name parts and IDs, once a header is read
    try:
        volume = _load_dicom(Path(path), recursive, series, ids)
    except BoneScreenError as exc:
        raise _redacted(_with_cut_hint(exc), tuple(ids)) from None
    except Exception as exc:  # a damaged header element raises on first access, wherever that is
        raise _redacted(BoneScreenError(f"damaged DICOM data ({_short(exc)})", path), tuple(ids)) from None
    # file and folder names that carry the patient's name or ID are named in notes and flags, which reach
    # result.json, the report and the screen (helper-72: "first: ZQXWV_KRAMPUSINA_0051.dcm")
    ids = volume.source.identifiers
    volume.notes = [redact(n, ids) for n in volume.notes]
    volume.flags = [redact(f, ids) for f in volume.flags]
    volume.description = redact(volume.description, ids)
    return volume


def _with_cut_hint(exc: BoneScreenError) -> BoneScreenError:
    """``exc`` saying that its file is shorter than the image its header describes, where it is and the message does
    not say so (helper-89: a file cut inside its PixelSpacing was refused for "missing or malformed PixelSpacing")."""
    path = None if exc.path is None else Path(exc.path)
    said = ("truncated", "cut short", "may end")
    if path is None or not path.is_file() or any(word in exc.problem for word in said):
        return exc
    try:
        needed = _image_bytes(_read(path, headers_only=True), bits_default=16)
    except BoneScreenError:  # unreadable: nothing to tell the image's size by
        return exc
    size = _file_size(path)
    if needed is None or size >= needed:
        return exc
    return BoneScreenError(f"{exc.problem}; the file is cut short ({size} bytes, its image alone needs {needed})", path)


def _redacted(exc: BoneScreenError, ids: tuple[str, ...]) -> BoneScreenError:
    """``exc`` with the patient's name parts and IDs taken out of its message and path: errors name files, and
    PACS exports name files and folders after the patient (helper-76: summary.csv's error column and the command
    line's stderr named ``ZQXWV_KRAMPUSINA_0059.dcm`` where the notes of the same series said ``[patient]``)."""
    if not ids:
        exc.identifiers_read = False  # no header named the patient: its file names may still be theirs
        return exc
    path = None if exc.path is None else redact(exc.path, ids)
    if isinstance(exc, SeveralSeries):
        return SeveralSeries(redact(exc.problem, ids), path, exc.uids)
    return BoneScreenError(redact(exc.problem, ids), path)


def _add_identifiers(ids: list[str], instances) -> None:
    """Add the name parts and IDs of every patient the headers name (usually one) to ``ids``, longest first."""
    people = {(str(i.ds.get("PatientName", "") or ""), str(i.ds.get("PatientID", "") or "")): i.ds for i in instances}
    found = set(ids).union(*(patient_identifiers(ds) for ds in people.values()))
    ids[:] = sorted(found, key=len, reverse=True)


#: SOPClassUID of a DICOMDIR (Media Storage Directory Storage, DICOM PS3.4 Annex B).
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


def _single_file(path: Path, series: str | None = None, ids: list[str] | None = None) -> _Series:
    ds = _read(path, headers_only=True)
    if ids is not None:
        ids[:] = patient_identifiers(ds)
    try:
        inst = _Instance(path, ds)
    except Exception as exc:
        raise BoneScreenError(f"damaged DICOM header ({_short(exc)})", path) from None
    if inst.sop_class == MEDIA_STORAGE_DIRECTORY:  # (helper-92: "no Modality: not a CT image, or truncated")
        raise BoneScreenError(
            "a DICOMDIR, the index of a DICOM disc or export, not an image: open the folder it lies in (BoneScreen "
            "searches its subfolders for the series)",
            path,
        )
    if series is not None and not _is_series(inst, series):
        raise BoneScreenError(f"the file is not of series {series} but of {_series_label(inst, 1)}", path)
    if inst.skip and inst.skip.startswith("truncated"):
        raise BoneScreenError(inst.skip, path)
    if not inst.modality and inst.skip:
        raise BoneScreenError(f"no Modality: not a CT image, or the file is truncated ({inst.skip})", path)
    if inst.modality and inst.modality != "CT":
        raise BoneScreenError(f"not a CT image (Modality is {_printable(inst.modality)})", path)
    if inst.skip:
        raise BoneScreenError(f"not an axial CT image ({inst.skip})", path)
    if inst.multiframe:
        return _multiframe_series(inst)
    placed = _place_frames([inst])
    if isinstance(placed, str):
        raise BoneScreenError(f"not an axial CT image ({placed})", path)
    return placed


def _load_dicom(
    path: Path, recursive: bool = True, series_asked: str | None = None, ids: list[str] | None = None
) -> CTVolume:
    ids = [] if ids is None else ids
    if path.is_dir():
        found, unreadable = _collect(path, recursive)
        _add_identifiers(ids, found)
        if not found:
            blocked = [(name, why) for name, why in unreadable if why.startswith(CANNOT_BE_READ)]
            if blocked:  # (helper-94: files without permission were "damaged, or another format")
                raise BoneScreenError(f"no DICOM file could be read ({'; '.join(_skips_by_reason(blocked))})", path)
            named = sorted(
                n for n in os.listdir(path) if n.lower().endswith(DICOM_NAME_SUFFIXES) and not special_file(path / n)
            )
            if named:  # files that look like DICOM by name but are not: say so, not "no files"
                raise BoneScreenError(
                    f"{len(named)} file{'s' if len(named) > 1 else ''} named as DICOM ({named[0]}"
                    f"{', ...' if len(named) > 1 else ''}) but none reads as DICOM: damaged, or another format",
                    path,
                )
            special = [(name, why) for name, why in unreadable if why.startswith("not a file")]
            said = f" ({'; '.join(_skips_by_reason(special))})" if special else ""
            raise BoneScreenError(f"no DICOM files in the folder{said}", path)
        series = _choose_series(path, found, unreadable, series_asked)
    else:
        series = _single_file(path, series_asked, ids)
    try:
        frames, lps, shift = _check_series(series.frames)
    except BoneScreenError as exc:
        if not str(exc.problem).startswith("uneven slice spacing"):
            raise
        if series.damaged:  # a damaged image of the series is the likely gap: named first, by its file
            n = len(series.damaged)
            lead = f"{n} damaged files" if n > 1 else "a damaged file"
            raise BoneScreenError(
                f"{lead} ({'; '.join(_skips_by_reason(series.damaged))}), and the series {'they' if n > 1 else 'it'} "
                f"may belong to has a gap: {exc.problem}",
                path / series.damaged[0][0] if n == 1 else path,
            ) from None
        # the missing slices may be the images of another series in the folder (helper-34: one image with its own
        # SeriesInstanceUID read as "missing slices?"), or files that could not be read (helper-37: a damaged slice)
        clues = []
        for note in series.notes:
            if "also in the folder: " in note:
                others = note.split("also in the folder: ", 1)[1]
                clues.append(
                    f"the folder also holds {others}: is a missing image there, with another SeriesInstanceUID?"
                )
            elif note.startswith("skipped "):
                clues.append(f"{note}: is a missing image among them, damaged?")
        if not clues:
            raise
        raise BoneScreenError(f"{exc.problem}; {'; '.join(clues)}", exc.path) from None
    data = _stack(frames).transpose(2, 1, 0)  # (i=column, j=row, k=slice), a view: no copy
    to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    source_ras = ras = to_ras @ lps
    if shift is not None:  # onto the grid along the slices' normal, its corner where the slices' spread begins
        source_ras = ras.copy()  # the series' own, sheared grid: slices stacked along the table
        source_ras[:3, 2] = to_ras[:3, :3] @ _mean_step(frames)
        ras[:3, 3] -= ras[:3, :2] @ slice_offsets(len(frames), shift)[0][0]
        source_shape = data.shape
        data = shift_slices(data, shift, AIR_HU)
    first = frames[0].ds
    number = first.get("SeriesNumber", None)
    multiframe = frames[0].frame is not None
    count = f"{len(frames)} slice{'' if len(frames) == 1 else 's'}"
    desc = f"DICOM series{'' if number is None else ' ' + _printable(number)} ({count})"
    volume = volume_from_ijk(
        data,
        ras,
        "dicom",
        path,
        desc,
        dicom_files=[frames[0].path] if multiframe else [f.path for f in frames],
        dicom={
            "StudyInstanceUID": str(first.get("StudyInstanceUID", "")),
            "SeriesInstanceUID": str(first.get("SeriesInstanceUID", "")),
            "FrameOfReferenceUID": str(first.get("FrameOfReferenceUID", "")),
            "SeriesNumber": number,
            **({"frame_order": [f.frame for f in frames]} if multiframe else {}),
        },
    )
    if shift is not None:
        volume.source.affine, volume.source.shape, volume.source.slice_shift = source_ras, source_shape, shift
        volume.notes.append(_tilt_note(frames, lps))
    volume.notes.extend(series.notes)
    volume.notes.extend(spacing_notes(first, len(frames), float(np.linalg.norm(lps[:3, 2]))))
    if missing := missing_referenced_uids(volume.source.dicom):  # said now, not at the export (helper-115)
        volume.notes.append(
            f"the series has no {', '.join(missing)} (missing or empty, as some anonymizers leave them): no DICOM SEG "
            "or SR can reference it, so none is written; levels.nii.gz and result.json hold the results"
        )
    volume.flags.extend(series.flags)
    volume.acquisition = acquisition_fields(_acquisition_header(first))
    # every header's, not the first image's only: a damaged first header's name can run over its ID (helper-90)
    volume.source.identifiers = tuple(sorted(set(ids or ()) | set(patient_identifiers(first)), key=len, reverse=True))
    return volume
