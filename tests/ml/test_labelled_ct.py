"""Real CT with vertebra labels in the common layouts: id schemes, folders, training slices, fine-tuning."""

import json

import nibabel as nib
import numpy as np
import pytest

from bonescreen.cli import main
from bonescreen.data import LabelledSlices
from bonescreen.data.labelled import builtin_real_cases, find_labelled, leave_out, map_labels, unpaired
from bonescreen.errors import BoneScreenError
from bonescreen.weights import default_weights


def test_schemes_map_to_bonescreen_ids():
    verse = np.array([0, 20, 24, 19, 18, 26, 25, 8, 3])  # L1, L5, T12, T11, sacrum, L6, T1, C3
    assert map_labels(verse, "verse").tolist() == [0, 1, 5, 6, 8, 7, 10, 19, 21]  # C3, the one unnamed: 21
    total = np.array([0, 31, 27, 32, 33, 25, 26, 12, 90])  # L1, L5, T12, T11, sacrum, S1, a rib-free organ id
    assert map_labels(total, "totalseg").tolist() == [0, 1, 5, 6, 8, 7, 7, 0, 0]


def test_one_spines_unnamed_vertebrae_get_the_same_ids_from_either_tools_map():
    """DESIGN.md numbers vertebrae without a BoneScreen name 21, 22, ... from the lowest: VerSe's C1-C7 were
    21-27 from the top (C7 27) where TotalSegmentator's C7-C1 were 21-27 from the bottom, so one neck got two sets
    of ids."""
    c5_to_t1 = {"verse": [5, 6, 7, 8], "totalseg": [46, 45, 44, 43]}  # C5, C6, C7, T1 in each numbering
    for scheme, ids in c5_to_t1.items():
        assert map_labels(np.array([0, *ids]), scheme).tolist() == [0, 23, 22, 21, 19], scheme
    # VerSe's T13, below T12, is the lowest unnamed vertebra; a gap among the cervical ones closes up
    assert map_labels(np.array([[28, 19], [7, 5]]), "verse").tolist() == [[21, 6], [22, 23]]
    assert map_labels(np.zeros((0, 3)), "verse").shape == (0, 3)


def test_a_totalsegmentator_folder_numbers_its_unnamed_vertebrae_across_its_files(tmp_path, small_case):
    """TotalSegmentator's ``segmentations`` folder holds one file per vertebra: numbered file by file, C7 and C6
    would both be the lowest unnamed vertebra of their own file (21); numbered across the files, C7 21, C6 22. Its
    v2 sacrum is ``sacrum.nii.gz``, not a ``vertebrae_`` file: it is read too (helper-59: it was not)."""
    folder = tmp_path / "neck" / "spine_001"
    (folder / "segmentations").mkdir(parents=True)
    nib.save(nib.Nifti1Image(small_case.hu.transpose(2, 1, 0), small_case.affine), folder / "ct.nii.gz")
    files = (("vertebrae_C7", 1), ("vertebrae_C6", 2), ("vertebrae_L1", 3), ("sacrum", 4))  # the phantom's, renamed
    for name, level in files:
        mask = np.ascontiguousarray((small_case.levels == level).astype(np.uint8).transpose(2, 1, 0))
        nib.save(nib.Nifti1Image(mask, small_case.affine), folder / "segmentations" / f"{name}.nii.gz")
    (case,) = find_labelled(tmp_path / "neck", "totalseg")
    labels = case.load_labels(case.load_volume())
    for level, want in ((1, 21), (2, 22), (3, 1), (4, 7)):
        assert set(np.unique(labels[small_case.levels == level])) == {want}
    assert map_labels(np.array([2.0, 259.0]), {2: 21}).tolist() == [21, 0]  # floats, ids beyond the table


#: The phantom's vertebra ids (DESIGN.md: L1-L5, T12, the sacrum) in VerSe's numbering.
TO_VERSE = np.array([0, 20, 21, 22, 23, 24, 19, 26], np.uint8)


