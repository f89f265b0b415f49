"""The patient's name and ID kept out of what BoneScreen says about a scan.

File and folder names often carry them (PACS exports name files ``SMITH_JOHN_0001.dcm``, archives name
folders by patient ID), and notes, flags and result.json name files and the input. The strings the
series' own header gives as the patient's name and IDs are replaced wherever they stand as a word of a
file or folder name in those texts (DICOM PS3.15 Annex E lists Patient's Name and Patient ID among the
attributes a de-identification removes).
"""

from __future__ import annotations

import os
import re

from ..errors import BoneScreenError

#: What replaces an identifier in a text.
REDACTED = "[patient]"
#: Shorter parts of a name are not replaced (initials, "Jr"): they would blank words of every message.
MIN_PART_CHARS = 3


def patient_identifiers(header) -> tuple[str, ...]:
    """The patient's name parts and IDs of a DICOM header, longest first.

    Parameters
    ----------
    header : pydicom.Dataset
        Any image of the series.

    Returns
    -------
    tuple of str
        The parts of PatientName (family, given, middle names; every component group), PatientID,
        OtherPatientIDs and PatientBirthDate, each at least :data:`MIN_PART_CHARS` characters; empty when the
        header has none.
    """
    found: set[str] = set()
    name = str(header.get("PatientName", "") or "")
    for part in re.split(r"[\^=\s,]+", name):
        found.add(part.strip())
    # (helper-78: a folder named NAME_GIVEN_19840302, the birth date, was said with only the name redacted)
    for keyword in ("PatientID", "OtherPatientIDs", "PatientBirthDate"):
        value = header.get(keyword, None)
        if value is not None:
            found.update(str(v or "").strip() for v in ([value] if isinstance(value, str) else value))
    return tuple(sorted((p for p in found if len(p) >= MIN_PART_CHARS), key=len, reverse=True))


def redact(text: str, identifiers: tuple[str, ...]) -> str:
    """``text`` with every identifier that stands as a word (not inside a longer run of letters or digits)
    replaced by :data:`REDACTED`, case-insensitively: ``SMITH_JOHN_0001.dcm`` -> ``[patient]_[patient]_0001.dcm``.
    """
    for ident in identifiers:
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(ident)}(?![A-Za-z0-9])", REDACTED, text, flags=re.IGNORECASE)
    return text


def read_header(path: str | os.PathLike):
    """One DICOM file's header, its pixels not read: for the patient's identifiers (:func:`patient_identifiers`) and
    the series' UIDs where a front end has files and no series (Slicer's DICOM database gives a volume's files).

    Parameters
    ----------
    path : str or PathLike
        A DICOM file.

    Returns
    -------
    pydicom.Dataset
        The header.

    Raises
    ------
    BoneScreenError
        If the file is missing or does not read as DICOM.
    """
    import pydicom

    try:
        return pydicom.dcmread(os.fspath(path), stop_before_pixels=True)
    except Exception as exc:  # pydicom raises several types for missing, damaged and non-DICOM files
        raise BoneScreenError(f"unreadable DICOM header ({type(exc).__name__})", path) from None
