"""A realistic synthetic CT scene, rendered one axial slice at a time for training MS-Net on real-looking CT.

The first phantom (:mod:`.generate`) draws ellipses and bars; a network trained on it
learned the phantom, not CT (issue "Real CT"). This generator builds each case from real
bone shapes (:mod:`.shapes`: L1-L5, the sacrum with the coccyx and the pelvis of the
Male Visible Human, scaled, tilted and deformed per case), adds the thoracic spine
above L1 (T12 up to T8, from L1's shape scaled down) with ribs, femoral heads and
shafts in the acetabula, packed abdominal organs, vessels with calcification and
contrast, arms and the table, and draws an acquisition (pixel size, field of view,
slice thickness, kernel, noise) per slice. HU are not drawn: each patient's tissues
(densities, compositions, marrow fat, bone mineral density, iodine of the contrast phase)
and the scan's tube spectrum (80-140 kVp, filtration, beam hardening through the body)
are, and :mod:`.materials` gives the HU, so one vBMD reads differently at different
voltages as on real scanners (trabecular bone about 20-330 HU, the cortical shell
500-1900 HU). What the network should not rely on is randomized in the manner of
SynthSeg (Billot et al., Med Image Anal 2023): soft-tissue intensities on some patients,
body habitus, fields of view, resolution.

Coordinates are millimetres in the world frame of :mod:`.anatomy`: x toward the
patient's left, y toward posterior, z toward superior; the L3 body centre is near
(0, spine_y, 0). Spine ids follow DESIGN.md: 1..5 = L1..L5, 6 = T12, 7 = sacrum,
8 = T11, 9 = T10, 11.. = T9 and up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from ..attenuation import Mixture, Spectrum, enhanced, hounsfield, mean_marrow_fat, tissue, trabecular_bone
from ..errors import BoneScreenError
from ..fracture import SLAB_MM, body_heights, chord_directions, genant_grade
from .findings import (
    Findings,
    Fracture,
    NormalShape,
    draw_findings,
    draw_normal_shapes,
    fracture_warp,
    metal_streaks,
)
from .shapes import Template, load_templates, template_to_volume

#: Template frame (x anterior, y lateral, z superior) from world (x left, y posterior, z superior).
_WORLD_TO_TEMPLATE = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
#: Acetabulum centres in the pelvis template (mm), found as the sockets that hold a 22 mm sphere.
ACETABULA = ((12.0, 80.0, -100.0), (12.0, -80.0, -100.0))
#: Spine ids of the thoracic vertebrae above L1 (T12, T11, T10, T9, T8).
THORACIC_IDS = (6, 8, 9, 11, 12)
SACRUM_ID = 7
L6_ID = 10
#: Each body paints the disc this far (mm) from its endplates, so two neighbours fill gaps up to twice it
#: (adult lumbar discs are 8-12 mm tall in the middle).
DISC_REACH_MM = 7.0
#: Osteophytes grow from the endplates' rims: a spur is drawn only within this distance (mm) inside the body's
#: outline seen from above, or outside it (marginal osteophytes; over the endplate lies the disc).
OSTEOPHYTE_RIM_MM = 1.0
#: The coarsest sample spacing (mm) of the renderer in the slice plane: a coarser pixel averages
#: ``ceil(pixel / RENDER_PIXEL_MM)`` squared samples (up to 3 x 3), as a detector element and the
#: reconstruction average what the pixel covers (partial volume): a 1 mm cortex in a 3 mm pixel reads
#: as a dim rim, not as a full-brightness pixel hit or a miss.
RENDER_PIXEL_MM = 1.5
#: Correlation length (mm, the Gaussian's sigma) of the drawn marrow and soft-tissue texture: trabeculae
#: are 0.1-0.3 mm thick and 0.5-1 mm apart, and clinical CT resolves about 0.5-0.7 mm, so the grain is
#: about a millimetre whatever the pixel (it was 1.2 pixels until 2026-12-01: 3.6 mm blobs at 3 mm pixels).
TEXTURE_GRAIN_MM = 1.0


def _rot(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix from angles (radians) about x, y, z."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    a = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    b = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    c = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return c @ b @ a


@dataclass
class PlacedBone:
    """A template placed in the world: template point = ``m @ world + b``."""

    template: Template
    m: np.ndarray
    b: np.ndarray
    spine_id: int  # 0 for bones that are not vertebrae
    trabecular_hu: float
    cortex_hu: float
    cortex_mm: float
    body: Template | None = None  # vertebral body template (same frame), for discs and sclerosis
    osteophyte_mm: float = 0.0
    sclerosis_hu: float = 0.0
    disc_gas_hu: float = 0.0  # vacuum phenomenon in the disc below the body (0: none)
    fracture: Fracture | None = None
    normal: NormalShape | None = None  # the intact body's own wedge and endplate concavity
    axis_world: np.ndarray | None = None  # a lumbar body's spine axis (world, unit): chord of its neighbours
    cement_hu: float = 0.0  # vertebroplasty cement in the body (0: none)
    cement_radii: tuple[float, float, float] = (0.6, 0.55, 0.6)  # of the body's half extents
    z_range: tuple[float, float] = (0.0, 0.0)
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # world x0, x1, y0, y1

    def __post_init__(self) -> None:
        lo, hi = self.template.extent
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        inv = np.linalg.inv(self.m)
        world = (inv @ (corners - self.b).T).T
        self.z_range = (float(world[:, 2].min()), float(world[:, 2].max()))
        self.box = (
            float(world[:, 0].min()),
            float(world[:, 0].max()),
            float(world[:, 1].min()),
            float(world[:, 1].max()),
        )

    def centre_world(self, template_point: np.ndarray) -> np.ndarray:
        """World position of a template-frame point."""
        return np.linalg.inv(self.m) @ (np.asarray(template_point, float) - self.b)


@dataclass
class Tube:
    """A bone along a 3-D polyline (rib, femoral neck or shaft): radius (mm), cortex, HU."""

    points: np.ndarray  # (n, 3) world mm
    radius: float
    trabecular_hu: float
    cortex_hu: float
    cortex_mm: float = 1.2


@dataclass
class Organ:
    """A soft-tissue blob of the packed abdomen: centre, radii (mm), kind and HU."""

    centre: np.ndarray
    radii: np.ndarray
    kind: str
    hu: float
    wall_hu: float = 0.0


@dataclass
class Scene:
    """One synthetic patient: bones, tubes, soft tissue and its HU."""

    bones: list[PlacedBone]
    tubes: list[Tube]
    organs: list[Organ]
    body_a: float
    body_b: float
    body_yc: float
    harmonics: np.ndarray
    fat_mm: float
    wall_mm: float
    spine_x: float
    spine_y: float
    levels_z: dict[int, float]  # spine id -> body centre z
    z_extent: tuple[float, float]
    hu: dict[str, float] = field(default_factory=dict)
    phase: str = "none"  # contrast phase: none, arterial, portal or delayed
    aorta: dict = field(default_factory=dict)
    arms: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y, soft radius, bone radius
    table_y: float = 0.0
    table_mm: float = 0.0
    spectrum: Spectrum = field(default_factory=Spectrum)
    metal: list[Tube] = field(default_factory=list)  # screws and rods (painted over bone, with streaks)
    findings: Findings = field(default_factory=Findings)
    marrow_fat: float = 0.5  # marrow fat volume fraction (0-1)
    marrow_iodine: float = 0.0  # iodine in the marrow (mg/ml) in this contrast phase

    def trabecular_hu(self, vbmd: float) -> float:
        """Trabecular HU of this patient's bone at ``vbmd`` (mg/cm3) under the scan's spectrum."""
        return bone_hu(vbmd, self.marrow_fat, self.marrow_iodine, self.spectrum)


def true_body_heights(bone: PlacedBone, step_mm: float = 0.5) -> dict[str, float] | None:
    """Anterior, middle and posterior heights (mm) of a placed vertebral body, fracture included.

    The body as the renderer draws it (:func:`body_region`: the whole-vertebra template within the body
    template's outline seen from above, warped by :func:`~.findings.fracture_warp`), scaled as the bone
    was placed, is voxelized on a ``step_mm`` grid (the template's axes, world mm) and measured by
    :func:`bonescreen.fracture.body_heights` along the spine's axis there (``axis_world``: the line through
    the neighbouring bodies' centres, as :func:`bonescreen.fracture.spine_axes` finds it in a scan): the
    truth and a scan's measurement share every definition (axis, slab, depth, bands) and differ only by
    the scan's voxels.
    None for a bone without a body template.
    """
    if bone.body is None:
        return None
    lo, hi = bone.body.extent
    scale = 1.0 / np.linalg.norm(bone.m, axis=1)  # template axis i is scaled by scale[i] into the world
    axes = [np.arange(a, b + 1e-6, step_mm / s) for a, b, s in zip(lo, hi, scale, strict=True)]
    # only the sagittal slab body_heights reads (its centre is the body's lateral middle), for speed
    lateral = lo[1] + np.nonzero((bone.body.sdf < 0).any(axis=(0, 2)))[0].mean()
    reach = (SLAB_MM + 2.0) / scale[1]
    axes[1] = axes[1][np.abs(axes[1] - lateral) <= reach]
    tp = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
    if bone.fracture is not None or bone.normal is not None:
        tp = fracture_warp(tp, bone.fracture, lo, hi, bone.normal)
    inside = body_region(bone.template.sample(tp), outline_depth(bone, tp))  # (x anterior, y lateral, z superior)
    body = template_to_volume(inside)
    axis = None
    if bone.axis_world is not None:  # the spine's axis in this grid: template axes, world mm
        a = (bone.m @ bone.axis_world) * scale
        axis = (float(a[2]), float(-a[0]))  # (z superior, rows posterior)
    heights = body_heights(body, (step_mm, step_mm, step_mm), axis)
    return None if heights is None else {k: heights[k] for k in ("posterior", "middle", "anterior")}


def outline_depth(bone: PlacedBone, tp: np.ndarray) -> np.ndarray:
    """How far (mm) template-frame points ``tp`` (3, ...) lie inside a vertebra's body outline seen from above.

    Positive inside the body template's outline (its ``endplates`` map), -1 off the map; ``tp``'s shape
    without the first axis. ``bone`` must have a body template.
    """
    return bone.body.sample_plane(bone.body.endplates[2], tp, outside=-1.0)


def body_region(sdf: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Where a vertebra's body is: bool, of the shape of ``sdf``.

    The body is the bone the renderer draws (the whole-vertebra template; ``sdf`` its signed distance, mm)
    within the body template's outline seen from above (``depth``: :func:`outline_depth` at the same
    points). The whole-vertebra mesh stands 1-2 mm proud of the separate body mesh at the endplates (mean
    +1.8 mm posterior, +1.2 mm middle, +2.3 mm anterior on 60 drawn bodies), and the image shows the
    former: until 2026-12-02 the truth heights and body masks were the body mesh's, 1-2 mm shorter than
    the bone in the image and in the vertebra labels.
    """
    return (sdf < 0) & (depth > 0)


def realize_fracture(bone: PlacedBone, fracture: Fracture, tolerance: float = 0.003) -> Fracture:
    """The fracture with the warp depth that gives ``fracture.loss`` on this body, as the truth records it.

    A fracture's loss is the height reduction of its worst wall (anterior, middle or posterior, bands
    of :data:`bonescreen.fracture.HEIGHT_BANDS`) against the same body intact, Genant et al. 1993's
    comparison with the expected height. The warp's depth is scaled until :func:`true_body_heights` of
    the fractured body shows that loss (a few iterations); the grade and loss returned are the ones the
    body then has, so ``cases.csv`` records what the image holds.

    Raises
    ------
    BoneScreenError
        If ``bone`` has no body template.
    """
    if bone.body is None:
        raise BoneScreenError("a fracture needs a vertebral body")
    saved = bone.fracture
    depth = tried = fracture.loss
    realized = fracture.loss
    try:
        bone.fracture = None
        intact = true_body_heights(bone)
        for _ in range(6):
            tried = depth
            bone.fracture = Fracture(fracture.grade, fracture.shape, fracture.loss, tried)
            broken = true_body_heights(bone)
            if intact is None or broken is None:
                return fracture
            realized = max(1.0 - broken[w] / intact[w] for w in intact)
            if abs(realized - fracture.loss) <= tolerance:
                break
            depth = float(np.clip(tried * fracture.loss / max(realized, 1e-3), 0.02, 0.85))
    finally:
        bone.fracture = saved
    # the depth last measured, with the loss it gave (if the iterations did not meet the tolerance, the
    # grade is the one that loss has)
    return Fracture(genant_grade(realized), fracture.shape, float(realized), tried)


def bone_hu(vbmd: float, marrow_fat: float, iodine_mg_ml: float, spectrum: Spectrum) -> float:
    """HU of bone of mineral density ``vbmd`` (mg/cm3) with its marrow, under ``spectrum`` (:mod:`.materials`)."""
    return hounsfield(trabecular_bone(vbmd, marrow_fat, iodine_mg_ml), spectrum)


#: Iodine (mg/ml) in the aorta, the IVC, organ parenchyma and bone marrow by contrast phase: ranges after
#: Bae, Radiology 2010 (aortic peak 10-20 mg/ml, portal venous 4-8 mg/ml) and the enhancement of liver,
#: spleen, kidney and marrow in the phases (about 25 HU per mg/ml at 120 kVp).
IODINE_MG_ML = {
    "none": {"aorta": (0, 0), "ivc": (0, 0), "liver": (0, 0), "spleen": (0, 0), "kidney": (0, 0), "marrow": (0, 0)},
    "arterial": {
        "aorta": (9, 19),
        "ivc": (1, 5),
        "liver": (0.3, 1.2),
        "spleen": (1.5, 3.5),
        "kidney": (4, 8),
        "marrow": (0.2, 0.6),
    },
    "portal": {
        "aorta": (5, 9),
        "ivc": (5, 8),
        "liver": (1.8, 2.8),
        "spleen": (1.8, 3.0),
        "kidney": (5, 7.5),
        "marrow": (0.4, 0.8),
    },
    "delayed": {
        "aorta": (3, 5),
        "ivc": (3, 5),
        "liver": (1.2, 2.0),
        "spleen": (1.2, 2.0),
        "kidney": (3, 5),
        "marrow": (0.3, 0.7),
    },
}


def _place(t: Template, scale: np.ndarray, rot: np.ndarray, anchor_t: np.ndarray, anchor_w: np.ndarray):
    """(m, b) mapping world to template: scale and rotate the template about ``anchor_t``, put it at ``anchor_w``."""
    m = np.diag(1.0 / scale) @ rot.T @ _WORLD_TO_TEMPLATE
    b = anchor_t - m @ anchor_w
    return m, b


def draw_scene(
    rng: np.random.Generator,
    findings: Findings | None = None,
    randomize: bool = True,
    patient_vbmd: float | None = None,
) -> Scene:
    """Draw one patient: anatomy, pathology, contrast phase, the scan's spectrum and tissue HU.

    Parameters
    ----------
    rng : numpy Generator
        The case's generator; the same state gives the same scene.
    findings : Findings, optional
        Fractures, cement, screws and transitional anatomy to draw (:mod:`.findings`); drawn at
        random (most patients have none) when None.
    randomize : bool
        Give 12 % of patients soft-tissue HU that CT never shows (SynthSeg-style domain randomization,
        for training); False for volumes that must read like CT (evaluation, tests of HU-based rules).
    patient_vbmd : float, optional
        The patient's lumbar vBMD (mg/cm3) when the caller has drawn it (the marrow fat follows it,
        :func:`~bonescreen.attenuation.mean_marrow_fat`); else the scene's own draw.

    Notes
    -----
    Marrow fat volume fraction: :func:`~bonescreen.attenuation.mean_marrow_fat` of the vBMD plus a
    uniform spread of +-0.12 (SD 0.07; Griffith et al. report SDs of 6-9 %), within 0.2-0.9.
    """
    T = load_templates()
    findings = findings if findings is not None else draw_findings(rng)
    findings = replace(findings, fractures=dict(findings.fractures))  # solved here: the caller's stays as drawn
    phase = str(rng.choice(["none", "arterial", "portal", "delayed"], p=[0.35, 0.15, 0.35, 0.15]))
    gscale = rng.uniform(0.86, 1.14)
    tilt = _rot(rng.normal(0, 0.04), rng.normal(0, 0.10), rng.normal(0, 0.04))  # roll, pelvic tilt, yaw
    spine_x = rng.normal(0, 6)
    body_a, body_b = rng.uniform(120, 215), rng.uniform(90, 160)
    body_b = min(body_b, body_a * 1.05)
    behind = rng.uniform(30, 85)  # posterior skin behind the spinous tips
    # L3 body centre, from the posterior skin (body centred at y = 0); the spine stays in the back half
    spine_y = float(np.clip(body_b - behind - 70 * gscale, -0.05 * body_b, 0.5 * body_b))
    anchor_t = np.array([14.0, 0.0, 106.0])  # L3 body centre in the template
    anchor_w = np.array([spine_x, spine_y, 0.0])
    # the scan's spectrum, and what this patient's bone is made of (HU from :mod:`bonescreen.attenuation`)
    spectrum = Spectrum(
        kvp=float(rng.choice([80.0, 100.0, 120.0, 140.0], p=[0.1, 0.25, 0.5, 0.15])),
        aluminium_mm=rng.uniform(3.0, 8.0),
        water_mm=2.0 * np.sqrt(body_a * body_b) * rng.uniform(0.9, 1.0),
    )
    fat_draw = rng.uniform(-1.0, 1.0)  # where this patient's marrow fat lies in the spread about the mean
    iodine = {k: rng.uniform(*v) for k, v in IODINE_MG_ML[phase].items()}
    vbmd = rng.uniform(30, 230) if rng.random() < 0.85 else rng.uniform(10, 300)
    marrow_fat = float(
        np.clip(mean_marrow_fat(vbmd if patient_vbmd is None else patient_vbmd) + 0.12 * fat_draw, 0.2, 0.9)
    )

    def bone_at(vbmd: float, fat: float = marrow_fat) -> float:
        return bone_hu(max(vbmd, 0.0), fat, iodine["marrow"], spectrum)

    cortex = bone_at(rng.uniform(450, 1250))  # the vertebral shell: porous cortical bone
    cortex_mm = rng.uniform(0.8, 2.2)
    bones: list[PlacedBone] = []
    levels_z: dict[int, float] = {}
    lumbar_ids = {1: "L1", 2: "L2", 3: "L3", 4: "L4", 5: "L5"}
    centres: dict[int, np.ndarray] = {}
    scol = rng.normal(0, 5)  # lateral bow (mm) of the lumbar spine
    # discs: each vertebra's shift is the sum of the changes below it. The meshes' discs are 1-2 mm at the rim
    # and 8-10 mm in the middle between the concave endplates; adult lumbar discs are 8-12 mm in the middle
    # (Pfirrmann et al., Spine 2006): most open by up to 3 mm, a fifth narrow (degenerated)
    disc_change = np.where(rng.random(6) < 0.2, rng.uniform(-2.0, 0.0, 6), rng.uniform(0.0, 3.0, 6))
    for level, name in lumbar_ids.items():
        shift_z = disc_change[level:].sum() * gscale  # changes of the discs below this level
        frac = (5 - level) / 4
        local = _rot(rng.normal(0, 0.03), rng.normal(0, 0.04), rng.normal(0, 0.03))
        scale = gscale * rng.uniform(0.94, 1.06, 3)
        body_t = T[f"{name}_body"]
        centre_t = body_t.origin + np.array(body_t.sdf.shape) / 2
        centre_w = tilt @ (np.linalg.inv(_WORLD_TO_TEMPLATE) @ (centre_t - anchor_t)) * gscale + anchor_w
        centre_w += np.array([scol * np.sin(np.pi * frac), rng.normal(0, 1.5), shift_z])
        m, b = _place(T[name], scale, tilt @ local, centre_t, centre_w)
        sid = SACRUM_ID if level == 5 and findings.lumbar_count == 4 else level  # L5 sacralized: fused to S1
        bones.append(_vertebra(rng, T[name], m, b, sid, bone_at(vbmd + rng.normal(0, 10)), cortex, cortex_mm, body_t))
        levels_z[level] = float(centre_w[2])
        centres[level] = centre_w
    # six lumbar vertebrae: an L6 of L5's shape one step below, the sacrum and pelvis one step down
    below = np.zeros(3)
    if findings.lumbar_count == 6:
        below = (centres[5] - centres[4]) * np.array([0.3, 0.6, 1.0])
        body_t = T["L5_body"]
        centre_t = body_t.origin + np.array(body_t.sdf.shape) / 2
        m, b = _place(T["L5"], gscale * rng.uniform(0.94, 1.06, 3), tilt, centre_t, centres[5] + below)
        bones.append(_vertebra(rng, T["L5"], m, b, L6_ID, bone_at(vbmd + rng.normal(0, 10)), cortex, cortex_mm, body_t))
        levels_z[L6_ID] = float((centres[5] + below)[2])
    # thoracic vertebrae above L1: L1's shape, smaller at each level, with kyphosis starting
    l1 = T["L1_body"]
    l1_centre_t = l1.origin + np.array(l1.sdf.shape) / 2
    top = bones[0]
    prev_centre = top.centre_world(l1_centre_t)
    height = 44.0 * gscale
    for k, sid in enumerate(THORACIC_IDS):
        f = 0.95 ** (k + 1)
        step = height * (0.5 * (0.95**k + f)) + rng.normal(0, 1.0)
        prev_centre = prev_centre + np.array([rng.normal(0, 1.5), 2.0 + 2.5 * k, step])
        local = _rot(rng.normal(0, 0.03), rng.normal(-0.05 * k, 0.04), rng.normal(0, 0.03))
        scale = gscale * f * rng.uniform(0.95, 1.05, 3)
        m, b = _place(T["L1"], scale, tilt @ local, l1_centre_t, prev_centre)
        bones.append(_vertebra(rng, T["L1"], m, b, sid, bone_at(vbmd + rng.normal(5, 10)), cortex, cortex_mm, l1))
        levels_z[sid] = float(prev_centre[2])
    # sacrum (with coccyx) and pelvis keep their real relation to L5
    sac_scale = gscale * rng.uniform(0.95, 1.05, 3)
    m, b = _place(T["S1"], sac_scale, tilt, anchor_t, anchor_w + below)
    sac = PlacedBone(T["S1"], m, b, SACRUM_ID, bone_at(vbmd + rng.normal(0, 12)), cortex, cortex_mm, T["S1_body"])
    bones.append(sac)
    levels_z[SACRUM_ID] = float(sac.centre_world(np.array([-10.0, 0.0, -5.0]))[2])
    pel_scale = sac_scale * np.array([1.0, rng.uniform(0.95, 1.08), 1.0])  # wider or narrower hips, joints closed
    m, b = _place(T["Pelvis"], pel_scale, tilt, anchor_t, anchor_w + below)
    pelvis = PlacedBone(T["Pelvis"], m, b, 0, bone_at(vbmd + rng.normal(8, 16)), cortex, cortex_mm)
    bones.append(pelvis)

    tubes: list[Tube] = []
    # femoral heads in the acetabula, necks to the trochanters, shafts down
    for side, acet in zip((1, -1), ACETABULA, strict=True):
        head = pelvis.centre_world(np.array(acet))
        r = rng.uniform(20, 25) * gscale
        lateral = np.sign(head[0] - spine_x) or side
        troch = head + np.array([lateral * rng.uniform(40, 55), rng.uniform(-5, 10), -rng.uniform(20, 35)]) * gscale
        knee = troch + np.array([-lateral * 25, rng.uniform(-20, 0), -300.0])
        fem_trab = bone_at(vbmd + rng.normal(16, 16))
        tubes.append(Tube(np.array([head, head + 1e-3]), r, fem_trab, cortex, cortex_mm))
        tubes.append(Tube(np.array([head, troch]), r * 0.65, fem_trab, cortex, cortex_mm))
        tubes.append(Tube(np.array([troch, troch + 1e-3]), r * 0.8, fem_trab, cortex, cortex_mm))
        shaft = bone_at(0.15 * vbmd, fat=0.95)  # fatty marrow of the shaft
        tubes.append(Tube(np.array([troch, knee]), r * 0.58, shaft, cortex, max(cortex_mm, 3.0)))
    # ribs on the thoracic vertebrae: head at the costovertebral joint beside the body, neck in front of the
    # transverse process, tubercle at its tip, angle behind it, then round the chest wall, sloping down
    fat_mm, wall_mm = rng.uniform(4, 55), rng.uniform(6, 16)
    rib_levels = [(sid, k, [0.3, 0.5, 0.75, 0.9, 1.0][k]) for k, sid in enumerate(THORACIC_IDS)]  # T12's are short
    if findings.ribs == "no_t12_ribs":
        rib_levels = rib_levels[1:]
    elif findings.ribs == "l1_ribs":  # a 13th pair, on L1: short, like T12's
        rib_levels.insert(0, (1, -1, 0.2))
    for sid, k, rib_reach in rib_levels:
        bone = next(x for x in bones if x.spine_id == sid)
        c = bone.centre_world(l1_centre_t)
        f = gscale * 0.95 ** (k + 1)
        reach = rib_reach * rng.uniform(0.8, 1.15)
        for side in (-1, 1):
            start = [
                c + np.array([side * (23 * f + rng.uniform(1, 3)), 6 * f, 5.0]),
                c + np.array([side * 36 * f, 17 * f, 2.0]),
                c + np.array([side * 47 * f, 28 * f, 0.0]),
                c + np.array([side * 68 * f, 42 * f, -6.0]),
            ]
            ax = max(body_a - fat_mm - wall_mm - 8, 80.0)
            back, front = c[1] + 45 * f, -body_b + fat_mm + wall_mm + 8
            yc = 0.5 * (back + front)
            ay = 0.5 * (back - front)
            ang0 = np.arcsin(np.clip(70 * f / ax, 0, 0.95))
            arc = []
            for u in np.linspace(0, 1, 10)[1:]:
                ang = ang0 + (np.pi * reach - ang0) * u
                arc.append(
                    np.array([spine_x + side * ax * np.sin(ang), yc + ay * np.cos(ang), c[2] - 6 - 110 * u * reach])
                )
            tubes.append(
                Tube(
                    np.array(start + arc),
                    rng.uniform(4.0, 6.0),
                    bone_at(vbmd + rng.normal(25, 16)),
                    bone_at(rng.uniform(400, 1100)),
                    min(cortex_mm, 1.5),
                )
            )
    organs = _draw_organs(rng, body_a, body_b, spine_x, spine_y, levels_z)

    def hu_of(mix: Mixture) -> float:
        return hounsfield(mix, spectrum)

    # soft tissue: densities vary a little from patient to patient (hydration, lipid content)
    adipose = tissue("adipose", rng.uniform(0.98, 1.02))
    blood = tissue("blood", rng.uniform(0.99, 1.01))
    hu = {
        "air": hu_of(tissue("air", rng.uniform(0.9, 1.1))),
        "fat": hu_of(adipose),
        "muscle": hu_of(tissue("muscle", rng.uniform(0.985, 1.01))),
        # discs: 60-110 HU at 120 kVp, about the 70-90 HU of the real abdomen-pelvis CT of
        # scripts/get_real_examples.sh (they were 110 +- 15 HU until 2026-12-01: as bright as a normal body)
        "disc": hu_of(tissue("cartilage", rng.uniform(0.95, 1.005))),
        "csf": hu_of(tissue("csf", rng.uniform(0.995, 1.01))),
        "aorta": hu_of(enhanced(blood, iodine["aorta"])),
        "ivc": hu_of(enhanced(blood, iodine["ivc"])),
        "table": rng.uniform(-300, 300),  # carbon fibre and foam: not a tissue
    }
    if rng.random() < 0.12 and randomize:  # SynthSeg-style: soft tissue intensities the network must not rely on
        for key in ("fat", "muscle", "disc", "csf"):
            hu[key] = rng.uniform(-200, 200)
    for o in organs:
        o.hu = _organ_hu(rng, o.kind, phase, iodine, hu_of)
        o.wall_hu = rng.uniform(20, 80) if o.kind.startswith("bowel") else o.hu
    calc = rng.uniform(0, 1) ** 2 * 0.6  # share of the aortic wall calcified
    aorta = {
        "x": spine_x + rng.uniform(8, 25),
        "ivc_x": spine_x - rng.uniform(18, 32),
        "r": rng.uniform(8, 15) * gscale,
        "front": rng.uniform(14, 26) * gscale,
        "ivc_r": rng.uniform(9, 14),
        "bifurcation_z": levels_z[4] + rng.uniform(-10, 15),
        "calc": calc,
        "calc_hu": hu_of(trabecular_bone(rng.uniform(250, 1100), 0.0)),  # calcified plaque: mineral in the wall
        "calc_seed": int(rng.integers(1 << 30)),
    }
    arms = []
    if rng.random() < 0.35:
        for side in (-1, 1):
            arm_r = rng.uniform(35, 50)
            x = spine_x + side * (body_a + arm_r + rng.uniform(0, 25))
            arms.append((x, rng.uniform(-40, 40), arm_r, rng.uniform(9, 13)))
    top_z = levels_z[THORACIC_IDS[-1]]
    _set_body_axes(bones)
    _set_normal_shapes(rng.spawn(1)[0], bones)  # a child generator: the scene's own draws stay as they were
    return Scene(
        bones=bones,
        tubes=tubes,
        organs=organs,
        body_a=body_a,
        body_b=body_b,
        body_yc=0.0,
        harmonics=rng.normal(0, 0.03, (4, 2)),
        fat_mm=fat_mm,
        wall_mm=wall_mm,
        spine_x=spine_x,
        spine_y=spine_y,
        levels_z=levels_z,
        z_extent=(-330.0 * gscale, top_z + 20),
        hu=hu,
        phase=phase,
        aorta=aorta,
        arms=arms,
        table_y=body_b + rng.uniform(0, 12),
        table_mm=rng.uniform(8, 40),
        spectrum=spectrum,
        metal=_place_findings(rng, findings, bones, hu_of),  # after _set_body_axes (above)
        findings=findings,
        marrow_fat=float(marrow_fat),
        marrow_iodine=float(iodine["marrow"]),
    )


def _set_body_axes(bones: list[PlacedBone]) -> None:
    """Each lumbar body's spine axis, as :func:`bonescreen.fracture.spine_axes` finds it in a scan: from the
    centre of the body below to the centre of the body above (an end body: itself and its one neighbour)."""
    lumbar = sorted((b for b in bones if 1 <= b.spine_id <= 5 and b.body is not None), key=lambda b: -b.spine_id)
    centres = [b.centre_world(b.body.origin + (np.array(b.body.sdf.shape) - 1) / 2) for b in lumbar]
    for bone, d in zip(lumbar, chord_directions(centres), strict=True):
        if d is not None:
            bone.axis_world = d / np.linalg.norm(d)


def _set_normal_shapes(rng: np.random.Generator, bones: list[PlacedBone]) -> None:
    """Give each lumbar body the population's normal shape of its level, with a patient's and a level's spread
    (:func:`~.findings.draw_normal_shapes`; before any fracture, whose loss is against this intact body)."""
    lumbar = {b.spine_id: b for b in bones if 1 <= b.spine_id <= 5 and b.body is not None}
    ratios = {}
    for sid, bone in sorted(lumbar.items()):
        h = true_body_heights(bone)
        if h is not None:
            ratios[f"L{sid}"] = {"wedge": h["anterior"] / h["posterior"], "biconcave": h["middle"] / h["posterior"]}
    for name, shape in draw_normal_shapes(rng, ratios).items():
        lumbar[int(name[1:])].normal = shape


def _place_findings(rng, findings: Findings, bones: list[PlacedBone], hu_of) -> list[Tube]:
    """Put the fractures and cement into their vertebrae (the bodies' axes set: :func:`_set_body_axes`);
    return the screws and rods (titanium tubes)."""
    by_id = {b.spine_id: b for b in bones if b.spine_id}
    for sid, fracture in list(findings.fractures.items()):
        if sid in by_id and by_id[sid].body is not None:
            by_id[sid].fracture = findings.fractures[sid] = realize_fracture(by_id[sid], fracture)
    for sid in findings.cement:
        if sid in by_id:
            by_id[sid].cement_hu = hu_of(tissue("bone_cement", rng.uniform(0.9, 1.1)))
            by_id[sid].cement_radii = tuple(rng.uniform(0.45, 0.75, 3))
    metal_hu = hu_of(tissue("titanium_alloy"))
    heads: dict[int, list[tuple[int, np.ndarray]]] = {-1: [], 1: []}  # (spine id, head) per side
    metal = []
    for sid in findings.screws:
        bone = by_id.get(sid)
        if bone is None or bone.body is None:
            continue
        lo, hi = (np.asarray(e, float) for e in bone.body.extent)
        c = (lo + hi) / 2
        post = lo[0] + 6.0  # the body's posterior wall (template x is anterior)
        inv = np.linalg.inv(bone.m)
        for side in (-1, 1):
            # through the pedicle: in at the facet, converging about 15 degrees toward the body's middle
            entry = np.array([post - 28.0, side * rng.uniform(20, 25), c[2]])
            tip = np.array([c[0] + 0.45 * (hi[0] - lo[0] - 12) / 2, side * rng.uniform(3, 8), c[2]])
            head = entry + np.array([-8.0, 0.0, 0.0])
            to_world = [inv @ (p - bone.b) for p in (head, entry, tip)]
            metal.append(Tube(np.array(to_world[1:]), rng.uniform(2.8, 3.5), metal_hu, metal_hu))
            metal.append(Tube(np.array([to_world[0], to_world[1]]), rng.uniform(5.0, 6.5), metal_hu, metal_hu))
            heads[side].append((sid, to_world[0]))
    for side in (-1, 1):  # rods joining the screw heads of adjacent instrumented levels
        order = findings.levels()  # head to tail
        ranked = sorted((order.index(sid), head) for sid, head in heads[side])
        for (a, pa), (b, pb) in itertools.pairwise(ranked):
            if b - a == 1:
                metal.append(Tube(np.array([pa, pb]), 2.75, metal_hu, metal_hu))
    return metal


def _vertebra(rng, t, m, b, sid, trab, cortex, cortex_mm, body) -> PlacedBone:
    return PlacedBone(
        t,
        m,
        b,
        sid,
        float(trab),
        cortex,
        cortex_mm,
        body,
        osteophyte_mm=rng.uniform(1.5, 6.0) if rng.random() < 0.25 else 0.0,
        sclerosis_hu=rng.uniform(150, 450) if rng.random() < 0.2 else 0.0,
        disc_gas_hu=rng.uniform(-900, -300) if rng.random() < 0.07 else 0.0,
    )


def _draw_organs(rng, a, b, sx, sy, levels_z) -> list[Organ]:
    """Liver, spleen, kidneys, bladder and many bowel loops packed in the abdomen (ellipsoids)."""
    organs = []
    zt, zl3 = levels_z[6], levels_z[3]
    organs.append(Organ(np.array([-0.45 * a, -0.1 * b, zt + 40]), np.array([0.5 * a, 0.8 * b, 110]), "liver", 0))
    organs.append(Organ(np.array([0.55 * a, 0.3 * b, zt + 30]), np.array([0.25 * a, 0.35 * b, 60]), "spleen", 0))
    for side in (-1, 1):
        organs.append(
            Organ(
                np.array([sx + side * rng.uniform(55, 80), sy + 5, (zt + zl3) / 2 + rng.normal(0, 10)]),
                np.array([28, 22, 55.0]),
                "kidney",
                0,
            )
        )
    organs.append(Organ(np.array([sx, -0.5 * b, levels_z[7] - 90]), np.array([50, 40, 45.0]), "bladder", 0))
    for _ in range(int(rng.integers(60, 120))):
        r = rng.uniform(10, 35)
        c = np.array(
            [
                rng.uniform(-0.85, 0.85) * a,
                rng.uniform(-0.9 * b, max(sy - 10, 20 - 0.9 * b)),
                rng.uniform(-250, zt + 60),
            ]
        )
        kind = rng.choice(["bowel_fluid", "bowel_gas", "bowel_contrast", "bowel_feces"], p=[0.45, 0.25, 0.15, 0.15])
        organs.append(Organ(c, np.array([r, r * rng.uniform(0.6, 1.0), r * rng.uniform(0.8, 2.5)]), str(kind), 0))
    return organs


def _organ_hu(rng, kind: str, phase: str, iodine: dict, hu_of) -> float:
    """HU of an organ from its tissue, the phase's iodine and the scan's spectrum (``hu_of``: Mixture -> HU)."""
    if kind in ("liver", "spleen", "kidney"):
        base = tissue(kind, rng.uniform(0.98, 1.02))
        extra = rng.uniform(5, 30) if kind == "kidney" and phase == "delayed" and rng.random() < 0.5 else 0.0
        return hu_of(enhanced(base, iodine[kind] * rng.uniform(0.85, 1.15) + extra))  # extra: excreted into the pelvis
    if kind == "bladder":
        excreted = rng.uniform(4, 30) if phase == "delayed" and rng.random() < 0.4 else 0.0
        return hu_of(enhanced(tissue("urine", rng.uniform(0.99, 1.01)), excreted))
    if kind == "bowel_gas":
        return hu_of(tissue("air", rng.uniform(1.0, 120.0)))  # gas with some fluid and wall in the voxel
    if kind == "bowel_contrast":  # positive oral contrast
        return hu_of(enhanced(tissue("water"), rng.uniform(5, 30)))
    if kind == "bowel_feces":  # stool: water, fat and gas
        gas = rng.uniform(0, 0.4)
        return hu_of(Mixture((("water", 1.0 - gas - 0.2), ("adipose", 0.19), ("air", 0.0012 * gas))))
    return hu_of(tissue("muscle", rng.uniform(0.95, 1.0)))  # bowel fluid and wall


@dataclass(frozen=True)
class Acquisition:
    """How one slice is acquired and reconstructed."""

    spacing: float  # pixel size (mm)
    shape: tuple[int, int]  # rows, cols
    centre: tuple[float, float]  # world (x, y) of the image centre
    thickness: float  # slice thickness (mm)
    kernel_mm: float  # Gaussian blur sigma of the reconstruction kernel
    sharpen: float  # unsharp-mask gain of a sharp kernel (0 = soft)
    noise_hu: float  # noise SD
    fov_fill: float  # value stored outside the reconstruction circle; NaN for a crop without one


def draw_acquisition(rng: np.random.Generator, scene: Scene, z: float | None = None) -> Acquisition:
    """A field of view, pixel size, slice thickness, kernel and noise, from dedicated spine CT to low-dose abdomen.

    A dedicated spine acquisition (or a crop round the spine, with no reconstruction circle) is
    centred on the vertebra at height ``z`` when one is there.
    """
    kind = rng.choice(["abdomen", "spine", "lowres"], p=[0.65, 0.2, 0.15])
    circle = True
    if kind == "spine":  # dedicated spine CT or a crop: small field of view round the spine, fine pixels
        fov = rng.uniform(70, 220)
        spacing = rng.uniform(0.3, 0.6) if rng.random() < 0.7 else rng.uniform(0.6, 1.6)
        here = [b for b in scene.bones if b.spine_id and z is not None and b.z_range[0] <= z <= b.z_range[1]]
        cx, cy = (
            (scene.spine_x, scene.spine_y)
            if not here
            else (0.5 * (here[0].box[0] + here[0].box[1]), 0.5 * (here[0].box[2] + here[0].box[3]))
        )
        centre = (cx + rng.normal(0, 8), cy + rng.normal(0, 12))
        circle = rng.random() < 0.5
    else:
        width = 2 * scene.body_a + rng.uniform(10, 80)
        fov = float(np.clip(width, 250, 500))
        spacing = fov / 512 if kind == "abdomen" else rng.uniform(1.5, 3.5)
        centre = (rng.normal(0, 8), rng.normal(0, 10))
    n = round(fov / spacing)
    thickness = float(np.exp(rng.uniform(np.log(0.5), np.log(5.0)))) if kind != "lowres" else spacing
    return Acquisition(
        spacing=float(spacing),
        shape=(n, n),
        centre=(float(centre[0]), float(centre[1])),
        thickness=thickness,
        kernel_mm=rng.uniform(0.25, 1.1),
        sharpen=rng.uniform(0.2, 1.0) if rng.random() < 0.3 else 0.0,
        noise_hu=float(np.exp(rng.uniform(np.log(4), np.log(60)))) * (1.0 if kind != "lowres" else 0.4),
        fov_fill=float(rng.choice([-3024.0, -2048.0, -1024.0, -1000.0])) if circle else float("nan"),
    )


def render_slice(scene: Scene, acq: Acquisition, z: float, rng: np.random.Generator, with_body: bool = False):
    """HU image and vertebra labels of one axial slice.

    Parameters
    ----------
    scene : Scene
        The patient.
    acq : Acquisition
        Pixel grid, thickness, kernel and noise.
    z : float
        Slice centre (mm, world).
    rng : numpy Generator
        For texture and noise.

    Returns
    -------
    hu : ndarray
        float32 (rows, cols) in HU, rows anterior -> posterior, columns patient right -> left
        (x grows with the column: BoneScreen's display orientation).
    spine : ndarray
        uint8 (rows, cols) spine ids (DESIGN.md) at the slice centre; 0 elsewhere.
    body : ndarray
        Only with ``with_body``: the vertebral bodies, same ids.
    """
    ny, nx = acq.shape
    xs = acq.centre[0] + (np.arange(nx, dtype=np.float32) - (nx - 1) / 2) * acq.spacing
    ys = acq.centre[1] + (np.arange(ny, dtype=np.float32) - (ny - 1) / 2) * acq.spacing
    # partial volume: the slab's thickness and, at coarse pixels, the pixel's area are averaged over samples
    n_sub = int(np.clip(np.ceil(acq.thickness / 1.5), 1, 3))
    offsets = (np.arange(n_sub) - (n_sub - 1) / 2) * (acq.thickness / n_sub)
    n_xy = int(np.clip(np.ceil(acq.spacing / RENDER_PIXEL_MM - 1e-6), 1, 3))
    within = ((np.arange(n_xy) - (n_xy - 1) / 2) * (acq.spacing / n_xy)).astype(np.float32)
    xs_s, ys_s = (xs[:, None] + within).ravel(), (ys[:, None] + within).ravel()
    hu = np.zeros((ny, nx), np.float32)
    spine = body = None
    metal = np.zeros((ny, nx), bool)
    for dz in offsets:
        img, (lab, bod, met, _) = _render_plane(
            scene, xs_s, ys_s, float(z + dz), rng, want_labels=n_xy == 1 and spine is None and abs(dz) < 1e-6
        )
        hu += img.reshape(ny, n_xy, nx, n_xy).mean(axis=(1, 3))
        metal |= met.reshape(ny, n_xy, nx, n_xy).any(axis=(1, 3))
        if lab is not None:
            spine, body = lab, bod
    hu /= n_sub
    if metal.any():  # streaks round screws and rods
        hu += metal_streaks(metal, acq.spacing, rng)
    if spine is None:
        _, (spine, body, _, _) = _render_plane(scene, xs, ys, float(z), rng, want_labels=True, labels_only=True)
    # reconstruction kernel, sharp-kernel overshoot, correlated noise, reconstruction circle
    sig = acq.kernel_mm / acq.spacing
    blurred = ndimage.gaussian_filter(hu, sig, truncate=3.0) if sig > 0.15 else hu
    if acq.sharpen > 0:
        blurred = blurred + acq.sharpen * (blurred - ndimage.gaussian_filter(blurred, 1.5 * sig + 0.5))
    noise = rng.standard_normal(hu.shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, 0.6)
    blurred += noise * np.float32(acq.noise_hu / (noise.std() + 1e-6))
    r2 = (xs[None, :] - acq.centre[0]) ** 2 + (ys[:, None] - acq.centre[1]) ** 2
    if not np.isnan(acq.fov_fill):  # NaN: a crop, no reconstruction circle
        blurred[r2 > (min(nx, ny) / 2 * acq.spacing) ** 2] = acq.fov_fill
    hu_out = np.clip(np.rint(blurred), -3024, 3071).astype(np.float32)
    return (hu_out, spine, body) if with_body else (hu_out, spine)


def uncertain_mark(scene: Scene, acq: Acquisition, z: float) -> np.ndarray:
    """Pixels of one axial slice whose vertebra mark a 2-D network cannot be asked for.

    Two kinds: the intervertebral discs at the slice centre (in one axial slice a disc and a
    low-density body look alike; the level split leaves filled discs out of the vertebrae with
    the CT in 3-D, :func:`bonescreen.pipeline.mark_repair.trim_filled_discs`), and pixels whose
    label changes within the slab the slice averages (its top, centre and bottom disagree: the
    HU there are part bone, part not). MS-Net's training loss leaves them out
    (:data:`bonescreen.preprocess.MARK_IGNORE`).

    Parameters
    ----------
    scene, acq : Scene, Acquisition
        As for :func:`render_slice`.
    z : float
        Slice centre (mm, world).

    Returns
    -------
    ndarray
        bool (rows, cols), the grid of :func:`render_slice`.
    """
    ny, nx = acq.shape
    xs = acq.centre[0] + (np.arange(nx, dtype=np.float32) - (nx - 1) / 2) * acq.spacing
    ys = acq.centre[1] + (np.arange(ny, dtype=np.float32) - (ny - 1) / 2) * acq.spacing
    rng = np.random.default_rng(0)  # labels use no randomness
    half = 0.45 * acq.thickness
    marks = []
    discs = None
    for dz in (0.0, -half, half):
        centre = discs is None
        _, (lab, _, _, dsc) = _render_plane(
            scene, xs, ys, float(z + dz), rng, want_labels=True, labels_only=True, want_discs=centre
        )
        marks.append(lab > 0)
        if centre:
            discs = dsc & ~marks[0]
    mixed = (marks[1] != marks[0]) | (marks[2] != marks[0])
    return discs | mixed


def _render_plane(
    scene: Scene, xs, ys, z: float, rng, want_labels: bool, labels_only: bool = False, want_discs: bool = False
):
    ny, nx = len(ys), len(xs)
    pixel = float(xs[1] - xs[0]) if nx > 1 else 1.0
    X, Y = np.meshgrid(xs, ys)
    labels = np.zeros((ny, nx), np.uint8) if want_labels else None
    bodies = np.zeros((ny, nx), np.uint8) if want_labels else None
    discs = np.zeros((ny, nx), bool) if want_discs else None
    img = np.full((ny, nx), scene.hu["air"], np.float32)
    if not labels_only:
        _paint_soft_tissue(scene, img, X, Y, z, rng, pixel)
    bone_any = np.zeros((ny, nx), bool)
    for bone in scene.bones:
        reach = 0.0 if bone.body is None else 2.5 * DISC_REACH_MM  # its discs reach past the template's grid
        if not (bone.z_range[0] - reach <= z <= bone.z_range[1] + reach):
            continue
        rs, cs = _window(xs, ys, bone.box)
        if rs is None:
            continue
        pts = np.stack([X[rs, cs], Y[rs, cs], np.full(X[rs, cs].shape, z, np.float32)])
        tp = np.tensordot(bone.m, pts, axes=1) + bone.b[:, None, None]
        if bone.body is not None and (bone.fracture is not None or bone.normal is not None):
            tp = fracture_warp(tp, bone.fracture, *bone.body.extent, bone.normal)
        sdf = bone.template.sample(tp)
        inside = sdf < 0
        body_sdf = None
        if bone.body is not None and (bone.osteophyte_mm or bone.sclerosis_hu or not labels_only or want_labels):
            body_sdf = bone.body.sample(tp)
        if body_sdf is not None:
            lo, hi = bone.body.extent
            ends = (lo[2] + 6, hi[2] - 6)  # endplate heights in the template (its grid has a margin)
            depth = outline_depth(bone, tp)
        if bone.osteophyte_mm and body_sdf is not None:
            # spurs grow outward from the endplates' rims, not over the endplates into the disc: only where the
            # point lies within OSTEOPHYTE_RIM_MM of the body's outline seen from above, or outside it
            near_end = (np.abs(tp[2] - ends[0]) < 4) | (np.abs(tp[2] - ends[1]) < 4)
            inside |= near_end & (body_sdf < bone.osteophyte_mm) & (body_sdf > -2) & (depth <= OSTEOPHYTE_RIM_MM)
        # the discs: painted, or asked for (uncertain_mark); a pass for the labels alone does not need them
        disc = (
            _disc_region(bone, tp, depth, inside, lo, hi)
            if body_sdf is not None and (not labels_only or discs is not None)
            else None
        )
        if labels is not None and bone.spine_id:
            sub = labels[rs, cs]
            sub[inside] = bone.spine_id
            if body_sdf is not None:
                sub = bodies[rs, cs]
                sub[inside & body_region(sdf, depth)] = bone.spine_id
        if discs is not None and disc is not None:
            discs[rs, cs] |= disc
        if labels_only:
            continue
        if disc is not None:
            # the annulus a little denser than the nucleus
            sub = img[rs, cs]
            free = disc & ~bone_any[rs, cs]
            sub[free] = (scene.hu["disc"] + np.where(depth < 6.0, 20.0, 0.0))[free]
            if bone.disc_gas_hu:  # vacuum disc: a gas cleft in the middle of the disc below the body
                below = bone.body.sample_plane(bone.body.endplates[0], tp) - tp[2]
                cleft = free & (below > 1.5) & (below < 4.0) & (depth > 8.0)
                sub[cleft] = bone.disc_gas_hu
        val = np.where(sdf > -bone.cortex_mm, bone.cortex_hu, bone.trabecular_hu).astype(np.float32)
        if bone.sclerosis_hu and body_sdf is not None:
            val += np.float32(bone.sclerosis_hu) * ((np.abs(tp[2] - ends[0]) < 3) | (np.abs(tp[2] - ends[1]) < 3))
        tex = _texture(rng, val.shape, 25 + 0.25 * bone.trabecular_hu, pixel)
        if bone.cement_hu and body_sdf is not None:
            c, half = (np.asarray(lo) + np.asarray(hi)) / 2, (np.asarray(hi) - np.asarray(lo)) / 2 - 6
            r2 = sum(((tp[i] - c[i]) / (half[i] * bone.cement_radii[i])) ** 2 for i in range(3))
            blob = (r2 < 1) & (body_sdf < -1.0)
            val[blob], tex[blob] = bone.cement_hu, 0.0
        sub = img[rs, cs]
        sub[inside] = (val + tex)[inside]
        bone_any[rs, cs] |= inside
    for tube in scene.tubes:
        zlo, zhi = tube.points[:, 2].min() - tube.radius, tube.points[:, 2].max() + tube.radius
        if not (zlo <= z <= zhi):
            continue
        d = _tube_distance(tube, X, Y, z)
        if d is None:
            continue
        (rs, cs), dist = d
        inside = dist < tube.radius
        if not inside.any() or labels_only:
            continue
        val = np.where(dist > tube.radius - tube.cortex_mm, tube.cortex_hu, tube.trabecular_hu).astype(np.float32)
        sub = img[rs, cs]
        free = inside & ~bone_any[rs, cs]
        sub[free] = (val + _texture(rng, val.shape, 30, pixel))[free]
    metal = np.zeros((ny, nx), bool)
    for tube in scene.metal if not labels_only else ():
        d = _tube_distance(tube, X, Y, z)
        if d is None:
            continue
        (rs, cs), dist = d
        inside = dist < tube.radius
        img[rs, cs][inside] = tube.trabecular_hu
        metal[rs, cs] |= inside
    return img, (labels, bodies, metal, discs)


def _disc_region(bone: PlacedBone, tp: np.ndarray, depth: np.ndarray, inside: np.ndarray, lo, hi) -> np.ndarray:
    """The discs of one vertebral body at template points ``tp``: over the body's outline (``depth`` > 0), from
    each endplate half way (:data:`DISC_REACH_MM`) to the next body, outside the bone (``inside``); a fractured
    body's collapse or an endplate's concavity opens the gap by up to its loss x half the body's height."""
    low, high, _ = bone.body.endplates
    reach = DISC_REACH_MM
    lost = 1.0 - (1.0 - (bone.fracture.warp_depth if bone.fracture is not None else 0.0)) * (
        1.0 - (max(bone.normal.wedge, 0.0) + bone.normal.concavity if bone.normal is not None else 0.0)
    )
    if lost > 0:
        half_height = (hi[2] - lo[2]) / 2 - 6.0
        reach = (DISC_REACH_MM + lost * half_height) / (1.0 - lost)
    below = bone.body.sample_plane(low, tp) - tp[2]
    above = tp[2] - bone.body.sample_plane(high, tp)
    return (depth > 0) & ~inside & (((below > 0) & (below < reach)) | ((above > 0) & (above < reach)))


def _window(xs, ys, box):
    x0, x1, y0, y1 = box
    c = np.nonzero((xs >= x0) & (xs <= x1))[0]
    r = np.nonzero((ys >= y0) & (ys <= y1))[0]
    if c.size == 0 or r.size == 0:
        return None, None
    return slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1)


def _tube_distance(tube: Tube, X, Y, z: float):
    p = tube.points
    pad = tube.radius + 1
    box = (p[:, 0].min() - pad, p[:, 0].max() + pad, p[:, 1].min() - pad, p[:, 1].max() + pad)
    rs, cs = _window(X[0], Y[:, 0], box)
    if rs is None:
        return None
    x, y = X[rs, cs], Y[rs, cs]
    best = np.full(x.shape, np.inf, np.float32)
    for a, b in itertools.pairwise(p):
        if min(a[2], b[2]) - pad > z or max(a[2], b[2]) + pad < z:
            continue
        v = b - a
        L2 = float(v @ v) or 1e-9
        t = np.clip(((x - a[0]) * v[0] + (y - a[1]) * v[1] + (z - a[2]) * v[2]) / L2, 0, 1)
        d2 = (x - a[0] - t * v[0]) ** 2 + (y - a[1] - t * v[1]) ** 2 + (z - a[2] - t * v[2]) ** 2
        np.minimum(best, d2, out=best)
    return (rs, cs), np.sqrt(best)


def _texture(rng, shape, amplitude: float, pixel_mm: float) -> np.ndarray:
    """Blobby texture of :data:`TEXTURE_GRAIN_MM` grain with the SD ``amplitude`` (HU) at 1 mm samples.

    ``pixel_mm`` is the sample spacing: coarser samples each average more of the grain, so the SD falls
    as the grain over the pixel (a field's mean over a pixel much wider than its correlation length).
    """
    sigma = TEXTURE_GRAIN_MM / pixel_mm
    t = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), max(sigma, 0.5))
    return t * np.float32(amplitude * min(1.0, sigma) / (t.std() + 1e-6))


