"""benchmarks/thicker_slices.py: a labelled folder made again with thicker slices keeps its anatomy in place."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from thicker_slices import main, slab_weights


def test_slab_weights_tile_the_old_slices():
    weights, centres = slab_weights(10, 1.0, 3.0)  # 10 slices of 1 mm -> 3 of 3 mm (the last mm dropped)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(centres, [1.0, 4.0, 7.0])  # in old slice indices
    weights, _ = slab_weights(5, 2.0, 5.0)  # a new slice over two old ones and half of a third
    np.testing.assert_allclose(weights[0], [0.4, 0.4, 0.2, 0.0, 0.0])


def test_a_labelled_folder_made_thicker_keeps_its_anatomy_where_it_was(tmp_path, monkeypatch):
    """A 1 mm CT with a 12 mm bright block, made 4 mm thick: the block stays at the same height in mm (the affine
    moves the first slice to its slab's centre), its label is read at the slabs' centres, other files are copied."""
    src = tmp_path / "src" / "case"
    src.mkdir(parents=True)
    ct = np.full((8, 8, 40), -1000, np.int16)  # (x, y, z), z the slice axis (RAS: z superior)
    ct[:, :, 20:32] = 400
    labels = (ct > 0).astype(np.uint8) * 31
    affine = np.diag([0.8, 0.8, 1.0, 1.0])
    affine[:3, 3] = (10.0, 20.0, -50.0)
    nib.save(nib.Nifti1Image(ct, affine), src / "ct.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), src / "total.nii.gz")
    (src / "notes.txt").write_text("kept")
    monkeypatch.setattr(sys, "argv", ["thicker_slices.py", str(tmp_path / "src"), str(tmp_path / "dst"), "--mm", "4"])
    main()
    out = nib.load(tmp_path / "dst" / "case" / "ct.nii.gz")
    thick = np.asarray(out.dataobj)
    assert thick.shape == (8, 8, 10) and np.allclose(out.header.get_zooms(), (0.8, 0.8, 4.0))
    z_mm = out.affine[2, 2] * np.arange(10) + out.affine[2, 3]  # slab centres in mm
    np.testing.assert_allclose(z_mm[:2], [-48.5, -44.5])  # the first slab holds old slices 0-3 (-50 .. -47 mm)
    inside = thick[0, 0] > 0
    np.testing.assert_array_equal(np.nonzero(inside)[0], [5, 6, 7])  # old slices 20-31: slabs 5-7
    label = np.asarray(nib.load(tmp_path / "dst" / "case" / "total.nii.gz").dataobj)[0, 0]
    np.testing.assert_array_equal(label > 0, inside)
    assert (tmp_path / "dst" / "case" / "notes.txt").read_text() == "kept"
