"""Writer contribution: level labels as NIfTI (on the CT's source grid) or DICOM SEG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bonescreen.atomic import lock_output_folder
from bonescreen.errors import BoneScreenError
from bonescreen.io import CTVolume
from bonescreen.io.identifiers import system_reason
from bonescreen.io.writers import automatic_ids, write_dicom_seg, write_labels_nifti

from ._convert import META_KEY, mark_naming


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Save a labels layer of vertebrae: ``.nii``/``.nii.gz`` on the CT's grid, ``.dcm`` as DICOM SEG (DICOM CT only).

    A layer that is MS-Net's mark (no rename) is saved with its naming and digests (:func:`._convert.mark_naming`):
    opened again it is still MS-Net's unchecked mark, but for the vertebrae the user edited.
    """
    from napari.utils.notifications import show_error, show_info

    if not str(path).strip():  # (helper-94: a traceback, "PosixPath('.') has an empty name")
        show_error("BoneScreen could not save the vertebrae: no file name given")
        return []
    labels = np.asarray(data)
    geometry = _grid_of(labels.shape, meta)
    target = Path(path)
    held = None
    try:
        if geometry is None:
            raise BoneScreenError(
                "this labels layer was not made on a CT opened by BoneScreen, and no one CT opened by BoneScreen in "
                "the viewer has its shape and scale: its grid is unknown"
            )
        # the writers need the grid only: a zero-strided stand-in for the HU array gives the volume its shape
        volume = CTVolume(
            hu=np.broadcast_to(np.float32(0), labels.shape),
            spacing=tuple(geometry["spacing"]),
            affine=geometry["affine"],
            source=geometry["source"],
        )
        named = not str(target).lower().endswith((".nii", ".nii.gz", ".dcm"))
        if named:  # the save dialog asked before replacing the name typed, not this one
            target = target.with_name(target.name + ".nii.gz")
        # a bonescreen run writing into that folder would write its levels.nii.gz over these labels, or take them
        # for an earlier run's: saved when it ends (stop 63: the writer took no lock)
        try:
            held = lock_output_folder(target.parent)
        except BoneScreenError:
            raise BoneScreenError(
                f"a bonescreen run (a screen or a batch) is writing into {target.parent}: save when it ends, or into "
                "another folder"
            ) from None
        kept = None
        if named and target.exists() and not target.is_dir():  # kept, never replaced unasked (helper-115: a second
            # save as "vertebrae" wrote MS-Net's new mark over the user's edited vertebrae.nii.gz)
            from bonescreen.screen import kept_name

            kept = kept_name(target)
            os.replace(target, kept)
        if target.suffix.lower() == ".dcm":
            automatic = automatic_ids(labels, mark_naming(geometry, labels))  # MS-Net's vertebrae as it marked them
            tags = write_dicom_seg(volume, labels, target, automatic=automatic)
            show_info(f"DICOM SEG written; it carries these identifying tags of the study: {', '.join(tags)}")
        else:
            # MS-Net's mark keeps its provenance, vertebra by vertebra, as the CLI's levels.nii.gz does
            write_labels_nifti(volume, labels, target, naming=mark_naming(geometry, labels))
        if kept is not None:
            said = f"{target.name} was there already: kept as {kept.name}; the vertebrae saved as {target.name}"
            show_info(f"BoneScreen: {said}")
    except BoneScreenError as exc:
        show_error(f"BoneScreen could not save the vertebrae: {exc}")
        return []
    except OSError as exc:  # a read-only folder, a folder of that name, a full disk (helper-92: tracebacks)
        show_error(f"BoneScreen could not save the vertebrae: {target}: {system_reason(exc).lower()}")
        return []
    finally:
        if held is not None:
            os.close(held)
    return [str(target)]


def _grid_of(shape: tuple[int, ...], meta: dict) -> dict | None:
    """The BoneScreen grid of a labels layer: its own metadata's (made by BoneScreen), else that of the one CT opened
    by BoneScreen in the viewer with the layer's shape and scale (helper-64: a layer made with napari's "New labels
    layer" on BoneScreen's CT could not be saved, "not made on a CT opened by BoneScreen"); None when neither."""
    geometry = (meta.get("metadata") or {}).get(META_KEY)
    if geometry is not None and geometry.get("source") is not None:
        return geometry
    import napari
    from napari.layers import Image

    viewer = napari.current_viewer()
    if viewer is None:
        return None
    scale = meta.get("scale")
    matches = [
        layer.metadata[META_KEY]
        for layer in viewer.layers
        if isinstance(layer, Image)
        and (layer.metadata.get(META_KEY) or {}).get("source") is not None
        and tuple(layer.data.shape) == tuple(shape)
        and (scale is None or np.allclose(layer.scale, scale))
    ]
    return matches[0] if len(matches) == 1 else None
