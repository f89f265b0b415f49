"""Write phantom cases: NIfTI or a DICOM series, label maps, and ``cases.csv``."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from .. import __version__
from ..atomic import atomic_path
from ..errors import BoneScreenError
from ..io.nifti import save_nifti
from ..labels import LEVEL_NAMES, VERTEBRA_NAMES
from .generate import PhantomCase, PhantomConfig, make_case
from .realistic import RealisticConfig, make_realistic_case

#: Columns of cases.csv.
CSV_COLUMNS = (
    ["case_id", "class", "case_vbmd", "contrast", "slices", "slice_thickness_mm", "pixel_spacing_mm"]
    + [f"vbmd_{n}" for n in LEVEL_NAMES.values()]
    + [f"trabecular_hu_{n}" for n in LEVEL_NAMES.values()]
    # realistic phantom only (empty for the first): scan, findings (:mod:`.findings`), transitional anatomy
    + ["kvp", "phase"]
    + [f"genant_grade_{n}" for n in LEVEL_NAMES.values()]
    + [f"fracture_shape_{n}" for n in LEVEL_NAMES.values()]
    + [f"height_{w}_mm_{n}" for n in LEVEL_NAMES.values() for w in ("anterior", "middle", "posterior")]
    + ["cement_levels", "screw_levels", "lumbar_count", "ribs"]
)


def _save_nifti(array_zyx: np.ndarray, affine: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(array_zyx.transpose(2, 1, 0), affine)  # an F-ordered view: nibabel writes it without a copy
    img.header.set_xyzt_units("mm")
    save_nifti(img, path)


def write_dicom_series(case: PhantomCase, folder: str | os.PathLike) -> list[Path]:
    """Write the case's CT as an axial DICOM series (one file per slice, signed 16-bit, intercept -1024).

    The patient is called ``BoneScreen^Phantom`` with the case id as patient id:
    nothing here identifies a person.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dz, dy, dx = case.spacing
    nz, ny, nx = case.hu.shape
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    # LPS position of voxel (x=0, y=0) of each slice; x toward left, y toward posterior
    x0, y0 = -(nx - 1) / 2 * dx, -(ny - 1) / 2 * dy
    today = _dt.date.today().strftime("%Y%m%d")
    paths = []
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientName = "BoneScreen^Phantom"
        ds.PatientID = case.case_id
        ds.PatientBirthDate, ds.PatientSex, ds.ReferringPhysicianName, ds.AccessionNumber = "", "O", "", ""
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate = ds.SeriesDate = today
        ds.StudyTime = ds.SeriesTime = "120000"
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 2, k + 1
        ds.SeriesDescription = "BoneScreen phantom"
        ds.Manufacturer = "BoneScreen phantom " + __version__
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [round(x0, 4), round(y0, 4), round(k * dz, 4)]
        ds.SliceLocation = round(k * dz, 4)
        ds.PixelSpacing = [round(dy, 6), round(dx, 6)]
        ds.SliceThickness = dz
        for keyword, value in case.header.items():
            setattr(ds, keyword, value)
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 400, 1800
        ds.PixelData = (case.hu[k].astype(np.int32) + 1024).astype(np.int16).tobytes()
        path = folder / f"slice{k + 1:04d}.dcm"
        with atomic_path(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        paths.append(path)
    return paths


def write_case(case: PhantomCase, folder: str | os.PathLike, fmt: str = "nifti") -> Path:
    """Write one case: ``ct.nii.gz`` (or ``dicom/``), ``levels.nii.gz``, ``body.nii.gz``, ``spine.nii.gz``.

    A realistic case's ``ct.nii.gz`` gets a dcm2niix-style sidecar ``ct.json`` with its ``KVP``.

    ``spine.nii.gz`` is the phantom's extra truth: all vertebral bone, 1..5 for
    L1..L5, 6 for T12 and 7 for the sacrum.
    """
    if fmt not in ("nifti", "dicom"):
        raise BoneScreenError(f"format must be 'nifti' or 'dicom', got {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "nifti":
        _save_nifti(case.hu, case.affine, folder / "ct.nii.gz")
        if "kvp" in case.meta:  # the tube voltage, as dcm2niix's sidecar gives it (the phase is the image's to tell)
            with atomic_path(folder / "ct.json") as tmp:
                tmp.write_text(json.dumps({"Modality": "CT", "KVP": case.meta["kvp"]}, indent=1) + "\n")
    else:
        write_dicom_series(case, folder / "dicom")
    _save_nifti(case.levels, case.affine, folder / "levels.nii.gz")
    _save_nifti(case.body, case.affine, folder / "body.nii.gz")
    _save_nifti(case.spine, case.affine, folder / "spine.nii.gz")
    return folder


def case_row(case: PhantomCase) -> dict:
    """The case's row of ``cases.csv``."""
    row = {
        "case_id": case.case_id,
        "class": case.label,
        "case_vbmd": case.meta["case_vbmd"],
        "contrast": int(case.meta["contrast"]),
        "slices": case.hu.shape[0],
        "slice_thickness_mm": case.spacing[0],
        "pixel_spacing_mm": round(case.spacing[1], 4),
    }
    for name in LEVEL_NAMES.values():
        row[f"vbmd_{name}"] = case.vbmd.get(name, "")
        row[f"trabecular_hu_{name}"] = case.trabecular_hu.get(name, "")
    findings = case.meta.get("findings")
    if findings is not None:
        row["kvp"], row["phase"] = case.meta["kvp"], case.meta["phase"]
        for vid, name in LEVEL_NAMES.items():
            if case.meta["slices"].get(name):
                fracture = findings["fractures"].get(str(vid))
                row[f"genant_grade_{name}"] = fracture["grade"] if fracture else 0
                row[f"fracture_shape_{name}"] = fracture["shape"] if fracture else ""
        heights = case.meta.get("body_heights_mm", {})
        for name in LEVEL_NAMES.values():
            for where in ("anterior", "middle", "posterior"):
                row[f"height_{where}_mm_{name}"] = heights.get(name, {}).get(where, "")
        row["cement_levels"] = " ".join(VERTEBRA_NAMES[v] for v in findings["cement"])
        row["screw_levels"] = " ".join(VERTEBRA_NAMES[v] for v in findings["screws"])
        row["lumbar_count"], row["ribs"] = findings["lumbar_count"], findings["ribs"]
    return row


def write_phantom_set(
    out: str | os.PathLike,
    cases: int,
    seed: int = 0,
    fmt: str = "nifti",
    config: PhantomConfig | RealisticConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``cases`` phantom cases under ``out`` with ``cases.csv``.

    Parameters
    ----------
    out : str or PathLike
        Output folder; one sub-folder per case.
    cases : int
        Number of cases.
    seed : int
        Set seed: the same seed gives the same cases.
    fmt : {"nifti", "dicom"}
        Format of the CT.
    config : PhantomConfig or RealisticConfig, optional
        Kind of cases (a RealisticConfig makes realistic-phantom cases).
    progress : callable, optional
        Called with (done, total) after each case.
    """
    if cases < 1:
        raise BoneScreenError("cases must be at least 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BoneScreenError("is a file, not a folder for the phantom cases", out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(cases):
        case = (
            make_realistic_case(seed, i, config) if isinstance(config, RealisticConfig) else make_case(seed, i, config)
        )
        write_case(case, out / case.case_id, fmt)
        rows.append(case_row(case))
        if progress:
            progress(i + 1, cases)
    with atomic_path(out / "cases.csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return out / "cases.csv"
