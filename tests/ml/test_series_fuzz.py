"""Series-level fuzzing of the DICOM reader (issue "Real-world inputs"): extra objects in the folder,
missing and duplicated tags, mixed orientations and shuffled file names. BoneScreen either reads the
series right or raises its own error naming the problem; it never raises anything else."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct

SLICES, SIDE = 6, 32


def _ct_slice(k: int, series: str, frame: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "CT", series, frame
    ds.StudyInstanceUID, ds.SeriesNumber, ds.InstanceNumber = "1.2.3", 2, k + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-16.0, -16.0, 2.5 * k]
    ds.SliceLocation = 2.5 * k
    ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], 2.5
    ds.Rows = ds.Columns = SIDE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    yy, xx = np.mgrid[:SIDE, :SIDE] - SIDE / 2
    r = np.hypot(yy, xx)
    hu = np.where(r < 14, -100, -1000)  # fat
    hu = np.where(r < 11, 40, hu)  # muscle
    hu = np.where(r < 4, 700 + 10 * k, hu)  # bone, a different value per slice to check the order
    ds.PixelData = (hu + 1024).astype(np.uint16).tobytes()
    return ds


def _extra(kind: str) -> bytes | Dataset:
    if kind == "text":
        return b"not dicom at all\n"
    if kind == "random":
        return bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8))
    ds = _ct_slice(0, generate_uid(), generate_uid())
    if kind == "dose-sr":
        for keyword in ("Rows", "Columns", "PixelData", "ImageOrientationPatient", "ImagePositionPatient"):
            delattr(ds, keyword)
        ds.Modality = "SR"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"
    elif kind == "capture":
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    elif kind == "localizer":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    return ds


TAGS = [
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "SliceLocation",
    "PixelSpacing",
    "RescaleIntercept",
    "Modality",
    "Rows",
    "PixelData",
    "SeriesInstanceUID",
    "SOPClassUID",
]
EDITS = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, SLICES - 1), st.sampled_from(TAGS)),
    st.tuples(st.just("duplicate-position"), st.integers(0, SLICES - 1), st.integers(0, SLICES - 1)),
    st.tuples(st.just("coronal"), st.integers(0, SLICES - 1), st.just(None)),
    st.tuples(st.just("extra"), st.sampled_from(["text", "random", "dose-sr", "capture", "localizer"]), st.just(None)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(EDITS, max_size=4), names=st.permutations(list(range(SLICES + 5))))
def test_series_mutations_raise_only_our_error_or_read_right(tmp_path_factory, edits, names):
    folder = tmp_path_factory.mktemp("series")
    series, frame = generate_uid(), generate_uid()
    slices = [_ct_slice(k, series, frame) for k in range(SLICES)]
    extras = []
    for kind, a, b in edits:
        if kind == "delete" and b in slices[a]:
            delattr(slices[a], b)
        elif kind == "duplicate-position":
            slices[a].ImagePositionPatient = (
                list(slices[b].ImagePositionPatient) if "ImagePositionPatient" in slices[b] else [0, 0, 0]
            )
        elif kind == "coronal":
            slices[a].ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        elif kind == "extra":
            extras.append(_extra(a))
    for i, item in enumerate([*slices, *extras]):
        path = folder / f"f{names[i]:03d}"  # shuffled file names, no extension
        if isinstance(item, bytes):
            path.write_bytes(item)
        else:
            item.save_as(path, enforce_file_format=True)
    try:
        volume = load_ct(folder)
    except BoneScreenError as exc:
        assert exc.path is not None and str(exc)
        return
    assert volume.hu.dtype == np.float32 and volume.hu.ndim == 3
    # every slice read is one of the series' images, rescaled right (bone HU names the file), each once
    centre = [round(float(v)) for v in volume.hu[:, SIDE // 2, SIDE // 2]]
    assert set(centre) <= {700 + 10 * k for k in range(SLICES)} and len(set(centre)) == len(centre), centre
    position_tags = ("ImagePositionPatient", "SliceLocation", "ImageOrientationPatient")
    moved = any(kind == "duplicate-position" or (kind == "delete" and b in position_tags) for kind, _, b in edits)
    if not moved:  # positions untouched: the slices come in the order of their positions
        assert centre == sorted(centre)


def test_an_untouched_series_reads_right(tmp_path):
    series, frame = generate_uid(), generate_uid()
    for k in range(SLICES):
        _ct_slice(k, series, frame).save_as(tmp_path / f"{(k * 7) % SLICES}", enforce_file_format=True)
    volume = load_ct(tmp_path)
    assert volume.shape == (SLICES, SIDE, SIDE) and volume.spacing == pytest.approx((2.5, 1.0, 1.0))
    np.testing.assert_array_equal(volume.hu[:, SIDE // 2, SIDE // 2], 700 + 10 * np.arange(SLICES))
