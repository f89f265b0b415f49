"""Anatomy of the phantom: the spine from T12 to the top of the sacrum, and the abdomen around it.

Coordinates are millimetres: x toward the patient's left, y toward posterior,
z toward superior; (x, y) = (0, 0) is the slice centre, z = 0 the lowest slice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .canvas import Canvas, paint, paint_where

#: Internal ids on the spine map: 1..5 = L1..L5, 6 = T12, 7 = sacrum (S1).
T12_ID, SACRUM_ID = 6, 7

# Soft-tissue HU (non-contrast); varied a little per case.
AIR, FAT, MUSCLE, CSF, DISC, LIVER, KIDNEY, BLOOD, BOWEL_WALL, FLUID, GAS = (
    -1000.0,
    -100.0,
    50.0,
    15.0,
    85.0,
    55.0,
    32.0,
    42.0,
    35.0,
    10.0,
    -900.0,
)


@dataclass
class Vertebra:
    """One vertebra: id on the spine map, z extent and shape parameters (mm)."""

    vid: int
    z0: float
    z1: float
    rx: float
    ry: float
    transverse: float
    spinous: float
    vbmd: float

    def u(self, z: float) -> float:
        """Relative height in the vertebra, 0 at the lower endplate, 1 at the upper."""
        return (z - self.z0) / (self.z1 - self.z0)


@dataclass
class BowelLoop:
    x: float
    y: float
    z: float
    r: float
    gas: bool


@dataclass
class Anatomy:
    """Everything that decides how the phantom looks; drawn once per case from its generator."""

    ax: float
    ay: float
    fat: float
    wall: float
    spine_y: float
    lordosis: float
    scoliosis: float
    height: float
    vertebrae: list[Vertebra]
    discs: list[tuple[float, float, float, float]]  # z0, z1, rx, ry
    kidneys: list[tuple[float, float, float, float, float, float]]  # x, y, z, a, b, c
    bowel: list[BowelLoop]
    aorta_r: float
    bifurcation_z: float
    canal: tuple[float, float]
    hu: dict[str, float] = field(default_factory=dict)
    cortex_mm: float = 1.2

    def centre(self, z: float) -> tuple[float, float]:
        """Centre of the vertebral body column at height z: lordosis (anterior bow) and a little scoliosis."""
        t = np.clip(z / self.height, 0.0, 1.0)
        return float(self.scoliosis * np.sin(np.pi * t)), float(self.spine_y - self.lordosis * np.sin(np.pi * t))


def draw_anatomy(rng: np.random.Generator, vbmd_levels: np.ndarray, case_vbmd: float, contrast: bool) -> Anatomy:
    """Draw a body habitus, a spine (T12, L1-L5, top of S1) and abdominal organs.

    Parameters
    ----------
    rng : numpy Generator
        The case's generator.
    vbmd_levels : ndarray
        vBMD of L1..L5 (mg/cm3).
    case_vbmd : float
        The case's vBMD, used for T12 and the sacrum.
    contrast : bool
        Contrast-enhanced vessels and kidneys.
    """
    ax, ay = rng.uniform(125, 175), rng.uniform(95, 130)
    fat = rng.uniform(8, 35) * (ax / 150)
    scale = rng.uniform(0.9, 1.1)
    # spine from the bottom: visible top of S1, disc, L5 ... L1, disc, visible T12
    z = 0.0
    vertebrae: list[Vertebra] = []
    discs = []
    rx0, ry0 = rng.uniform(19, 22) * scale, rng.uniform(14, 16) * scale
    tp_len = np.array([16, 21, 28, 24, 19]) * rng.uniform(0.85, 1.15)
    sacrum_h = rng.uniform(22, 30)
    vertebrae.append(Vertebra(SACRUM_ID, z - 15.0, z + sacrum_h, rx0 + 4.5, ry0 + 0.5, 0.0, 10.0, case_vbmd))
    z += sacrum_h
    heights = (rng.uniform(23, 27) + np.array([0.0, 1.0, 2.0, 2.0, 1.5])) * scale
    for lv in range(5, 0, -1):
        d = rng.uniform(7, 10) if lv == 5 else rng.uniform(8, 11.5)
        grow = (5 - lv) * 0.0 + (lv - 1)
        discs.append((z, z + d, rx0 + grow * 0.9 + 1.0, ry0 + grow * 0.5 + 0.8))
        z += d
        h = heights[lv - 1]
        vertebrae.append(
            Vertebra(
                lv,
                z,
                z + h,
                rx0 + (lv - 1) * 0.9,
                ry0 + (lv - 1) * 0.5,
                tp_len[lv - 1],
                rng.uniform(26, 34),
                float(vbmd_levels[lv - 1]),
            )
        )
        z += h
    d = rng.uniform(6, 8)
    discs.append((z, z + d, rx0 + 0.5, ry0 + 0.3))
    z += d
    t12_h = heights[0] - 2.0
    vertebrae.append(Vertebra(T12_ID, z, z + t12_h, rx0 - 0.8, ry0 - 0.5, 8.0, 30.0, case_vbmd))
    top = z + rng.uniform(12, 20)
    height = top

    spine_y = ay - rng.uniform(68, 85)
    l1, l2 = vertebrae[5], vertebrae[4]
    side = rx0 + rng.uniform(32, 42)
    kidneys = [
        (-side, spine_y + 4, (l2.z0 + l2.z1) / 2 - rng.uniform(0, 10), 27.0, 19.0, 52.0),  # right, a little lower
        (side, spine_y + 4, (l1.z0 + l2.z1) / 2, 27.0, 19.0, 52.0),
    ]
    bowel = []
    for _ in range(int(rng.integers(70, 110))):  # small bowel in front of the spine
        bowel.append(
            BowelLoop(
                x=rng.uniform(-0.75, 0.75) * ax,
                y=rng.uniform(-0.8 * ay, spine_y - ry0 - 28),
                z=rng.uniform(0, height),
                r=rng.uniform(8, 16),
                gas=bool(rng.random() < 0.3),
            )
        )
    for s in (-1, 1):  # ascending and descending colon, lateral
        for zc in np.arange(0, height, 18.0):
            bowel.append(
                BowelLoop(
                    s * 0.62 * ax, rng.uniform(-0.1, 0.25) * ay, zc, rng.uniform(14, 22), bool(rng.random() < 0.7)
                )
            )
    l4 = vertebrae[2]
    hu = {
        "fat": FAT + rng.normal(0, 8),
        "muscle": MUSCLE + rng.normal(0, 5),
        "liver": LIVER + rng.normal(0, 5) + (rng.uniform(40, 60) if contrast else 0.0),
        "kidney": KIDNEY + (rng.uniform(120, 180) if contrast else 0.0),
        "aorta": BLOOD + (rng.uniform(150, 280) if contrast else 0.0),
        "ivc": BLOOD + (rng.uniform(60, 130) if contrast else 0.0),
        "marrow": rng.uniform(-10, 30),
        "trabecular_contrast": rng.uniform(8, 20) if contrast else 0.0,
    }
    return Anatomy(
        ax=ax,
        ay=ay,
        fat=fat,
        wall=rng.uniform(6, 12),
        spine_y=spine_y,
        lordosis=rng.uniform(0, 12),
        scoliosis=rng.uniform(-5, 5),
        height=height,
        vertebrae=vertebrae,
        discs=discs,
        kidneys=kidneys,
        bowel=bowel,
        aorta_r=rng.uniform(9, 12),
        bifurcation_z=(l4.z0 + l4.z1) / 2,
        canal=(rng.uniform(9, 12), rng.uniform(7, 9)),
        hu=hu,
        cortex_mm=rng.uniform(0.9, 1.4),
    )


def cortical_hu(vbmd: float) -> float:
    """Cortical shell HU: denser with higher vBMD."""
    return float(np.clip(420 + 2.6 * vbmd, 480, 1000))


def posterior_hu(vbmd: float) -> float:
    """Mean HU of the posterior elements (mostly cortical, partial volume)."""
    return float(np.clip(230 + 1.8 * vbmd, 280, 650))


def paint_slice(
    a: Anatomy,
    canvas: Canvas,
    z: float,
    img: np.ndarray,
    spine: np.ndarray,
    body: np.ndarray,
    core: np.ndarray,
    slab_mm: float = 0.0,
    plates: list | None = None,
) -> None:
    """Draw one axial slice at height z.

    ``img`` receives HU (trabecular cores are left at 0 and marked in ``core``);
    ``spine`` the vertebra id of every bone pixel; ``body`` the vertebral-body id.
    With ``slab_mm`` (the slice thickness) and a list ``plates``, a slice whose centre lies in a body's
    trabecular bone while its slab reaches into an endplate holds that share of the endplate, as a scanner's
    slice averages its thickness: ``plates`` receives ``(pixels, share, endplate HU, vertebra id)`` for
    :func:`blend_endplates` (the pixels are left out of ``core``).
    """
    hu = a.hu
    img[:] = AIR
    # table: a curved carbon-fibre shell with foam inside, under the back
    x = canvas.coords
    y_table = a.ay + 6 + 0.0012 * x**2
    for y0, thick, value in ((0.0, 1.5, 250.0), (1.5, 7.0, -850.0), (8.5, 1.5, 250.0)):
        rows = ((y_table + y0) / canvas.spacing + (canvas.n - 1) / 2).astype(int)
        for k in range(max(1, round(thick / canvas.spacing))):
            r = np.clip(rows + k, 0, canvas.n - 1)
            img[r, np.arange(canvas.n)] = value
    paint(img, canvas.ellipse(0, 0, a.ax, a.ay), hu["fat"])
    ix, iy = a.ax - a.fat, a.ay - a.fat
    paint(img, canvas.ellipse(0, 0, ix, iy), hu["muscle"])
    vx, vy = ix - a.wall, iy - a.wall
    visceral = canvas.ellipse(0, 0, vx, vy)
    paint(img, visceral, hu["fat"] + 5)
    inside = np.zeros_like(img, dtype=bool)
    (rs, cs), m = visceral
    inside[rs, cs] = m

    cx, cy = a.centre(z)
    rx0, ry0 = a.vertebrae[1].rx, a.vertebrae[1].ry
    t = z / a.height
    # liver (patient right, upper slices)
    l1 = a.vertebrae[5]
    liver_top = l1.z0
    if z > liver_top - 40:
        f = np.clip((z - (liver_top - 40)) / 60, 0.15, 1.0)
        paint_where(
            img, canvas.ellipse(-0.42 * a.ax, -0.1 * a.ay, 0.45 * a.ax * f, 0.6 * a.ay * f), hu["liver"], inside
        )
    # bowel loops: wall with gas or fluid inside
    for b in a.bowel:
        dz = abs(z - b.z)
        if dz < b.r:
            r = np.sqrt(b.r**2 - dz**2)
            paint_where(img, canvas.ellipse(b.x, b.y, r, r * 0.85), BOWEL_WALL, inside)
            if r > 2.5:
                paint_where(img, canvas.ellipse(b.x, b.y, r - 2, r * 0.85 - 2), GAS if b.gas else FLUID, inside)
    # kidneys
    for kx, ky, kz, ka, kb, kc in a.kidneys:
        dz = (z - kz) / (kc / 2)
        if abs(dz) < 1:
            f = np.sqrt(1 - dz**2)
            ang = 0.5 if kx > 0 else -0.5
            paint(img, canvas.ellipse(kx, ky, ka * f + 4, kb * f + 4, ang), hu["fat"])
            paint(img, canvas.ellipse(kx, ky, ka * f, kb * f, ang), hu["kidney"])
            if f > 0.5:
                sx = kx - np.sign(kx) * ka * f * 0.35
                paint(img, canvas.ellipse(sx, ky - 3, ka * f * 0.35, kb * f * 0.4, ang), hu["fat"] + 20)
    # psoas: grows from L1 downwards
    psoas = np.clip(1.15 - t, 0.2, 1.0)
    if z < l1.z1:
        pr = 6 + 17 * psoas
        for s in (-1, 1):
            paint(img, canvas.ellipse(cx + s * (rx0 + pr * 0.75), cy - ry0 * 0.1, pr, pr * 0.8), hu["muscle"] - 3)
    # paraspinal muscles and quadratus lumborum
    for s in (-1, 1):
        paint(img, canvas.ellipse(cx + s * 30, cy + ry0 + 38, 24, 22, s * 0.2), hu["muscle"])
        if z < l1.z1:
            paint(img, canvas.ellipse(cx + s * (rx0 + 48), cy + 22, 16, 10, s * 0.5), hu["muscle"])
    # aorta (patient left) and IVC (right); aorta splits into iliac arteries below L4
    vy_ = cy - ry0 - 14
    if z >= a.bifurcation_z:
        paint(img, canvas.ellipse(cx + 14, vy_, a.aorta_r, a.aorta_r), hu["aorta"])
        paint(img, canvas.ellipse(cx - 22, vy_ + 3, 13, 9), hu["ivc"])
    else:
        spread = 12 + 0.6 * (a.bifurcation_z - z)
        for s in (-1, 1):
            paint(img, canvas.ellipse(cx + s * spread, vy_, 6.5, 6.5), hu["aorta"])
            paint(img, canvas.ellipse(cx + s * (spread + 5), vy_ + 9, 7.5, 6.5), hu["ivc"])
    # spinal canal (continuous), then discs and vertebrae
    ca, cb = a.canal
    canal = canvas.ellipse(cx, cy + ry0 + cb + 1.5, ca, cb)
    for z0, z1, drx, dry in a.discs:
        if z0 <= z < z1:
            paint(img, canvas.ellipse(cx, cy, drx * 1.04, dry * 1.04), DISC)
            paint(img, canvas.ellipse(cx, cy, drx * 0.55, dry * 0.5), DISC - 15)
    for v in a.vertebrae:
        if v.z0 <= z < v.z1:
            _paint_vertebra(a, canvas, v, z, cx, cy, img, spine, body, core, slab_mm, plates)
        elif (share := _endplate_share(v, z, slab_mm)) > 0:  # a slice in the disc whose slab reaches an endplate
            (rs, cs), m = _body_region(canvas, v, z, cx, cy)
            img[rs, cs][m] = share * _endplate_hu(v) + (1.0 - share) * img[rs, cs][m]
    paint(img, canal, CSF)
    paint(spine, canal, 0)


def _paint_vertebra(a, canvas, v: Vertebra, z, cx, cy, img, spine, body, core, slab_mm=0.0, plates=None) -> None:
    u = v.u(z)
    cort = cortical_hu(v.vbmd)
    post = posterior_hu(v.vbmd)
    rx, ry = _body_radii(v, z)
    sacrum = v.vid == SACRUM_ID
    level_id = v.vid if v.vid <= 5 else 0

    def bone(region, value):
        paint(img, region, value)
        paint(spine, region, v.vid)

    # posterior elements first, so the body's cortex stays on top where they meet
    if sacrum:
        for s in (-1, 1):  # sacral alae
            bone(canvas.ellipse(cx + s * (rx + 28), cy + ry * 0.5, 30, 15, s * 0.3), post * 0.8)
        bone(canvas.segment((cx, cy + ry + 16), (cx, cy + ry + 16 + v.spinous * 0.6), 3.5), post)
    else:
        # a connected arch: pedicles (upper part) join the body to the laminae, which run the whole
        # height and carry the spinous process, the transverse and the articular processes
        ped_x = rx * 0.55
        base_y = cy + ry + a.canal[1] * 2 + 4
        lamina_start = (cx, cy + ry + 9)
        if 0.42 <= u <= 0.97:
            for s in (-1, 1):
                bone(canvas.segment((cx + s * ped_x, cy + ry * 0.6), (cx + s * ped_x * 1.05, cy + ry + 10), 4.5), post)
        if u <= 0.97:
            for s in (-1, 1):
                start = (lamina_start[0] + s * ped_x * 1.05, lamina_start[1])
                bone(canvas.segment(start, (cx, base_y), 3.0), post)
        if 0.05 <= u <= 0.75:
            bone(canvas.segment((cx, base_y), (cx, base_y + v.spinous), 3.2), post)
        if 0.5 <= u <= 0.82:
            for s in (-1, 1):
                bone(
                    canvas.segment((cx + s * ped_x, cy + ry + 8), (cx + s * (rx + v.transverse), cy + ry + 3), 3.5),
                    post,
                )
        if 0.7 <= u <= 0.97:  # superior articular processes, on the pedicle-lamina junction
            for s in (-1, 1):
                bone(canvas.ellipse(cx + s * (ped_x * 1.05 + 3), cy + ry + 12, 5, 6), post)
        if u <= 0.3:  # inferior articular processes, under the laminae
            for s in (-1, 1):
                bone(canvas.ellipse(cx + s * (ped_x * 0.8), cy + ry + 15, 4.5, 5.5), post)
        if v.vid == T12_ID and 0.35 <= u <= 0.9:  # 12th ribs
            for s in (-1, 1):
                rib = canvas.ring(cx, cy + 5, rx + 38, ry + 30, 7.0, y_min=cy - 5)
                (rs, cs), m = rib
                xs = canvas.coords[cs][None, :]
                rib = ((rs, cs), m & (s * (xs - cx) > rx + 8))
                paint(img, rib, post * 0.9)  # ribs are bone but not vertebra: not on the label maps
    # vertebral body: cortex, endplates, trabecular core; posterior border concave
    region = _body_region(canvas, v, z, cx, cy)
    (rs, cs), m = region
    xs, ys = canvas.coords[cs][None, :], canvas.coords[rs][:, None]
    endplate_mm = _endplate_mm(v)
    height = v.z1 - v.z0
    if u * height < endplate_mm or (1 - u) * height < endplate_mm:
        bone(region, _endplate_hu(v))
    else:
        shell = a.cortex_mm * (0.7 + 0.004 * v.vbmd)
        inner = ((xs - cx) / max(rx - shell, 1)) ** 2 + ((ys - cy) / max(ry - shell, 1)) ** 2 <= 1.0
        inner &= ~(((xs - cx) / (rx * 0.42 + shell)) ** 2 + ((ys - cy - ry * 1.22) / (ry * 0.38 + shell)) ** 2 <= 1.0)
        bone(region, cort)
        img[rs, cs][m & inner] = 0.0
        # the share of the slice's slab in an endplate (a 1.1-1.6 mm plate: a 2.5 mm slice whose centre misses it
        # still holds part of it; sampled at the centre alone, the body ended in trabecular bone on some slices)
        share = _endplate_share(v, z, slab_mm)
        if share > 0 and plates is not None:
            pixels = (rs, cs, m & inner)
            plates.append((pixels, share, _endplate_hu(v), v.vid))
        else:
            core[rs, cs][m & inner] = v.vid
    body[rs, cs][m] = level_id


def _body_radii(v: Vertebra, z: float) -> tuple[float, float]:
    """Half-width and half-depth (mm) of ``v``'s body at height ``z``: narrowest at mid-height (a 6 % waist)."""
    waist = 1.0 - 0.06 * np.sin(np.pi * np.clip(v.u(z), 0, 1))
    return v.rx * waist, v.ry * waist


