"""A gantry-tilted DICOM series is read onto a grid along the slices' normal, and labels go back onto its images.

The tilted series is made here: the phantom's axial CT sampled on planes tilted about the patient's left-right
axis, stacked along the table as a scanner with a tilted gantry stacks them (positions moving along z only), and
written as real DICOM with pydicom; the SEG is written with highdicom and read back with it.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest

from bonescreen.cli import main
from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct
from bonescreen.io.writers import read_labels_nifti, write_dicom_seg, write_labels_nifti
from bonescreen.metrics import dice_score
from bonescreen.phantom.tilt import levels_on_grid, seg_levels_on_images, write_tilted_series

TILT_DEG = 15.0


@pytest.fixture(scope="module")
def tilted(small_case, small_case_files, tmp_path_factory):
    axial = small_case_files / "dicom" / "dicom"
    reference = load_ct(axial)
    folder = tmp_path_factory.mktemp("gantry") / "tilted"
    truths = write_tilted_series(axial, reference, small_case.levels, folder, TILT_DEG)
    return folder, reference, truths


def test_a_tilted_series_is_read_where_its_anatomy_lies_and_labels_go_back_onto_its_images(tilted, small_case):
    """Gantry tilt was refused ("not supported; resample the series first"): spine CT is often acquired tilted."""
    folder, reference, truths = tilted
    volume = load_ct(folder)
    note = " ".join(volume.notes)
    assert f"gantry tilt of {TILT_DEG:.1f} degrees (GantryDetectorTilt {TILT_DEG:g})" in note, volume.notes
    assert "labels are written back onto the series' own images" in note
    dz = reference.spacing[0] * np.cos(np.radians(TILT_DEG))  # along the normal, not the table's step
    assert volume.spacing[0] == pytest.approx(dz, rel=1e-3)
    axes = volume.affine[:3, :3]
    np.testing.assert_allclose(axes.T @ axes, np.diag(np.diag(axes.T @ axes)), atol=1e-6)  # an orthogonal grid
    # the grid's voxels hold the CT found at their place in the patient: bone against the axial series' bone
    bone, covered, levels = levels_on_grid(  # and the true levels on the grid
        volume, reference, reference.hu > 250, np.ones(reference.shape, bool), small_case.levels
    )
    covered = covered > 0  # in the axial series' range
    assert dice_score((volume.hu > 250) & covered, (bone > 0) & covered) > 0.85
    # the true levels written as a DICOM SEG: each frame on its own source image holds that image's truth
    np.testing.assert_array_equal(volume.from_source(volume.to_source(levels)), levels)  # whole voxels: exact
    assert volume.to_source(levels).shape == tuple(volume.source.shape)
    # levels.nii.gz on the orthogonal grid: ITK-based editors (Slicer, ITK-SNAP) refuse a sheared affine (helper-87)
    nifti = folder.parent / "levels.nii.gz"
    write_labels_nifti(volume, levels, nifti)
    axes = nib.load(nifti).affine[:3, :3]
    np.testing.assert_allclose(axes.T @ axes, np.diag(np.diag(axes.T @ axes)), atol=1e-6)
    np.testing.assert_array_equal(read_labels_nifti(volume, nifti), levels)
    seg_path = folder.parent / "seg.dcm"
    write_dicom_seg(volume, levels, seg_path)
    read = seg_levels_on_images(seg_path, volume.source.dicom_files)
    for level in (1, 3, 5):
        assert dice_score(read == level, truths == level) > 0.9, level


def test_a_tilted_series_is_screened_end_to_end(tilted, tmp_path, capsys):
    """MS-Net, the split, the naming and the SEG on a tilted series, as a user runs it."""
    folder, _, _ = tilted
    out = tmp_path / "out"
    assert main(["screen", str(folder), "--out", str(out), "--device", "cpu"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert [lv["name"] for lv in result["levels"]][:5] == ["L1", "L2", "L3", "L4", "L5"]
    assert any("gantry tilt of 15.0 degrees" in n for n in result["input_notes"]), result["input_notes"]
    assert "gantry tilt of 15.0 degrees" in capsys.readouterr().out
    seg = pydicom.dcmread(out / "seg.dcm")
    sources = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in folder.iterdir()}
    referenced = {
        item.ReferencedSOPInstanceUID
        for frame in seg.PerFrameFunctionalGroupsSequence
        for item in frame.DerivationImageSequence[0].SourceImageSequence
    }
    assert referenced and referenced <= sources


def _tilt_tags(series, tilt_deg: float, stated: float | None = None) -> None:
    """Tilt the series' images by ``tilt_deg`` about the left-right axis, positions along the table (pixels kept)."""
    t = np.radians(tilt_deg)
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, round(np.cos(t), 6), round(np.sin(t), 6)]
        if stated is not None:
            ds.GantryDetectorTilt = stated
        ds.save_as(f)


def test_tilts_up_to_35_degrees_are_read_and_the_tilt_stated_is_checked(series):
    """helper-87: images were axial up to 30 degrees only, so 30-35 degree series were refused as "no axial CT series;
    found ... (axial image)"; and a tilt the header states otherwise was not said."""
    _tilt_tags(series, 34.0, stated=34.0)
    note = " ".join(load_ct(series).notes)
    assert "gantry tilt of 34.0 degrees (GantryDetectorTilt 34)" in note
    _tilt_tags(series, 20.0, stated=0.0)
    assert "gantry tilt of 20.0 degrees (GantryDetectorTilt says 0: the positions and orientations were read)" in (
        " ".join(load_ct(series).notes)
    )
    _tilt_tags(series, 40.0)
    with pytest.raises(BoneScreenError, match=r"oblique \(40 degrees from axial, more than a gantry tilts\)") as info:
        load_ct(series)
    # said once for the series, with the count of its files (helper-88: once per file, five times)
    n = len(list(series.iterdir()))
    assert str(info.value).count("40 degrees") == 1 and f" and {n - 5} more" in str(info.value)


def test_slices_stacked_further_off_their_normal_than_a_gantry_tilts_or_off_a_line_are_refused(series):
    files = sorted(series.iterdir())
    for f in files:
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.9 * z, z]  # 42 degrees
        ds.save_as(f)
    with pytest.raises(BoneScreenError, match=r"stacked 42.0 degrees off their normal, more than a gantry tilts"):
        load_ct(series)
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x + (3.0 if k == 5 else 0.0), y - 0.9 * z + 0.2 * z, z]  # 11 degrees, one off
        ds.save_as(f)
    with pytest.raises(BoneScreenError, match=rf"whose slices do not lie on one line \({files[5].name} is"):
        load_ct(series)
