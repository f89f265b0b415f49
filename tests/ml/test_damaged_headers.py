"""Damaged and malformed DICOM headers say nothing of the patient (helper-90).

Each case builds its own series from the phantom's with pydicom, then damages it the way copies and anonymizers do:
a length field that runs over the elements after it, or a value in the wrong format. The patient's name, ID, birth
date, accession number and institution must not reach an error, a note, stderr or result.json; only seg.dcm and
sr.dcm carry them, as result.json's ``identifying_tags`` says.
"""

import shutil
import struct

import numpy as np
import pydicom
import pytest
from pydicom import config

from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct
from bonescreen.io.identifiers import patient_identifiers, redact
from bonescreen.io.writers import write_dicom_seg

SECRETS = ("ZQXWV", "KRAMPUS", "PIDZ991", "1961", "ACCQ777", "HOSPQZ")


def _identify(folder) -> None:
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "ZQXWV^KRAMPUS", "PIDZ991", "19610503"
        ds.AccessionNumber, ds.InstitutionName = "ACCQ777", "HOSPQZ"
        ds.save_as(f)


def _set_length(path, tag: bytes, length: int) -> None:
    """The 2-byte length of the explicit-VR element ``tag`` (its 4 tag bytes and 2 VR bytes) set to ``length``."""
    data = bytearray(path.read_bytes())
    at = data.index(tag)
    data[at + 6 : at + 8] = struct.pack("<H", length)
    path.write_bytes(bytes(data))


def _set_value(path, tag: bytes, value: bytes) -> None:
    """The value of the explicit-VR element ``tag`` replaced by ``value``, padded with spaces to its length."""
    data = bytearray(path.read_bytes())
    at = data.index(tag)
    (length,) = struct.unpack("<H", data[at + 6 : at + 8])
    data[at + 8 : at + 8 + length] = value.ljust(length, b" ")
    path.write_bytes(bytes(data))


def _clean(*texts) -> bool:
    return not any(secret in text for text in texts for secret in SECRETS)


@pytest.fixture
def named(series, tmp_path):
    """The series with identifying values, in a folder named after the patient (as PACS exports name them)."""
    folder = tmp_path / "ZQXWV_KRAMPUS_PIDZ991"
    shutil.copytree(series, folder)
    _identify(folder)
    return folder


def test_a_modality_run_over_the_header_is_said_unreadable_not_quoted(named, capfd):
    """A Modality whose length ran over the rest of the header put those bytes (the patient's name, ID, birth date,
    institution) into "no CT images in the folder (modality ...)" and "not a CT image (Modality is ...)"."""
    for f in named.iterdir():
        _set_length(f, b"\x08\x00\x60\x00CS", 1000)
    with pytest.raises(BoneScreenError) as err:
        load_ct(named)
    assert "every DICOM file is damaged (damaged: " in err.value.problem and _clean(err.value.problem)
    with pytest.raises(BoneScreenError) as err:
        load_ct(sorted(named.iterdir())[3])
    assert "Modality is unreadable" in err.value.problem and _clean(err.value.problem)
    out = capfd.readouterr()
    assert _clean(out.out, out.err)


def test_a_name_whose_length_is_zero_gives_no_bytes_of_it_in_the_error(named):
    """With PatientName's length 0, pydicom read its value as elements: its error named "tags" decoded from the
    name's bytes ((515A,5758) is "ZQXW") and carried a traceback; the error now says the file is unreadable."""
    single = sorted(named.iterdir())[3]
    _set_length(single, b"\x10\x00\x10\x00PN", 0)
    with pytest.raises(BoneScreenError) as err:
        load_ct(single)
    said = err.value.problem  # (its path is the folder's: no header could be read to tell the patient's name by)
    assert said.startswith("not a readable DICOM file") and "Traceback" not in said
    assert "515A" not in said.upper() and "0x56" not in said and _clean(said)


