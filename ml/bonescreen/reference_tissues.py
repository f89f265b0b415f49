"""Reference tissues every abdominal CT holds: air, fat, paraspinal muscle, enhanced blood; patient size.

The internal (phantomless) density calibration (:mod:`bonescreen.density`) compares their HU with
what their composition reads at one effective energy. Each tissue is taken where it is large and
uniform: voxels are chosen on an in-plane 3 x 3 mean (noise down by 3) and measured on the raw image,
so the choice does not bias the value.

Where, on the slices through the lumbar bodies (at most :data:`MAX_SLICES` of them):

- air: outside the body, -1024 to -900 HU;
- fat: inside the body, -200 to -40 HU (subcutaneous and visceral fat), eroded by one pixel;
- muscle: behind the vertebral bodies within 45 mm of the midline (erector spinae, multifidus),
  10 to 100 HU, bone and its 3 mm margin left out, eroded by one pixel;
- enhanced blood: in front of the bodies (aorta, IVC), 110 to 700 HU, a compact piece of at least
  50 mm2 away from bone: its presence says the scan is contrast-enhanced.

Sizes follow AAPM Report 220 (water-equivalent diameter).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

#: Slices sampled for the references (evenly over the bodies' range): enough voxels, bounded time.
MAX_SLICES = 12
#: Fewest voxels a tissue's value is taken from.
MIN_VOXELS = 200
#: HU windows (on the 3 x 3 mean) that choose each tissue's voxels.
WINDOWS = {"air": (-1024.0, -900.0), "adipose": (-200.0, -40.0), "muscle": (10.0, 100.0), "blood": (110.0, 700.0)}
#: Half-width (HU) about a tissue's peak within which voxels are measured (:func:`_measure`).
PEAK_HALF_WIDTH_HU = 15.0
#: Share of the image border a body must cover to count as cut by the field of view (a table touches
#: the left and right edges over its thickness only, a few per cent).
TRUNCATED_BORDER_SHARE = 0.10
#: Smallest cross-section (mm2) of an enhanced vessel: an aorta or IVC of 8 mm diameter.
MIN_VESSEL_MM2 = 50.0
#: Largest spread (HU) of the lumen's median between the slices where the vessel test finds it, for the blood pool to
#: be taken from those slices alone when its voxels have no single peak (:func:`_alike_vessel_slices`). Along the
#: lumbar spine an enhanced aorta's lumen changes by less (the aorta CTA of ``scripts/get_real_examples.sh``: 371-385
#: HU over L1), while bowel content and calcified plaque in the window differ by hundreds of HU from slice to slice
#: (realistic phantom, seed 4000: 126-582 HU on one unenhanced case).
VESSEL_ALIKE_HU = 30.0


@dataclass(frozen=True)
class ReferenceTissue:
    """One reference tissue's measurement: median HU, spread and size of its sample."""

    name: str
    hu: float
    sd_hu: float
    voxels: int
    where: str

    def as_dict(self) -> dict:
        """Plain dict, for JSON (HU to 0.1)."""
        d = asdict(self)
        d["hu"], d["sd_hu"] = round(self.hu, 1), round(self.sd_hu, 1)
        return d


def sample_slices(bodies: np.ndarray | None, depth: int) -> np.ndarray:
    """Up to :data:`MAX_SLICES` slice indices spread over the slices holding a body (all slices without)."""
    ks = np.nonzero(bodies.any(axis=(1, 2)))[0] if bodies is not None else np.arange(depth)
    if ks.size == 0:
        ks = np.arange(depth)
    return ks[np.unique(np.linspace(0, ks.size - 1, min(MAX_SLICES, ks.size)).round().astype(int))]


def body_outline(slice_hu: np.ndarray) -> np.ndarray:
    """Boolean (y, x) patient body on one slice: the largest piece above -500 HU, holes filled (lungs, bowel gas)."""
    return ndimage.binary_fill_holes(body_piece(slice_hu))


def body_piece(slice_hu: np.ndarray) -> np.ndarray:
    """Boolean (y, x): the largest piece of one slice above -500 HU, the patient's body with its air-filled holes
    (lungs, bowel gas) open; its extent is :func:`body_outline`'s, at a fifth of the time on a 512 x 512 slice."""
    inside = slice_hu > -500.0
    comps, n = ndimage.label(inside)
    if n == 0:
        return inside
    return comps == 1 + int(np.argmax(np.bincount(comps.ravel())[1:]))


