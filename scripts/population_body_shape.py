"""The normal lumbar body shape by level that fracture grading compares a body with.

Voxelizes the mean shape of L2-L5 of a statistical shape model built from 87 patients' CT
(Clouthier et al., J Biomech 2023;146:111421; aclouthier/morphable-lumbar-model, MIT; the mesh is in
``../shared/data/shapes/lumbar-ssm-mean``) at 0.5 mm, keeps each vertebra's body (the front 46 mm of
the vertebra: the body and the canal, not the arch), measures it with ``bonescreen.fracture.body_heights``
along the spine's axis through the neighbouring bodies, as a scan is measured, and prints, per level,
the posterior height (mm) and the anterior/posterior and middle/posterior ratios; L1, which the model
does not hold: its ratios by a straight-line fit over L2-L5 carried one level up, its posterior height
L2's. The printed dictionary is ``bonescreen.fracture.POPULATION_BODY``.

    .venv/bin/python scripts/population_body_shape.py [../shared/data/shapes/lumbar-ssm-mean]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bonescreen.fracture import body_heights, spine_axes
from bonescreen.phantom.meshes import voxelize
from bonescreen.phantom.shapes import template_to_volume

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
    lo = vertices.min(0) - 2.0
    shape = tuple(int(s) for s in np.ceil((vertices.max(0) + 2.0 - lo) / STEP))
    bodies = np.zeros(shape, np.uint8)  # (x anterior, y lateral, z superior), one grid for the four
    for level, p in zip((2, 3, 4, 5), parts, strict=True):
        keep = part == p
        index = np.cumsum(keep) - 1
        v = vertices[keep]
        inside = voxelize(v, index[faces[keep[faces[:, 0]]]], lo, shape, STEP)
        x = lo[0] + np.arange(shape[0]) * STEP
        inside[x < v[:, 0].max() - BODY_FRONT_MM] = False
        bodies[inside] = level
    # to BoneScreen's (z, rows anterior -> posterior, columns) order, measured as a scan is: along the
    # spine's axis through the neighbouring bodies
    bodies = template_to_volume(bodies)
    spacing = (STEP, STEP, STEP)
    axes = spine_axes(bodies, spacing, [5, 4, 3, 2])
    table = {}
    for level in (2, 3, 4, 5):
        h = body_heights(bodies == level, spacing, axes.get(level))
        if h is None:
            raise SystemExit(f"L{level} of {folder} could not be measured: is the mesh the SSM's mean L2-L5?")
        table[f"L{level}"] = (h["posterior"], h["anterior"] / h["posterior"], h["middle"] / h["posterior"])
    levels = np.arange(2, 6)
    fits = [np.polyfit(levels, [table[f"L{i}"][k] for i in levels], 1) for k in (1, 2)]
    # L1's ratios carried up the line through L2-L5; its posterior height held at L2's (the line would
    # be pulled up by L5's short posterior wall: posterior heights barely change from L1 to L4)
    table = {"L1": (table["L2"][0], *(float(np.polyval(f, 1)) for f in fits)), **table}
    print("POPULATION_BODY = {")
    for level, (posterior, ap, mp) in table.items():
        print(f'    "{level}": BodyShape({posterior:.1f}, {ap:.3f}, {mp:.3f}),')
    print("}")


if __name__ == "__main__":
    main()
