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
#: An accession number of digits only is replaced from this length: shorter ones read as the slice counts, HU and mm
#: of the messages.
MIN_NUMBER_CHARS = 6


def patient_identifiers(header) -> tuple[str, ...]:
    """The patient's name parts and IDs of a DICOM header, longest first.

    Parameters
    ----------
    header : pydicom.Dataset
        Any image of the series.

    Returns
    -------
    tuple of str
        The parts of PatientName (family, given, middle names; every component group; the first two joined, either
        way round), PatientID, OtherPatientIDs, AccessionNumber (digits only: :data:`MIN_NUMBER_CHARS` or more),
        InstitutionName (whole) and PatientBirthDate (also as YYYY-MM-DD, YYYY_MM_DD, YYYY.MM.DD, DD.MM.YYYY,
        DD-MM-YYYY), each at least :data:`MIN_PART_CHARS` characters, a damaged value's printable runs each; empty
        when the header has none.
    """
    found: set[str] = set()
    # a damaged header's value can run over the elements after it: its printable runs are the values (helper-90: a
    # PatientName whose length covered PatientID kept the ID out of the identifiers, and folder names showed it)
    name = str(header.get("PatientName", "") or "")
    parts = [p.strip() for p in re.split(r"[\^=\s,]+|[^\x20-\x7e\u00a0-\uffff]+", name) if p.strip()]
    found.update(parts)
    named = [p for p in parts if p.isalpha()]
    if len(named) > 1:  # SMITHJOHN and JOHNSMITH name folders too (helper-90)
        found.update({"".join(named[:2]), "".join(named[1::-1])})
    # (helper-78: a folder named NAME_GIVEN_19840302, the birth date, was said with only the name redacted)
    for keyword in ("PatientID", "OtherPatientIDs", "PatientBirthDate", "AccessionNumber"):
        value = header.get(keyword, None)
        if value is not None:
            for v in [value] if isinstance(value, str) else value:
                runs = re.split(r"[^\x20-\x7e]+", str(v or "").strip())
                if keyword == "AccessionNumber":  # a short number would blank the counts and HU of every message
                    runs = [r for r in runs if not r.strip().isdigit() or len(r.strip()) >= MIN_NUMBER_CHARS]
                found.update(runs)
    institution = str(header.get("InstitutionName", "") or "").strip()
    if institution:  # whole (its words alone are common ones: "General", "Hospital"); PS3.15 Annex E removes it
        found.add(institution)
    birth = str(header.get("PatientBirthDate", "") or "").strip()
    if re.fullmatch(r"\d{8}", birth):  # the date as people write it in folder names too (helper-90: 1961-05-03)
        y, m, d = birth[:4], birth[4:6], birth[6:]
        found.update({f"{y}-{m}-{d}", f"{y}_{m}_{d}", f"{y}.{m}.{d}", f"{d}.{m}.{y}", f"{d}-{m}-{y}"})
    return tuple(sorted((p.strip() for p in found if len(p.strip()) >= MIN_PART_CHARS), key=len, reverse=True))


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
    from .dicom import read_quietly  # (dicom imports this module)

    try:
        return read_quietly(os.fspath(path), stop_before_pixels=True)
    except Exception as exc:  # pydicom raises several types for missing, damaged and non-DICOM files
        raise BoneScreenError(f"unreadable DICOM header ({type(exc).__name__})", path) from None


def redact_error(exc: BoneScreenError, identifiers: tuple[str, ...]) -> BoneScreenError:
    """``exc`` with the identifiers taken out of its problem and path (:func:`redact`); ``exc`` itself when there are
    none. For errors raised once a scan is read: a label file in a folder named after the patient (helper-90)."""
    if not identifiers:
        return exc
    path = None if exc.path is None else redact(str(exc.path), identifiers)
    return BoneScreenError(redact(exc.problem, identifiers), path)


#: What in a reader's or writer's exception text may come from a file's header, and is not shown: quoted values,
#: element tags (pydicom names the "tags" it read from a damaged header's bytes: the patient's name, read as hex),
#: byte escapes (helper-90).
_HEADER_VALUES = re.compile(
    r"'[^']*'|\"[^\"]*\"|\([0-9A-Fa-f]{4}, ?[0-9A-Fa-f]{4}\)|0x[0-9A-Fa-f]{2}|\\x[0-9A-Fa-f]{2}"
)


def system_reason(exc: OSError) -> str:
    """An OSError's reason as the system words it (``No space left on device``), also where a library wrapped it in
    its own text (pydicom: ``With tag (7FE0,0010) got exception: [Errno 28] No space left on device``)."""
    if exc.strerror:
        return exc.strerror
    if found := re.search(r"\[Errno (\d+)\]", str(exc)):
        return os.strerror(int(found.group(1)))
    return f"{type(exc).__name__}: {without_header_values(str(exc))}"


def without_header_values(text: str) -> str:
    """``text`` (an exception's message) with what may be a header's values replaced by "...", and a traceback's
    lines cut off: pydicom and highdicom quote the values they refuse ("Unable to convert '1961-05-03' to 'DA'")."""
    text = text.split("Traceback (most recent call last)")[0]
    return _HEADER_VALUES.sub("...", text).strip()
