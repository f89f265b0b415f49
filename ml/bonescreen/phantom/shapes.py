"""The realistic phantom's bone templates: signed distance maps of real bones, and sampling them.

Made by ``scripts/build_shape_templates.py`` from meshes of the Male Visible Human's
lumbosacral spine and pelvis (BSD-3-Clause, see ``shapes/LICENSE-*``). Template
frame: millimetres, x anterior, y lateral, z superior; the bones sit in their
real relation to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import BoneScreenError

TEMPLATE_FILE = Path(__file__).with_name("shapes") / "templates.npz"
#: Storage unit of the signed distances (mm per int8 step).
SDF_UNIT_MM = 0.25
#: Distance (mm) returned far from a template: outside.
FAR_MM = 15.0


@dataclass(frozen=True, eq=False)
class Template:
    """One bone: signed distance (mm, negative inside) on a 1 mm grid starting at ``origin``."""

    name: str
    sdf: np.ndarray  # float32 (x, y, z) in the template frame
    origin: np.ndarray  # (3,) mm

    @property
    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest template-frame coordinates (mm) of the grid."""
        return self.origin, self.origin + np.array(self.sdf.shape, float) - 1.0

    @cached_property
    def endplates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Maps over the template's (x, y) grid of a vertebral body: heights (mm, template z) of its lower
        and upper endplate, and the depth (mm) inside the body's outline seen from above (<= 0 outside).

        A disc lies between one body's upper endplate and the next one's lower endplate, over their outlines.
        """
        inside = self.sdf < 0
        any_z = inside.any(axis=2)
        z = self.origin[2] + np.arange(self.sdf.shape[2], dtype=np.float32)
        low = np.where(any_z, z[np.argmax(inside, axis=2)], np.nan).astype(np.float32)
        high = np.where(any_z, z[self.sdf.shape[2] - 1 - np.argmax(inside[:, :, ::-1], axis=2)], np.nan)
        depth = ndimage.distance_transform_edt(any_z) - ndimage.distance_transform_edt(~any_z)
        return low, high.astype(np.float32), depth.astype(np.float32)

    def sample_plane(self, maps: np.ndarray, points: np.ndarray, outside: float = np.nan) -> np.ndarray:
        """Values of an (x, y) map of this template (:attr:`endplates`) at template-frame points (3, ...)."""
        idx = points[:2] - self.origin[:2].reshape((2,) + (1,) * (points.ndim - 1))
        return ndimage.map_coordinates(maps, idx, order=0, mode="constant", cval=outside, prefilter=False)

    def sample(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (mm) at template-frame points of shape (3, ...); :data:`FAR_MM` off the grid."""
        idx = points - self.origin.reshape((3,) + (1,) * (points.ndim - 1))
        return ndimage.map_coordinates(self.sdf, idx, order=1, mode="constant", cval=FAR_MM, prefilter=False)


@lru_cache(maxsize=1)
def load_templates() -> dict[str, Template]:
    """All bone templates by name (L1..L5, L1_body..L5_body, S1, S1_body, Pelvis).

    Raises
    ------
    BoneScreenError
        If the package was installed without ``phantom/shapes/templates.npz``.
    """
    if not TEMPLATE_FILE.is_file():
        raise BoneScreenError("bone templates missing; run scripts/build_shape_templates.py", TEMPLATE_FILE)
    with np.load(TEMPLATE_FILE) as z:
        names = sorted({k[: -len("_sdf")] for k in z.files if k.endswith("_sdf")})
        return {
            n: Template(n, z[f"{n}_sdf"].astype(np.float32) * np.float32(SDF_UNIT_MM), z[f"{n}_origin"].astype(float))
            for n in names
        }


def template_to_volume(mask: np.ndarray) -> np.ndarray:
    """A (x anterior, y lateral, z superior) grid of the templates' frame in BoneScreen's (z, rows anterior
    -> posterior, columns) order, as :func:`bonescreen.fracture.body_heights` reads a scan."""
    return np.ascontiguousarray(np.transpose(np.asarray(mask)[::-1], (2, 0, 1)))
