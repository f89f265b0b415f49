"""A folder of labelled CT made again as lower-dose scans, for measuring BoneScreen across noise levels.

Users' scans come from low-dose to routine dose (issue "Real CT": image noise of about 10 to 60 HU); the labelled
real CT at hand are routine scans. This writes a copy of a labelled folder (any layout that
``benchmarks/real_ct.py --folder`` reads: the same relative paths) whose CT volumes carry extra quantum noise, added
where a scanner's noise arises: in the projections. Each axial slice is projected (a parallel-beam Radon transform,
scikit-image), Gaussian noise with the variance of a photon count, ``exp(p) / N0`` for a line integral ``p``, is
added to the projections, and the noise alone is reconstructed by filtered back projection (ramp filter) and added
to the slice in Hounsfield units: the dose-reduction method of Yu et al. (Med Phys 2012; Zeng et al., Med Phys
2015), simplified to a parallel beam without the bow-tie or electronic noise. The noise is therefore correlated as
CT noise is and larger through the widest and densest parts of the body (shoulders, pelvis, metal), not the white
noise of a single SD. ``N0`` is set slice by slice so that the noise added to each slice's soft tissue has the SD
asked for (``--noise``), as a scanner's tube current modulation keeps the noise level along the body (ideally);
a slice without soft tissue takes the median photon count of the others. Label maps and other files are copied as
they are. A NIfTI holding values under -100 is taken as CT; its header (sform and qform codes, units) is kept.
Attenuation: water over the default spectrum of :class:`bonescreen.attenuation.Spectrum`.

    .venv/bin/python benchmarks/lower_dose.py SRC DST --noise 30
    .venv/bin/python benchmarks/real_ct.py --folder DST --layout totalseg
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from skimage.transform import iradon, radon

# (this folder is on the path when run as a script)
from thicker_slices import CT_BELOW_HU, is_ct, load_volume, remake_folder, save_like

from bonescreen.attenuation import Spectrum, tissue

#: Projection angles over 180 degrees (a scanner takes about 1,000 views a turn; 360 keep the noise's texture at
#: 512 pixels, where a slice takes about 3.5 s on one core of an AVX-512 EPYC: 2026-12-05).
ANGLES = 360
#: Photon count of the first pass, scaled to the noise asked for (the noise's SD goes as 1 / sqrt(N0)).
N0_START = 1.0e5
#: Soft tissue (HU) where the added noise is measured.
SOFT_TISSUE_HU = (-150.0, 150.0)


def water_mu_per_mm() -> float:
    """Linear attenuation of water (1/mm) over the default detected spectrum (:mod:`bonescreen.attenuation`)."""
    return tissue("water").mu(Spectrum()) / 10.0


def projection_noise(hu: np.ndarray, pixel_mm: float, n0: float, rng: np.random.Generator) -> np.ndarray:
    """Noise (HU, float32, the slice's shape) of one axial slice scanned with ``n0`` photons a ray.

    Parameters
    ----------
    hu : ndarray
        One axial slice (y, x) in Hounsfield units, square pixels of ``pixel_mm``.
    pixel_mm : float
        Pixel size (mm).
    n0 : float
        Unattenuated photons per ray; the noise's variance on a line integral ``p`` is ``exp(p) / n0``.
    rng : numpy.random.Generator
        Source of the noise.
    """
    mu_w = water_mu_per_mm()
    mu = mu_w * (1.0 + np.clip(hu.astype(np.float64), -1000.0, None) / 1000.0)  # 1/mm
    line = project(mu) * pixel_mm  # line integrals, dimensionless
    noise = rng.standard_normal(line.shape) * np.sqrt(np.exp(np.clip(line, None, 30.0)) / n0)
    return (1000.0 * back_project(noise / pixel_mm, hu.shape) / mu_w).astype(np.float32)


def project(image: np.ndarray) -> np.ndarray:
    """Parallel-beam projections (detector bins, :data:`ANGLES`) of a 2-D image, in pixel lengths."""
    return radon(image, np.linspace(0.0, 180.0, ANGLES, endpoint=False), circle=False)


def back_project(sinogram: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filtered back projection (ramp) of :func:`project`'s projections onto an image of ``shape``."""
    size = max(shape)
    theta = np.linspace(0.0, 180.0, ANGLES, endpoint=False)
    image = iradon(sinogram, theta, circle=False, filter_name="ramp", output_size=size)
    # radon() keeps the image's centre pixel (s // 2 on each axis) at the centre of its square (size // 2)
    r0, c0 = size // 2 - shape[0] // 2, size // 2 - shape[1] // 2
    return image[r0 : r0 + shape[0], c0 : c0 + shape[1]]


#: Fewest soft-tissue pixels a slice's noise is measured over; a slice with fewer (air, a slice past the body's end)
#: is scanned with the median photon count of the others, as tube current modulation would.
MIN_SOFT_TISSUE_PIXELS = 100


def soft_tissue_sd(hu: np.ndarray, noise: np.ndarray) -> float | None:
    """SD (HU) of ``noise`` over the soft tissue of ``hu``; None with under :data:`MIN_SOFT_TISSUE_PIXELS` of it."""
    soft = (hu > SOFT_TISSUE_HU[0]) & (hu < SOFT_TISSUE_HU[1])
    return float(noise[soft].std()) if soft.sum() >= MIN_SOFT_TISSUE_PIXELS else None


def lower_dose(path: Path, out: Path, noise_hu: float, seed: int = 0) -> str:
    """Write ``path`` with projection noise of about ``noise_hu`` HU added to ``out``; returns a line for the log.

    A 512-pixel slice takes a few seconds (:data:`ANGLES`: the projection and the filtered back projection).
    """
    img, data = load_volume(path, "lower_dose.py")
    if not is_ct(data):
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out)
        return f"{path.name}: no value under {CT_BELOW_HU:g} HU: taken as labels, copied"
    zooms = np.linalg.norm(img.affine[:3, :3], axis=0)
    axis = int(np.argmax(np.abs(img.affine[2, :3]) / zooms))
    plane = [a for a in range(3) if a != axis]
    if not np.isclose(zooms[plane[0]], zooms[plane[1]], rtol=0.01):
        sizes = f"{zooms[plane[0]]:g} x {zooms[plane[1]]:g} mm"
        raise SystemExit(f"lower_dose.py: {path}: pixels of {sizes} are not square")
    pixel_mm = float(zooms[plane[0]])
    slices = np.moveaxis(data, axis, 0).astype(np.float32)
    rng = np.random.default_rng(seed)
    noise = np.empty_like(slices)
    n0 = np.full(len(slices), np.nan)
    for k, hu in enumerate(slices):
        noise[k] = projection_noise(hu, pixel_mm, N0_START, rng)
        sd = soft_tissue_sd(hu, noise[k])
        if sd is not None and sd > 0:
            n0[k] = N0_START * (sd / noise_hu) ** 2  # the SD goes as 1 / sqrt(N0)
    if np.isnan(n0).all():
        raise SystemExit(
            f"lower_dose.py: {path}: no slice holds soft tissue ({SOFT_TISSUE_HU[0]:g} to "
            f"{SOFT_TISSUE_HU[1]:g} HU) to set the noise by"
        )
    n0[np.isnan(n0)] = np.nanmedian(n0)
    noisy = slices + noise * np.sqrt(N0_START / n0)[:, None, None]
    info = np.iinfo(np.int16)
    new = np.moveaxis(np.clip(np.round(noisy), info.min, info.max).astype(np.int16), 0, axis)
    save_like(img, np.ascontiguousarray(new), img.affine, out)
    return (
        f"{path.name}: CT, noise of {noise_hu:g} HU SD added in the projections of each slice "
        f"(N0 {n0.min():.3g}-{n0.max():.3g} photons a ray)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="a labelled folder (VerSe, TotalSegmentator or nnU-Net layout), NIfTI")
    ap.add_argument("dst", type=Path, help="where the copy goes (must not exist)")
    ap.add_argument("--noise", type=float, default=30.0, help="SD (HU) of the noise added to soft tissue")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not np.isfinite(args.noise) or args.noise <= 0:
        raise SystemExit(f"lower_dose.py: --noise {args.noise:g}: give a noise SD above 0 HU")
    remake_folder(args.src, args.dst, lambda path, out: lower_dose(path, out, args.noise, args.seed), "lower_dose.py")


if __name__ == "__main__":
    main()
