"""Between napari layers and the core's types: CT image layer <-> CTVolume, level labels layer."""

from __future__ import annotations

import inspect
from functools import cache

import numpy as np
import pandas as pd

from bonescreen.errors import BoneScreenError
from bonescreen.io import CTVolume, SourceGrid
from bonescreen.io.hu_scale import hu_scale_problem
from bonescreen.io.volume import volume_from_ijk
from bonescreen.labels import (
    ALL_VERTEBRA_IDS,
    as_level_labels,
    edited_levels,
    level_digests,
    original_names,
    renamed_levels,
    vertebra_color,
    vertebra_name,
)
from bonescreen.messages import users_naming_rule
from bonescreen.pipeline.levels import upside_down_note

#: Key of the layer metadata where BoneScreen keeps the CT's geometry.
META_KEY = "bonescreen"
#: Bone-friendly display window (HU).
BONE_WINDOW = (-250.0, 1250.0)


#: BoneScreen's axes (z, y, x; DESIGN.md) named by the direction each one increases toward, as napari's axes overlay
#: and dims sliders show them (napari's defaults are -3, -2, -1); their unit, as the layers' scale is the spacing.
AXIS_LABELS = ("superior", "posterior", "left")
AXIS_UNIT = "mm"


@cache
def _layers_name_axes() -> bool:
    """Whether napari's layers take ``axis_labels`` and ``units`` (napari 0.6 and later)."""
    from napari.layers import Image

    return "axis_labels" in inspect.signature(Image.__init__).parameters


def axes_of(like=None, ndim: int = 3) -> dict:
    """napari layer keywords that name the last ``ndim`` axes: BoneScreen's, or those of the layer ``like``.

    A layer made on another's grid (the labels on the CT, the names on the labels) takes that layer's names and
    units, whatever they are: a viewer whose layers name one axis two ways would not line them up. Empty where
    napari's layers name no axes (before 0.6).
    """
    if not _layers_name_axes():
        return {}
    if like is None:
        return {"axis_labels": AXIS_LABELS[-ndim:], "units": (AXIS_UNIT,) * ndim}
    labels, units = getattr(like, "axis_labels", None), getattr(like, "units", None)
    if labels is None or units is None or len(labels) < ndim:
        return {}
    return {"axis_labels": tuple(labels)[-ndim:], "units": tuple(units)[-ndim:]}


def unwrapped(obj):
    """The object behind napari's PublicOnlyProxy (plugin docks get proxies of the viewer and its layers)."""
    return getattr(obj, "__wrapped__", obj)


def image_layer_data(volume: CTVolume, name: str | None = None) -> tuple:
    """napari LayerData of a CT: HU, scale = spacing (mm), bone window, geometry in the metadata."""
    meta = {
        "name": name or volume.description or "CT",
        "scale": tuple(volume.spacing),
        **axes_of(),
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
                "acquisition": dict(volume.acquisition),
            }
        },
    }
    return volume.hu, meta, "image"


#: The flag of a layer whose scale is napari's default (1, 1, 1): its voxel size is unknown, not 1 mm.
DEFAULT_SCALE_FLAG = (
    "voxel size unknown: layer '{name}' has napari's default scale (1, 1, 1), taken as 1 mm; open the CT with "
    "the BoneScreen reader, or set its spacing (dz, dy, dx in mm) in the Segment dock"
)


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
            acquisition=dict(meta.get("acquisition", {})),
        )
    problem = hu_scale_problem(hu)
    if problem:
        raise BoneScreenError(f"layer '{layer.name}': {problem}; open the CT with the BoneScreen reader")
    scale = tuple(float(s) for s in layer.scale[-3:]) if len(layer.scale) >= 3 else (1.0, *layer.scale[-2:])
    dz, dy, dx = scale
    # a plain layer is taken as already in BoneScreen's orientation: x to the left, y posterior, z superior
    # a copy: the volume's padding is clipped in place, which must not change the user's layer
    volume = volume_from_ijk(hu.transpose(2, 1, 0).copy(), np.diag([-dx, -dy, dz, 1.0]), "napari", None, layer.name)
    if scale == (1.0, 1.0, 1.0):
        volume.flags.append(DEFAULT_SCALE_FLAG.format(name=layer.name))
    return volume


