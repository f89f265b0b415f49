"""Vertebral fracture assessment: body heights, height-loss ratios, Genant grade and shape per level.

Heights (mm) are read on the mid-sagittal plane of each vertebral body (the median of the sagittal
planes within :data:`SLAB_MM` of its centre, so that one bad column does not decide), along the
spine's axis there (the line through the neighbouring bodies' centres), from the body mask
resampled to :data:`STEP_MM` (a height is the extent from the lower to the upper endplate, so a
hole in the mask does not shorten it): the greatest height in the posterior and anterior bands of the body's
depth and the least in the middle band (:data:`HEIGHT_BANDS`; six-point morphometry, McCloskey et
al., Osteoporos Int 1993, places its points at the endplates' corners and middles, the bands keep
the rounded corners out).

Ratios (quantitative morphometry, Eastell et al., J Bone Miner Res 1991; McCloskey et al. 1993):
wedge ``Ha/Hp``, biconcavity ``Hm/Hp``, crush ``Hp / Hp`` of the unfractured neighbours. A level's
normal shape is not a rectangle (lumbar bodies are often taller in front), so the wedge and
biconcavity ratios are divided by the same ratios of the unfractured neighbours when there are any;
and, as Genant's semi-quantitative reading compares a body with the height it should have, each
height is also compared with the same height of those neighbours (a wedge fracture often takes some
posterior height too, which ``Ha/Hp`` alone would miss). The height loss is the largest of these
losses; its Genant grade (Genant et al., J Bone Miner Res 1993): 0 below 20 %, 1 (mild) 20-25 %, 2
(moderate) 25-40 %, 3 (severe) 40 % or more. The shape: crush when the posterior height lost about as
much as the body (:data:`CRUSH_SHARE`), else wedge or biconcave by which of the anterior and middle
heights lost more.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import BoneScreenError

#: Shares of the body's depth (0 posterior wall, 1 anterior wall) where heights are read.
HEIGHT_BANDS = {"posterior": (0.0, 0.2), "middle": (0.35, 0.65), "anterior": (0.7, 0.9)}
#: Half-width (mm) of the slab of sagittal planes about the body's centre.
SLAB_MM = 4.0
#: Resampling step (mm) of the sagittal section.
STEP_MM = 0.25
#: Columns of a body are at least this share of its typical (75th percentile) column height.
SOLID_SHARE = 0.4
#: Width (mm) of the running median over the height profile.
SMOOTH_MM = 2.0
#: A neighbour counts as unfractured when its own ratios and its posterior height against its
#: neighbours' are all at least this (and its posterior height at most its inverse).
NORMAL_NEIGHBOUR_RATIO = 0.85
#: A body taller than its unfractured neighbours by more than this share gets a note (a mask error).
TALLER_THAN_NEIGHBOURS = 0.25
#: Height loss (fraction) at each Genant grade's lower bound (Genant et al. 1993).
GENANT_LOSS = {1: 0.20, 2: 0.25, 3: 0.40}
FRACTURE_SHAPES = ("wedge", "biconcave", "crush")
WALLS = ("anterior", "middle", "posterior")
#: A loss is called a crush when the posterior height has lost at least this share of the largest loss.
CRUSH_SHARE = 0.75


def genant_grade(loss: float) -> int:
    """Genant semi-quantitative grade (0-3) of a height reduction ``loss`` (fraction 0-1; Genant et al. 1993)."""
    for grade in (3, 2, 1):
        if loss >= GENANT_LOSS[grade]:
            return grade
    return 0


def body_heights(
    body: np.ndarray, spacing: tuple[float, float, float], axis_zy: tuple[float, float] | None = None
) -> dict[str, float] | None:
    """Anterior, middle and posterior height (mm) of one vertebral body.

    Parameters
    ----------
    body : ndarray
        bool (z, y, x) mask of the body, BoneScreen's orientation (rows anterior -> posterior).
    spacing : tuple of float
        (dz, dy, dx) in mm.
    axis_zy : tuple of float, optional
        The spine's direction at this body in the sagittal plane, (dz, dy) in mm (superior
        positive); vertical when None.

    Returns
    -------
    dict or None
        ``{"anterior", "middle", "posterior", "depth"}`` in mm; None when the body is too small to
        measure (fewer than two slices or 5 mm of depth) or reaches the volume's first or last slice
        (cut by the scan range).

    Raises
    ------
    BoneScreenError
        If ``body`` is not 3-D.
    """
    if body.ndim != 3:
        raise BoneScreenError(f"a body mask is (z, y, x), got shape {body.shape}")
    zs, ys, xs = np.nonzero(body)
    if zs.size == 0 or np.ptp(zs) < 1:
        return None
    if zs.min() == 0 or zs.max() == body.shape[0] - 1:
        return None  # the scan's first or last slice cuts the body: its height is not in the volume
    dz, dy, dx = spacing
    xc = round(float(xs.mean()))
    half = round(SLAB_MM / dx)
    cols = [c for c in range(xc - half, xc + half + 1) if 0 <= c < body.shape[2]]
    a = np.asarray(axis_zy if axis_zy is not None else (1.0, 0.0), dtype=float)
    a = a / np.linalg.norm(a) if np.linalg.norm(a) > 0 else np.array([1.0, 0.0])
    if a[0] < 0:
        a = -a
    p = np.array([-a[1], a[0]])  # perpendicular in (z, y): points posterior for an upright spine
    centre = np.array([zs.mean() * dz, ys.mean() * dy])
    reach = 0.75 * float(np.hypot(np.ptp(zs) * dz, np.ptp(ys) * dy)) + 5.0
    grid = np.arange(-reach, reach + 1e-6, STEP_MM)
    uu, vv = np.meshgrid(grid, grid, indexing="ij")  # u along the axis, v across (posterior positive)
    zz = (centre[0] + uu * a[0] + vv * p[0]) / dz
    yy = (centre[1] + uu * a[1] + vv * p[1]) / dy
    profiles = []
    for c in cols:
        section = body[:, :, c].astype(np.float32)
        if not section.any():
            continue
        fine = ndimage.map_coordinates(section, [zz, yy], order=1, mode="constant", cval=0.0) >= 0.5
        any_u = fine.any(axis=0)
        first = np.argmax(fine, axis=0)
        last = fine.shape[0] - 1 - np.argmax(fine[::-1], axis=0)
        profiles.append(np.where(any_u, (last - first + 1) * STEP_MM, 0.0))  # extent at each v: holes do not count
    if not profiles:
        return None
    heights = np.median(np.stack(profiles), axis=0)
    # a running median over SMOOTH_MM steadies the band's extreme against the mask's staircase
    heights = ndimage.median_filter(heights, size=max(1, round(SMOOTH_MM / STEP_MM)), mode="nearest")
    # the body's depth: the longest run of columns at least SOLID_SHARE as tall as the body's typical
    # column, so that a pedicle stub, an osteophyte or a speck beside the body does not place a wall
    tall = heights[heights > 0]
    if tall.size < 2:
        return None
    runs, n = ndimage.label(heights >= SOLID_SHARE * np.percentile(tall, 75))
    if n == 0:
        return None
    inside = np.nonzero(runs == 1 + int(np.argmax(np.bincount(runs.ravel())[1:])))[0]
    if inside.size < 2:
        return None
    depth = (inside[-1] - inside[0]) * STEP_MM
    if depth < 5.0:
        return None
    # v grows posterior: the posterior wall is the largest v, share 0
    share = (grid[inside[-1]] - grid) / depth
    out = {}
    for name, (lo, hi) in HEIGHT_BANDS.items():
        band = heights[(share >= lo) & (share <= hi)]
        out[name] = float(band.min() if name == "middle" else band.max())
    out["depth"] = float(depth)
    return out


def spine_axes(bodies: np.ndarray, spacing: tuple[float, float, float], order: list[int]) -> dict[int, tuple]:
    """Direction (dz, dy) in mm of the spine at each body: from the body below to the body above.

    ``order`` lists the body ids from the lowest to the highest vertebra (e.g. L5, L4, ..., L1);
    an end body uses itself and its one neighbour; a lone body has no axis (vertical is assumed).
    """
    centres = {}
    for v in order:
        zs, ys, _ = np.nonzero(bodies == v)
        if zs.size:
            centres[v] = np.array([zs.mean() * spacing[0], ys.mean() * spacing[1]])
    present = [v for v in order if v in centres]
    axes = {}
    for i, v in enumerate(present):
        lo = centres[present[i - 1]] if i > 0 else centres[v]
        hi = centres[present[i + 1]] if i + 1 < len(present) else centres[v]
        d = hi - lo
        if np.linalg.norm(d) > 0:
            axes[v] = (float(d[0]), float(d[1]))
    return axes


def assess_fractures(heights: dict[str, dict | None], order: list[str]) -> dict[str, dict]:
    """Genant grade, shape, ratios and height loss of each level from its heights.

    Parameters
    ----------
    heights : dict
        Level name -> :func:`body_heights` (None when not measured).
    order : list of str
        Level names head to tail (T12, L1, ..., L5): whose neighbours are whose.

    Returns
    -------
    dict
        Level name -> ``{"height_anterior_mm", "height_middle_mm", "height_posterior_mm",
        "ratios": {"wedge", "biconcave", "crush"}, "height_loss", "genant_grade", "shape",
        "reference": what the ratios were divided by, "note": a doubt about the mask or None}``; levels
        without heights are left out.
    """

    def raw(h: dict) -> dict[str, float]:
        return {"wedge": h["anterior"] / h["posterior"], "biconcave": h["middle"] / h["posterior"]}

    measured = {n: h for n, h in heights.items() if h}

    def neighbours(i: int, among) -> list[str]:
        return [order[j] for j in (i - 1, i + 1) if 0 <= j < len(order) and order[j] in among]

    # first pass: the level's own ratios and its posterior height against every measured neighbour;
    # the levels that pass serve as the references of the second
    normal = set()
    for i, name in enumerate(order):
        if name not in measured:
            continue
        ratios = raw(measured[name])
        taller = 1.0
        if nbs := neighbours(i, measured):
            posterior = [measured[n]["posterior"] for n in nbs]
            ratios["crush"] = measured[name]["posterior"] / float(np.mean(posterior))
            taller = measured[name]["posterior"] / max(posterior)
        if min(ratios.values()) >= NORMAL_NEIGHBOUR_RATIO and taller <= 1 / NORMAL_NEIGHBOUR_RATIO:
            normal.add(name)  # neither short nor much taller than every neighbour (a mask holding a disc)
    out = {}
    for i, name in enumerate(order):
        h = measured.get(name)
        if h is None:
            continue
        nbs = neighbours(i, normal)
        ratios = raw(h)
        losses = {}
        if nbs:
            for key in ratios:
                ratios[key] /= float(np.mean([raw(measured[n])[key] for n in nbs]))
            expected = {w: float(np.mean([measured[n][w] for n in nbs])) for w in WALLS}
            losses = {w: 1.0 - h[w] / expected[w] for w in WALLS}
            ratios["crush"] = 1.0 - losses["posterior"]
        loss = max(0.0, 1.0 - min(ratios.values()), *losses.values())
        grade = genant_grade(loss)
        if losses and losses["posterior"] >= CRUSH_SHARE * loss:
            shape = "crush"  # the posterior wall has lost about as much as the rest: the whole body
        elif max(1.0 - ratios["wedge"], losses.get("anterior", 0.0)) >= max(
            1.0 - ratios["biconcave"], losses.get("middle", 0.0)
        ):
            shape = "wedge"
        else:
            shape = "biconcave"
        taller = -min(losses.values()) if losses else 0.0
        out[name] = {
            "note": (
                f"{100 * taller:.0f}% taller than its neighbours: the mask may hold a disc or part of the next "
                "vertebra; check the split"
                if taller > TALLER_THAN_NEIGHBOURS
                else None
            ),
            "height_anterior_mm": round(h["anterior"], 1),
            "height_middle_mm": round(h["middle"], 1),
            "height_posterior_mm": round(h["posterior"], 1),
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "height_loss": round(loss, 3),
            "genant_grade": grade,
            "shape": shape if grade else None,
            "reference": (
                "unfractured neighbours " + ", ".join(nbs) if nbs else "the level itself (no unfractured neighbour)"
            ),
        }
    return out
