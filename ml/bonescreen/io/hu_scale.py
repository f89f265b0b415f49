"""Is a volume in Hounsfield units? Fat tells.

Every CT of a patient holds fat (subcutaneous, retroperitoneal, paraspinal, marrow),
at -190 to -30 HU (ICRU 46 adipose tissue; the same window as body-composition CT
studies, e.g. Zopfs et al. 2020, Eur Radiol 30:3269), also a spine-only field of
view where no air is in view. A volume whose stored values were never rescaled has
its fat at about +900 (offset -1024, the usual RescaleIntercept of unsigned
storage) and no value below zero; a volume of zeros has no fat at all.
"""

from __future__ import annotations

import numpy as np

from ..errors import check_choice

#: Fat window (HU).
FAT_HU = (-190.0, -30.0)
#: Share of the voxels in the fat window under which the values are taken not to be HU.
MIN_FAT_FRACTION = 0.003
#: Offsets tried when the values are not HU: the RescaleIntercepts of unsigned storage.
CANDIDATE_OFFSETS = (-1024.0, -1000.0, -2048.0, -32768.0)

#: Largest offset a user may add to stored values (``--hu-offset``): a 16-bit image's stored values span 65,536,
#: so no offset beyond that can bring them to HU (helper-38: 1e12 was taken, and the CT then "held 1e+12
#: everywhere: not a CT image").
MAX_HU_OFFSET = 65536.0
#: Voxels looked at per axis step (a strided sample: the check stays fast on any size).
_MAX_SAMPLES = 2_000_000


def _fat_fraction(values: np.ndarray, offset: float) -> float:
    lo, hi = FAT_HU
    return float(np.count_nonzero((values + offset > lo) & (values + offset < hi))) / max(values.size, 1)


#: No patient tissue reads above this (HU) on more than :data:`MAX_DENSE_FRACTION` of the voxels: metal reaches
#: 3071 (12-bit scanners) or more on extended scales, but only in small parts of a volume; stored values read
#: with the wrong sign (PixelRepresentation) or scale put the padding or the air there.
MAX_TISSUE_HU = 4000.0
MAX_DENSE_FRACTION = 0.01


#: Why a volume holding NaN or infinity is no CT (the command line's NIfTI reader says the same).
NOT_FINITE = "the volume holds NaN or infinite values"
#: The front ends whose words :func:`hu_scale_problem`'s advice is given in.
FRONT_ENDS = ("cli", "slicer")


def hu_scale_problem(hu: np.ndarray, given_offset: float = 0.0, front_end: str = "cli") -> str | None:
    """Why the values of a (z, y, x) volume are not Hounsfield units, or None if they look like HU.

    Parameters
    ----------
    hu : ndarray
        The volume as read (stored values times RescaleSlope plus RescaleIntercept).
    given_offset : float
        The offset the user already added (``--hu-offset``): a suggested offset is the total to give.
    front_end : {"cli", "slicer"}
        Whose controls the advice names: the command line's options, or 3D Slicer's modules (which has no
        ``--hu-offset`` nor ``--labels``: helper-76).

    Returns
    -------
    str or None
        The problem in plain words, naming the likely offset when adding one puts
        fat where fat belongs (:data:`FAT_HU`).
    """
    check_choice("front end", front_end, FRONT_ENDS)
    if np.asarray(hu).dtype.kind == "f" and not np.all(np.isfinite(hu)):  # (helper-76: Slicer segmented NaN)
        return NOT_FINITE
    step = max(1, int(np.ceil((hu.size / _MAX_SAMPLES) ** (1 / 3))))
    sample = np.asarray(hu[::step, ::step, ::step], dtype=np.float32)
    lo, hi = float(sample.min()), float(sample.max())
    if hi - lo < 1.0:
        held = f"every voxel holds {lo:g}" if hi == lo else f"the values span only {lo:g} to {hi:g}"
        return f"{held}: no air, fat or bone, so this is not a CT image"
    dense = float(np.count_nonzero(sample > MAX_TISSUE_HU)) / sample.size
    if dense > MAX_DENSE_FRACTION:
        return (
            f"{100 * dense:.0f}% of the voxels read above {MAX_TISSUE_HU:g} HU (up to {hi:g}), which no tissue does: "
            "stored values read with the wrong sign or scale (PixelRepresentation, RescaleSlope)?"
        )
    if _fat_fraction(sample, 0.0) >= MIN_FAT_FRACTION:
        return None
    best = max(CANDIDATE_OFFSETS, key=lambda o: _fat_fraction(sample, o))
    if _fat_fraction(sample, best) >= MIN_FAT_FRACTION:
        total = best + given_offset
        fix = (
            f"load the CT with its rescale, or add {total:g} to every value (Simple Filters module: "
            f"ShiftScaleImageFilter, Shift {total:g})"
            if front_end == "slicer"
            else f"Give the correction with --hu-offset {total:g}"
        )
        return (
            f"the values are not Hounsfield units: nothing reads as fat ({FAT_HU[0]:g} to {FAT_HU[1]:g} HU) and the "
            f"values run from {lo:g} to {hi:g}; they look like stored values without their rescale (likely offset "
            f"{best:+g}: RescaleIntercept missing?). {fix}"
        )
    given = f" with the --hu-offset {given_offset:g} given" if given_offset else ""
    return (
        f"the values{given} do not look like CT in Hounsfield units: nothing reads as fat ({FAT_HU[0]:g} to "
        f"{FAT_HU[1]:g} HU), values run from {lo:g} to {hi:g}"
        + ("; if the file holds HU already, give no --hu-offset" if given_offset else "")
        + _label_map_hint(sample, lo, hi, front_end)
    )


#: A volume of whole numbers from 0 with at most this many distinct values is a label map, not a CT (TotalSegmentator
#: has 117 classes; a CT holds thousands of distinct values).
MAX_LABEL_VALUES = 256


def _label_map_hint(sample: np.ndarray, lo: float, hi: float, front_end: str = "cli") -> str:
    """'; it looks like a label map ...' for a volume of few whole numbers from 0, else '' (helper-38: VerSe's
    float64 vertebra map, screened as a CT, was refused with no word of what it is)."""
    if lo != 0 or hi > MAX_LABEL_VALUES or not np.array_equal(sample, np.round(sample)):
        return ""
    n = np.unique(sample).size
    if n > MAX_LABEL_VALUES:
        return ""
    give = (
        "select the CT as the input volume, and open a label map with 'Open a vertebra label map...'"
        if front_end == "slicer"
        else "give the CT as the input, and a label map with --labels"
    )
    return f"; it looks like a label map ({n} whole values from 0 to {hi:g}): {give}"
