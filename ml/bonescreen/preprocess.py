"""How CT becomes network input; the same functions serve training and inference.

MS-Net: grey values standardized to 0-255 (as the paper) over the HU window
:data:`SEG_WINDOW`, then divided by 255. BCC-Net: the CT masked by the mark
image over :data:`CLS_WINDOW` (0 outside the mask), the ROI's bounding box
cropped square and resized to 224x224.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import BoneScreenError

#: HU window mapped to 0-255 for MS-Net.
SEG_WINDOW = (-250.0, 1250.0)
#: HU window mapped to 0-1 for BCC-Net's masked crops.
CLS_WINDOW = (-200.0, 1200.0)
#: Side of BCC-Net's input.
CROP_SIZE = 224
#: MS-Net with three input channels (2.5-D) sees, beside the slice it marks, the CT this far below and
#: above it (mm). On one slice an intervertebral disc (80-120 HU inside a ring of annulus) and the body of
#: a vertebra of low density look alike; 4 mm away, a disc 8-12 mm tall has bone on both sides and a body
#: 25-30 mm tall has bone on at least one side. The paper's MS-Net is 2-D (one channel).
SEG_CONTEXT_MM = 4.0
#: Value of a training mark's pixel that MS-Net's loss and validation leave out: a pixel whose vertebra
#: label one axial slice cannot decide (:func:`bonescreen.phantom.scene.uncertain_mark`). Marks are
#: otherwise 0 (not vertebra) and 1 (vertebra).
MARK_IGNORE = 2


def preprocessing_config(energy_normalized: bool = False) -> dict:
    """The preprocessing, as recorded in weights JSON files.

    With ``energy_normalized`` BCC-Net's crops are the bone as it reads at the reference energy
    (:func:`~bonescreen.density.energy_normalized_hu`): recorded as ``energy_reference_kev``, which
    tells the pipeline to prepare them so.
    """
    from .density import reference_energy_kev

    config = {
        "segmentation": {"window_hu": list(SEG_WINDOW), "standardize": "0-255 over the window, then /255"},
        "classification": {
            "window_hu": list(CLS_WINDOW),
            "mask": "CT masked by the mark image (0 outside)",
            "crop": "square around the ROI bounding box; ROI side / crop side = 0.8-1.0 augmented, 0.9 at inference",
            "size": CROP_SIZE,
        },
    }
    if energy_normalized:
        config["classification"]["energy_reference_kev"] = round(reference_energy_kev())
        config["classification"]["energy_normalization"] = (
            "HU mapped to the reference energy through the scan's internal calibration (air, fat, muscle, kVp)"
        )
    return config


def trained_energy_normalized(meta: dict) -> bool:
    """Whether BCC-Net weights (their JSON, ``meta``) were trained on energy-normalized crops: their
    ``preprocessing.energy_reference_kev`` (:func:`preprocessing_config`); the paper's HU crops when absent."""
    return meta.get("preprocessing", {}).get("energy_reference_kev") is not None


def window(hu: np.ndarray, win: tuple[float, float]) -> np.ndarray:
    """Map HU linearly from ``win`` to [0, 1], clipped; float32."""
    lo, hi = win
    out = (np.asarray(hu, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)


def seg_input(hu: np.ndarray) -> np.ndarray:
    """MS-Net input from HU: 0-255 standardized over :data:`SEG_WINDOW`, as float32 in [0, 1]."""
    return np.round(window(hu, SEG_WINDOW) * 255.0) / np.float32(255.0)


def context_positions(n_slices: int, dz: float, ks, offset_mm: float = SEG_CONTEXT_MM) -> np.ndarray:
    """Fractional slice positions of MS-Net's 2.5-D input: (len(ks), 3) = (below, the slice, above).

    Parameters
    ----------
    n_slices : int
        Slices in the volume (axis 0, inferior -> superior).
    dz : float
        Slice spacing (mm).
    ks : array of int
        Slices to be marked.
    offset_mm : float
        Distance of the neighbours (mm), :data:`SEG_CONTEXT_MM`.

    Returns
    -------
    ndarray
        float64 positions, clipped to the volume: at its first and last slices (and for a single
        slice) a neighbour outside the volume is the slice itself.
    """
    ks = np.asarray(ks, dtype=np.float64)
    step = offset_mm / dz if dz > 0 else 0.0
    pos = np.stack([ks - step, ks, ks + step], axis=1)
    return np.clip(pos, 0, max(n_slices - 1, 0))


def context_stack(volume: np.ndarray, dz: float, ks, offset_mm: float = SEG_CONTEXT_MM) -> np.ndarray:
    """The slices ``ks`` of ``volume`` with their neighbours ``offset_mm`` below and above: (len(ks), 3, rows, cols).

    The neighbours are interpolated linearly between the two nearest slices
    (:func:`context_positions`); float32 in the volume's units (HU, or 0/1 for a mask).
    """
    pos = context_positions(len(volume), dz, ks, offset_mm)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(volume) - 1)
    w = (pos - lo).astype(np.float32)[..., None, None]
    a = volume[lo].astype(np.float32)
    return np.where(w > 0, a * (1 - w) + volume[hi].astype(np.float32) * w, a)


def roi_crop(
    hu_slice: np.ndarray,
    mask: np.ndarray,
    size: int = CROP_SIZE,
    scale: float = 0.9,
    angle_deg: float = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """BCC-Net input from one slice: the CT inside ``mask``, cropped around the ROI and resized.

    Parameters
    ----------
    hu_slice : ndarray
        (rows, cols) HU.
    mask : ndarray
        (rows, cols) boolean mark image of the ROI.
    size : int
        Output side (224).
    scale : float
        ROI side over crop side (paper's augmentation: 0.8-1.0).
    angle_deg : float
        Rotation about the ROI centre.
    shift : (float, float)
        Translation of the ROI centre, as a fraction of the crop side.

    Returns
    -------
    ndarray
        float32 (size, size) in [0, 1]; 0 outside the mask.
    """
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise BoneScreenError("the ROI mask is empty")
    masked = np.where(mask, window(hu_slice, CLS_WINDOW), np.float32(0.0))
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = max(r1 - r0, c1 - c0) / scale
    centre = np.array([(r0 + r1 - 1) / 2, (c0 + c1 - 1) / 2]) - np.array(shift) * side
    zoom = side / size
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    matrix = rot * zoom
    offset = centre - matrix @ np.array([(size - 1) / 2, (size - 1) / 2])
    # unrotated (inference), the matrix is diagonal: scipy's separable zoom path is about twice as fast
    return ndimage.affine_transform(
        masked,
        np.diag(matrix) if angle_deg == 0 else matrix,
        offset=offset,
        output_shape=(size, size),
        order=1,
        mode="constant",
        cval=0.0,
    )