def _endplate_hu(v: Vertebra) -> float:
    """HU of ``v``'s endplates: its cortical shell's, a little less dense."""
    return cortical_hu(v.vbmd) * 0.85


def _endplate_mm(v: Vertebra) -> float:
    """Thickness (mm) of a vertebral body's endplates: thicker in denser bone."""
    return 1.1 + 0.004 * v.vbmd


def _body_region(canvas: Canvas, v: Vertebra, z: float, cx: float, cy: float):
    """The pixels of vertebra ``v``'s body section at height ``z`` (mm): an ellipse with a waist, its posterior
    border concave (the spinal canal's front); beyond the body's ends, its end section."""
    rx, ry = _body_radii(v, z)
    (rs, cs), m = canvas.ellipse(cx, cy, rx, ry)
    xs, ys = canvas.coords[cs][None, :], canvas.coords[rs][:, None]
    concave = ((xs - cx) / (rx * 0.42)) ** 2 + ((ys - cy - ry * 1.22) / (ry * 0.38)) ** 2 <= 1.0
    return (rs, cs), m & ~concave


def _endplate_share(v: Vertebra, z: float, slab_mm: float) -> float:
    """Share (0-1) of the slab of a slice centred at ``z``, ``slab_mm`` thick, that lies in ``v``'s endplates."""
    if slab_mm <= 0 or v.vid == SACRUM_ID:  # the sacrum's ends are no endplates the pipeline measures
        return 0.0
    e = _endplate_mm(v)
    overlap = sum(
        max(0.0, min(z + slab_mm / 2, hi) - max(z - slab_mm / 2, lo)) for lo, hi in ((v.z0, v.z0 + e), (v.z1 - e, v.z1))
    )
    return min(overlap / slab_mm, 1.0)


def blend_endplates(hu: np.ndarray, plates: dict[int, list], trabecular: dict[int, float]) -> None:
    """Fill the trabecular pixels that :func:`paint_slice` found sharing their slab with an endplate, in place.

    ``plates`` maps slice index -> the entries of :func:`paint_slice`; each pixel reads
    ``share x endplate HU + (1 - share) x`` the vertebra's trabecular HU (``trabecular``, by vertebra id): the
    average over the slab, as a scanner's slice reads it (partial volume).
    """
    for k, entries in plates.items():
        for (rs, cs, m), share, plate_hu, vid in entries:
            hu[k][rs, cs][m] = share * plate_hu + (1.0 - share) * trabecular[vid]