def _nnunet_folder(root, case):
    """nnU-Net raw layout with one phantom case; labels of every vertebra in view (T12 to the sacrum) in VerSe
    numbering (L1 = 20 ... L5 = 24, T12 = 19, sacrum = 26)."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    ct = np.ascontiguousarray(case.hu.transpose(2, 1, 0))
    verse = TO_VERSE[case.spine].transpose(2, 1, 0)
    nib.save(nib.Nifti1Image(ct, case.affine), root / "imagesTr" / "spine_001_0000.nii.gz")
    nib.save(nib.Nifti1Image(np.ascontiguousarray(verse), case.affine), root / "labelsTr" / "spine_001.nii.gz")


def test_nnunet_folder_gives_slices_with_marks(tmp_path, small_case):
    _nnunet_folder(tmp_path, small_case)
    cases = find_labelled(tmp_path, "nnunet", "verse")
    assert [c.name for c in cases] == ["spine_001"]
    volume = cases[0].load_volume()
    labels = cases[0].load_labels(volume)
    np.testing.assert_array_equal(labels, small_case.spine)
    ds = LabelledSlices(cases, slices_per_case=4, augment=False)
    assert len(ds) == 4
    x, y = ds[0]
    assert x.shape == (1, 512, 512) and float(y.sum()) > 100


def test_missing_layout_named(tmp_path):
    with pytest.raises(BoneScreenError, match="no labelled CT found"):
        find_labelled(tmp_path)
    with pytest.raises(BoneScreenError, match="unknown layout"):
        find_labelled(tmp_path, "mylayout")


def test_builtin_real_cases_load(shared_data):
    cases = {c.name: c for c in builtin_real_cases(shared_data)}
    assert set(cases) == {"totalseg-t11t12-dicom", "dcmqi-ct3slice", "tptbox-l3-crop"}
    crop = cases["tptbox-l3-crop"]
    labels = crop.load_labels(crop.load_volume())
    assert set(np.unique(labels)) == {0, 2, 3, 4}  # L2 (partial), L3, L4 (partial)
    t = cases["totalseg-t11t12-dicom"]
    assert set(np.unique(t.load_labels(t.load_volume()))) == {0, 6, 8}  # vertebrae only, no ribs


def test_train_seg_fine_tunes_on_labelled_ct(tmp_path, small_set, small_case, tiny_train_seg, capsys):
    """One short epoch from the bundled weights on a case set plus a labelled nnU-Net folder."""
    _nnunet_folder(tmp_path / "mine", small_case)
    out = tmp_path / "w"
    extra = ("--init-weights", str(default_weights("segmentation")), "--labelled", str(tmp_path / "mine"))
    code = main(tiny_train_seg(small_set, out, *extra, "--layout", "nnunet", "--labelled-repeat", "3"))
    assert code == 0
    assert "training from random weights" not in capsys.readouterr().err
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["init_weights"] and meta["data"]["labelled_ct"]
    # what it started from and trained on, to reproduce it (helper-83: a relative path, no digest, no cases)
    from bonescreen import __version__
    from bonescreen.checkpoint import file_sha256

    assert meta["training"]["init_weights"] == str(default_weights("segmentation").resolve())
    assert meta["training"]["init_weights_sha256"] == file_sha256(default_weights("segmentation"))
    assert meta["training"]["bonescreen_version"] == __version__
    assert [c["name"] for c in meta["data"]["labelled_cases"]] == ["spine_001"]
    assert meta["data"]["labelled_repeat"] == 3
    assert meta["data"]["train_samples_per_epoch"] == 2 * 2 + 4 * 3  # two phantom cases x 2, labelled 4 x 3
    # fine-tuned at 1e-4, not the paper's 0.002 for training from random weights (helper-111: the README's recipe at
    # 0.002 took the example CT's own Dice from 0.782 to 0.639 in one epoch); --lr still decides where given
    from bonescreen.train.schedules import SEG_BASE_LR, SEG_FINE_TUNE_LR

    assert meta["training"]["base_lr"] == SEG_FINE_TUNE_LR < SEG_BASE_LR
    # resumed without --init-weights or --lr, it goes on at the rate it started at (review, helper-112: 0.002)
    assert main([*tiny_train_seg(small_set, out, "--resume"), "--epochs", "2"]) == 0
    assert json.loads((out / "model.json").read_text())["training"]["base_lr"] == SEG_FINE_TUNE_LR
    assert main(tiny_train_seg(small_set, tmp_path / "w2", *extra, "--layout", "nnunet", "--lr", "0.0005")) == 0
    assert json.loads((tmp_path / "w2" / "model.json").read_text())["training"]["base_lr"] == 0.0005


def test_train_seg_leave_out_names_a_labelled_ct(tmp_path, small_set, small_case, tiny_train_seg, capsys):
    """A held-out name that is not there (a typo would train on the image meant to be held out), leaving out
    every labelled CT, and --leave-out or --labelled-repeat without --labelled: each a one-line error, nothing
    trained."""
    _nnunet_folder(tmp_path / "mine", small_case)
    mine = ("--labelled", str(tmp_path / "mine"), "--layout", "nnunet")
    for extra, message in (
        ((*mine, "--leave-out", "spine_01"), "no labelled CT named spine_01 to leave out (found: spine_001)"),
        ((*mine, "--leave-out", "spine_001"), "leaving those out leaves no labelled CT"),
        # said before the data load (helper-83: after 20 s of it)
        (("--init-weights", str(default_weights("classification"))), "weights are a bccnet, not the msnet-small"),
        (("--leave-out", "spine_001"), "give --labelled too"),
        (("--labelled-repeat", "3"), "give --labelled too"),
        # not refused, but said (helper-32: "fine-tuning" from random weights, and no validation, in silence)
        ((*mine, "--val-fraction", "0.01"), "training from random weights; to fine-tune the bundled MS-Net"),
    ):
        if "--val-fraction" in extra:  # (given last, it overrides the fixture's)
            assert main(tiny_train_seg(small_set, tmp_path / "w", *extra)) == 0
            err = capsys.readouterr().err
            assert message in err and "no validation cases" in err
            continue
        out = tmp_path / "w"
        assert main(tiny_train_seg(small_set, out, *extra)) == 2
        assert message in capsys.readouterr().err
        assert not (out / "model.safetensors").exists()


def test_shared_layout_and_leave_one_out(shared_data):
    """The project's real images as a labelled folder, one left out for leave-one-out fine-tuning."""
    cases = find_labelled(shared_data, "shared")
    assert [c.name for c in cases] == ["totalseg-t11t12-dicom", "dcmqi-ct3slice", "tptbox-l3-crop"]
    assert [c.name for c in find_labelled(shared_data)] == [c.name for c in cases]  # found without the layout too
    kept = leave_out(cases, ["tptbox-l3-crop"])
    assert [c.name for c in kept] == ["totalseg-t11t12-dicom", "dcmqi-ct3slice"]
    with pytest.raises(BoneScreenError, match="no labelled CT named L3 to leave out"):
        leave_out(cases, ["L3"])


