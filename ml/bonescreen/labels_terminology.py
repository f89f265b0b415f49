"""Standard codes for the lumbar levels (SNOMED CT), used by DICOM SEG and Slicer terminology."""

from __future__ import annotations

from pydicom.sr.codedict import codes

#: level id -> SNOMED CT code of the vertebra
LEVEL_CODES = {
    1: codes.SCT.L1Vertebra,
    2: codes.SCT.L2Vertebra,
    3: codes.SCT.L3Vertebra,
    4: codes.SCT.L4Vertebra,
    5: codes.SCT.L5Vertebra,
}

#: Segmented property category of every level: anatomical structure
LEVEL_CATEGORY = codes.SCT.AnatomicalStructure


def vertebra_code(vid: int):
    """SNOMED CT code of an all-vertebrae id (DESIGN.md): ``T12 vertebra``, ``Sacrum`` ...; ``Vertebra`` for
    L6 and the unnamed vertebrae, which have no code of their own."""
    from .labels import VERTEBRA_NAMES

    name = VERTEBRA_NAMES.get(int(vid), "")
    if name == "S1":
        return codes.SCT.Sacrum
    return getattr(codes.SCT, f"{name}Vertebra", None) or codes.SCT.Vertebra
