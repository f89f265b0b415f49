"""Whole CT volumes of the realistic phantom (:mod:`.scene`), with ground truth, for testing and evaluation.

A case is a patient of :func:`~.scene.draw_scene` with a bone condition drawn as in the
first phantom (class, per-level vBMD in the ACR QCT range of the class); each level's
trabecular HU is that vBMD's bone with the patient's marrow and contrast under the scan's
tube spectrum (:mod:`.materials`: so the same vBMD reads higher at 80 kVp than at 140 kVp).
The case is scanned with one acquisition over a field of view of one of the kinds users bring:

- ``abdomen-pelvis``: T11 to below the femoral heads, whole-body field of view;
- ``lumbar``: T12 to the sacrum;
- ``thoracolumbar``: T10 to L3 (ribs, no pelvis);
- ``spine-crop``: L1 to L5 only, a 120 mm field round the spine, no body outline or landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BoneScreenError
from ..labels import LEVEL_NAMES
from .bone import draw_class, draw_level_vbmd
from .findings import FINDINGS_MODES, Findings, resolve_findings
from .generate import PhantomCase
from .scene import THORACIC_IDS, Acquisition, bone_hu, draw_scene, render_slice, true_body_heights

EXTENTS = ("abdomen-pelvis", "lumbar", "thoracolumbar", "spine-crop")


@dataclass
class RealisticConfig:
    """What kind of realistic volumes to make.

    Parameters
    ----------
    extent : str
        One of :data:`EXTENTS`.
    slice_mm : float
        Slice spacing and thickness (mm).
    pixel_mm : float, optional
        Pixel size (mm); default the whole field of view in 512 pixels (0.3 mm for a spine crop).
    class_weights : tuple of float, optional
        Relative frequency of normal, low bone mass, osteoporosis; None: balanced.
    noise_hu : float, optional
        Noise SD (HU); default drawn 8-25 HU.
    findings : Findings or str
        Fractures, cement, screws, transitional anatomy (:mod:`.findings`), or a mode of
        :data:`~.findings.FINDINGS_MODES` (``random``, ``none``, ``normal-anatomy``).
    """

    extent: str = "abdomen-pelvis"
    slice_mm: float = 3.0
    pixel_mm: float | None = None
    class_weights: tuple[float, float, float] | None = None
    noise_hu: float | None = None
    findings: Findings | str = "random"

    def __post_init__(self) -> None:
        if self.extent not in EXTENTS:
            raise BoneScreenError(f"extent must be one of {', '.join(EXTENTS)}, got {self.extent!r}")
        if self.slice_mm <= 0 or (self.pixel_mm is not None and self.pixel_mm <= 0):
            raise BoneScreenError("slice and pixel sizes must be positive")
        if isinstance(self.findings, str) and self.findings not in FINDINGS_MODES:
            raise BoneScreenError(f"findings must be one of {', '.join(FINDINGS_MODES)}, got {self.findings!r}")


def _z_range(scene, extent: str) -> tuple[float, float]:
    z = scene.levels_z
    if extent == "abdomen-pelvis":
        return z[7] - 150.0, z[8] + 10.0
    if extent == "lumbar":
        return z[7] - 10.0, z[6] + 10.0
    if extent == "thoracolumbar":
        return z[3] - 5.0, z[9] + 10.0
    return z[5] - 5.0, z[1] + 5.0


def make_realistic_case(seed: int, index: int = 0, config: RealisticConfig | None = None) -> PhantomCase:
    """Make case ``index`` of the realistic set ``seed`` (the same pair always gives the same case).

    Returns
    -------
    PhantomCase
        ``hu`` int16 (z, y, x) in BoneScreen's orientation, ``spine`` with all vertebrae
        (DESIGN.md ids: 1..5 lumbar, 6 T12, 7 sacrum, 8 T11, 9 T10, 11.. T9 and up),
        ``levels`` (L1..L5 only), ``body`` (vertebral bodies), class, vBMD and HU truth.
    """
    config = config or RealisticConfig()
    rng = np.random.default_rng([seed, index, 17])
    label = draw_class(rng, index, seed, config.class_weights)
    case_vbmd, level_vbmd = draw_level_vbmd(rng, label, 5)
    # tissue HU as CT shows them; the marrow fat follows the patient's vBMD
    scene = draw_scene(rng, resolve_findings(rng, config.findings), randomize=False, patient_vbmd=case_vbmd)
    phase = scene.phase
    truth_hu, heights = {}, {}
    for bone in scene.bones:
        if 1 <= bone.spine_id <= 5:
            h = true_body_heights(bone)
            if h is not None:
                heights[LEVEL_NAMES[bone.spine_id]] = {k: round(v, 2) for k, v in h.items()}
            bone.trabecular_hu = scene.trabecular_hu(float(level_vbmd[bone.spine_id - 1]))
            truth_hu[LEVEL_NAMES[bone.spine_id]] = round(bone.trabecular_hu, 2)
        elif bone.spine_id:
            bone.trabecular_hu = scene.trabecular_hu(case_vbmd)
    # the contrast phase's rise of trabecular HU: the marrow's iodine (Pickhardt et al., AJR 2011: +11 to +20 HU)
    rise = scene.trabecular_hu(case_vbmd) - bone_hu(case_vbmd, scene.marrow_fat, 0.0, scene.spectrum)
    z0, z1 = _z_range(scene, config.extent)
    if config.extent == "spine-crop":
        fov, pixel = 120.0, config.pixel_mm or 0.3
        l3 = next(b for b in scene.bones if b.spine_id == 3)
        centre = (0.5 * (l3.box[0] + l3.box[1]), 0.5 * (l3.box[2] + l3.box[3]))
        fill = float("nan")
    else:
        fov = float(np.clip(2 * scene.body_a + 40, 300, 500))
        pixel = config.pixel_mm or fov / 512
        centre, fill = (0.0, 0.0), -3024.0
    n = round(fov / pixel)
    acq = Acquisition(
        spacing=pixel,
        shape=(n, n),
        centre=centre,
        thickness=config.slice_mm,
        kernel_mm=float(rng.uniform(0.35, 0.8)),
        sharpen=0.0,
        noise_hu=config.noise_hu if config.noise_hu is not None else float(rng.uniform(8, 25)),
        fov_fill=fill,
    )
    zs = np.arange(z0, z1, config.slice_mm)
    hu = np.empty((len(zs), n, n), np.int16)
    spine = np.empty((len(zs), n, n), np.uint8)
    body = np.empty((len(zs), n, n), np.uint8)
    for k, z in enumerate(zs):
        img, sp, bd = render_slice(scene, acq, float(z), np.random.default_rng([seed, index, 17, k]), with_body=True)
        hu[k] = np.clip(img, -1024, 3071)
        spine[k], body[k] = sp, bd
    levels = np.where(spine <= 5, spine, 0).astype(np.uint8)
    body = np.where(body <= 5, body, 0).astype(np.uint8)
    slices = {}
    for vid, name in LEVEL_NAMES.items():
        ks = np.nonzero((levels == vid).any(axis=(1, 2)))[0]
        slices[name] = [int(ks.min()), int(ks.max())] if ks.size else None
    vbmd = {LEVEL_NAMES[i + 1]: round(float(v), 2) for i, v in enumerate(level_vbmd)}
    in_view = sorted(int(v) for v in np.unique(spine) if v)
    return PhantomCase(
        case_id=f"real{seed:04d}_{index:04d}",
        hu=hu,
        spacing=(float(config.slice_mm), float(pixel), float(pixel)),
        levels=levels,
        body=body,
        spine=spine,
        label=label,
        vbmd={k: v for k, v in vbmd.items() if slices[k]},
        trabecular_hu={k: v for k, v in truth_hu.items() if slices[k]},
        meta={
            "seed": seed,
            "index": index,
            "generator": "realistic",
            "extent": config.extent,
            "case_vbmd": round(case_vbmd, 2),
            "contrast": phase != "none",
            "phase": phase,
            "trabecular_contrast_offset_hu": round(rise, 2),
            "kvp": scene.spectrum.kvp,
            "mean_energy_kev": round(scene.spectrum.mean_energy_kev(), 1),
            "water_equivalent_diameter_mm": round(scene.spectrum.water_mm, 1),
            "marrow_fat_fraction": round(scene.marrow_fat, 3),
            "marrow_iodine_mg_ml": round(scene.marrow_iodine, 3),
            "findings": scene.findings.summary(),
            "body_heights_mm": {k: v for k, v in heights.items() if slices[k]},
            "noise_sd_hu": round(acq.noise_hu, 2),
            "kernel_sigma_mm": round(acq.kernel_mm, 3),
            "slices": slices,
            "spine_ids": in_view,
            "thoracic_ids": [i for i in in_view if i in THORACIC_IDS],
        },
    )
