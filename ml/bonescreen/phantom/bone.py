"""Bone-density model of the phantom: class ranges, vBMD draws, and the HU that vBMD gives."""

from __future__ import annotations

import numpy as np

from .. import attenuation
from ..attenuation import Spectrum
from ..errors import BoneScreenError, check_number
from ..labels import CLASS_NAMES

#: vBMD ranges (mg/cm3) drawn for each class; ACR QCT: normal > 120, low bone mass 80-120, osteoporosis < 80.
#: A small margin is kept from the class boundaries so that every level stays in its case's class.
VBMD_RANGES: dict[str, tuple[float, float]] = {
    "normal": (125.0, 220.0),
    "low_bone_mass": (83.0, 117.0),
    "osteoporosis": (35.0, 77.0),
}

#: The tube spectrum the first phantom's bone is computed under (its soft tissues read as at 120 kVp:
#: fat -100 HU, :mod:`bonescreen.attenuation` gives -99).
FIRST_PHANTOM_SPECTRUM = Spectrum(kvp=120.0)


def vbmd_class(vbmd: float) -> str:
    """ACR QCT category of a trabecular vBMD in mg/cm3 (ACR-SPR-SSR practice parameter for QCT, 2018).

    Raises
    ------
    BoneScreenError
        If ``vbmd`` is negative or not finite.
    """
    check_number("vbmd", vbmd, 0.0)
    if vbmd > 120.0:
        return "normal"
    if vbmd >= 80.0:
        return "low_bone_mass"
    return "osteoporosis"


def trabecular_hu(vbmd: float, contrast_offset: float = 0.0) -> float:
    """Mean trabecular HU of the first phantom for a vBMD (mg/cm3), plus a contrast-phase offset (HU).

    Computed as the realistic phantom computes it (:func:`bonescreen.attenuation.trabecular_bone`):
    hydroxyapatite at ``vbmd`` with its collagen, the rest marrow whose fat follows the density
    (:func:`~bonescreen.attenuation.mean_marrow_fat`, Griffith et al., Radiology 2005), under
    :data:`FIRST_PHANTOM_SPECTRUM`; so the scan's internal calibration reads back the vBMD drawn. Until
    2026-12-02 it was HU = 1.15 vBMD + 20, a line through the opportunistic thresholds (80 mg/cm3 at
    112 HU, 120 at 158) that no material gives: low densities read up to 25 HU too bright, and vBMD
    measured on this phantom came out up to 28 mg/cm3 high (30 cases, seed 2000).

    Raises
    ------
    BoneScreenError
        If ``vbmd`` is negative or either value is not finite.
    """
    check_number("vbmd", vbmd, 0.0)
    check_number("contrast_offset", contrast_offset)
    bone = attenuation.trabecular_bone(vbmd, float(attenuation.mean_marrow_fat(vbmd)))
    return attenuation.hounsfield(bone, FIRST_PHANTOM_SPECTRUM) + contrast_offset


def draw_class(rng: np.random.Generator, index: int, seed: int, weights: tuple[float, float, float] | None) -> str:
    """Class of case ``index``: balanced in every block of three cases when ``weights`` is None, else drawn."""
    if weights is None:
        block = np.random.default_rng([seed, 7919, index // 3]).permutation(3)
        return CLASS_NAMES[int(block[index % 3])]
    p = np.asarray(weights, dtype=float)
    if p.shape != (3,) or np.any(p < 0) or p.sum() <= 0:
        raise BoneScreenError(f"class weights must be three non-negative numbers, got {weights}")
    return CLASS_NAMES[int(rng.choice(3, p=p / p.sum()))]


def draw_level_vbmd(rng: np.random.Generator, cls: str, n_levels: int) -> tuple[float, np.ndarray]:
    """A case vBMD in the class range and per-level values around it (same class)."""
    lo, hi = VBMD_RANGES[cls]
    case = float(rng.uniform(lo, hi))
    levels = case + rng.normal(0.0, 0.04 * case, n_levels)
    return case, np.clip(levels, lo, hi)