def water_equivalent_diameter(slice_hu: np.ndarray, body: np.ndarray, pixel_mm: tuple[float, float]) -> float:
    """Water-equivalent diameter (mm) of one slice: ``2 sqrt(A_w / pi)``, ``A_w = sum (HU/1000 + 1) a_pixel``.

    Source: AAPM Report 220 (2014), eq. 3.
    """
    area = float(np.clip(slice_hu[body] / 1000.0 + 1.0, 0.0, None).sum()) * pixel_mm[0] * pixel_mm[1]
    return 2.0 * float(np.sqrt(area / np.pi))


def _measure(name: str, raw: np.ndarray, smooth: np.ndarray, where: str) -> ReferenceTissue | None:
    """The tissue's value: the peak of the smoothed values, then the median of the raw voxels near the peak.

    Partial volume at the tissue's edges (fat against muscle or bowel) spreads the smoothed values
    toward the neighbour; the peak (histogram mode in 2 HU bins) is the tissue itself, and the raw
    voxels whose smoothed value lies within :data:`PEAK_HALF_WIDTH_HU` of it are measured.
    """
    if raw.size < MIN_VOXELS:
        return None
    lo, hi = WINDOWS[name]
    counts, edges = np.histogram(smooth, bins=np.arange(lo, hi + 2.0, 2.0))
    counts = ndimage.uniform_filter1d(counts.astype(float), 5)  # a 10 HU running mean steadies the peak
    peak = 0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1])
    near = raw[np.abs(smooth - peak) <= PEAK_HALF_WIDTH_HU]
    if near.size < MIN_VOXELS:
        return None
    return ReferenceTissue(name, float(np.median(near)), float(np.std(near)), int(near.size), where)


def _alike_vessel_slices(vessels: list[np.ndarray], needed: int, where: str) -> ReferenceTissue | None:
    """The blood pool from the slices whose lumen reads alike, where its voxels have no single peak.

    A bolus's HU changes along the vessel and thin slices are noisy, so few of the lumen's voxels may lie near one
    peak (:func:`_measure`; helper-106: the aorta CTA's aorta, 371-385 HU on the slices through L1, gave fewer than
    :data:`MIN_VOXELS` near it, and the scan was taken as unenhanced, its vBMD without the marrow's iodine). The
    largest group of slices whose lumen medians lie within :data:`VESSEL_ALIKE_HU` of one another is the pool when it
    holds ``needed`` slices and :data:`MIN_VOXELS`; None otherwise.

    Parameters
    ----------
    vessels : list of ndarray
        Per slice where the vessel test found the lumen, its voxels' raw HU.
    needed : int
        Fewest slices (the vessel test's).
    where : str
        Where the tissue was taken, for the record.
    """
    # slices whose eroded lumen is empty have no median (helper-108: numpy's "Mean of empty slice" on the example CT)
    medians = np.array([np.median(v) if v.size else np.nan for v in vessels])
    order = np.argsort(medians)
    best: list[int] = []
    for i in range(len(order)):
        group = [int(j) for j in order[i:] if medians[j] - medians[order[i]] <= VESSEL_ALIKE_HU]
        best = group if len(group) > len(best) else best
    lumen = np.concatenate([vessels[j] for j in best]) if best else np.zeros(0)
    if len(best) < needed or lumen.size < MIN_VOXELS:  # (as few voxels as :func:`_measure` takes: review, helper-107)
        return None
    return ReferenceTissue("blood", float(np.median(lumen)), float(np.std(lumen)), int(lumen.size), where)