def _zyx_shape(source: SourceGrid) -> tuple[int, int, int]:
    """(z, y, x) shape of the volume a source grid was read into."""
    xyz = [0, 0, 0]
    for axis, (target, _) in enumerate(np.asarray(source.transform, dtype=int)):
        xyz[target] = source.grid_shape[axis]
    return tuple(xyz[::-1])


def vertebra_colormap(ids) -> dict:
    """Label value -> RGBA for the vertebra ids ``ids`` (L1..L5 in the colours of the report and Slicer)."""
    colors = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
    for k in ids:
        colors[int(k)] = (*(c / 255 for c in vertebra_color(k)), 1.0)
    return colors


def vertebra_features(ids) -> pd.DataFrame:
    """napari features: one row per label value (``index``) with its vertebra ``name``."""
    ids = sorted({0, *(int(k) for k in ids)})
    return pd.DataFrame({"index": ids, "name": ["background" if k == 0 else vertebra_name(k) for k in ids]})


def layer_id(layer) -> str:
    """A layer's napari ``unique_id`` as text: which layer it is, whatever it is named now (behind napari's proxy)."""
    return str(unwrapped(layer).unique_id)


def labels_layer_data(labels: np.ndarray, image_layer, name: str, extra_meta: dict | None = None) -> tuple:
    """napari LayerData of a vertebra map on the image's grid, with names (features) and colours.

    ``labels`` holds the ids of DESIGN.md: level labels (1..5) or every vertebra found (T12 6,
    sacrum 7, ..., unnamed 21+). Every vertebra id has a colour and a name in the layer, so a
    user who paints or relabels with another id sees what it means. The metadata keep the image layer it was made
    from (``made_from``: its :func:`layer_id` and name), which the Classify dock picks with it and holds it to
    (helper-78: the labels of one series were classified on the voxels of another of the same grid, unsaid).
    """
    from napari.utils.colormaps import DirectLabelColormap

    # every id a vertebra may take: a value painted later (an unnamed 21-255 too) has its colour and name
    ids = [k for k in ALL_VERTEBRA_IDS if k]
    meta = {
        "name": name,
        "scale": tuple(image_layer.scale),
        "translate": tuple(image_layer.translate),
        **axes_of(image_layer, np.ndim(labels)),
        "colormap": DirectLabelColormap(color_dict=vertebra_colormap(ids)),
        "features": vertebra_features(ids),
        "opacity": 0.5,
        "metadata": {
            META_KEY: {
                **image_layer.metadata.get(META_KEY, {}),
                "made_from": {"id": layer_id(image_layer), "name": image_layer.name},
                **(extra_meta or {}),
            }
        },
    }
    return labels.astype(np.uint8), meta, "labels"


def same_read(source: SourceGrid | None, other: SourceGrid | None) -> bool:
    """Whether two layers' BoneScreen source grids are one CT as read: one file or folder, one DICOM series, one
    grid (True where either is unknown: a layer BoneScreen did not read)."""
    if source is None or other is None:
        return True

    def read(grid: SourceGrid) -> tuple:
        return str(grid.path), grid.dicom.get("SeriesInstanceUID"), tuple(grid.shape)

    return read(source) == read(other)


def labels_from_layer(layer, volume: CTVolume) -> np.ndarray:
    """The vertebra map of a labels layer (ids of DESIGN.md), checked against the CT's grid."""
    data = np.asarray(layer.data)
    if data.ndim == 2:
        data = data[None]
    if data.shape != volume.shape:
        raise BoneScreenError(f"labels layer '{layer.name}' has shape {data.shape}, the CT has {volume.shape}")
    return as_level_labels(data, f"labels layer '{layer.name}'", ALL_VERTEBRA_IDS)


def checked_levels(made: dict, labels: np.ndarray, now: dict[int, str] | None = None) -> bool | list[int]:
    """What Classify passes as ``mask_checked`` for a labels layer (:meth:`bonescreen.pipeline.Screener.classify`).

    ``made`` is the layer's BoneScreen metadata. A user's own labels are checked (True). MS-Net's mark
    (``segmented``, or BoneScreen's own file opened unedited) gives the ids the user has edited since it was made
    (``level_digests``; an empty list while none is): the other vertebrae are MS-Net's as it came (helper-63: a
    stroke on the sacrum made the whole mark count as checked, and L1's grade changed). A layer made before its
    digests were kept: ``edited``, any stroke. ``now``: the layer's :func:`~bonescreen.labels.level_digests`, where
    the caller has them (:func:`layer_digests`).
    """
    if not made.get("segmented", False):
        return True
    if "level_digests" in made:
        return edited_levels(made["level_digests"], labels, now)
    return bool(made.get("edited", False))


