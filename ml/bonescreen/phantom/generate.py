"""Generate one synthetic lumbar CT case with ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import check_number
from ..labels import LEVEL_NAMES
from .anatomy import SACRUM_ID, T12_ID, blend_endplates, draw_anatomy, paint_slice
from .bone import draw_class, draw_level_vbmd, trabecular_hu
from .canvas import Canvas
from .texture import fill_trabecular

#: Slice thicknesses drawn (mm), as reconstructed clinically.
THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
#: Outside the reconstruction circle, as many scanners store it.
FOV_PADDING_HU = -3024


@dataclass
class PhantomConfig:
    """What kind of cases to make.

    Parameters
    ----------
    size : int
        In-plane size (512).
    class_weights : tuple of float, optional
        Relative frequency of normal, low bone mass, osteoporosis; None draws
        them balanced (each block of three cases holds one of each).
    contrast_probability : float
        Share of contrast-enhanced cases.
    thickness : float, optional
        Fixed slice thickness in mm; by default drawn from 1-3 mm.
    include_t12, include_sacrum : bool
        Whether T12 (above L1) and the top of the sacrum (below L5) are in view.
    """

    size: int = 512
    class_weights: tuple[float, float, float] | None = None
    contrast_probability: float = 0.3
    thickness: float | None = None
    include_t12: bool = True
    include_sacrum: bool = True

    def __post_init__(self) -> None:
        check_number("size", self.size, 128, whole=True)
        check_number("contrast_probability", self.contrast_probability, 0.0, 1.0)
        if self.thickness is not None:
            check_number("thickness", self.thickness, 0.0, low_open=True)


@dataclass
class PhantomCase:
    """A synthetic CT with its ground truth, all (z, y, x) in BoneScreen's orientation."""

    case_id: str
    hu: np.ndarray  # int16 HU
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm
    levels: np.ndarray  # uint8, 1..5 = L1..L5 whole vertebrae
    body: np.ndarray  # uint8, vertebral bodies, same ids
    spine: np.ndarray  # uint8, all vertebral bone: 1..5 lumbar, 6 = T12, 7 = sacrum
    label: str
    vbmd: dict[str, float]
    trabecular_hu: dict[str, float]
    meta: dict = field(default_factory=dict)

    @property
    def header(self) -> dict:
        """What its DICOM header says of the acquisition, under DICOM keywords: ``KVP`` (kV; 120 where the case
        drew none) and ``ContrastBolusAgent`` when it is contrast-enhanced."""
        out: dict = {"KVP": self.meta.get("kvp", 120)}
        if self.meta.get("contrast"):
            out["ContrastBolusAgent"] = "iodinated contrast"
        return out

    @property
    def affine(self) -> np.ndarray:
        """(x, y, z) index -> RAS mm; the slice centre is at x = y = 0, the lowest slice at z = 0."""
        dz, dy, dx = self.spacing
        n = self.hu.shape[2]
        a = np.diag([-dx, -dy, dz, 1.0])
        a[0, 3] = (n - 1) / 2 * dx
        a[1, 3] = (self.hu.shape[1] - 1) / 2 * dy
        return a


