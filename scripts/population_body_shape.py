"""The normal lumbar body shape by level that fracture grading compares a body with.

Voxelizes the mean shape of L2-L5 of a statistical shape model built from 87 patients' CT
(Clouthier et al., J Biomech 2023;146:111421; aclouthier/morphable-lumbar-model, MIT; the mesh is in
``../shared/data/shapes/lumbar-ssm-mean``) at 0.5 mm, keeps each vertebra's body (the front 46 mm of
the vertebra: the body and the canal, not the arch), measures it with ``bonescreen.fracture.body_heights``
(the same bands as every scan) and prints, per level, the posterior height (mm) and the anterior/posterior
and middle/posterior ratios; L1, which the model does not hold, by a straight-line fit over L2-L5
carried one level up. The printed dictionary is ``bonescreen.fracture.POPULATION_BODY``.

    .venv/bin/python scripts/population_body_shape.py [../shared/data/shapes/lumbar-ssm-mean]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bonescreen.fracture import body_heights
from bonescreen.phantom.meshes import voxelize

STEP = 0.5  # mm
BODY_FRONT_MM = 46.0  # a lumbar body is at most 42 mm deep (Clouthier 2023's range 29.5-42.0 mm)


def main() -> None:
    """Print the table."""
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/shapes/lumbar-ssm-mean")
    vertices = np.loadtxt(folder / "meanMesh_vertices.csv", delimiter=",")  # mm: x anterior, y lateral, z superior
    faces = np.loadtxt(folder / "meanMesh_faces.csv", delimiter=",").astype(int) - 1
    n = len(vertices)
    edges = coo_matrix(
        (np.ones(2 * len(faces)), (np.r_[faces[:, 0], faces[:, 1]], np.r_[faces[:, 1], faces[:, 2]])), shape=(n, n)
    )
    _, part = connected_components(edges, directed=False)
    parts = sorted(set(part), key=lambda p: -vertices[part == p, 2].mean())  # head to tail: L2, L3, L4, L5
    table = {}
    for level, p in zip(("L2", "L3", "L4", "L5"), parts, strict=True):
        keep = part == p
        index = np.cumsum(keep) - 1
        tri = index[faces[keep[faces[:, 0]]]]
        v = vertices[keep]
        lo = v.min(0) - 2.0
        shape = tuple(int(s) for s in np.ceil((v.max(0) + 2.0 - lo) / STEP))
        inside = voxelize(v, tri, lo, shape, STEP)
        x = lo[0] + np.arange(shape[0]) * STEP
        inside[x < v[:, 0].max() - BODY_FRONT_MM] = False
        # to BoneScreen's (z, rows anterior -> posterior, columns) order
        body = np.ascontiguousarray(np.transpose(inside[::-1], (2, 0, 1)))
        h = body_heights(body, (STEP, STEP, STEP))
        table[level] = (h["posterior"], h["anterior"] / h["posterior"], h["middle"] / h["posterior"])
    levels = np.arange(2, 6)
    fits = [np.polyfit(levels, [table[f"L{i}"][k] for i in levels], 1) for k in range(3)]
    table = {"L1": tuple(float(np.polyval(f, 1)) for f in fits), **table}
    print("POPULATION_BODY = {")
    for level, (posterior, ap, mp) in table.items():
        print(f'    "{level}": BodyShape({posterior:.1f}, {ap:.3f}, {mp:.3f}),')
    print("}")


if __name__ == "__main__":
    main()
