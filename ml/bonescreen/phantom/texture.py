"""Trabecular bone texture: a 3-D network whose density and structure follow vBMD."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _normalized(field: np.ndarray) -> np.ndarray:
    field -= field.mean()
    field /= field.std() + 1e-6
    return field


def trabecular_structure(
    rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Two unit-variance noise fields on a (z, y, x) grid in mm.

    ``fine`` is band-passed at the trabecular spacing (about 1 mm): its zero
    crossings form a plate-and-rod network. ``coarse`` (about 3 mm) decides
    where the network is thinned out first as bone is lost.
    """
    dz, dy, dx = spacing
    white = rng.standard_normal(shape, dtype=np.float32)
    sig = lambda mm: (mm / dz, mm / dy, mm / dx)  # noqa: E731
    fine = ndimage.gaussian_filter(white, sig(0.55)) - ndimage.gaussian_filter(white, sig(1.4))
    coarse = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sig(2.5))
    return _normalized(fine), _normalized(coarse)


def network(fine: np.ndarray, coarse: np.ndarray, vbmd: float) -> np.ndarray:
    """Bone fraction in [0, 1] per voxel for a vBMD: thinner and sparser trabeculae as vBMD falls."""
    r = float(np.clip(vbmd / 180.0, 0.1, 1.3))
    width = 0.22 + 0.38 * r  # trabecular thickness, in units of the fine field's spread
    keep = 1.0 / (1.0 + np.exp(-4.0 * (coarse - (0.6 - 1.6 * r))))
    return np.exp(-((fine / width) ** 2)) * keep


def fill_trabecular(
    hu: np.ndarray,
    core: np.ndarray,
    targets: dict[int, float],
    vbmd: dict[int, float],
    marrow: dict[int, float],
    rng: np.random.Generator,
    spacing: tuple[float, float, float],
) -> dict[int, float]:
    """Fill each core region (id on ``core``) with trabecular bone whose mean HU is ``targets[id]``.

    The bone fraction comes from :func:`network`; each region is scaled so that
    its mean equals the target exactly (before scanner blur and noise).

    Returns
    -------
    dict
        The mean HU realized in each region.
    """
    zz, yy, xx = np.nonzero(core)
    if zz.size == 0:
        return {}
    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in (zz, yy, xx))
    sub_core = core[box]
    fine, coarse = trabecular_structure(rng, sub_core.shape, spacing)
    sub = hu[box]
    realized = {}
    for vid, target in targets.items():
        m = sub_core == vid
        if not m.any():
            continue
        s = network(fine[m], coarse[m], vbmd[vid])
        k = (target - marrow[vid]) / max(float(s.mean()), 1e-6)
        sub[m] = marrow[vid] + k * s
        realized[vid] = float(sub[m].mean())
    return realized
