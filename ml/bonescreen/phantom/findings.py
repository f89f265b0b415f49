"""What a radiologist reports beyond bone density, drawn into the realistic phantom with known truth.

- Vertebral fractures of a given Genant grade and shape (Genant et al., J Bone Miner Res 1993:
  grade 1 mild 20-25 %, grade 2 moderate 25-40 %, grade 3 severe > 40 % height reduction;
  wedge = anterior height lost, biconcave = middle height lost, crush = the whole body).
- Vertebroplasty cement (PMMA with barium sulphate) in a vertebral body.
- Pedicle screws and rods (titanium alloy), with the streaks metal leaves in CT.
- Transitional anatomy: six lumbar vertebrae (L6), four (L5 sacralized: fused to the sacrum and
  labelled with it), no ribs on T12, or ribs on L1.

:func:`draw_findings` draws them at random for training; a test or a benchmark passes its own
:class:`Findings` to :func:`~.scene.draw_scene` to get exactly the case it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import BoneScreenError
from ..fracture import genant_grade

#: A biconcave fracture's depression reaches zero at this squared distance from the body's centre (in
#: half-depths): the anterior and posterior rims keep their height, as in a real biconcave fracture.
BICONCAVE_RIM_R2 = 0.4
#: Fracture shapes (Genant): which part of the body loses height.
FRACTURE_SHAPES = ("wedge", "biconcave", "crush")
#: Height reduction drawn for each Genant grade, inside the grade's band (Genant et al. 1993) with a margin.
GRADE_LOSS = {1: (0.21, 0.24), 2: (0.27, 0.38), 3: (0.42, 0.58)}
#: How :class:`~.realistic.RealisticConfig` gets a case's findings: drawn at random, none, or drawn with
#: normal anatomy (five lumbar vertebrae, twelve pairs of ribs).
FINDINGS_MODES = ("random", "none", "normal-anatomy", "fractures")
#: Rib variants: ``normal`` (ribs down to T12), ``no_t12_ribs`` (11 pairs), ``l1_ribs`` (a 13th pair on L1).
RIB_VARIANTS = ("normal", "no_t12_ribs", "l1_ribs")


@dataclass(frozen=True)
class Fracture:
    """A vertebral body fracture: Genant ``grade`` (1-3), ``shape`` (:data:`FRACTURE_SHAPES`), ``loss`` (fraction).

    ``loss`` is the height reduction of the fractured wall against the same vertebra intact (Genant et al.
    1993: against the expected height). ``warp`` is the depth :func:`fracture_warp` collapses the body by at
    its most affected point; None until :func:`~.scene.realize_fracture` has solved it for a placed body,
    and then the body's measured heights show ``loss``.
    """

    grade: int
    shape: str
    loss: float
    warp: float | None = None

    @property
    def warp_depth(self) -> float:
        """The warp's depth (fraction of the body's height): ``warp`` once solved, else ``loss``."""
        return self.loss if self.warp is None else self.warp

    def __post_init__(self) -> None:
        if self.shape not in FRACTURE_SHAPES:
            raise BoneScreenError(f"fracture shape must be one of {', '.join(FRACTURE_SHAPES)}, got {self.shape!r}")
        if genant_grade(self.loss) != self.grade:
            grade = genant_grade(self.loss)
            raise BoneScreenError(f"a height loss of {self.loss:.2f} is Genant grade {grade}, not {self.grade}")
        if self.warp is not None and not 0.0 <= self.warp < 1.0:
            raise BoneScreenError(f"a fracture's warp depth is a fraction in [0, 1), got {self.warp}")

    @classmethod
    def draw(cls, rng: np.random.Generator, grade: int | None = None, shape: str | None = None) -> Fracture:
        """A fracture of ``grade`` and ``shape`` (drawn when None) with a loss inside the grade's band."""
        grade = int(grade if grade is not None else rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
        shape = str(shape if shape is not None else rng.choice(FRACTURE_SHAPES, p=[0.5, 0.3, 0.2]))
        return cls(grade, shape, float(rng.uniform(*GRADE_LOSS[grade])))


@dataclass
class Findings:
    """Findings of one phantom patient (spine ids of DESIGN.md: 1..5 = L1..L5, 6 = T12, 10 = L6).

    Parameters
    ----------
    fractures : dict
        Spine id -> :class:`Fracture`.
    cement : tuple of int
        Spine ids with vertebroplasty cement in the body.
    screws : tuple of int
        Spine ids with bilateral pedicle screws (joined by rods when adjacent).
    lumbar_count : int
        4 (L5 sacralized), 5, or 6 (an L6).
    ribs : str
        One of :data:`RIB_VARIANTS`.
    """

    fractures: dict[int, Fracture] = field(default_factory=dict)
    cement: tuple[int, ...] = ()
    screws: tuple[int, ...] = ()
    lumbar_count: int = 5
    ribs: str = "normal"

    def __post_init__(self) -> None:
        if self.lumbar_count not in (4, 5, 6):
            raise BoneScreenError(f"lumbar_count must be 4, 5 or 6, got {self.lumbar_count}")
        if self.ribs not in RIB_VARIANTS:
            raise BoneScreenError(f"ribs must be one of {', '.join(RIB_VARIANTS)}, got {self.ribs!r}")
        levels = self.levels()
        for what, ids in (("fractures", self.fractures), ("cement", self.cement), ("screws", self.screws)):
            wrong = sorted(set(ids) - set(levels))
            if wrong:
                n = self.lumbar_count
                raise BoneScreenError(f"{what} on spine ids {wrong}: with {n} lumbar vertebrae, use {levels}")

    def levels(self) -> list[int]:
        """Spine ids that can hold a finding, head to tail: T12 and the lumbar vertebrae there are (L5 sacralized
        with four); rods join screws of neighbours in this list."""
        return [6, 1, 2, 3, 4] + ([5] if self.lumbar_count >= 5 else []) + ([10] if self.lumbar_count == 6 else [])

    def summary(self) -> dict:
        """JSON-ready truth: fractures (grade, shape, loss), cement and screw levels, lumbar count, ribs."""
        return {
            "fractures": {
                str(k): {"grade": f.grade, "shape": f.shape, "loss": round(f.loss, 3)}
                for k, f in self.fractures.items()
            },
            "cement": list(self.cement),
            "screws": list(self.screws),
            "lumbar_count": self.lumbar_count,
            "ribs": self.ribs,
        }


def draw_findings(rng: np.random.Generator) -> Findings:
    """Random findings for a training patient: most have none.

    Rates: six lumbar vertebrae on 4 %, four on 3 %, a rib variant on 8 %; a fracture on 15 % of
    patients (one or two of the lumbar vertebrae, whose grades ``cases.csv`` records), cement in a
    fractured level on a quarter of those, pedicle screws on 5 % (two or three adjacent levels from L2).
    """
    u = rng.random()
    lumbar_count = 6 if u < 0.04 else 4 if u < 0.07 else 5
    ribs = str(rng.choice(RIB_VARIANTS, p=[0.92, 0.05, 0.03]))
    lumbar = list(range(1, 6 if lumbar_count >= 5 else 5))
    fractures: dict[int, Fracture] = {}
    cement: tuple[int, ...] = ()
    screws: tuple[int, ...] = ()
    if rng.random() < 0.15:
        for sid in rng.choice(lumbar, size=int(rng.integers(1, 3)), replace=False):
            fractures[int(sid)] = Fracture.draw(rng)
        if rng.random() < 0.25:
            cement = (int(next(iter(fractures))),)
    if rng.random() < 0.05:
        first = int(rng.integers(2, lumbar[-1]))
        screws = tuple(range(first, min(first + int(rng.integers(2, 4)), lumbar[-1] + 1)))
    return Findings(fractures, cement, screws, lumbar_count, ribs)


def resolve_findings(rng: np.random.Generator, findings: Findings | str) -> Findings:
    """``findings`` itself, or findings made as a mode of :data:`FINDINGS_MODES` says.

    Raises
    ------
    BoneScreenError
        For a mode not in :data:`FINDINGS_MODES`.
    """
    if isinstance(findings, Findings):
        return findings
    if findings not in FINDINGS_MODES:
        raise BoneScreenError(f"findings must be one of {', '.join(FINDINGS_MODES)}, got {findings!r}")
    drawn = draw_findings(rng)  # drawn in every mode, so one seed gives the same patient whatever the mode
    if findings == "none":
        return Findings()
    if findings in ("normal-anatomy", "fractures"):
        drawn.lumbar_count, drawn.ribs = 5, "normal"
    if findings == "fractures":  # a test set for fracture grading: one or two fractured lumbar levels, no metal
        child = rng.spawn(1)[0]  # its own stream: the patient's other draws stay those of the other modes
        levels = child.choice([1, 2, 3, 4, 5], size=int(child.integers(1, 3)), replace=False)
        drawn.fractures = {int(v): drawn.fractures.get(int(v)) or Fracture.draw(child) for v in sorted(levels)}
        drawn.cement = tuple(v for v in drawn.cement if v in drawn.fractures)
        drawn.screws = ()
    return drawn


@dataclass(frozen=True)
class NormalShape:
    """An intact vertebral body's own shape, drawn per patient and level (not a fracture).

    ``wedge``: share of the anterior height the template loses (negative: taller in front), so that
    its anterior/posterior ratio becomes the drawn one; ``concavity``: depth of the endplates' central
    depression as a share of the body's height at its middle (the middle/posterior ratio). Real lumbar
    bodies are wedged at L1 and taller in front at L5, and their endplates are concave
    (:data:`bonescreen.fracture.POPULATION_BODY`); the shrink-wrapped template meshes are flat.
    """

    wedge: float = 0.0
    concavity: float = 0.0


def _wedge_loss(u: np.ndarray, depth: float) -> np.ndarray:
    """Full loss over the front third, none over the posterior fifth (``u``: 0 posterior, 1 anterior)."""
    return depth * np.clip((u - 0.2) / 0.5, 0.0, 1.0)


def _central_loss(tp: np.ndarray, c: np.ndarray, half: np.ndarray, depth: float) -> np.ndarray:
    """The middle of the endplates sinks by ``depth``; the rim keeps its height."""
    r2 = ((tp[0] - c[0]) / half[0]) ** 2 + ((tp[1] - c[1]) / half[1]) ** 2
    return depth * np.clip(1.0 - r2 / BICONCAVE_RIM_R2, 0.0, 1.0)


def fracture_warp(
    tp: np.ndarray, fracture: Fracture | None, lo: np.ndarray, hi: np.ndarray, normal: NormalShape | None = None
) -> np.ndarray:
    """Template points of a vertebral body of its own normal shape, fractured: its height shrunk toward its centre.

    ``tp`` (3, ...) are template-frame points (x anterior, y lateral, z superior; mm); ``lo``, ``hi``
    the body's extent in the template (with its 6 mm margin). The returned points are where the
    template is sampled: points beyond the collapsed endplates map outside the body. The fracture
    (None: intact) is applied to the body as ``normal`` (None: the template's own shape) shapes it, so
    that its loss is against the same body intact.
    """
    lo, hi = np.asarray(lo, float) + 6.0, np.asarray(hi, float) - 6.0
    c, half = (lo + hi) / 2, (hi - lo) / 2
    u = (tp[0] - lo[0]) / (2 * half[0])  # 0 at the posterior wall, 1 at the anterior
    # the warps shrink heights only: each loss depends on the point's (x, y), which neither changes, so the
    # fracture of the normal-shaped body is the product of the two shrinkages
    kept = np.ones(tp.shape[1:])
    if fracture is not None:
        depth = fracture.warp_depth
        if fracture.shape == "wedge":
            kept = kept * (1.0 - _wedge_loss(u, depth))
        elif fracture.shape == "biconcave":
            kept = kept * (1.0 - _central_loss(tp, c, half, depth))
        else:  # crush: the whole body, front, middle and back alike
            kept = kept * (1.0 - depth)
    if normal is not None:
        kept = kept * (1.0 - _wedge_loss(u, normal.wedge) - _central_loss(tp, c, half, normal.concavity))
    kept = np.where(tp[0] > lo[0] - 2.0, kept, 1.0)  # posterior elements keep their height
    out = tp.copy()
    out[2] = c[2] + (tp[2] - c[2]) / kept
    return out


def draw_normal_shapes(
    rng: np.random.Generator, template_ratios: dict[str, dict[str, float]]
) -> dict[str, NormalShape]:
    """Each lumbar body's normal shape: the population's shape of its level with a patient's and a level's spread.

    Parameters
    ----------
    rng : numpy Generator
        The patient's.
    template_ratios : dict
        Level name (``L1`` .. ``L5``) -> ``{"wedge": Ha/Hp, "biconcave": Hm/Hp}`` of the placed template intact.

    Returns
    -------
    dict
        Level name -> :class:`NormalShape` that brings the template's ratios to the drawn ones: the
        population's (:data:`bonescreen.fracture.POPULATION_BODY`, the mean shape of 87 patients' L2-L5,
        Clouthier et al. 2023; L1 extrapolated) plus a patient's offset (SD 0.03, shared by the levels)
        and a level's (SD 0.03): about the 0.04-0.05 SD of normal height ratios in morphometry (McCloskey
        et al., Osteoporos Int 1993), so that grading meets the spread of normal shapes it meets in patients.
    """
    from ..fracture import POPULATION_BODY

    patient = rng.normal(0.0, 0.03, 2)
    out = {}
    for name, ratios in template_ratios.items():
        pop = POPULATION_BODY[name]
        level = rng.normal(0.0, 0.03, 2)
        wedge_target = pop.anterior_ratio + patient[0] + level[0]
        middle_target = min(pop.middle_ratio + patient[1] + level[1], 1.0)
        out[name] = NormalShape(
            wedge=float(np.clip(1.0 - wedge_target / ratios["wedge"], -0.15, 0.25)),
            concavity=float(np.clip(1.0 - middle_target / ratios["biconcave"], 0.0, 0.25)),
        )
    return out


def metal_streaks(metal: np.ndarray, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """HU added round metal in one slice: radial streaks from each piece and dark bands between pieces.

    A visual model of photon starvation and beam hardening (Barrett and Keat, RadioGraphics 2004):
    alternating bright and dark rays from each metal object, fading with distance, and a dark band
    along the line joining two objects. ``metal`` is the (rows, cols) mask; ``spacing`` the pixel (mm).
    """
    out = np.zeros(metal.shape, np.float32)
    comps, n = ndimage.label(metal)
    if n == 0:
        return out
    rows, cols = np.indices(metal.shape, dtype=np.float32)
    centres = ndimage.center_of_mass(metal, comps, range(1, n + 1))
    sizes = ndimage.sum_labels(metal, comps, range(1, n + 1)) * spacing**2  # mm2
    for (r, c), area in zip(centres, sizes, strict=True):
        dist = np.hypot(rows - r, cols - c) * spacing
        angle = np.arctan2(rows - r, cols - c)
        rays = sum(np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in rng.integers(8, 40, 3)) / 3
        out += np.float32(rng.uniform(150, 450) * min(np.sqrt(area) / 6, 2.0)) * rays * np.exp(-dist / 60.0)
    for i in range(n):
        for j in range(i + 1, n):
            (r0, c0), (r1, c1) = centres[i], centres[j]
            v = np.array([r1 - r0, c1 - c0], np.float32)
            length = float(np.hypot(*v)) or 1.0
            t = np.clip(((rows - r0) * v[0] + (cols - c0) * v[1]) / length**2, 0, 1)
            d = np.hypot(rows - r0 - t * v[0], cols - c0 - t * v[1]) * spacing
            out -= np.float32(rng.uniform(150, 400)) * np.exp(-((d / 4.0) ** 2))
    return out