def find_reference_tissues(
    hu: np.ndarray, spacing: tuple[float, float, float], bone: np.ndarray, bodies: np.ndarray
) -> tuple[dict[str, ReferenceTissue], dict]:
    """Measure the reference tissues of a CT volume.

    Parameters
    ----------
    hu : ndarray
        float (z, y, x) Hounsfield units, BoneScreen's orientation (rows anterior -> posterior).
    spacing : tuple of float
        (dz, dy, dx) in mm.
    bone : ndarray
        bool (z, y, x) vertebral bone (the mark): kept out of the soft-tissue samples.
    bodies : ndarray
        (z, y, x) vertebral bodies (non-zero): where the slices are sampled and where "behind" and
        "in front of" the spine are.

    Returns
    -------
    tissues : dict
        name (``air``, ``adipose``, ``muscle``, ``blood``) -> :class:`ReferenceTissue`, for each found.
    geometry : dict
        ``water_equivalent_diameter_mm`` (median over the sampled slices; None if the body was not
        found) and ``body_truncated`` (the body touches the image edge on most sampled slices: a small
        field of view, so the size is a lower bound).
    """
    pixel = (spacing[1], spacing[2])
    ks = sample_slices(bodies, hu.shape[0])
    near_bone_px = max(1, round(3.0 / min(pixel)))
    samples: dict[str, list[np.ndarray]] = {k: [] for k in WINDOWS}
    smoothed: dict[str, list[np.ndarray]] = {k: [] for k in WINDOWS}

    def take(name: str, where: np.ndarray, raw: np.ndarray, smooth: np.ndarray) -> None:
        samples[name].append(raw[where])
        smoothed[name].append(smooth[where])

    diameters, truncated = [], 0
    vessels: list[np.ndarray] = []  # the eroded lumen's raw HU on each slice where the vessel test finds it
    ny, nx = hu.shape[1:]
    rr, cc = np.ogrid[:ny, :nx]
    # air inside the reconstruction circle only: outside it the scanner pads (-3024 or -2048, read as -1024)
    circle = (rr - (ny - 1) / 2) ** 2 + (cc - (nx - 1) / 2) ** 2 <= (min(ny, nx) / 2 - 2) ** 2
    for k in ks:
        raw = hu[k]
        smooth = ndimage.uniform_filter(raw, 3)
        body = body_outline(raw)
        if not body.any():
            continue
        border = np.concatenate([body[0], body[-1], body[1:-1, 0], body[1:-1, -1]])
        truncated += int(border.mean() > TRUNCATED_BORDER_SHARE)
        diameters.append(water_equivalent_diameter(raw, body, pixel))
        lo, hi = WINDOWS["air"]
        outside = ~ndimage.binary_dilation(body, iterations=3) & (smooth >= lo) & (smooth <= hi) & circle
        take("air", outside, raw, smooth)
        lo, hi = WINDOWS["adipose"]
        take("adipose", ndimage.binary_erosion(body & (smooth >= lo) & (smooth <= hi)), raw, smooth)
        ys, xs = np.nonzero(bodies[k])
        if ys.size == 0:
            continue
        soft = body & ~ndimage.binary_dilation(bone[k], iterations=near_bone_px)
        xc, back, front = xs.mean(), ys.max(), ys.min()
        cols = np.abs(np.arange(raw.shape[1]) - xc) * pixel[1] <= 45.0
        rows = np.arange(raw.shape[0])
        lo, hi = WINDOWS["muscle"]
        region = soft & (rows[:, None] > back) & cols[None, :]
        take("muscle", ndimage.binary_erosion(region & (smooth >= lo) & (smooth <= hi)), raw, smooth)
        lo, hi = WINDOWS["blood"]
        ahead = (rows[:, None] < front + 10.0 / pixel[0]) & (rows[:, None] > front - 45.0 / pixel[0])
        wide = np.abs(np.arange(raw.shape[1]) - xc) * pixel[1] <= 50.0
        vessel = soft & ahead & wide[None, :] & (smooth >= lo) & (smooth <= hi)
        comps, n = ndimage.label(vessel)
        if n:
            sizes = np.bincount(comps.ravel())[1:]
            piece = comps == 1 + int(np.argmax(sizes))
            area_mm2 = sizes.max() * pixel[0] * pixel[1]
            pr, pc = np.nonzero(piece)
            fill = piece.sum() / ((np.ptp(pr) + 1) * (np.ptp(pc) + 1))  # a round vessel fills ~0.79 of its box
            if area_mm2 >= MIN_VESSEL_MM2 and fill >= 0.55:
                lumen = ndimage.binary_erosion(piece)
                vessels.append(raw[lumen])  # (empty where the erosion leaves nothing: counted, not measured)
                take("blood", lumen, raw, smooth)
    where = {
        "air": "outside the body",
        "adipose": "subcutaneous and visceral fat",
        "muscle": "paraspinal muscle behind the vertebral bodies",
        "blood": "enhanced aorta or IVC in front of the vertebral bodies",
    }
    tissues = {}
    needed = max(2, len(ks) // 3)
    for name, parts in samples.items():
        if name == "blood" and len(vessels) < needed:
            continue  # a bright piece on one or two slices: bowel contrast or a calcified plaque, not the blood pool
        cat = (np.concatenate(parts), np.concatenate(smoothed[name])) if parts else (np.zeros(0), np.zeros(0))
        found = _measure(name, *cat, where[name])
        if name == "blood" and found is None:
            found = _alike_vessel_slices(vessels, needed, where[name])
        if found is not None:
            tissues[name] = found
    geometry = {
        "water_equivalent_diameter_mm": round(float(np.median(diameters)), 1) if diameters else None,
        "body_truncated": bool(diameters) and truncated > len(diameters) // 2,
    }
    return tissues, geometry
