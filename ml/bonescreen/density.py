"""Volumetric bone mineral density (mg/cm3) without a calibration phantom: internal calibration.

A QCT scanner is calibrated with a phantom of known mineral density scanned with the patient.
Routine CT has none; instead (as Michalski et al., Med Eng Phys 2020;78:55-63, and the Bonelab
"Ogo" tools do) the scan's own tissues calibrate it:

1. The reference tissues (:mod:`bonescreen.reference_tissues`: air, fat, paraspinal muscle) are
   measured, and the patient's water-equivalent diameter.
2. One *effective energy* E (keV) stands for the scan's spectrum: the energy at which the tissues'
   ICRU 46 compositions (:mod:`bonescreen.attenuation`, Elam mass attenuation tables) read the HU
   measured. Fat carries most of the information (its HU moves 1.3 HU per keV near 65 keV; muscle's
   barely moves), and fat's own density varies from patient to patient (about +-12 HU), so the tube
   voltage in the header (``KVP``) gives a prior: the effective energy of a tungsten spectrum at that
   kVp through :data:`NOMINAL_FILTER_MM` of aluminium and the patient's water-equivalent diameter.
   E is the maximum of the posterior over 40-140 keV.
3. At E, trabecular bone of mineral density rho (hydroxyapatite, mg/cm3, the unit of the ACR QCT
   categories) with its collagen and marrow (:func:`~bonescreen.attenuation.trabecular_bone`)
   reads a HU that rises with rho; the level's measured trabecular HU is inverted on that curve. The
   marrow's fat follows rho (:func:`~bonescreen.attenuation.mean_marrow_fat`, Griffith et al. 2005):
   single-energy CT cannot see it, which is QCT's known "fat error".
4. In a contrast-enhanced scan (an enhanced aorta or IVC found, or ``ContrastBolusAgent`` in the
   header) the marrow holds iodine: :data:`MARROW_IODINE_MG_ML` is assumed (Pickhardt et al., AJR
   2011: trabecular HU rises 11-20 HU in the portal venous phase at 120 kVp, which is 0.4-0.8 mg/ml).

Each level's vBMD comes with an uncertainty (1 SD) from E's, the marrow fat's spread and, when
enhanced, the iodine's; the ACR category (:func:`acr_category`) and flags say when to distrust it.
This is a model with one energy: the phantom computes its HU over a whole hardened spectrum with
tissue densities that vary per patient, which is how this calibration is tested
(``benchmarks/vbmd.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

from .attenuation import (
    ENERGIES_KEV,
    Spectrum,
    hounsfield,
    hounsfield_at,
    mean_marrow_fat,
    tissue,
    trabecular_bone,
)
from .errors import BoneScreenError
from .hu import in_category_text
from .reference_tissues import ReferenceTissue

#: ACR QCT categories (ACR-SPR-SSR Practice Parameter for QCT, 2018): trabecular vBMD of the lumbar
#: spine above 120 mg/cm3 is normal, 80-120 low bone mass (osteopenia), below 80 osteoporosis.
ACR_LOW_BONE_MASS_BELOW = 120.0
ACR_OSTEOPOROSIS_BELOW = 80.0

#: Tube filtration plus bow-tie as aluminium (mm) assumed for the kVp prior; scanners have about 3-9 mm.
NOMINAL_FILTER_MM = 6.0
#: Water-equivalent diameter (mm) assumed when the body is not in view (an adult abdomen, AAPM Report 220).
DEFAULT_DIAMETER_MM = 280.0
#: SD (keV) of the kVp prior: filtration of 3-9 mm Al moves the effective energy by about +-2 keV.
KVP_PRIOR_SD_KEV = 2.5
#: Prior without a tube voltage: 120 kVp through an average adult abdomen, +- the 80-140 kVp range.
NO_KVP_PRIOR_KEV = (68.0, 8.0)
#: Between-patient spread (1 SD, HU) of each reference tissue about its ICRU 46 value at the right energy:
#: density and water content vary (fat about +-2 %, muscle +-1.2 %); air's HU is set by the scanner, whose
#: calibration passes with air anywhere in -1005 to -970 HU (ACR CT Accreditation Program, phantom testing:
#: CT number accuracy), a 35 HU range: 10 HU, so that a scanner within it is not flagged (with 5 HU, air at
#: -984 HU, well within it, was flagged on TotalSegmentator's example CT, helper-71).
TISSUE_SD_HU = {"air": 10.0, "adipose": 12.0, "muscle": 10.0}
#: Iodine (mg/ml) assumed in trabecular marrow of a contrast-enhanced scan, and its spread (1 SD).
MARROW_IODINE_MG_ML = (0.5, 0.2)
#: Spread (1 SD) of marrow fat about its mean for the vBMD (Griffith et al. 2005: SDs of 6-9 %).
MARROW_FAT_SD = 0.07
#: vBMD grid (mg/cm3) the HU curve is inverted on.
VBMD_GRID = np.arange(0.0, 601.0, 1.0)
#: A level whose vBMD uncertainty (1 SD) exceeds this is flagged.
MAX_UNCERTAINTY_MG_CM3 = 15.0
#: A reference tissue further than this many of its SDs from the fit is flagged.
MAX_TISSUE_Z = 3.0

_TISSUE_MIXTURE = {"air": "air", "adipose": "adipose", "muscle": "muscle"}


def acr_category(vbmd_mg_cm3: float) -> str:
    """ACR QCT category of a trabecular vBMD (mg/cm3), in BoneScreen's class names.

    ``normal`` above 120, ``low_bone_mass`` 80-120, ``osteoporosis`` below 80 (ACR 2018 practice
    parameter for QCT; the paper's three classes).
    """
    if vbmd_mg_cm3 < ACR_OSTEOPOROSIS_BELOW:
        return "osteoporosis"
    if vbmd_mg_cm3 <= ACR_LOW_BONE_MASS_BELOW:
        return "low_bone_mass"
    return "normal"


def vbmd_text(vbmd_mg_cm3: float) -> str:
    """A vBMD (mg/cm3) as text that keeps its ACR category (:func:`~bonescreen.hu.in_category_text`).

    120.2 mg/cm3 (normal) printed as "120" would read as low bone mass (80-120): it prints as "120.2".
    """
    return in_category_text(vbmd_mg_cm3, acr_category)


@cache
def kvp_effective_energy(kvp: float, diameter_mm: float) -> float:
    """Effective energy (keV) of a tungsten spectrum at ``kvp`` through the nominal filter and a patient.

    The energy at which 100 mg/cm3 trabecular bone reads, monochromatically, the HU it reads over the
    detected spectrum (:class:`~bonescreen.attenuation.Spectrum`: Kramers, aluminium filter, water of
    the patient's water-equivalent diameter).

    Raises
    ------
    BoneScreenError
        If ``kvp`` is outside 60-150 kV.
    """
    if not 60.0 <= kvp <= 150.0:
        raise BoneScreenError(f"tube voltage {kvp} kV is outside what CT uses (60-150 kV)")
    bone = trabecular_bone(100.0, 0.6)
    target = hounsfield(bone, Spectrum(kvp=kvp, aluminium_mm=NOMINAL_FILTER_MM, water_mm=diameter_mm))
    mono = hounsfield_at(bone, ENERGIES_KEV)
    return float(np.interp(target, mono[::-1], ENERGIES_KEV[::-1]))


@cache
def _tissue_curve(name: str) -> np.ndarray:
    return hounsfield_at(tissue(_TISSUE_MIXTURE[name]), ENERGIES_KEV)


@dataclass
class Calibration:
    """The scan's internal calibration: effective energy, the evidence for it, and doubts."""

    energy_kev: float | None
    energy_sd_kev: float | None
    kvp: float | None
    water_equivalent_diameter_mm: float | None
    enhanced: bool
    tissues: dict[str, ReferenceTissue]
    residuals_hu: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain dict for result.json."""
        return {
            "method": "internal calibration, one effective energy (Michalski et al. 2020)",
            "effective_energy_kev": None if self.energy_kev is None else round(self.energy_kev, 1),
            "effective_energy_sd_kev": None if self.energy_sd_kev is None else round(self.energy_sd_kev, 1),
            "kvp": self.kvp,
            "water_equivalent_diameter_mm": self.water_equivalent_diameter_mm,
            "contrast_enhanced": self.enhanced,
            "marrow_iodine_mg_ml": MARROW_IODINE_MG_ML[0] if self.enhanced else 0.0,
            "reference_tissues": {k: v.as_dict() for k, v in self.tissues.items()},
            "residuals_hu": {k: round(v, 1) for k, v in self.residuals_hu.items()},
            "flags": list(self.flags),
        }


def calibrate(tissues: dict[str, ReferenceTissue], geometry: dict, acquisition: dict | None = None) -> Calibration:
    """Effective energy of a scan from its reference tissues and header.

    Parameters
    ----------
    tissues : dict
        From :func:`~bonescreen.reference_tissues.find_reference_tissues`.
    geometry : dict
        Its ``water_equivalent_diameter_mm`` and ``body_truncated``.
    acquisition : dict, optional
        :attr:`CTVolume.acquisition <bonescreen.io.volume.CTVolume.acquisition>`: ``KVP``, ``ContrastBolusAgent``.

    Returns
    -------
    Calibration
        ``energy_kev`` None (and a flag naming what is missing) when fat was not found: without it the
        energy is not known (a spine-only crop has no fat or air).
    """
    acquisition = acquisition or {}
    flags: list[str] = []
    diameter = geometry.get("water_equivalent_diameter_mm")
    if diameter is None or geometry.get("body_truncated"):
        flags.append(
            "the body is cut by the field of view: its water-equivalent diameter is taken as "
            f"{DEFAULT_DIAMETER_MM:.0f} mm"
        )
        diameter = DEFAULT_DIAMETER_MM
    kvp = acquisition.get("KVP")
    implausible = kvp is not None and not 60.0 <= kvp <= 150.0
    if implausible:
        flags.append(
            f"the header's tube voltage ({kvp} kV) is not one CT uses: ignored; the effective energy rests on "
            "fat and muscle alone"
        )
        kvp = None
    enhanced_scan = "blood" in tissues or bool(acquisition.get("ContrastBolusAgent"))
    if enhanced_scan:
        why = "an enhanced aorta or IVC" if "blood" in tissues else "ContrastBolusAgent in the header"
        flags.append(
            f"contrast-enhanced scan ({why}): {MARROW_IODINE_MG_ML[0]} mg/ml of iodine in the marrow assumed; "
            "vBMD less certain than on an unenhanced scan"
        )
    if "adipose" not in tissues:
        flags.append("no fat found (a spine-only field of view?): the effective energy, and so vBMD, are unknown")
        return Calibration(None, None, kvp, diameter, enhanced_scan, tissues, flags=flags)
    if kvp is not None:
        prior = (kvp_effective_energy(float(kvp), float(diameter)), KVP_PRIOR_SD_KEV)
    else:
        prior = NO_KVP_PRIOR_KEV
        if not implausible:
            flags.append(
                "no tube voltage (KVP) in the header: the effective energy rests on fat and muscle alone (for a "
                "NIfTI, a JSON sidecar of the same name beside it gives it, for example ct.nii.gz -> ct.json with "
                '{"KVP": 120}, as dcm2niix writes)'
            )
    chi2 = ((ENERGIES_KEV - prior[0]) / prior[1]) ** 2
    for name, t in tissues.items():
        if name in TISSUE_SD_HU:
            chi2 = chi2 + ((t.hu - _tissue_curve(name)) / TISSUE_SD_HU[name]) ** 2
    post = np.exp(-0.5 * (chi2 - chi2.min()))
    post /= post.sum()
    energy = float(ENERGIES_KEV[np.argmin(chi2)])
    sd = float(np.sqrt((post * (ENERGIES_KEV - energy) ** 2).sum()))
    residuals = {}
    for name, t in tissues.items():
        if name in TISSUE_SD_HU:
            residuals[name] = float(t.hu - np.interp(energy, ENERGIES_KEV, _tissue_curve(name)))
            if abs(residuals[name]) > MAX_TISSUE_Z * TISSUE_SD_HU[name]:
                flags.append(
                    f"{name} reads {t.hu:.0f} HU, {residuals[name]:+.0f} HU from what {energy:.0f} keV predicts: "
                    "streaks, a scanner offset, or an unusual tissue; vBMD may be off"
                )
    for name in ("air", "muscle"):
        if name not in tissues:
            flags.append(f"no {name} found for the calibration's check")
    return Calibration(energy, sd, kvp, diameter, enhanced_scan, tissues, residuals, flags)


@cache
def reference_energy_kev() -> float:
    """The effective energy (keV) BCC-Net's energy-normalized input refers to: 120 kVp through
    :data:`DEFAULT_DIAMETER_MM` of water, the routine abdominal scan (:func:`kvp_effective_energy`)."""
    return kvp_effective_energy(120.0, DEFAULT_DIAMETER_MM)


@cache
def bone_hu_map(energy_kev: float, iodine_mg_ml: float, to_kev: float) -> tuple[float, float]:
    """Slope and intercept of the map from the HU trabecular bone reads at ``energy_kev`` (its marrow
    holding ``iodine_mg_ml``) to the HU the same bone reads at ``to_kev`` without iodine.

    Both sides are the trabecular-bone curves of :func:`_curve` over :data:`VBMD_GRID` (0-600 mg/cm3,
    mean marrow fat); they are nearly straight lines in vBMD, so the map is the least-squares line
    between them. It carries denser bone (cortex, sclerosis) on the same line: an approximation there,
    as the one-energy calibration is (module docstring).
    """
    here = _curve(float(energy_kev), 0.0, float(iodine_mg_ml))
    there = _curve(float(to_kev), 0.0, 0.0)
    slope, intercept = np.polyfit(here, there, 1)
    return float(slope), float(intercept)


def energy_normalized_hu(hu: np.ndarray, calibration: Calibration) -> tuple[np.ndarray, str | None]:
    """The CT's bone as it would read at :func:`reference_energy_kev`: BCC-Net's input, the same for a
    bone whatever the tube voltage and contrast phase of the scan.

    One vBMD reads up to 60 % more HU at 80 kVp than at 140 kVp, so a classifier of HU crops (the paper's)
    holds only at the voltage it was trained at; mapped through the scan's internal calibration
    (:func:`calibrate`; the trabecular-bone curves of :func:`bone_hu_map`) the crops of one bone agree
    across voltages to within the calibration's error. Only bone is meant: soft tissue is mapped on the
    bone line too, and BCC-Net's crops mask it out.

    Parameters
    ----------
    hu : ndarray
        Any shape, HU.
    calibration : Calibration
        The scan's; when its effective energy is unknown (no fat in view), the header's tube voltage
        (else 120 kVp) through an average abdomen stands for it, and the note says so.

    Returns
    -------
    (ndarray, str or None)
        float32 HU at the reference energy, and a note for the user when the energy was assumed.
    """
    note = None
    energy = calibration.energy_kev
    if energy is None:
        kvp = calibration.kvp if calibration.kvp is not None else 120.0
        diameter = calibration.water_equivalent_diameter_mm or DEFAULT_DIAMETER_MM
        energy = kvp_effective_energy(float(kvp), float(diameter))
        note = (
            f"BCC-Net's input assumes {kvp:.0f} kVp (the scan's energy is unknown): its probabilities may shift "
            "with the tube voltage"
        )
    energy = float(np.clip(round(energy), ENERGIES_KEV[0], ENERGIES_KEV[-1]))
    iodine = MARROW_IODINE_MG_ML[0] if calibration.enhanced else 0.0
    slope, intercept = bone_hu_map(energy, iodine, round(reference_energy_kev()))
    out = np.asarray(hu, dtype=np.float32) * np.float32(slope) + np.float32(intercept)
    return out, note


def _curve(energy_kev: float, fat_shift: float, iodine_mg_ml: float) -> np.ndarray:
    """HU of trabecular bone over :data:`VBMD_GRID` at one energy, made non-decreasing for inversion."""
    fats = np.clip(mean_marrow_fat(VBMD_GRID) + fat_shift, 0.0, 1.0)
    hu = [
        hounsfield_at(trabecular_bone(float(v), float(f), iodine_mg_ml), energy_kev)
        for v, f in zip(VBMD_GRID, fats, strict=True)
    ]
    return np.maximum.accumulate(np.asarray(hu))


def vbmd_from_hu(trabecular_hu: float, calibration: Calibration) -> tuple[float | None, float | None, list[str]]:
    """vBMD (mg/cm3 hydroxyapatite) and its 1-SD uncertainty from a level's trabecular HU.

    Returns
    -------
    vbmd, sd, flags
        ``vbmd`` None (with the reason in ``flags``) when the calibration has no energy; a HU below
        what marrow without mineral reads gives 0 and a flag.
    """
    if calibration.energy_kev is None:
        return None, None, ["vBMD not computed: the scan's effective energy is unknown"]
    e = round(calibration.energy_kev)
    iodine, iodine_sd = MARROW_IODINE_MG_ML if calibration.enhanced else (0.0, 0.0)

    def invert(energy: float, fat_shift: float = 0.0, iod: float = iodine) -> float:
        energy = float(np.clip(round(energy), ENERGIES_KEV[0], ENERGIES_KEV[-1]))
        curve = _curve(energy, round(fat_shift, 3), round(iod, 3))
        return float(np.interp(trabecular_hu, curve, VBMD_GRID))

    value = invert(e)
    flags = []
    if trabecular_hu < _curve(float(e), 0.0, round(iodine, 3))[0]:
        flags.append(f"trabecular HU {trabecular_hu:.0f} is below what marrow without mineral reads: vBMD set to 0")
    es = calibration.energy_sd_kev or 0.0
    parts = [
        0.5 * abs(invert(e + es) - invert(e - es)),
        0.5 * abs(invert(e, MARROW_FAT_SD) - invert(e, -MARROW_FAT_SD)),
    ]
    if iodine:
        parts.append(0.5 * abs(invert(e, 0.0, iodine + iodine_sd) - invert(e, 0.0, max(iodine - iodine_sd, 0.0))))
    sd = float(np.sqrt(np.sum(np.square(parts))))
    if sd > MAX_UNCERTAINTY_MG_CM3:
        flags.append(f"vBMD uncertain by +-{round(sd, 1):.0f} mg/cm3 (1 SD)")  # as the stored SD prints
    return value, sd, flags
