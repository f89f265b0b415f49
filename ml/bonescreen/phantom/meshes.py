"""Real bone shapes from surface meshes: read Wavefront OBJ files and turn them into signed distance maps.

The realistic phantom (:mod:`.scene`) draws vertebrae, sacrum and pelvis from
signed distance maps sampled on a 1 mm grid (negative inside the bone). They
are made once from meshes by ``scripts/build_shape_templates.py`` and shipped
in ``phantom/shapes/templates.npz``, so generating a case needs no mesh code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import BoneScreenError


def read_obj(path: str | Path, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of a Wavefront OBJ file.

    Parameters
    ----------
    path : str or Path
        The .obj file (``v`` and ``f`` records; polygons are fanned into triangles).
    scale : float
        Factor applied to the coordinates (1000 turns metres into mm).

    Returns
    -------
    vertices : ndarray
        (n, 3) float64.
    triangles : ndarray
        (m, 3) int64, 0-based vertex indices.

    Raises
    ------
    BoneScreenError
        If the file holds no vertices or no faces.
    """
    vertices, faces = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("v "):
                vertices.append([float(t) for t in line.split()[1:4]])
            elif line.startswith("f "):
                idx = [int(t.split("/")[0]) for t in line.split()[1:]]
                faces.extend([idx[0], idx[i], idx[i + 1]] for i in range(1, len(idx) - 1))
    if not vertices or not faces:
        raise BoneScreenError("no vertices or faces in this OBJ file", path)
    v = np.asarray(vertices, dtype=np.float64) * scale
    f = np.asarray(faces, dtype=np.int64)
    f = np.where(f > 0, f - 1, len(v) + f)  # OBJ indices are 1-based; negative ones count from the end
    return v, f


def voxelize(
    vertices: np.ndarray, triangles: np.ndarray, origin: np.ndarray, shape: tuple[int, int, int], spacing: float = 1.0
) -> np.ndarray:
    """Inside of a closed triangle mesh on a regular grid, by ray parity along the first axis.

    A ray along axis 0 through each (j, k) grid line crosses the surface an even
    number of times; voxels after an odd number of crossings are inside. Rays
    with an odd total (a hole in the mesh, a grazing hit) are left empty, and
    the gaps they leave are closed by filling holes in each slice of the last axis,
    on those rays only: holes that the shape really has (a vertebra's foramen,
    the sacral canal) stay open.

    Parameters
    ----------
    vertices : ndarray
        (n, 3) coordinates, same units as ``spacing``.
    triangles : ndarray
        (m, 3) vertex indices.
    origin : ndarray
        Coordinates of voxel (0, 0, 0).
    shape : tuple of int
        Grid shape.
    spacing : float
        Voxel size.

    Returns
    -------
    ndarray
        Boolean mask of ``shape``.
    """
    p = (np.asarray(vertices, float) - np.asarray(origin, float)) / spacing
    tri = p[np.asarray(triangles)]  # (m, 3 vertices, 3 coords)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    lo = np.ceil(np.minimum(np.minimum(a, b), c)[:, 1:]).astype(int)
    hi = np.floor(np.maximum(np.maximum(a, b), c)[:, 1:]).astype(int)
    counts = np.zeros((shape[0] + 1, shape[1], shape[2]), np.int32)
    n1, n2 = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    ok = (n1 > 0) & (n2 > 0)
    for t in np.nonzero(ok)[0]:
        jj, kk = np.meshgrid(np.arange(lo[t, 0], hi[t, 0] + 1), np.arange(lo[t, 1], hi[t, 1] + 1), indexing="ij")
        jj, kk = jj.ravel() + 1e-4, kk.ravel() + 2e-4  # off the lattice: no ray through an edge or vertex
        (y0, z0), (y1, z1), (y2, z2) = a[t, 1:], b[t, 1:], c[t, 1:]
        det = (y1 - y0) * (z2 - z0) - (y2 - y0) * (z1 - z0)
        if abs(det) < 1e-12:
            continue
        u = ((jj - y0) * (z2 - z0) - (y2 - y0) * (kk - z0)) / det
        v = ((y1 - y0) * (kk - z0) - (jj - y0) * (z1 - z0)) / det
        inside = (u >= 0) & (v >= 0) & (u + v <= 1)
        if not inside.any():
            continue
        x = a[t, 0] + u[inside] * (b[t, 0] - a[t, 0]) + v[inside] * (c[t, 0] - a[t, 0])
        ix = np.clip(np.ceil(x).astype(int), 0, shape[0])
        j, k = np.round(jj[inside]).astype(int), np.round(kk[inside]).astype(int)
        keep = (j >= 0) & (j < shape[1]) & (k >= 0) & (k < shape[2])
        np.add.at(counts, (ix[keep], j[keep], k[keep]), 1)
    parity = np.cumsum(counts, axis=0)[:-1] % 2 == 1
    odd_rays = counts.sum(axis=0) % 2 == 1
    parity[:, odd_rays] = False
    for i in np.nonzero(odd_rays.any(axis=0))[0]:
        parity[:, :, i] |= ndimage.binary_fill_holes(parity[:, :, i]) & odd_rays[None, :, i]
    return parity


def signed_distance(mask: np.ndarray, spacing: float = 1.0, clip_mm: float = 15.0) -> np.ndarray:
    """Signed distance (mm) to the mask's surface: negative inside, clipped to +-``clip_mm``.

    Parameters
    ----------
    mask : ndarray
        Boolean volume.
    spacing : float
        Voxel size in mm.
    clip_mm : float
        Distances beyond this are clipped (the phantom needs only the band near the surface).

    Returns
    -------
    ndarray
        float32 of ``mask.shape``.
    """
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    sdf = np.where(mask, -(inside - 0.5 * spacing), outside - 0.5 * spacing)
    return np.clip(sdf, -clip_mm, clip_mm).astype(np.float32)