def layer_digests(made: dict, labels: np.ndarray) -> dict[int, str] | None:
    """The :func:`~bonescreen.labels.level_digests` of a layer's labels that :func:`checked_levels`,
    :func:`renamed_from` and :func:`names_changed` compare with those it was made with, taken once (a quarter of a
    second on a large map); None for a layer made without them."""
    return level_digests(labels) if "level_digests" in made else None


def renamed_from(made: dict, labels: np.ndarray, now: dict[int, str] | None = None) -> dict[int, int]:
    """The vertebrae of a labels layer whose names are not BoneScreen's: id now -> BoneScreen's id
    (:func:`bonescreen.labels.original_names`, through the renamings of BoneScreen's own file before it was
    opened, ``own["named_from"]``). Empty for a layer without digests (the user's own labels)."""
    if "level_digests" not in made:
        return {}
    return original_names(made["level_digests"], labels, (made.get("own") or {}).get("named_from"), now)


def names_changed(made: dict, labels: np.ndarray, now: dict[int, str] | None = None) -> bool:
    """Whether the user has renamed vertebrae of the layer whose BoneScreen metadata is ``made``: a name that is not
    BoneScreen's (:func:`renamed_from`), or, after Rename or a shift (``renamed``), a name that the layer did not
    hold when made (a renamed vertebra painted on since). Undone, or shifted back, the names are BoneScreen's again
    (helper-66: undoing a shift left the names "certain")."""
    if "level_digests" not in made:
        return bool(made.get("renamed", False))
    now = level_digests(labels) if now is None else now
    if renamed_from(made, labels, now):
        return True
    # a name the layer did not hold when made, on voxels that trace to none it held (painted on since); one whose
    # voxels are a vertebra's as made is a rename, and renamed_from has read it (helper-113: a file's T12 renamed back
    # to BoneScreen's L1 made the names the user's and certain)
    traced = set(renamed_levels(made["level_digests"], None, now))
    return bool(made.get("renamed", False)) and bool(set(now) - {int(k) for k in made["level_digests"]} - traced)


def mark_naming(made: dict, labels: np.ndarray) -> dict | None:
    """The naming to keep in a saved map (:func:`bonescreen.io.writers.write_labels_nifti`'s ``naming``) while a
    layer is MS-Net's mark: opened again, by napari, Slicer or ``screen --labels``, it is MS-Net's unchecked mark
    with its names' doubt, as the CLI's own ``levels.nii.gz`` is (helper-63: napari saved it without, and the same
    voxels opened again were a checked mask with certain names), but for the vertebrae the user edited
    (``edited``: those stay the user's; helper-64: one edited vertebra made the whole saved map the user's) and
    the names the user changed (``named_from``: shifted back later, they are BoneScreen's again). None for any
    other layer."""
    now = layer_digests(made, labels)
    checked = checked_levels(made, labels, now)
    if not isinstance(checked, list):
        return None
    own = made.get("own")
    rule = own["naming_rule"] if own else made.get("rule", "")
    certain = own["naming_certain"] if own else made.get("certain", False)
    named_from = renamed_from(made, labels, now)
    if not named_from and names_changed(made, labels, now):  # a vertebra renamed, then painted on: its name is
        # the user's with no voxels left to trace it by
        rule, certain = users_naming_rule(rule), True
    # the split's note that the image looks upside down stays with the map (helper-100)
    upside_down = upside_down_note(made.get("notes", []))
    present = {int(v) for v in np.unique(labels) if v}
    return {
        "naming_rule": rule,
        "naming_certain": bool(certain),
        # the vertebrae the map holds, as `screen` and Slicer write it (helper-113: a vertebra renamed, then edited,
        # left its old id among them, which the map given back said was "removed")
        "edited": [v for v in checked if v in present],
        "named_from": named_from,
        "upside_down": upside_down,
    }
