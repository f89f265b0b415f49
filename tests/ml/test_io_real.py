"""The real CT files in ../shared/data read with the right HU, spacing and orientation."""

import nibabel as nib
import nrrd
import numpy as np
import pytest

from bonescreen.io import load_ct
from bonescreen.io.volume import reorient


def lps_nrrd_affine(header) -> np.ndarray:
    assert header["space"] == "left-posterior-superior"
    a = np.eye(4)
    a[:3, :3] = np.asarray(header["space directions"], float).T
    a[:3, 3] = header["space origin"]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ a


def test_pancreas_slice_is_anterior_up(shared_data):
    v = load_ct(shared_data / "pancreasct-slice" / "explicit_VR-UN.dcm")
    assert v.shape == (1, 512, 512) and v.description == "DICOM series (1 slice)"  # not "1 slices"
    assert v.spacing[1:] == pytest.approx((0.859375, 0.859375))
    assert -1024 <= v.hu.min() and v.hu.max() < 3000
    img = v.hu[0]
    from scipy import ndimage

    comps, n = ndimage.label(img > -500)
    body = comps == 1 + np.argmax(ndimage.sum(np.ones_like(img), comps, range(1, n + 1)))  # largest: not the table
    body_rows = np.nonzero(body.any(axis=1))[0]
    bone_rows, _bone_cols = np.nonzero(img[:, 200:312] > 250)
    # the vertebra lies in the posterior (lower) part of the body outline when anterior is up
    top, bottom = body_rows.min(), body_rows.max()
    spine_row = np.median(bone_rows)
    assert spine_row > top + 0.6 * (bottom - top)
    # the stored rows run posterior->anterior; we flipped them
    assert v.affine[1, 1] < 0 and v.source.affine[1, 1] > 0


def test_dcmqi_vertebra_mask_overlays_bone(shared_data):
    folder = shared_data / "dcmqi-ct3slice"
    v = load_ct(folder)
    assert v.shape == (3, 512, 512)
    assert v.spacing[1:] == pytest.approx((0.810547, 0.810547))
    assert v.hu.min() == -1024  # outside-FOV -3024 clipped to air
    for name in ("spine_seg.nrrd", "liver_spine_seg.nrrd"):
        data, header = nrrd.read(str(folder / name))
        mask, affine, _ = reorient(data, lps_nrrd_affine(header))
        assert mask.shape == v.shape
        np.testing.assert_allclose(affine, v.affine, atol=1e-3)
        assert v.hu[mask == 2].mean() > 150
        if name.startswith("liver"):
            assert 20 < v.hu[mask == 1].mean() < 90  # liver parenchyma


def test_totalsegmentator_labels_overlay_t11_t12(shared_data):
    v = load_ct(shared_data / "totalseg-t11t12-dicom")
    assert v.shape == (20, 512, 512)
    assert v.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    img = nib.load(shared_data / "totalseg-t11t12-dicom-labels.nii.gz")
    labels, affine, _ = reorient(np.asarray(img.dataobj), img.affine)
    np.testing.assert_allclose(affine, v.affine, atol=1e-3)
    for label in (32, 33):  # T12, T11
        under = v.hu[labels == label]
        assert under.size > 1000
        assert under.mean() > 150
    # JPEG 2000 decoded: soft tissue and air present
    assert (v.hu < -900).mean() > 0.2 and ((v.hu > 0) & (v.hu < 100)).mean() > 0.1
    # slices sorted along the normal: z rises with the RAS S coordinate
    assert v.affine[2, 2] > 0


def test_pydicom_ct_small():
    from pydicom.data import get_testdata_file

    v = load_ct(get_testdata_file("CT_small.dcm"))
    assert v.shape == (1, 128, 128)
    assert v.spacing[1:] == pytest.approx((0.661468, 0.661468))
    assert v.hu.max() > 300
