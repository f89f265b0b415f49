"""Sample data: a lumbar CT phantom of each class (made in seconds), and a real CT slice shipped with pydicom."""

from __future__ import annotations

from bonescreen.io.volume import acquisition_fields, volume_from_ijk
from bonescreen.labels import CLASS_TITLES
from bonescreen.sample import sample_case

from ._convert import image_layer_data


def _phantom(label: str) -> list[tuple]:
    case = sample_case(label)
    volume = volume_from_ijk(
        case.hu.transpose(2, 1, 0), case.affine, "phantom", None, f"phantom ({CLASS_TITLES[label]})"
    )
    # the tube voltage its DICOM (make demo's) carries: without it the calibration and BCC-Net's energy-normalized
    # input differed from the same phantom's on the command line (helper-45: normal 0.61 in napari, low 0.63 there)
    volume.acquisition = acquisition_fields(case.header)
    return [image_layer_data(volume)]


def phantom_normal() -> list[tuple]:
    """Lumbar CT phantom with normal bone mass."""
    return _phantom("normal")


def phantom_low_bone_mass() -> list[tuple]:
    """Lumbar CT phantom with low bone mass."""
    return _phantom("low_bone_mass")


def phantom_osteoporosis() -> list[tuple]:
    """Lumbar CT phantom with osteoporosis."""
    return _phantom("osteoporosis")


def real_ct_slice() -> list[tuple]:
    """A real CT slice around a thoracic vertebra (``CT_small.dcm``, shipped with pydicom)."""
    from pydicom.data import get_testdata_file

    from bonescreen.io import load_ct

    volume = load_ct(get_testdata_file("CT_small.dcm"))
    return [image_layer_data(volume, "real CT slice (pydicom CT_small)")]