def test_repeated_labelled_slices_are_augmented_anew(tmp_path, small_case):
    _nnunet_folder(tmp_path, small_case)
    ds = LabelledSlices(find_labelled(tmp_path, "nnunet"), slices_per_case=2, augment=True, repeat=3)
    assert len(ds) == 6
    first, again = ds[0], ds[2]  # the same slice, its second time in the epoch
    assert not np.array_equal(first[0].numpy(), again[0].numpy())
    with pytest.raises(BoneScreenError, match="repeat"):
        LabelledSlices(find_labelled(tmp_path, "nnunet"), slices_per_case=2, repeat=0)


def test_evaluate_scores_a_folder_of_labelled_ct(tmp_path, small_case, capsys):
    """`evaluate FOLDER --layout` scores MS-Net's mark and the names on the user's own labelled scans (issue "Real
    CT", item 6); without --layout the folder's layout is named in the error (helper-32: "no cases.csv" only)."""
    _nnunet_folder(tmp_path / "mine", small_case)
    # two ids without a BoneScreen name (VerSe's C5 and C3: DESIGN.md's unnamed 21 and 22, from the lowest), C3 above
    # C5, in a corner
    labels_file = tmp_path / "mine" / "labelsTr" / "spine_001.nii.gz"
    given = np.asarray(nib.load(labels_file).dataobj).copy()  # (x, y, z), z from the feet up
    nz = given.shape[2]
    given[:6, :6, nz - 4 : nz - 2], given[:6, :6, nz - 2 :] = 5, 3
    nib.save(nib.Nifti1Image(given, nib.load(labels_file).affine), labels_file)
    (tmp_path / "mine" / "labelsTr" / "spine_002.nii.gz").write_bytes(b"not a nifti")  # a broken pair is skipped
    (tmp_path / "mine" / "imagesTr" / "spine_002_0000.nii.gz").write_bytes(b"not a nifti")
    assert main(["evaluate", str(tmp_path / "mine"), "--out", str(tmp_path / "e")]) == 2
    assert "--layout nnunet" in capsys.readouterr().err
    code = main(
        ["evaluate", str(tmp_path / "mine"), "--layout", "nnunet", "--out", str(tmp_path / "e"), "--device", "cpu"]
    )
    out = capsys.readouterr()
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert code == 1 and "spine_002" in metrics["failed"] and "spine_002: skipped" in out.err
    (row,) = metrics["cases"]
    assert row["case"] == "spine_001" and row["dice"] > 0.6 and metrics["mean_dice"] == row["dice"]
    assert row["named_right"] >= 4
    # the given vertebrae from the lowest up, each unnamed id its own entry (helper-51: one "?" for C5-C7, text order)
    assert row["given"][:6] == ["S1", "L5", "L4", "L3", "L2", "L1"] and "T12" in row["given"]
    assert [g for g in row["given"] if g.startswith("unnamed")] == ["unnamed id 21", "unnamed id 22"]
    assert not row["partial"] and row["unlabelled"] == []  # T12 to the sacrum: every vertebra in view
    assert "spine_001: Dice" in out.out and metrics["unpaired"] == []
    # the heights and the calibration are screen's on the same CT (helper-111: measured apart, the heights were those of
    # the lowest five vertebrae found, the sacrum among them and L1 not, and the reference tissues were sampled over
    # every vertebra found)
    ct = tmp_path / "mine" / "imagesTr" / "spine_001_0000.nii.gz"
    assert main(["screen", str(ct), "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    screened = json.loads((tmp_path / "s" / "result.json").read_text())
    assert row["calibration"] == screened["density_calibration"] and row["calibration_scope"] == "lumbar levels"
    found = {f["name"]: f["heights_mm"] for f in row["found"]}
    for level in screened["levels"]:
        walls = {w: level["fracture"][f"height_{w}_mm"] for w in ("anterior", "middle", "posterior")}
        assert found[level["name"]] == walls
    assert found["S1"] is None and found["L1"] is not None


def test_verse_pairs_each_ct_with_the_mask_of_the_same_scan(tmp_path):
    """helper-34: the mask was the first ``<subject>*_seg-vert_msk`` found, so sub-a1 took sub-a10's mask and a
    subject's second scan (``split-b``) its first scan's; TPTBox's mask name (an extra ``label-`` entity) was not
    found at all. Each CT now takes the mask with the same entities, wherever it lies (VerSe: derivatives/)."""
    names = {
        "rawdata/sub-a1/sub-a1_ct.nii.gz": "derivatives/sub-a1/sub-a1_seg-vert_msk.nii.gz",
        "rawdata/sub-a10/sub-a10_ct.nii.gz": "derivatives/sub-a10/sub-a10_seg-vert_msk.nii.gz",
        "rawdata/sub-x/sub-x_split-a_ct.nii.gz": "derivatives/sub-x/sub-x_split-a_seg-vert_msk.nii.gz",
        "rawdata/sub-x/sub-x_split-b_ct.nii.gz": "derivatives/sub-x/sub-x_split-b_seg-vert_msk.nii.gz",
        "tptbox/sub-ct_label-22_ct.nii.gz": "tptbox/sub-ct_seg-vert_label-22_msk.nii.gz",
    }
    for ct, mask in names.items():
        for rel in (ct, mask):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).touch()
    (tmp_path / "tptbox/sub-ct_seg-subreg_label-22_msk.nii.gz").touch()  # the parts' map: no vertebra ids
    (tmp_path / "rawdata/sub-lone/").mkdir()
    (tmp_path / "rawdata/sub-lone/sub-lone_ct.nii.gz").touch()  # no mask: not a case
    cases = {c.name: c for c in find_labelled(tmp_path, "verse")}
    assert sorted(cases) == ["sub-a1", "sub-a10", "sub-ct_label-22", "sub-x_split-a", "sub-x_split-b"]
    for ct, mask in names.items():
        case = next(c for c in cases.values() if c.image == tmp_path / ct)
        assert case.labels == [tmp_path / mask], ct
    # a CT left without its mask is said, not dropped silently (helper-35)
    from bonescreen.data.labelled import verse_unpaired

    assert verse_unpaired(tmp_path) == [
        "sub-lone_ct.nii.gz: no vertebra mask of the same scan (*_seg-vert_msk.nii.gz): not evaluated"
    ]


def test_a_ct_labelled_for_some_vertebrae_is_scored_on_those_and_trained_away_from_the_others(
    tmp_path, small_set, small_case, tiny_train_seg, capsys
):
    """Labels of some of the vertebrae in view only: TotalSegmentator's aorta-report test labels T12 of a CT that
    shows T1-L1 (a ``segmentations`` folder with one file), and research groups label the levels they measure
    (L1-L5) on scans that show T12 and the sacrum. Scored against every vertebra found, the mark reads as mostly
    wrong; trained on, such labels teach MS-Net that the other vertebrae are background. Only the folder's file
    count said so: a combined map of the sacrum alone was scored as complete (helper-83: Dice 0.136), and one of
    L1-L5 was trained on whole, T12 and the sacrum as background. Now the CT says it too (bone past the labelled
    ends, a named vertebra missing between two given ones): such a CT is scored on the vertebrae found that cover
    the given ones, and trained on away from the vertebrae its labels leave out."""
    from bonescreen.data.label_coverage import label_coverage

    root = tmp_path / "some"
    ct = np.ascontiguousarray(small_case.hu.transpose(2, 1, 0))
    l3_only = root / "l3_only"
    (l3_only / "segmentations").mkdir(parents=True)
    nib.save(nib.Nifti1Image(ct, small_case.affine), l3_only / "ct.nii.gz")
    l3 = np.ascontiguousarray((small_case.levels == 3).astype(np.uint8).transpose(2, 1, 0))
    nib.save(nib.Nifti1Image(l3, small_case.affine), l3_only / "segmentations" / "vertebrae_L3.nii.gz")
    sacrum_only = root / "sacrum_only"  # one combined map: TotalSegmentator's sacrum (25) and an organ (90)
    sacrum_only.mkdir()
    nib.save(nib.Nifti1Image(ct, small_case.affine), sacrum_only / "ct.nii.gz")
    total = np.where(small_case.spine == 7, 25, 0).astype(np.uint8)
    total[:, :8, :8] = 90
    nib.save(
        nib.Nifti1Image(np.ascontiguousarray(total.transpose(2, 1, 0)), small_case.affine), sacrum_only / "total.nii.gz"
    )
    code = main(["evaluate", str(root), "--layout", "totalseg", "--out", str(tmp_path / "e")])
    assert code == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    rows = {r["case"]: r for r in metrics["cases"]}
    row = rows["l3_only"]
    assert row["partial"] and row["given"] == ["L3"]
    assert any("1 vertebra file(s)" in why for why in row["unlabelled"])
    assert any("above L3" in why for why in row["unlabelled"]) and any("below L3" in why for why in row["unlabelled"])
    # a different measure from a fully labelled scan's Dice: not averaged with those (helper-57)
    assert metrics["mean_dice"] is None
    (each,) = row["per_vertebra"]
    assert each["given"] == "L3" and each["found"] == "L3" and each["dice"] > 0.8
    assert row["dice"] == each["dice"]  # one given vertebra: the vertebra found that covers it, against it
    assert [f["name"] for f in row["found"] if f["truth"]] == ["L3"]  # its neighbours touch it: matched to none
    sacrum = rows["sacrum_only"]  # (helper-83: scored as a complete map, the mark's L1-L5 as false marks)
    assert sacrum["partial"] and sacrum["given"] == ["S1"] and sacrum["dice"] > 0.6
    assert any("above S1" in why for why in sacrum["unlabelled"])
    out = capsys.readouterr().out
    assert "(the given vertebrae only" in out and "1 of 1 vertebrae found named as given" in out
    assert "a vertebra above L3 is in view and not labelled" in out
    assert "Dice per given vertebra" in out and "no fully labelled CT; 2 CT labelled for some vertebrae only" in out
    # the labelled run's ends and a gap, read from the CT and the names (no MS-Net)
    levels_only = label_coverage(small_case.hu, small_case.levels, small_case.spacing)
    assert [w.split(" (")[0] for w in levels_only.unlabelled] == [
        "a vertebra above L1 is in view and not labelled",
        "a vertebra below L5 is in view and not labelled",
    ]
    assert not label_coverage(small_case.hu, small_case.spine, small_case.spacing).partial  # T12 to the sacrum
    no_l2 = np.where(small_case.spine == 2, 0, small_case.spine).astype(np.uint8)
    assert label_coverage(small_case.hu, no_l2, small_case.spacing).unlabelled == [
        "L2 between the given L1 and L3 is not labelled"
    ]
    # trained on away from the vertebrae left out: no slice of T12 or the sacrum, with the note
    mine = tmp_path / "mine"
    _nnunet_folder(mine, small_case)
    lab = mine / "labelsTr" / "spine_001.nii.gz"
    nib.save(nib.Nifti1Image(TO_VERSE[small_case.levels].transpose(2, 1, 0), small_case.affine), lab)
    slices = LabelledSlices(find_labelled(mine, "nnunet"), slices_per_case=1000, augment=False)
    picked = [k for _, k in slices.index]
    assert picked and not np.isin(small_case.spine[picked], [6, 7]).any()
    (note,) = slices.notes
    assert "spine_001: its labels hold some of the vertebrae in view only" in note and "trained on " in note
    # which slices, as runs (helper-86: a count only)
    kept = np.flatnonzero(label_coverage(small_case.hu, small_case.levels, small_case.spacing).trainable)
    levels_z = np.flatnonzero(small_case.levels.any(axis=(1, 2)))
    low, high = levels_z[levels_z < kept[0]], levels_z[levels_z > kept[-1]]
    assert f"(left out: slices {low[0]}-{low[-1]}, {high[0]}-{high[-1]}, counted from its first slice, 0)" in note
    code = main(tiny_train_seg(small_set, tmp_path / "w", "--labelled", str(mine), "--layout", "nnunet"))
    assert code == 0 and "its labels hold some of the vertebrae in view only" in capsys.readouterr().err
    recorded = json.loads((tmp_path / "w" / "model.json").read_text())["data"]["labelled_notes"]
    assert recorded == [note]  # kept beside the weights (helper-86: printed only)


def test_label_maps_that_cannot_be_scored_are_skipped_with_the_reason(tmp_path, small_case, capsys):
    """helper-70: `evaluate` and `real_ct.py --folder` scored, without a word, TotalSegmentator's map read with
    VerSe's ids (its organs as vertebrae, Dice 0.05), a map of other ids and an empty one (Dice 0, into the mean),
    labels flipped on the CT's grid (0.001) or moved 60 mm; a truncated or 4-D map gave a traceback; a body mask
    beside total.nii.gz was read as the labels; and a file as --out lost the whole evaluation at its end."""
    from bonescreen.labelled_eval import evaluate_labelled_case
    from bonescreen.pipeline import Screener

    _nnunet_folder(tmp_path / "n", small_case)
    lab = tmp_path / "n" / "labelsTr" / "spine_001.nii.gz"
    img = nib.load(lab)
    verse = np.asarray(img.dataobj)
    screener = Screener(device="cpu")

    def reason(data, affine=img.affine, scheme="verse") -> str:
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), lab)
        (case,) = find_labelled(tmp_path / "n", "nnunet", scheme)
        with pytest.raises(BoneScreenError) as info:
            evaluate_labelled_case(screener, case)  # each is refused before MS-Net runs
        return str(info.value)

    total = np.where(verse > 0, 51 - verse.astype(np.int16), 0).astype(np.uint8)  # L1 = 31 ... L5 = 27
    total[:4, :4, :4] = 90  # an organ
    assert "add --label-scheme totalseg" in reason(total)
    assert "ids above 28 (174, 175" in reason(np.where(verse > 0, verse + 155, 0).astype(np.uint8))
    assert "add --label-scheme verse" in reason(verse, scheme="totalseg")  # VerSe's ids read as TotalSegmentator's
    assert "the label map holds no vertebra" in reason(np.zeros_like(verse))
    said = reason(verse[:, ::-1, ::-1])  # front to back and head to feet, on the CT's grid
    assert "no given vertebra sits on this CT's bone" in said and "spine_001.nii.gz" in said
    moved = img.affine.copy()
    moved[:3, 3] += 60.0
    assert "does not lie on the CT's grid" in reason(verse, moved)
    assert "differs from the CT's" in reason(np.stack([verse, verse], axis=-1))  # 4-D
    nib.save(nib.Nifti1Image(verse, img.affine), lab)
    lab.write_bytes(lab.read_bytes()[:-200])  # cut short
    (case,) = find_labelled(tmp_path / "n", "nnunet", "verse")
    with pytest.raises(BoneScreenError, match="cut short"):
        case.load_labels(case.load_volume())

    # TotalSegmentator's folder: the combined map is total*.nii.gz; two maps and neither so named: not guessed
    folder = tmp_path / "ts" / "s01"
    folder.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(small_case.hu.transpose(2, 1, 0)), img.affine), folder / "ct.nii.gz")
    nib.save(nib.Nifti1Image(total, img.affine), folder / "total.nii.gz")
    nib.save(nib.Nifti1Image((total > 0).astype(np.uint8), img.affine), folder / "body.nii.gz")
    (case,) = find_labelled(tmp_path / "ts", "totalseg")
    assert [p.name for p in case.labels] == ["total.nii.gz"]
    (folder / "total.nii.gz").rename(folder / "vertebrae.nii.gz")
    (case,) = find_labelled(tmp_path / "ts", "totalseg")
    with pytest.raises(BoneScreenError, match=r"2 label maps beside ct.nii.gz \(body.nii.gz, vertebrae.nii.gz\)"):
        case.load_labels(case.load_volume())

    (tmp_path / "afile").write_text("")
    assert main(["evaluate", str(tmp_path / "ts"), "--layout", "totalseg", "--out", str(tmp_path / "afile")]) == 2
    assert "the output folder is a file" in capsys.readouterr().err
    # --label-scheme names an nnU-Net folder's ids: beside another layout it is said to be ignored (it was silently)
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "ts"),
                "--layout",
                "totalseg",
                "--label-scheme",
                "verse",
                "--out",
                str(tmp_path / "e2"),
            ]
        )
        == 1
    )  # its one scan is refused (above)
    said = capsys.readouterr()
    assert "note: --label-scheme applies to an nnunet folder" in said.err
    assert "no CT scored (1 skipped: their reasons above); wrote " in said.out  # (helper-86: nothing said)

    # an nnU-Net folder's files that make no case are named (helper-70: dropped without a word)
    for name in ("imagesTr/lonely_0000.nii.gz", "imagesTr/plain.nii.gz", "labelsTr/orphan.nii.gz"):
        (tmp_path / "n" / name).write_bytes(b"")
    with pytest.raises(BoneScreenError, match=r"the folder is laid out as totalseg \(--layout totalseg\)"):
        find_labelled(tmp_path / "ts", "nnunet")  # (helper-70: the layouts were listed, not the folder's)
    with pytest.raises(BoneScreenError, match=r"no labelled CT found \(imagesTr/plain.nii.gz: not named <case>_0000"):
        (tmp_path / "plain" / "imagesTr").mkdir(parents=True)
        (tmp_path / "plain" / "imagesTr" / "plain.nii.gz").write_bytes(b"")
        find_labelled(tmp_path / "plain", "nnunet")
    assert unpaired(tmp_path / "n", "nnunet") == [
        "imagesTr/lonely_0000.nii.gz: no labelsTr/lonely.nii.gz: not evaluated",
        "imagesTr/plain.nii.gz: not named <case>_0000.nii.gz (nnU-Net's channel): not evaluated",
        "labelsTr/orphan.nii.gz: no imagesTr/orphan_0000.nii.gz: not evaluated",
    ]


