"""Hounsfield units of tissues from their composition: over a drawn X-ray tube spectrum, or at one energy.

Two users: the phantom computes each tissue's HU over a polychromatic spectrum
(:class:`Spectrum`, :func:`hounsfield`); the internal density calibration
(:mod:`bonescreen.density`) models a scan with one effective energy
(:func:`hounsfield_at`), an approximation of the spectrum, not its rule.

The phantom does not draw HU: it draws what a patient is made of (tissue densities and
elemental compositions, bone mineral density, iodine concentration of the contrast phase)
and a scan (tube voltage, filtration, patient size), and computes the attenuation of each
material averaged over the detected spectrum:

    mu(material) = sum_E w(E) * mu(material, E) / sum_E w(E)
    HU = 1000 * (mu - mu_water) / (mu_water - mu_air)

with ``w(E) = E * N(E)`` (energy-integrating detector) and ``N(E)`` Kramers' bremsstrahlung
spectrum of a tungsten anode, ``(kVp - E) / E`` (Kramers, Phil Mag 1923), hardened by the
tube's aluminium filtration and by the patient's water-equivalent diameter (AAPM Report 220).
So one vBMD gives different HU at 80 and 140 kVp, and in a small and a large patient, as on
real scanners; a calibration with one effective energy is an approximation of it, not its rule.

Mass attenuation coefficients are the Elam, Ravel and Sieber tables through ``xraydb``
(public-domain data, MIT-licensed library); tissue compositions are ICRU Report 46 /
Woodard and White (Br J Radiol 1986) mass fractions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from .errors import BoneScreenError

#: Energies (keV) the spectrum is sampled at.
ENERGIES_KEV = np.arange(15.0, 151.0, 1.0)

ALUMINIUM_G_CM3 = 2.699

#: Elemental mass fractions (%) and density (g/cm3): ICRU Report 46 (adult tissues), Woodard and White 1986.
TISSUES: dict[str, tuple[dict[str, float], float]] = {
    "water": ({"H": 11.19, "O": 88.81}, 1.0),
    "air": ({"C": 0.012, "N": 75.53, "O": 23.18, "Ar": 1.28}, 0.00120),
    "adipose": ({"H": 11.6, "C": 68.1, "N": 0.2, "O": 19.8, "Na": 0.1, "S": 0.1, "Cl": 0.1}, 0.93),  # ICRU 46 AT3
    "muscle": (
        {"H": 10.2, "C": 14.3, "N": 3.4, "O": 71.0, "Na": 0.1, "P": 0.2, "S": 0.3, "Cl": 0.1, "K": 0.4},
        1.05,
    ),
    "blood": (
        {"H": 10.2, "C": 11.0, "N": 3.3, "O": 74.5, "Na": 0.1, "P": 0.1, "S": 0.2, "Cl": 0.3, "K": 0.2, "Fe": 0.1},
        1.06,
    ),
    "liver": (
        {"H": 10.2, "C": 13.9, "N": 3.0, "O": 71.6, "Na": 0.2, "P": 0.3, "S": 0.3, "Cl": 0.2, "K": 0.3},
        1.06,
    ),
    "spleen": (
        {"H": 10.3, "C": 11.3, "N": 3.2, "O": 74.1, "Na": 0.1, "P": 0.3, "S": 0.2, "Cl": 0.2, "K": 0.3},
        1.06,
    ),
    "kidney": (
        {"H": 10.3, "C": 13.2, "N": 3.0, "O": 72.4, "Na": 0.2, "P": 0.2, "S": 0.2, "Cl": 0.2, "K": 0.2, "Ca": 0.1},
        1.05,
    ),
    "urine": ({"H": 11.0, "C": 0.5, "N": 1.0, "O": 86.2, "Na": 0.4, "P": 0.1, "S": 0.1, "Cl": 0.6, "K": 0.2}, 1.02),
    "red_marrow": (
        {"H": 10.5, "C": 41.4, "N": 3.4, "O": 43.9, "P": 0.1, "S": 0.2, "Cl": 0.2, "K": 0.2, "Fe": 0.1},
        1.03,
    ),
    "yellow_marrow": ({"H": 11.5, "C": 64.4, "N": 0.7, "O": 23.1, "Na": 0.1, "S": 0.1, "Cl": 0.1}, 0.98),
    "cartilage": ({"H": 9.6, "C": 9.9, "N": 2.2, "O": 74.4, "Na": 0.5, "P": 2.2, "S": 0.9, "Cl": 0.3}, 1.10),
    "csf": ({"H": 11.1, "O": 88.0, "Na": 0.5, "Cl": 0.4}, 1.007),
    "collagen": ({"H": 6.4, "C": 34.4, "N": 11.0, "O": 48.2}, 1.35),  # bone matrix without mineral (ICRU 46)
    # bone mineral: hydroxyapatite Ca10(PO4)6(OH)2, 3.16 g/cm3 (the mineral of QCT's mg/cm3)
    "hydroxyapatite": ({"Ca": 39.89, "P": 18.50, "O": 41.41, "H": 0.20}, 3.16),
    "iodine": ({"I": 100.0}, 4.93),
    # vertebroplasty cement: PMMA (C5H8O2) with 30 % barium sulphate radiopacifier (e.g. Kyphon HV-R)
    "bone_cement": ({"C": 42.0, "H": 5.6, "O": 30.6, "Ba": 17.7, "S": 4.1}, 1.45),
    # pedicle screws and rods: Ti-6Al-4V (ASTM F136)
    "titanium_alloy": ({"Ti": 90.0, "Al": 6.0, "V": 4.0}, 4.43),
    # hip prostheses: cobalt-chromium-molybdenum (ASTM F75)
    "cocrmo": ({"Co": 64.0, "Cr": 28.5, "Mo": 6.0, "Ni": 1.0, "Fe": 0.5}, 8.29),
}


@cache
def _element_mu(element: str) -> np.ndarray:
    import xraydb  # Elam, Ravel and Sieber tables (public domain)

    return np.asarray(xraydb.mu_elam(element, ENERGIES_KEV * 1000.0), dtype=np.float64)


@cache
def mass_attenuation(material: str) -> np.ndarray:
    """Mass attenuation coefficient (cm2/g) of a material of :data:`TISSUES` at :data:`ENERGIES_KEV`.

    Raises
    ------
    KeyError
        If the material is not in :data:`TISSUES`.
    """
    fractions, _ = TISSUES[material]
    total = sum(fractions.values())
    return sum(f / total * _element_mu(el) for el, f in fractions.items())


@dataclass(frozen=True)
class Spectrum:
    """An X-ray tube spectrum as seen by the detector behind the patient.

    Parameters
    ----------
    kvp : float
        Tube voltage (kV); CT uses 70-140.
    aluminium_mm : float
        Tube filtration plus bow-tie, as aluminium (mm); about 3-9 mm on CT scanners.
    water_mm : float
        Patient's water-equivalent diameter (mm; AAPM Report 220), which hardens the beam.
    """

    kvp: float = 120.0
    aluminium_mm: float = 6.0
    water_mm: float = 280.0

    def weights(self) -> np.ndarray:
        """Detector weights ``E * N(E)`` over :data:`ENERGIES_KEV`, summing to 1."""
        e = ENERGIES_KEV
        n = np.clip(self.kvp - e, 0.0, None) / e  # Kramers: photons per keV from a thick tungsten target
        n = n * np.exp(-_element_mu("Al") * ALUMINIUM_G_CM3 * self.aluminium_mm / 10.0)
        n = n * np.exp(-mass_attenuation("water") * self.water_mm / 10.0)
        w = e * n
        return w / w.sum()

    def mean_energy_kev(self) -> float:
        """Mean energy of the detected spectrum (keV), weighted as the detector weighs it."""
        return float((self.weights() * ENERGIES_KEV).sum())


@dataclass(frozen=True)
class Mixture:
    """Partial densities (g/cm3) of materials of :data:`TISSUES` in one voxel: ``{"blood": 1.06, "iodine": 0.01}``."""

    parts: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, **parts: float) -> Mixture:
        """Mixture from keyword partial densities (g/cm3)."""
        return cls(tuple(sorted(parts.items())))

    def mu(self, spectrum: Spectrum) -> float:
        """Linear attenuation (1/cm) averaged over the detected spectrum."""
        w = spectrum.weights()
        return float(sum(rho * (w * mass_attenuation(m)).sum() for m, rho in self.parts))


def tissue(material: str, density_scale: float = 1.0) -> Mixture:
    """A tissue of :data:`TISSUES` at its reference density times ``density_scale``."""
    return Mixture(((material, TISSUES[material][1] * density_scale),))


def hounsfield(mixture: Mixture, spectrum: Spectrum) -> float:
    """CT number (HU) of a mixture under a spectrum: ``1000 (mu - mu_water) / (mu_water - mu_air)``."""
    mw, ma = tissue("water").mu(spectrum), tissue("air").mu(spectrum)
    return 1000.0 * (mixture.mu(spectrum) - mw) / (mw - ma)


def hounsfield_at(mixture: Mixture, energy_kev: np.ndarray | float) -> np.ndarray:
    """CT number (HU) of a mixture at one or more photon energies (keV, on :data:`ENERGIES_KEV`'s 1 keV grid).

    Raises
    ------
    BoneScreenError
        If an energy lies outside :data:`ENERGIES_KEV`.
    """
    e = np.atleast_1d(np.asarray(energy_kev, dtype=np.float64))
    if e.min() < ENERGIES_KEV[0] or e.max() > ENERGIES_KEV[-1]:
        raise BoneScreenError(f"energies must lie in {ENERGIES_KEV[0]:.0f}-{ENERGIES_KEV[-1]:.0f} keV, got {e}")

    def mu(m: Mixture) -> np.ndarray:
        return sum(rho * np.interp(e, ENERGIES_KEV, mass_attenuation(name)) for name, rho in m.parts)

    mw, ma = mu(tissue("water")), mu(tissue("air"))
    out = 1000.0 * (mu(mixture) - mw) / (mw - ma)
    return out if np.ndim(energy_kev) else out[0]


def enhanced(base: Mixture, iodine_mg_ml: float) -> Mixture:
    """``base`` with iodinated contrast at ``iodine_mg_ml`` (mg of iodine per ml) added."""
    return Mixture((*base.parts, ("iodine", iodine_mg_ml / 1000.0)))


def marrow(fat_fraction: float) -> Mixture:
    """Bone marrow with a fat (yellow marrow) volume fraction of ``fat_fraction`` (0-1; about 0.3-0.8 in adults)."""
    f = float(np.clip(fat_fraction, 0.0, 1.0))
    red, yellow = TISSUES["red_marrow"][1], TISSUES["yellow_marrow"][1]
    return Mixture((("red_marrow", (1 - f) * red), ("yellow_marrow", f * yellow)))


def mean_marrow_fat(vbmd_mg_cm3: float | np.ndarray) -> float | np.ndarray:
    """Mean vertebral marrow fat volume fraction (0-1) of adults with this trabecular vBMD (mg/cm3).

    Marrow fat rises as bone is lost: Griffith et al. (Radiology 2005;236:945-951; MR spectroscopy
    of L3 in 82 older adults) found 58.2 % (normal BMD), 63.5 % (osteopenia) and 67.8 %
    (osteoporosis). The line ``0.76 - 0.0012 vBMD`` passes through these at the vBMD typical of
    each group (about 140, 100 and 60 mg/cm3), clipped to 0.2-0.9.
    """
    return np.clip(0.76 - 0.0012 * np.asarray(vbmd_mg_cm3, dtype=np.float64), 0.2, 0.9)[()]


def trabecular_bone(vbmd_mg_cm3: float, fat_fraction: float, iodine_mg_ml: float = 0.0) -> Mixture:
    """Trabecular bone: hydroxyapatite at ``vbmd_mg_cm3`` with its collagen, the rest marrow.

    Parameters
    ----------
    vbmd_mg_cm3 : float
        Volumetric bone mineral density (mg/cm3 hydroxyapatite), as QCT reports it.
    fat_fraction : float
        Marrow fat fraction (0-1).
    iodine_mg_ml : float
        Iodine in the marrow (mg per ml of marrow); about 0.3-0.8 in the portal venous phase.

    Notes
    -----
    Bone tissue is about 0.45 g of collagen matrix per g of mineral by volume share (Currey, Bones 2002):
    each g/cm3 of mineral brings about 0.32 cm3 of mineral and 0.35 cm3 of collagen (1.35 g/cm3), and the
    marrow fills the rest.
    """
    mineral = vbmd_mg_cm3 / 1000.0
    v_mineral = mineral / TISSUES["hydroxyapatite"][1]
    v_collagen = 0.35 * mineral
    rest = max(1.0 - v_mineral - v_collagen, 0.0)
    parts = [("hydroxyapatite", mineral), ("collagen", v_collagen * TISSUES["collagen"][1])]
    parts += [(m, rho * rest) for m, rho in marrow(fat_fraction).parts]
    if iodine_mg_ml:
        parts.append(("iodine", iodine_mg_ml / 1000.0 * rest))  # in the marrow's share of the voxel
    return Mixture(tuple(parts))