def _paint_soft_tissue(scene: Scene, img, X, Y, z: float, rng, pixel: float) -> None:
    hu = scene.hu
    # body outline: an ellipse with a few harmonics; wider over the pelvis, narrower up the chest
    zf = np.clip(1.0 + 0.0008 * (-z), 0.85, 1.15)
    a, b = scene.body_a * zf, scene.body_b
    ang = np.arctan2(Y - scene.body_yc, X)
    rad = 1.0 + sum(
        scene.harmonics[k, 0] * np.cos((k + 2) * ang) + scene.harmonics[k, 1] * np.sin((k + 2) * ang) for k in range(4)
    )
    rho = np.sqrt((X / a) ** 2 + ((Y - scene.body_yc) / b) ** 2) / rad
    # the table under the back
    table = (Y > scene.table_y) & (Y < scene.table_y + scene.table_mm) & (np.abs(X) < 260)
    img[table] = hu["table"]
    body = rho <= 1.0
    img[body] = hu["fat"]
    inner = rho <= 1.0 - scene.fat_mm / b
    img[inner] = hu["muscle"]
    cavity = rho <= 1.0 - (scene.fat_mm + scene.wall_mm) / b
    # retroperitoneal and mesenteric fat, then packed organs
    img[cavity] = hu["fat"] + 20
    sx, sy = scene.spine_x, scene.spine_y
    organ_id = np.full(X.shape, -1, np.int32)
    best = np.full(X.shape, 1.0, np.float32)
    xs, ys = X[0], Y[:, 0]
    for i, o in enumerate(scene.organs):
        dz = (z - o.centre[2]) / o.radii[2]
        if abs(dz) >= 1:
            continue
        s = np.sqrt(1 - dz * dz)
        ra, rb = o.radii[0] * s, o.radii[1] * s
        rs, cs = _window(xs, ys, (o.centre[0] - ra, o.centre[0] + ra, o.centre[1] - rb, o.centre[1] + rb))
        if rs is None:
            continue
        d = ((X[rs, cs] - o.centre[0]) / ra) ** 2 + ((Y[rs, cs] - o.centre[1]) / rb) ** 2
        closer = (d < best[rs, cs]) & cavity[rs, cs]
        best[rs, cs][closer] = d[closer]
        organ_id[rs, cs][closer] = i
    for i in np.unique(organ_id[organ_id >= 0]):
        o = scene.organs[i]
        m = organ_id == i
        img[m] = o.hu
        if o.kind.startswith("bowel"):
            img[m & (best > 0.7)] = o.wall_hu
    # muscles: paraspinal behind the spine, psoas beside the lumbar bodies
    for side in (-1, 1):
        para = ((X - sx - side * 38) / 32) ** 2 + ((Y - sy - 65) / 28) ** 2 <= 1
        img[para & body] = hu["muscle"]
        if z < scene.levels_z[1]:
            r = np.clip((scene.levels_z[1] - z) / 6, 4, 28)
            psoas = ((X - sx - side * (28 + r)) / r) ** 2 + ((Y - sy + 2) / (r * 0.8)) ** 2 <= 1
            img[psoas] = hu["muscle"]
    # aorta and IVC, dividing into the iliac vessels below the bifurcation
    ao = scene.aorta
    # the aorta lies against the front of the vertebral bodies, moving to their left side up the chest
    vy = sy - ao["front"] - ao["r"]
    if z > ao["bifurcation_z"]:
        up = float(np.clip((z - scene.levels_z[1]) / 80.0, 0.0, 1.0))
        ax_, ay_ = ao["x"] + up * 12.0, vy + up * (ao["r"] + 4.0)
        vessels = [(ax_, ay_, ao["r"], hu["aorta"], True), (ao["ivc_x"], vy + 2, ao["ivc_r"], hu["ivc"], False)]
    else:
        d = (ao["bifurcation_z"] - z) * 0.45
        vessels = [(sx + s * (10 + d), vy + 0.2 * d, ao["r"] * 0.65, hu["aorta"], True) for s in (-1, 1)]
        vessels += [(sx + s * (22 + d), vy + 8 + 0.2 * d, ao["ivc_r"] * 0.7, hu["ivc"], False) for s in (-1, 1)]
    for vx, vyy, r, v, artery in vessels:
        rr = np.sqrt((X - vx) ** 2 + (Y - vyy) ** 2)
        img[rr <= r] = v
        if artery and ao["calc"] > 0:
            wall = (rr > r - 1.8) & (rr <= r + 0.5)
            phase = np.arctan2(Y - vyy, X - vx)
            crng = np.random.default_rng([ao["calc_seed"], int(z // 6) + 1000])
            ks = crng.uniform(-np.pi, np.pi, 3)
            patch = np.zeros_like(wall)
            for k in ks:
                patch |= np.abs(np.angle(np.exp(1j * (phase - k)))) < np.pi * ao["calc"]
            img[wall & patch] = ao["calc_hu"]
    # spinal canal soft tissue is painted by the bones' absence; arms beside the body
    for x, y, r, br in scene.arms:
        arm = ((X - x) ** 2 + (Y - y) ** 2) <= r * r
        img[arm] = hu["muscle"]
        img[arm & (((X - x) ** 2 + (Y - y) ** 2) > (r - 8) ** 2)] = hu["fat"]
        rr = np.sqrt((X - x - 5) ** 2 + (Y - y) ** 2)
        img[rr <= br] = 900
        img[rr <= br - 3] = 150
    img += _texture(rng, img.shape, 8, pixel)
