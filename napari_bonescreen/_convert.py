"""Between napari layers and the core's types: CT image layer <-> CTVolume, level labels layer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bonescreen.errors import BoneScreenError
from bonescreen.io import CTVolume, SourceGrid
from bonescreen.io.hu_scale import hu_scale_problem
from bonescreen.io.volume import volume_from_ijk
from bonescreen.labels import LEVEL_COLORS, LEVEL_NAMES, as_level_labels

#: Key of the layer metadata where BoneScreen keeps the CT's geometry.
META_KEY = "bonescreen"
#: Bone-friendly display window (HU).
BONE_WINDOW = (-250.0, 1250.0)


def image_layer_data(volume: CTVolume, name: str | None = None) -> tuple:
    """napari LayerData of a CT: HU, scale = spacing (mm), bone window, geometry in the metadata."""
    meta = {
        "name": name or volume.description or "CT",
        "scale": tuple(volume.spacing),
        "colormap": "gray",
        "contrast_limits": BONE_WINDOW,
        "metadata": {
            META_KEY: {
                "spacing": volume.spacing,
                "affine": volume.affine,
                "source": volume.source,
                "description": volume.description,
                "notes": list(volume.notes),
                "flags": list(volume.flags),
            }
        },
    }
    return volume.hu, meta, "image"


def volume_from_layer(layer) -> CTVolume:
    """The CTVolume behind an image layer (ours, or any 3-D layer in HU with scale in mm).

    Raises
    ------
    BoneScreenError
        If the layer is not a 2-D or 3-D single-channel image, or does not look like CT in HU.
    """
    data = np.asarray(layer.data)
    if getattr(layer, "rgb", False) or data.ndim not in (2, 3):
        raise BoneScreenError(f"layer '{layer.name}' is not a 2-D or 3-D grey-level image (shape {data.shape})")
    if data.ndim == 2:
        data = data[None]
    hu = data.astype(np.float32, copy=False)
    meta = layer.metadata.get(META_KEY)
    if meta is not None and hu.shape == _zyx_shape(meta["source"]):
        return CTVolume(
            hu=hu,
            spacing=tuple(meta["spacing"]),
            affine=meta["affine"],
            source=meta["source"],
            description=meta.get("description", layer.name),
            notes=list(meta.get("notes", [])),
            flags=list(meta.get("flags", [])),
        )
    problem = hu_scale_problem(hu)
    if problem:
        raise BoneScreenError(f"layer '{layer.name}': {problem}; open the CT with the BoneScreen reader")
    scale = tuple(float(s) for s in layer.scale[-3:]) if len(layer.scale) >= 3 else (1.0, *layer.scale[-2:])
    dz, dy, dx = scale
    # a plain layer is taken as already in BoneScreen's orientation: x to the left, y posterior, z superior
    return volume_from_ijk(hu.transpose(2, 1, 0), np.diag([-dx, -dy, dz, 1.0]), "napari", None, layer.name)


def _zyx_shape(source: SourceGrid) -> tuple[int, int, int]:
    """(z, y, x) shape of the volume a source grid was read into."""
    xyz = [0, 0, 0]
    for axis, (target, _) in enumerate(np.asarray(source.transform, dtype=int)):
        xyz[target] = source.shape[axis]
    return tuple(xyz[::-1])


def level_colormap() -> dict:
    """Label value -> RGBA for L1..L5 (the same colours as the report and Slicer)."""
    colors = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
    for k, rgb in LEVEL_COLORS.items():
        colors[k] = (*(c / 255 for c in rgb), 1.0)
    return colors


def labels_layer_data(labels: np.ndarray, image_layer, name: str, extra_meta: dict | None = None) -> tuple:
    """napari LayerData of level labels on the image's grid, with names (features) and colours."""
    from napari.utils.colormaps import DirectLabelColormap

    features = pd.DataFrame({"index": range(6), "level": ["background", *LEVEL_NAMES.values()]})
    meta = {
        "name": name,
        "scale": tuple(image_layer.scale),
        "translate": tuple(image_layer.translate),
        "colormap": DirectLabelColormap(color_dict=level_colormap()),
        "features": features,
        "opacity": 0.5,
        "metadata": {META_KEY: {**image_layer.metadata.get(META_KEY, {}), **(extra_meta or {})}},
    }
    return labels.astype(np.uint8), meta, "labels"


def labels_from_layer(layer, volume: CTVolume) -> np.ndarray:
    """The level map of a labels layer, checked against the CT's grid."""
    data = np.asarray(layer.data)
    if data.ndim == 2:
        data = data[None]
    if data.shape != volume.shape:
        raise BoneScreenError(f"labels layer '{layer.name}' has shape {data.shape}, the CT has {volume.shape}")
    return as_level_labels(data, f"labels layer '{layer.name}'")