def test_a_first_header_whose_name_runs_over_its_id_leaves_the_id_redacted_and_the_seg_whole(named, small_case):
    """The first image's PatientName length ran over its PatientID and birth date: the identifiers were taken from
    that header alone, so the folder's PIDZ991 stood in result.json's input and the flags, and the SEG carried the
    garbled name with no PatientID."""
    first = sorted(named.iterdir())[0]
    data = first.read_bytes()
    at = data.index(b"\x10\x00\x10\x00PN")
    end = data.index(b"\x10\x00\x30\x00DA") + 8 + 8  # to the end of PatientBirthDate's value
    _set_length(first, b"\x10\x00\x10\x00PN", end - (at + 8))
    volume = load_ct(named)
    assert "PIDZ991" in volume.source.identifiers
    assert redact(str(named), volume.source.identifiers).endswith("[patient]_[patient]_[patient]")
    write_dicom_seg(volume, small_case.levels, named.parent / "seg.dcm")
    seg = pydicom.dcmread(named.parent / "seg.dcm")
    assert str(seg.PatientName) == "ZQXWV^KRAMPUS" and seg.PatientID == "PIDZ991"


def test_folder_names_by_accession_number_institution_or_a_written_birth_date_are_redacted():
    header = pydicom.Dataset()
    header.PatientName, header.PatientID, header.PatientBirthDate = "ZQXWV^KRAMPUS", "PIDZ991", "19610503"
    header.AccessionNumber, header.InstitutionName = "ACCQ777", "HOSPQZ"
    ids = patient_identifiers(header)
    for name in ("ACCQ777_HOSPQZ", "ZQXWVKRAMPUS_0078.dcm", "ZQXWV KRAMPUS 1961-05-03", "KRAMPUSZQXWV", "03.05.1961"):
        assert _clean(redact(name, ids)), (name, redact(name, ids))


def test_a_refusal_after_reading_names_the_folder_without_the_patient(named):
    """Stored values without their rescale in a folder named after the patient: the HU refusal came after the
    reader's own redaction and named the folder in full."""
    for f in named.iterdir():
        ds = pydicom.dcmread(f)
        ds.RescaleIntercept = 0
        ds.save_as(f)
    with pytest.raises(BoneScreenError, match="not Hounsfield units") as err:
        load_ct(named)
    assert _clean(str(err.value)), str(err.value)


def test_malformed_values_the_seg_copies_are_repaired_not_quoted(named, small_case, capfd):
    """A SliceThickness "x" and a PatientSex "f" made highdicom refuse the SEG (so the SR was lost too), and the
    refusal and pydicom's log quoted the values."""
    for f in named.iterdir():
        ds = pydicom.dcmread(f)
        with config.disable_value_validation():
            ds.PatientSex = "f"
        ds.save_as(f)
        _set_value(f, b"\x18\x00\x50\x00DS", b"x")  # pydicom will not write a DS of "x"
    volume = load_ct(named)
    notes: list[str] = []
    write_dicom_seg(volume, small_case.levels, named.parent / "seg.dcm", notes=notes)
    seg = pydicom.dcmread(named.parent / "seg.dcm")
    assert seg.PatientSex == "F"
    thickness = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness
    assert np.isclose(float(thickness), volume.spacing[0])
    out = capfd.readouterr()
    assert "'x'" not in out.err + out.out and "'f'" not in out.err + out.out


def test_a_full_size_file_whose_header_derails_is_called_garbled_not_cut(series):
    """helper-90: a PixelSpacing length 2 short made pydicom read past the pixel data's start; the full-size file
    was said to "end before or inside" its pixel data."""
    first = sorted(series.iterdir())[0]
    data = first.read_bytes()
    (length,) = struct.unpack("<H", data[data.index(b"\x28\x00\x30\x00DS") + 6 :][:2])
    _set_length(first, b"\x28\x00\x30\x00DS", length - 2)
    with pytest.raises(BoneScreenError) as err:
        load_ct(series)
    assert "garbled" in err.value.problem and "may end before" not in err.value.problem, err.value.problem


def test_a_damaged_uid_is_not_quoted_by_the_batchs_duplicate_check_nor_the_front_ends_header(named, capfd):
    """Stop 61: batch's duplicate check and the header Slicer's module reads for the identifiers read with pydicom
    outside the reader's guard, so a SeriesInstanceUID holding other bytes (here the patient's ID, as a damaged
    length leaves them) was quoted by pydicom's "Invalid value for VR UI" warning."""
    import warnings

    from bonescreen.batch import duplicate_studies
    from bonescreen.io.identifiers import read_header

    first = sorted(named.iterdir())[0]
    _set_value(first, b"\x20\x00\x0e\x00UI", b"PIDZ991")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        duplicate_studies({"a": named, "b": named})
        header = read_header(first)
        header.get("SeriesInstanceUID")
    out = capfd.readouterr()
    assert _clean(out.out, out.err, *(str(w.message) for w in caught))
