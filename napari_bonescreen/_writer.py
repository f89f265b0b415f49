"""Writer contribution: level labels as NIfTI (on the CT's source grid) or DICOM SEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bonescreen.errors import BoneScreenError
from bonescreen.io import CTVolume
from bonescreen.io.writers import write_dicom_seg, write_labels_nifti

from ._convert import META_KEY, unedited_naming


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Save a labels layer of vertebrae: ``.nii``/``.nii.gz`` on the CT's grid, ``.dcm`` as DICOM SEG (DICOM CT only).

    A layer that is MS-Net's mark as it came (no stroke, no rename) is saved with its naming and digest
    (:func:`._convert.unedited_naming`): opened again it is still MS-Net's unchecked mark.
    """
    from napari.utils.notifications import show_error, show_info

    geometry = (meta.get("metadata") or {}).get(META_KEY)
    labels = np.asarray(data)
    target = Path(path)
    try:
        if geometry is None or geometry.get("source") is None:
            raise BoneScreenError("this labels layer was not made on a CT opened by BoneScreen: its grid is unknown")
        # the writers need the grid only: a zero-strided stand-in for the HU array gives the volume its shape
        volume = CTVolume(
            hu=np.broadcast_to(np.float32(0), labels.shape),
            spacing=tuple(geometry["spacing"]),
            affine=geometry["affine"],
            source=geometry["source"],
        )
        if target.suffix.lower() == ".dcm":
            tags = write_dicom_seg(volume, labels, target)
            show_info(f"DICOM SEG written; it carries these identifying tags of the study: {', '.join(tags)}")
        else:
            if not str(target).lower().endswith((".nii", ".nii.gz")):
                target = target.with_name(target.name + ".nii.gz")
            # MS-Net's mark as it came keeps its provenance, as the CLI's levels.nii.gz does
            write_labels_nifti(volume, labels, target, naming=unedited_naming(geometry, labels))
    except BoneScreenError as exc:
        show_error(f"BoneScreen could not save the vertebrae: {exc}")
        return []
    return [str(target)]
