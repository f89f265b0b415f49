"""A realistic synthetic CT scene, rendered one axial slice at a time for training MS-Net on real-looking CT.

The first phantom (:mod:`.generate`) draws ellipses and bars; a network trained on it
learned the phantom, not CT (issue "Real CT"). This generator builds each case from real
bone shapes (:mod:`.shapes`: L1-L5, the sacrum with the coccyx and the pelvis of the
Male Visible Human, scaled, tilted and deformed per case), adds the thoracic spine
above L1 (T12 up to T8, from L1's shape scaled down) with ribs, femoral heads and
shafts in the acetabula, packed abdominal organs, vessels with calcification and
contrast, arms and the table, and draws an acquisition (pixel size, field of view,
slice thickness, kernel, noise) per slice. What the network should not rely on is
randomized in the manner of SynthSeg (Billot et al., Med Image Anal 2023): soft-tissue
intensities, body habitus, fields of view, resolution; bone keeps HU within the ranges
real bone shows (trabecular about 20-320 HU, cortex 300-1200 HU; Pickhardt et al.,
AJR 2013 and Schreiber et al., AJR 2011 for trabecular L1 attenuation in adults).

Coordinates are millimetres in the world frame of :mod:`.anatomy`: x toward the
patient's left, y toward posterior, z toward superior; the L3 body centre is near
(0, spine_y, 0). Spine ids follow DESIGN.md: 1..5 = L1..L5, 6 = T12, 7 = sacrum,
8 = T11, 9 = T10, 11.. = T9 and up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .shapes import Template, load_templates

#: Template frame (x anterior, y lateral, z superior) from world (x left, y posterior, z superior).
_WORLD_TO_TEMPLATE = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
#: Acetabulum centres in the pelvis template (mm), found as the sockets that hold a 22 mm sphere.
ACETABULA = ((12.0, 80.0, -100.0), (12.0, -80.0, -100.0))
#: Spine ids of the thoracic vertebrae above L1 (T12, T11, T10, T9, T8).
THORACIC_IDS = (6, 8, 9, 11, 12)
SACRUM_ID = 7


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


def _place(t: Template, scale: np.ndarray, rot: np.ndarray, anchor_t: np.ndarray, anchor_w: np.ndarray):
    """(m, b) mapping world to template: scale and rotate the template about ``anchor_t``, put it at ``anchor_w``."""
    m = np.diag(1.0 / scale) @ rot.T @ _WORLD_TO_TEMPLATE
    b = anchor_t - m @ anchor_w
    return m, b


def draw_scene(rng: np.random.Generator) -> Scene:
    """Draw one patient: anatomy, pathology, contrast phase and tissue HU.

    Parameters
    ----------
    rng : numpy Generator
        The case's generator; the same state gives the same scene.
    """
    T = load_templates()
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
    trab = rng.uniform(40, 260) if rng.random() < 0.85 else rng.uniform(15, 330)
    cortex = rng.uniform(350, 1100)
    cortex_mm = rng.uniform(0.8, 2.2)
    bones: list[PlacedBone] = []
    levels_z: dict[int, float] = {}
    lumbar_ids = {1: "L1", 2: "L2", 3: "L3", 4: "L4", 5: "L5"}
    scol = rng.normal(0, 5)  # lateral bow (mm) of the lumbar spine
    # discs: narrowed, normal or tall; each vertebra's shift is the sum of the changes below it
    disc_change = rng.uniform(-1.0, 3.0, 6)  # the meshes' discs are narrow already (L1-L2 about 1 mm at the rim)
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
        bones.append(_vertebra(rng, T[name], m, b, level, trab, cortex, cortex_mm, body_t))
        levels_z[level] = float(centre_w[2])
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
        bones.append(_vertebra(rng, T["L1"], m, b, sid, trab, cortex, cortex_mm, l1))
        levels_z[sid] = float(prev_centre[2])
    # sacrum (with coccyx) and pelvis keep their real relation to L5
    sac_scale = gscale * rng.uniform(0.95, 1.05, 3)
    m, b = _place(T["S1"], sac_scale, tilt, anchor_t, anchor_w + np.array([0, 0, disc_change.sum() * 0]))
    sac = PlacedBone(T["S1"], m, b, SACRUM_ID, trab + rng.normal(0, 15), cortex, cortex_mm, T["S1_body"])
    bones.append(sac)
    levels_z[SACRUM_ID] = float(sac.centre_world(np.array([-10.0, 0.0, -5.0]))[2])
    pel_scale = sac_scale * np.array([1.0, rng.uniform(0.95, 1.08), 1.0])  # wider or narrower hips, joints closed
    m, b = _place(T["Pelvis"], pel_scale, tilt, anchor_t, anchor_w)
    pelvis = PlacedBone(T["Pelvis"], m, b, 0, trab + rng.normal(10, 20), cortex, cortex_mm)
    bones.append(pelvis)

    tubes: list[Tube] = []
    # femoral heads in the acetabula, necks to the trochanters, shafts down
    for side, acet in zip((1, -1), ACETABULA, strict=True):
        head = pelvis.centre_world(np.array(acet))
        r = rng.uniform(20, 25) * gscale
        lateral = np.sign(head[0] - spine_x) or side
        troch = head + np.array([lateral * rng.uniform(40, 55), rng.uniform(-5, 10), -rng.uniform(20, 35)]) * gscale
        knee = troch + np.array([-lateral * 25, rng.uniform(-20, 0), -300.0])
        fem_trab = trab + rng.normal(20, 20)
        tubes.append(Tube(np.array([head, head + 1e-3]), r, fem_trab, cortex, cortex_mm))
        tubes.append(Tube(np.array([head, troch]), r * 0.65, fem_trab, cortex, cortex_mm))
        tubes.append(Tube(np.array([troch, troch + 1e-3]), r * 0.8, fem_trab, cortex, cortex_mm))
        tubes.append(Tube(np.array([troch, knee]), r * 0.58, fem_trab * 0.3, cortex, max(cortex_mm, 3.0)))
    # ribs on the thoracic vertebrae: head at the costovertebral joint beside the body, neck in front of the
    # transverse process, tubercle at its tip, angle behind it, then round the chest wall, sloping down
    fat_mm, wall_mm = rng.uniform(4, 55), rng.uniform(6, 16)
    for sid in THORACIC_IDS:
        bone = next(x for x in bones if x.spine_id == sid)
        c = bone.centre_world(l1_centre_t)
        k = THORACIC_IDS.index(sid)
        f = gscale * 0.95 ** (k + 1)
        reach = [0.3, 0.5, 0.75, 0.9, 1.0][k] * rng.uniform(0.8, 1.15)  # T12's ribs are short
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
                    trab + rng.normal(30, 20),
                    cortex * 0.9,
                    min(cortex_mm, 1.5),
                )
            )
    organs = _draw_organs(rng, body_a, body_b, spine_x, spine_y, levels_z)
    phase = rng.choice(["none", "arterial", "portal", "delayed"], p=[0.35, 0.15, 0.35, 0.15])
    hu = {
        "air": rng.uniform(-1010, -980),
        "fat": rng.uniform(-125, -70),
        "muscle": rng.uniform(30, 65),
        "disc": rng.uniform(60, 120),
        "csf": rng.uniform(0, 35),
        "aorta": {
            "none": rng.uniform(30, 55),
            "arterial": rng.uniform(230, 480),
            "portal": rng.uniform(140, 230),
            "delayed": rng.uniform(90, 130),
        }[phase],
        "ivc": {
            "none": rng.uniform(30, 55),
            "arterial": rng.uniform(60, 140),
            "portal": rng.uniform(130, 210),
            "delayed": rng.uniform(90, 130),
        }[phase],
        "table": rng.uniform(-300, 300),
    }
    if rng.random() < 0.12:  # SynthSeg-style: soft tissue intensities the network must not rely on
        for key in ("fat", "muscle", "disc", "csf"):
            hu[key] = rng.uniform(-200, 200)
    for o in organs:
        o.hu = _organ_hu(rng, o.kind, phase)
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
        "calc_hu": rng.uniform(300, 1300),
        "calc_seed": int(rng.integers(1 << 30)),
    }
    arms = []
    if rng.random() < 0.35:
        for side in (-1, 1):
            arm_r = rng.uniform(35, 50)
            x = spine_x + side * (body_a + arm_r + rng.uniform(0, 25))
            arms.append((x, rng.uniform(-40, 40), arm_r, rng.uniform(9, 13)))
    top_z = levels_z[THORACIC_IDS[-1]]
    return Scene(
        bones=bones,
        tubes=tubes,
        organs=organs,
        body_a=body_a,
        body_b=body_b,
        body_yc=0.0,
        harmonics=rng.normal(0, 0.03, (4, 2)),
        fat_mm=rng.uniform(4, 55),
        wall_mm=rng.uniform(6, 16),
        spine_x=spine_x,
        spine_y=spine_y,
        levels_z=levels_z,
        z_extent=(-330.0 * gscale, top_z + 20),
        hu=hu,
        phase=str(phase),
        aorta=aorta,
        arms=arms,
        table_y=body_b + rng.uniform(0, 12),
        table_mm=rng.uniform(8, 40),
    )


def _vertebra(rng, t, m, b, sid, trab, cortex, cortex_mm, body) -> PlacedBone:
    return PlacedBone(
        t,
        m,
        b,
        sid,
        float(np.clip(trab + rng.normal(0, 12), 10, 400)),
        cortex,
        cortex_mm,
        body,
        osteophyte_mm=rng.uniform(1.5, 6.0) if rng.random() < 0.25 else 0.0,
        sclerosis_hu=rng.uniform(150, 450) if rng.random() < 0.2 else 0.0,
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


def _organ_hu(rng, kind: str, phase: str) -> float:
    enh = {"none": 0.0, "arterial": 0.6, "portal": 1.0, "delayed": 0.7}[phase]
    if kind == "liver":
        return rng.uniform(40, 70) + enh * rng.uniform(30, 60)
    if kind == "spleen":
        return rng.uniform(35, 55) + enh * rng.uniform(40, 80)
    if kind == "kidney":
        base = rng.uniform(25, 40) + enh * rng.uniform(100, 180)
        return base + (rng.uniform(200, 900) if phase == "delayed" and rng.random() < 0.5 else 0.0)
    if kind == "bladder":
        return rng.uniform(0, 20) + (rng.uniform(100, 800) if phase == "delayed" and rng.random() < 0.4 else 0.0)
    if kind == "bowel_gas":
        return rng.uniform(-1000, -800)
    if kind == "bowel_contrast":
        return rng.uniform(150, 800)
    if kind == "bowel_feces":
        return rng.uniform(-300, 60)
    return rng.uniform(0, 40)


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
    n_sub = int(np.clip(np.ceil(acq.thickness / 1.5), 1, 3))
    offsets = (np.arange(n_sub) - (n_sub - 1) / 2) * (acq.thickness / n_sub)
    hu = np.zeros((ny, nx), np.float32)
    spine = body = None
    for dz in offsets:
        img, (lab, bod) = _render_plane(scene, xs, ys, float(z + dz), rng, want_labels=spine is None and abs(dz) < 1e-6)
        hu += img
        if lab is not None:
            spine, body = lab, bod
    hu /= n_sub
    if spine is None:
        _, (spine, body) = _render_plane(scene, xs, ys, float(z), rng, want_labels=True, labels_only=True)
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


def _render_plane(scene: Scene, xs, ys, z: float, rng, want_labels: bool, labels_only: bool = False):
    ny, nx = len(ys), len(xs)
    X, Y = np.meshgrid(xs, ys)
    labels = np.zeros((ny, nx), np.uint8) if want_labels else None
    bodies = np.zeros((ny, nx), np.uint8) if want_labels else None
    img = np.full((ny, nx), scene.hu["air"], np.float32)
    if not labels_only:
        _paint_soft_tissue(scene, img, X, Y, z, rng)
    bone_any = np.zeros((ny, nx), bool)
    for bone in scene.bones:
        if not (bone.z_range[0] <= z <= bone.z_range[1]):
            continue
        rs, cs = _window(xs, ys, bone.box)
        if rs is None:
            continue
        pts = np.stack([X[rs, cs], Y[rs, cs], np.full(X[rs, cs].shape, z, np.float32)])
        tp = np.tensordot(bone.m, pts, axes=1) + bone.b[:, None, None]
        sdf = bone.template.sample(tp)
        inside = sdf < 0
        body_sdf = None
        if bone.body is not None and (bone.osteophyte_mm or bone.sclerosis_hu or not labels_only or want_labels):
            body_sdf = bone.body.sample(tp)
        if body_sdf is not None:
            lo, hi = bone.body.extent
            ends = (lo[2] + 6, hi[2] - 6)  # endplate heights in the template (its grid has a margin)
        if bone.osteophyte_mm and body_sdf is not None:
            near_end = (np.abs(tp[2] - ends[0]) < 4) | (np.abs(tp[2] - ends[1]) < 4)
            inside |= near_end & (body_sdf < bone.osteophyte_mm) & (body_sdf > -2)
        if labels is not None and bone.spine_id:
            sub = labels[rs, cs]
            sub[inside] = bone.spine_id
            if body_sdf is not None:
                sub = bodies[rs, cs]
                sub[inside & (body_sdf < 0)] = bone.spine_id
        if labels_only:
            continue
        if body_sdf is not None:
            # disc: the body's outline carried past its endplates into the gap to the next vertebra
            clamped = tp.copy()
            clamped[2] = np.clip(tp[2], lo[2] + 7, hi[2] - 7)
            disc = (bone.body.sample(clamped) < 0) & ~inside & (np.abs(tp[2] - clamped[2]) < 9)
            sub = img[rs, cs]
            sub[disc & ~bone_any[rs, cs]] = scene.hu["disc"]
        val = np.where(sdf > -bone.cortex_mm, bone.cortex_hu, bone.trabecular_hu).astype(np.float32)
        if bone.sclerosis_hu and body_sdf is not None:
            val += np.float32(bone.sclerosis_hu) * ((np.abs(tp[2] - ends[0]) < 3) | (np.abs(tp[2] - ends[1]) < 3))
        tex = _texture(rng, val.shape, 25 + 0.25 * bone.trabecular_hu)
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
        sub[free] = (val + _texture(rng, val.shape, 30))[free]
    return img, (labels, bodies)


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


def _texture(rng, shape, amplitude: float) -> np.ndarray:
    """Blobby marrow texture (about 1.5 mm grain) with the given SD in HU."""
    t = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.2)
    return t * np.float32(amplitude / (t.std() + 1e-6))


def _paint_soft_tissue(scene: Scene, img, X, Y, z: float, rng) -> None:
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
    img += _texture(rng, img.shape, 8)