def test_a_totalsegmentator_folder_refuses_maps_that_are_not_its_and_names_a_ct_without_labels(tmp_path, small_case):
    """helper-83: in a TotalSegmentator folder a VerSe-numbered map was scored (its L1-L5, VerSe's 20-24, read as
    organs; its sacrum as S1: Dice 0.25), a ct.nii.gz without labels was left out without a word, and ``train-seg``
    trained on labels mirrored off the bone (left-right on its CT, here front to back: the phantom's spine is
    symmetric), which ``evaluate`` refuses. Each is now refused or named, the file named, in a folder's words (the
    layout sets the ids: no --label-scheme to add there). A map saved as floats is read (the VerSe check counted its
    ids with an unsafe cast: a traceback, found in review)."""
    levels = np.ascontiguousarray(small_case.levels.transpose(2, 1, 0))
    ct = nib.Nifti1Image(np.ascontiguousarray(small_case.hu.transpose(2, 1, 0)), small_case.affine)
    verse = np.where(levels > 0, levels + 19, 0).astype(np.uint8)  # L1 = 20 ... L5 = 24
    verse[:2, :2, :2] = 26  # and a sacrum
    total = np.where(levels > 0, 32 - levels.astype(np.int16), 0).astype(np.uint8)  # L1 = 31 ... L5 = 27
    total[:2, :2, :2] = 86  # a back muscle, as every TotalSegmentator map of an abdomen holds
    floats = total.astype(np.float32)  # saved as floats, as some tools save labels
    mirrored = np.ascontiguousarray(total[:, ::-1, ::-1])  # front to back and head to feet, on the CT's grid
    renumbered = np.where(total == 29, 200, total).astype(np.uint8)  # L3 (29) given an id TotalSegmentator has not
    for name, data in (("s01", verse), ("s02", floats), ("s04", mirrored), ("s05", total), ("s06", renumbered)):
        (tmp_path / "ts" / name).mkdir(parents=True)
        nib.save(ct, tmp_path / "ts" / name / "ct.nii.gz")
        nib.save(nib.Nifti1Image(data, small_case.affine), tmp_path / "ts" / name / "total.nii.gz")
    (tmp_path / "ts" / "s03").mkdir()
    nib.save(ct, tmp_path / "ts" / "s03" / "ct.nii.gz")
    # labels whose CT is missing (helper-86: left out without a word), a combined map and a segmentations folder
    for name, path in (("s07", "total.nii.gz"), ("s08", "segmentations/vertebrae_L3.nii.gz")):
        (tmp_path / "ts" / name / path).parent.mkdir(parents=True)
        nib.save(nib.Nifti1Image(total, small_case.affine), tmp_path / "ts" / name / path)
    cases = {c.name: c for c in find_labelled(tmp_path / "ts", "totalseg")}
    assert sorted(cases) == ["s01", "s02", "s04", "s05", "s06"]
    assert unpaired(tmp_path / "ts", "totalseg") == [
        "s03/ct.nii.gz: no label map beside it nor segmentations/vertebrae_*.nii.gz: not evaluated",
        "s07: vertebra labels and no ct.nii.gz: not evaluated",
        "s08: vertebra labels and no ct.nii.gz: not evaluated",
    ]
    volume = cases["s05"].load_volume()
    assert set(np.unique(cases["s05"].load_checked_labels(volume))) == {0, 1, 2, 3, 4, 5}
    with pytest.raises(BoneScreenError) as info:
        cases["s01"].load_labels(volume)
    said = str(info.value)
    assert "not TotalSegmentator's map: its ids look like VerSe's" in said and "s01/total.nii.gz" in said
    assert "lay the folder out as VerSe's (--layout verse), or as nnU-Net's read with --label-scheme verse" in said
    assert "add --label-scheme" not in said
    np.testing.assert_array_equal(cases["s02"].load_labels(volume), cases["s05"].load_labels(volume))
    # an id beyond TotalSegmentator's numbering is read as no vertebra, and said (helper-83: L3 lost without a word,
    # Dice 0.720 for 0.782); the CT then shows L3 missing between the given L2 and L4
    assert cases["s05"].label_notes() == []
    (note,) = cases["s06"].label_notes()
    n_l3 = int(np.count_nonzero(total == 29))
    assert note.startswith(f"total.nii.gz holds ids beyond the last of totalseg's numbering (117): 200 ({n_l3} voxels)")
    from bonescreen.data.label_coverage import label_coverage

    renumbered_ids = cases["s06"].load_labels(volume)
    assert 3 not in renumbered_ids
    assert (
        "L3 between the given L2 and L4 is not labelled"
        in label_coverage(volume.hu, renumbered_ids, volume.spacing).unlabelled
    )
    with pytest.raises(BoneScreenError) as info:
        LabelledSlices([cases["s04"]], slices_per_case=2)
    said = str(info.value)
    assert "no given vertebra sits on this CT's bone" in said and "not trained on" in said
    assert "--leave-out s04" in said and "s04/total.nii.gz" in said
    assert len(LabelledSlices([cases["s05"]], slices_per_case=2)) == 2
    # nnUNet_raw given for its dataset (helper-83: "no labelled CT found" and the layouts only)
    _nnunet_folder(tmp_path / "nnUNet_raw" / "Dataset001_Spine", small_case)
    with pytest.raises(BoneScreenError, match=r"an nnU-Net dataset lies one level down: give Dataset001_Spine/"):
        find_labelled(tmp_path / "nnUNet_raw", "nnunet")
