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


def run_main(monkeypatch, *argv: str) -> str | None:
    """``thicker_slices.py ARGV``: its one-line error, or None when it ran through."""
    monkeypatch.setattr(sys, "argv", ["thicker_slices.py", *argv])
    try:
        main()
    except SystemExit as exc:
        return str(exc.code)
    return None


def test_a_ct_header_is_kept_and_a_single_volume_4d_nifti_is_read(tmp_path, monkeypatch):
    """A scanner's NIfTI (sform and qform codes "scanner", units mm and s, a description) stored as one 4-D volume
    (x, y, z, 1): the copy is 3-D and keeps those header fields, with its values stored unscaled as int16."""
    src = tmp_path / "src"
    src.mkdir()
    ct = np.full((6, 6, 12, 1), -1000, np.int16)
    ct[2:4, 2:4, 3:9] = 300
    img = nib.Nifti1Image(ct, np.diag([0.7, 0.7, 1.0, 1.0]))
    img.set_sform(img.affine, 1)
    img.set_qform(img.affine, 1)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = b"routine abdomen"
    img.header.set_slope_inter(2.0, -1024.0)  # a scaled file: the copy is written unscaled
    nib.save(img, src / "ct.nii.gz")
    assert run_main(monkeypatch, str(src), str(tmp_path / "dst"), "--mm", "3") is None
    out = nib.load(tmp_path / "dst" / "ct.nii.gz")
    assert out.shape == (6, 6, 4) and out.get_data_dtype() == np.int16
    assert int(out.header["sform_code"]) == 1 and int(out.header["qform_code"]) == 1
    assert out.header.get_xyzt_units() == ("mm", "sec") and out.header["descrip"] == b"routine abdomen"
    assert out.header.get_slope_inter() in ((1.0, 0.0), (None, None))
    assert np.asarray(out.dataobj)[2, 2, 1] == 300 * 2 - 1024  # slab 1 (old slices 3-5), in the file's scaled HU


def test_bad_input_stops_with_one_line_naming_it_and_leaves_no_half_written_folder(tmp_path, monkeypatch):
    """A missing or non-folder SRC, a non-positive or non-finite --mm, a file named .nii.gz that is not NIfTI or a
    NIfTI of several volumes: one line naming the file and the fault; DST is not left half-written."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.full((4, 4, 8), -1000, np.int16), np.eye(4)), src / "a" / "ct.nii.gz")
    dst = tmp_path / "dst"
    assert "no such folder" in run_main(monkeypatch, str(tmp_path / "nowhere"), str(dst))
    assert "not a folder" in run_main(monkeypatch, str(src / "a" / "ct.nii.gz"), str(dst))
    for mm in ("nan", "inf", "0", "-2"):
        assert "--mm" in run_main(monkeypatch, str(src), str(dst), "--mm", mm)
    (src / "b").mkdir()
    (src / "b" / "ct.nii.gz").write_bytes(b"not a NIfTI at all")
    error = run_main(monkeypatch, str(src), str(dst), "--mm", "3")
    assert str(src / "b" / "ct.nii.gz") in error and "not a NIfTI" in error and "\n" not in error
    assert not dst.exists() and [p.name for p in tmp_path.iterdir()] == ["src"]  # no partial copy left
    nib.save(nib.Nifti1Image(np.full((4, 4, 8, 2), -1000, np.int16), np.eye(4)), src / "b" / "ct.nii.gz")
    assert "not one 3-D volume" in run_main(monkeypatch, str(src), str(dst), "--mm", "3")
    assert not dst.exists()
