"""benchmarks/lower_dose.py: a labelled folder made again as a lower-dose scan carries the noise asked for, unbiased."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from lower_dose import back_project, main, project, projection_noise


def test_back_projection_puts_a_non_square_slice_back_where_it_was():
    """Noise reconstructed from the projections lands on the pixels whose rays carried it: projecting and
    reconstructing a non-square slice with an off-centre block gives the block back in place."""
    image = np.zeros((70, 101))
    image[10:22, 70:90] = 1.0
    back = back_project(project(image), image.shape)
    assert back.shape == image.shape
    assert np.abs(back - image).mean() < 0.05 and back[10:22, 70:90].mean() > 0.8


def test_projection_noise_is_larger_through_more_tissue():
    """The noise of a photon count grows with the attenuation a ray crosses: through a wide body it is larger than
    through a narrow one scanned with the same photons."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :96]
    narrow, wide = np.full((96, 96), -1000.0), np.full((96, 96), -1000.0)
    narrow[(yy - 48) ** 2 + (xx - 48) ** 2 < 15**2] = 0.0
    wide[(yy - 48) ** 2 + (xx - 48) ** 2 < 45**2] = 0.0
    centre = (yy - 48) ** 2 + (xx - 48) ** 2 < 10**2
    sd_narrow = projection_noise(narrow, 3.0, 1e4, rng)[centre].std()
    sd_wide = projection_noise(wide, 3.0, 1e4, rng)[centre].std()
    assert sd_wide > 2 * sd_narrow


def test_a_labelled_folder_made_noisier_keeps_its_values_and_labels(tmp_path, monkeypatch):
    """A water-and-bone phantom (non-square slices, off-centre body) with 40 HU asked for: the soft tissue's noise is
    about 40 HU on every slice, the mean HU of soft tissue and bone stay where they were, and the labels and other
    files are copied as they were."""
    src = tmp_path / "src" / "case"
    src.mkdir(parents=True)
    x, y = np.mgrid[:80, :110]  # (x, y) of each slice: non-square
    body = (x - 35) ** 2 / 30**2 + (y - 60) ** 2 / 45**2 < 1
    bone = (x - 35) ** 2 + (y - 70) ** 2 < 8**2
    ct = np.full((80, 110, 4), -1000, np.int16)
    ct[body] = 40
    ct[bone] = 700
    labels = np.zeros(ct.shape, np.uint8)
    labels[bone] = 31
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    nib.save(nib.Nifti1Image(ct, affine), src / "ct.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), src / "total.nii.gz")
    (src / "notes.txt").write_text("kept")
    monkeypatch.setattr(sys, "argv", ["lower_dose.py", str(tmp_path / "src"), str(tmp_path / "dst"), "--noise", "40"])
    main()
    out = nib.load(tmp_path / "dst" / "case" / "ct.nii.gz")
    noisy = np.asarray(out.dataobj).astype(float)
    assert noisy.shape == ct.shape and np.allclose(out.affine, affine)
    soft = body & ~bone
    for k in range(ct.shape[2]):
        assert 36 < noisy[..., k][soft].std() < 44
        assert abs(noisy[..., k][soft].mean() - 40) < 4 and abs(noisy[..., k][bone].mean() - 700) < 15
    same = np.asarray(nib.load(tmp_path / "dst" / "case" / "total.nii.gz").dataobj)
    np.testing.assert_array_equal(same, labels)
    assert (tmp_path / "dst" / "case" / "notes.txt").read_text() == "kept"


def test_a_slice_without_soft_tissue_gets_the_others_dose_and_a_bad_noise_is_refused(tmp_path, monkeypatch):
    """A slice past the body's end (air, a table's edge) has no soft tissue to set its photon count by: it is scanned
    as the median of the others (it once took the whole noise asked for in its air); --noise nan, inf or 0 stops with
    one line."""
    src = tmp_path / "src"
    src.mkdir()
    x, y = np.mgrid[:64, :64]
    body = (x - 32) ** 2 + (y - 32) ** 2 < 25**2
    ct = np.full((64, 64, 3), -1000, np.int16)
    ct[body, :2] = 40
    ct[28:36, 28:36, 2] = 700  # the third slice: air and a small dense object only
    nib.save(nib.Nifti1Image(ct, np.diag([1.5, 1.5, 3.0, 1.0])), src / "ct.nii.gz")
    for noise in ("nan", "inf", "0"):
        monkeypatch.setattr(sys, "argv", ["lower_dose.py", str(src), str(tmp_path / "dst"), "--noise", noise])
        try:
            main()
        except SystemExit as exc:
            assert "--noise" in str(exc.code) and "\n" not in str(exc.code)
        else:
            raise AssertionError(f"--noise {noise} was taken")
    monkeypatch.setattr(sys, "argv", ["lower_dose.py", str(src), str(tmp_path / "dst"), "--noise", "30"])
    main()
    noisy = np.asarray(nib.load(tmp_path / "dst" / "ct.nii.gz").dataobj).astype(float) - ct
    assert 26 < noisy[..., 0][body].std() < 34
    assert noisy[..., 2].std() < 20  # the low attenuation of an almost empty slice: less noise, not 30 HU in air
