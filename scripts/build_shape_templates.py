"""Build the realistic phantom's bone templates from the meshes in ../shared/data/shapes.

Run once (the result ships in the package):

    .venv/bin/python scripts/build_shape_templates.py [../shared/data/shapes/visible-human-lumbosacral]

Writes ``ml/bonescreen/phantom/shapes/templates.npz``: for each bone (L1..L5 whole vertebrae,
L1_body..L5_body, S1 = sacrum and coccyx, S1_body, Pelvis = both hip bones) a signed distance map
on a 1 mm grid in the meshes' own frame (x anterior, y lateral, z superior; mm), stored as int8 in
0.25 mm units (clipped to +-15 mm), with its origin. The meshes are from the Male Visible Human
(BSD-3-Clause, RemusR9/artisynth_lumbosacralSpineModel; Remus et al., PLoS One 2021); the licence
is copied beside the templates.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bonescreen.phantom.meshes import read_obj, signed_distance, voxelize
from bonescreen.phantom.shapes import SDF_UNIT_MM, TEMPLATE_FILE

NAMES = [f"L{i}" for i in range(1, 6)] + [f"L{i}_body" for i in range(1, 6)] + ["S1", "S1_body", "Pelvis"]
MARGIN_MM = 6.0
CLIP_MM = 15.0


def main() -> None:
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "shapes" / "visible-human-lumbosacral"
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else root
    out: dict[str, np.ndarray] = {}
    for name in NAMES:
        t0 = time.perf_counter()
        v, f = read_obj(src / f"{name}.obj", scale=1000.0)  # metres -> mm
        origin = np.floor(v.min(axis=0) - MARGIN_MM)
        shape = tuple(int(s) for s in np.ceil(v.max(axis=0) + MARGIN_MM - origin) + 1)
        mask = voxelize(v, f, origin, shape, 1.0)
        sdf = signed_distance(mask, 1.0, CLIP_MM)
        out[f"{name}_sdf"] = np.round(sdf / SDF_UNIT_MM).astype(np.int8)
        out[f"{name}_origin"] = origin.astype(np.float32)
        print(f"{name}: grid {shape}, {mask.sum() / 1000:.1f} cm3 inside, {time.perf_counter() - t0:.1f} s")
    TEMPLATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = TEMPLATE_FILE.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    tmp.replace(TEMPLATE_FILE)
    shutil.copy(src / "LICENSE-artisynth_lumbosacralSpineModel.txt", TEMPLATE_FILE.parent)
    print(f"wrote {TEMPLATE_FILE} ({TEMPLATE_FILE.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