def make_case(seed: int, index: int = 0, config: PhantomConfig | None = None) -> PhantomCase:
    """Make case ``index`` of the phantom set ``seed``; the same (seed, index) always gives the same case.

    Parameters
    ----------
    seed : int
        Seed of the set.
    index : int
        Case number within the set.
    config : PhantomConfig, optional
        Kind of cases; default balanced classes, 512x512, T12 to sacrum.
    """
    check_number("seed", seed, 0, whole=True)
    check_number("index", index, 0, whole=True)
    config = config or PhantomConfig()
    rng = np.random.default_rng([seed, index])
    label = draw_class(rng, index, seed, config.class_weights)
    case_vbmd, level_vbmd = draw_level_vbmd(rng, label, 5)
    contrast = bool(rng.random() < config.contrast_probability)
    anat = draw_anatomy(rng, level_vbmd, case_vbmd, contrast)
    dz = config.thickness or float(rng.choice(THICKNESSES))
    n = config.size
    spacing_xy = float(np.clip(max(rng.uniform(0.6, 0.9), (2 * anat.ax + 30) / n), 0.6, 0.9))
    canvas = Canvas(n, spacing_xy)

    z_lo, z_hi = 0.0, anat.height
    l5, l1 = anat.vertebrae[1], anat.vertebrae[5]
    if not config.include_sacrum:
        z_lo = l5.z0 - 3.0
    if not config.include_t12:
        z_hi = l1.z1 + 3.0
    zs = np.arange(z_lo + dz / 2, z_hi, dz, dtype=float)
    nz = len(zs)
    hu = np.empty((nz, n, n), np.float32)
    spine = np.zeros((nz, n, n), np.uint8)
    body = np.zeros((nz, n, n), np.uint8)
    core = np.zeros((nz, n, n), np.uint8)
    plates: dict[int, list] = {}
    for k, z in enumerate(zs):
        paint_slice(anat, canvas, float(z), hu[k], spine[k], body[k], core[k], dz, plates.setdefault(k, []))

    offset = anat.hu["trabecular_contrast"]
    by_id = {v.vid: v for v in anat.vertebrae}
    targets = {vid: trabecular_hu(v.vbmd, offset) for vid, v in by_id.items()}
    blend_endplates(hu, plates, targets)
    vbmd = {vid: v.vbmd for vid, v in by_id.items()}
    marrow = {vid: anat.hu["marrow"] - 0.3 * max(0.0, 120.0 - v.vbmd) for vid, v in by_id.items()}
    realized = fill_trabecular(hu, core, targets, vbmd, marrow, rng, (dz, spacing_xy, spacing_xy))

    # scanner: reconstruction-kernel blur, slice profile, correlated noise, reconstruction circle
    kernel_mm = rng.uniform(0.35, 0.85)
    noise_sd = rng.uniform(8, 22) * (anat.ax / 150) * np.sqrt(2.0 / dz)
    ndimage.gaussian_filter(hu, (0.35, kernel_mm / spacing_xy, kernel_mm / spacing_xy), output=hu, truncate=3.0)
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    ndimage.gaussian_filter(noise, (0, 0.7, 0.7), output=noise, truncate=3.0)
    noise *= np.float32(noise_sd / (noise.std() + 1e-6))
    hu += noise
    del noise
    hu_i16 = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)  # scanners store nothing below -1024
    del hu
    r = canvas.coords
    outside = (r[None, :] ** 2 + r[:, None] ** 2) > (n / 2 * spacing_xy) ** 2
    hu_i16[:, outside] = FOV_PADDING_HU

    levels = np.where(spine <= 5, spine, 0).astype(np.uint8)
    names = {vid: LEVEL_NAMES.get(vid, {T12_ID: "T12", SACRUM_ID: "S1"}.get(vid)) for vid in by_id}
    slices = {}
    for vid in range(1, 6):
        ks = np.nonzero((levels == vid).any(axis=(1, 2)))[0]
        slices[LEVEL_NAMES[vid]] = [int(ks.min()), int(ks.max())] if ks.size else None
    return PhantomCase(
        case_id=f"case{seed:04d}_{index:04d}",
        hu=hu_i16,
        spacing=(dz, spacing_xy, spacing_xy),
        levels=levels,
        body=body,
        spine=spine,
        label=label,
        vbmd={names[vid]: round(v, 2) for vid, v in vbmd.items()},
        trabecular_hu={names[vid]: round(v, 2) for vid, v in realized.items()},
        meta={
            "seed": seed,
            "index": index,
            "case_vbmd": round(case_vbmd, 2),
            "contrast": contrast,
            "trabecular_contrast_offset_hu": round(offset, 2),
            "noise_sd_hu": round(float(noise_sd), 2),
            "kernel_sigma_mm": round(float(kernel_mm), 3),
            "slices": slices,
            "include_t12": config.include_t12,
            "include_sacrum": config.include_sacrum,
        },
    )
