"""Bring your own segmentation: a TotalSegmentator or VerSe vertebra map is accepted by `screen --labels` through a
named label scheme; its other structures (ribs, organs) are ignored; bad values and unknown schemes are refused."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bonescreen.cli import main
from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct
from bonescreen.io.writers import read_labels_nifti
from bonescreen.label_schemes import SCHEMES

#: BoneScreen id -> the other tool's id (the inverse of the schemes for the vertebrae the phantom has)
TO_FOREIGN = {
    "totalseg": {1: 31, 2: 30, 3: 29, 4: 28, 5: 27, 6: 32, 7: 25},
    "verse": {1: 20, 2: 21, 3: 22, 4: 23, 5: 24, 6: 19, 7: 26},
}
OTHER_STRUCTURE = {"totalseg": 92, "verse": 0}  # TotalSegmentator: a rib (its id 92); VerSe has none


def _foreign_map(case, volume, scheme: str, path) -> None:
    spine = case.spine  # 1..5 lumbar, 6 T12, 7 sacrum
    foreign = np.zeros(spine.shape, np.uint16)
    for ours, theirs in TO_FOREIGN[scheme].items():
        assert SCHEMES[scheme][theirs] == ours
        foreign[spine == ours] = theirs
    # a structure that is no vertebra, beside the spine: must be left out
    z, y, x = np.nonzero(spine == 1)
    foreign[z.min() : z.max(), y.min() : y.min() + 5, max(x.min() - 30, 0) : max(x.min() - 20, 1)] = OTHER_STRUCTURE[
        scheme
    ]
    nib.save(nib.Nifti1Image(volume.to_source(foreign), volume.source.affine), path)


@pytest.mark.parametrize("scheme", ["totalseg", "verse"])
def test_screen_takes_another_tools_vertebra_map(small_case, small_case_files, tmp_path, scheme):
    ct = small_case_files / "nifti" / "ct.nii.gz"
    volume = load_ct(ct)
    _foreign_map(small_case, volume, scheme, tmp_path / "theirs.nii.gz")
    mapped = read_labels_nifti(volume, tmp_path / "theirs.nii.gz", allowed=None, scheme=scheme)
    np.testing.assert_array_equal(mapped, small_case.spine)  # rib -> 0, vertebrae -> DESIGN.md ids
    # read with BoneScreen's ids (the option forgotten): refused, naming the option that reads it (helper-32: VerSe's
    # ids became "unnamed 1-3, none lumbar" with exit 0, TotalSegmentator's an error without the hint)
    from bonescreen.labels import ALL_VERTEBRA_IDS

    with pytest.raises(BoneScreenError, match=f"theirs.nii.gz: .*add --label-scheme {scheme}"):
        read_labels_nifti(volume, tmp_path / "theirs.nii.gz", allowed=ALL_VERTEBRA_IDS)
    if scheme == "totalseg":  # its whole-body map: organs at 1-5 (spleen, kidneys, gallbladder, liver) and 20 too
        organs = nib.load(tmp_path / "theirs.nii.gz")
        data = np.asarray(organs.dataobj).copy()
        data[:4, :4, :2] = 5  # the liver
        data[-4:, -4:, -2:] = 20
        nib.save(nib.Nifti1Image(data, organs.affine), tmp_path / "total.nii.gz")
        with pytest.raises(BoneScreenError, match=r"are not level ids .*add --label-scheme totalseg"):
            read_labels_nifti(volume, tmp_path / "total.nii.gz", allowed=ALL_VERTEBRA_IDS)
        # read with VerSe's ids: its organs (1-24) would be VerSe's vertebrae (helper-60: the liver and the kidneys
        # opened as L1-L3, T1-T7 in Slicer, silently); VerSe numbers no vertebra above 28
        with pytest.raises(BoneScreenError, match=r"total\.nii\.gz: ids above 28 \(29, 30, 31, 32, 92\) .*totalseg"):
            read_labels_nifti(volume, tmp_path / "total.nii.gz", allowed=None, scheme="verse")
    out = tmp_path / "out"
    argv = ["screen", str(ct), "--out", str(out), "--device", "cpu", "--labels", str(tmp_path / "theirs.nii.gz")]
    assert main([*argv, "--label-scheme", scheme]) == 0
    result = json.loads((out / "result.json").read_text())
    assert [lv["name"] for lv in result["levels"]] == ["L1", "L2", "L3", "L4", "L5"]
    assert result["segmentation"]["source"] == "user"
    written = nib.load(out / "levels.nii.gz").get_fdata()
    assert set(np.unique(written)) == {0, 1, 2, 3, 4, 5}  # levels.nii.gz holds the lumbar levels only


def test_unknown_scheme_and_bad_values_are_refused(small_case_files, tmp_path, capsys):
    ct = small_case_files / "nifti" / "ct.nii.gz"
    volume = load_ct(ct)
    bad = np.full(volume.source.shape, -3, np.int16)
    nib.save(nib.Nifti1Image(bad, volume.source.affine), tmp_path / "bad.nii.gz")
    with pytest.raises(BoneScreenError, match=r"bad\.nii\.gz: label values must be finite and non-negative"):
        read_labels_nifti(volume, tmp_path / "bad.nii.gz", scheme="totalseg")
    with pytest.raises(BoneScreenError, match="label scheme must be one of bonescreen, verse, totalseg"):
        read_labels_nifti(volume, tmp_path / "bad.nii.gz", scheme="nnunet")
    with pytest.raises(SystemExit):
        main(["screen", str(ct), "--out", str(tmp_path / "o"), "--labels", "x.nii.gz", "--label-scheme", "amos"])
    assert "argument --label-scheme" in capsys.readouterr().err


def test_the_scheme_hint_names_each_front_ends_control():
    """helper-34: the hint told napari users to set a 'label scheme', a control napari calls 'its ids'."""
    from bonescreen.label_schemes import scheme_hint

    hint = scheme_hint(np.array([0, 20, 21, 22]))
    assert "--label-scheme verse" in hint and "napari: 'its ids' verse" in hint and "Slicer: 'Label map ids:'" in hint
    assert "--label-scheme totalseg" in scheme_hint(np.array([0, 27, 28, 31, 40]))
    assert scheme_hint(np.array([0, 1, 2])) is None


def test_a_binary_spine_mask_is_refused_as_levels_and_split_and_named_as_a_mask(
    small_case, small_case_files, tmp_path, capsys
):
    """helper-36's kind of fault: a map that is not one vertebra per id was read as vertebrae. A binary mask of the
    spine (0/1, as a thresholding tool writes it) read with BoneScreen's ids was L1 over seven vertebrae, classified
    with a plausible result. Now: refused, naming the file, the level and the 'mask' ids; read with them, it is split
    and named as MS-Net's mark is."""
    ct = small_case_files / "nifti" / "ct.nii.gz"
    volume = load_ct(ct)
    binary = tmp_path / "spine.nii.gz"
    nib.save(nib.Nifti1Image(volume.to_source((small_case.spine > 0).astype(np.uint8)), volume.source.affine), binary)
    argv = ["screen", str(ct), "--device", "cpu", "--labels", str(binary)]
    assert main([*argv, "--out", str(tmp_path / "refused")]) == 2
    said = capsys.readouterr().err
    assert "spine.nii.gz: the labels of L1 hold 7 vertebral bodies one above the other" in said, said
    assert "--label-scheme mask" in said
    assert not (tmp_path / "refused" / "result.json").exists()
    out = tmp_path / "split"
    assert main([*argv, "--out", str(out), "--label-scheme", "mask"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert [lv["name"] for lv in result["levels"]] == ["L1", "L2", "L3", "L4", "L5"]
    assert result["segmentation"]["source"] == "user mask"
    assert "MS-Net" not in json.dumps(result["overall"])  # (helper-37: "the mask is MS-Net's, not yet checked")
    assert result["segmentation"]["vertebrae"][-1] == "T12"
    written = volume.from_source(np.asarray(nib.load(out / "levels.nii.gz").dataobj))
    for level in range(1, 6):  # each level where the phantom's truth has it
        truth = small_case.spine == level
        assert 2 * np.count_nonzero(truth & (written == level)) / (truth.sum() + (written == level).sum()) > 0.9


def test_a_mask_of_one_vertebra_named_for_another_is_refused_as_bonescreens_ids(small_case, small_case_files, tmp_path):
    """helper-115: TotalSegmentator's ``vertebrae_T12.nii.gz`` (T12's mask, 1 inside) opened with BoneScreen's ids was
    "L1" and classified so, without a word. A file named for one vertebra that holds another's id alone is refused,
    naming both and the 'mask' ids; a file named for the vertebra it holds, or named for none, reads as before."""
    ct = small_case_files / "nifti" / "ct.nii.gz"
    volume = load_ct(ct)
    one = volume.to_source((small_case.spine == 6).astype(np.uint8))  # T12's voxels, as id 1

    def save(name, data):
        nib.save(nib.Nifti1Image(data, volume.source.affine), tmp_path / name)
        return tmp_path / name

    with pytest.raises(BoneScreenError, match="the file is named for T12 but holds one id, 1, which is L1") as err:
        read_labels_nifti(volume, save("vertebrae_T12.nii.gz", one), allowed=(0, 1, 6))
    assert "vertebrae_T12.nii.gz" in str(err.value) and "ids 'mask'" in str(err.value)
    assert read_labels_nifti(volume, save("vertebrae_T12.nii.gz", one * 6), allowed=(0, 1, 6)).max() == 6
    assert read_labels_nifti(volume, save("my_labels.nii.gz", one), allowed=(0, 1, 6)).max() == 1
    assert read_labels_nifti(volume, save("L1.nii.gz", one), allowed=(0, 1, 6)).max() == 1


def test_a_verse_subregion_map_is_named_not_read_as_ten_unnamed_vertebrae():
    """helper-36: VerSe's subregion map (ids 41-50: arch, processes, body of every vertebra) given as --labels was
    read as 'unnamed 21-30', nothing classified, exit 0. Its ids are now recognized, with the two ways on."""
    from bonescreen.label_schemes import mask_of, scheme_hint

    hint = scheme_hint(np.array([0, 41, 42, 49, 50]))
    assert "VerSe's subregions" in hint and "seg-vert" in hint and "--label-scheme mask" in hint
    assert scheme_hint(np.array([0, 41])) is None  # one id alone: an unnamed vertebra may be 41
    np.testing.assert_array_equal(mask_of(np.array([0, 41, 50, 0])), [False, True, True, False])
    with pytest.raises(BoneScreenError, match="finite and non-negative"):
        mask_of(np.array([0.0, -1.0]))


def test_maps_that_hold_no_vertebra_under_their_scheme_say_why(small_case, small_case_files, tmp_path, capsys):
    """helper-37: a VerSe subregion map read with VerSe's ids was "the labels given are empty" (exit 0), a 0/255
    spine mask "unnamed 235, none lumbar" (exit 0), and an empty mask "no vertebra found in the mark" (MS-Net's
    word). Each is now said for what it is."""
    ct = small_case_files / "nifti" / "ct.nii.gz"
    volume = load_ct(ct)

    def save(values, name):
        nib.save(nib.Nifti1Image(volume.to_source(values.astype(np.uint8)), volume.source.affine), tmp_path / name)
        return str(tmp_path / name)

    spine = small_case.spine > 0
    subregions = np.where(spine, np.where(small_case.spine == 1, 41, 50), 0)
    argv = ["screen", str(ct), "--device", "cpu", "--out", str(tmp_path / "o"), "--labels"]
    assert main([*argv, save(subregions, "subreg.nii.gz"), "--label-scheme", "verse"]) == 2
    said = capsys.readouterr().err
    assert "none of the map's ids (41, 50) is a vertebra with verse's ids" in said and "VerSe's subregions" in said
    assert main([*argv, save(spine * 255, "b255.nii.gz")]) == 2
    said = capsys.readouterr().err
    assert "it holds one id, 255, as a binary mask does: add --label-scheme mask" in said
    # written, with no result: exit 1 (no lumbar level)
    assert main([*argv, save(np.zeros_like(spine), "empty.nii.gz"), "--label-scheme", "mask"]) == 1
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert "the mask is empty: it holds no vertebral bone" in result["overall"]["reasons"]
    assert not any("MS-Net" in r or "mark" in r for r in result["overall"]["reasons"])


@pytest.mark.parametrize(
    ("name", "vid"),
    [
        ("L3", 3),
        ("L3 vertebra", 3),  # the SNOMED CT meaning Slicer's terminology gives a segment's name
        ("T12 vertebra", 6),
        ("vertebrae_L3", 3),  # TotalSegmentator's file names
        ("L 1", 1),
        ("L-1", 1),
        ("l_1", 1),
        ("L01", 1),
        ("Th12", 6),
        ("th 9", 11),
        ("Sacrum", 7),
        ("unnamed 2", 22),
    ],
)
def test_other_spellings_of_a_vertebras_name_are_that_vertebra(name, vid):
    """helper-110: a segment Slicer's terminology named "L3 vertebra" (and "L 1", "L-1", "L01", "Th12") was left out
    of the classification as no vertebra's name."""
    from bonescreen.labels import vertebra_id

    assert vertebra_id(name) == vid


@pytest.mark.parametrize("name", ["L0", "L7", "C7", "junk", "Segment_1", "L 1 2", "vertebra", "L3 vertebral body x"])
def test_names_of_no_vertebra_stay_unknown(name):
    from bonescreen.labels import vertebra_id

    assert vertebra_id(name) is None


def test_a_map_of_many_structures_read_as_a_mask_is_said_to_be_not_an_image_turned_round(shared_data):
    """helper-110: TotalSegmentator's whole map of the T11-T12 series (organs, muscles, vessels beside the two
    vertebrae) read with the ids 'mask' was taken for an image with its front and back swapped, the first line of the
    status. The mask holding far more than a spine's bone is said instead, with the ids to read it with."""
    import numpy as np

    from bonescreen.io import load_ct
    from bonescreen.io.writers import read_labels_nifti
    from bonescreen.label_schemes import MASK_SCHEME
    from bonescreen.orientation_check import ARCHES_IN_FRONT, front_and_back_swapped
    from bonescreen.pipeline import Screener
    from bonescreen.pipeline.screener import overfull_mask

    volume = load_ct(shared_data / "totalseg-t11t12-dicom")
    labels = shared_data / "totalseg-t11t12-dicom-labels.nii.gz"
    everything = read_labels_nifti(volume, labels, scheme=MASK_SCHEME) > 0
    assert front_and_back_swapped(volume.hu, everything, volume.spacing), "precondition: the cue misreads this mask"
    seg = Screener(device="cpu").name_mark(volume, everything)
    assert (
        seg.notes[0].startswith("the mask holds")
        and "read with its own ids (TotalSegmentator's: totalseg" in (seg.notes[0])
    )
    assert not any(n.startswith(ARCHES_IN_FRONT) or "front and back look swapped" in n for n in seg.notes)
    assert not seg.certain
    # MS-Net's own mark is not told to be read "with its own ids" (review, helper-112)
    assert not Screener(device="cpu").name_mark(volume, everything, users_mask=False).notes[0].startswith("the mask")
    # the vertebrae alone (its ids read as TotalSegmentator's) are a spine's bone: no such note
    spine = read_labels_nifti(volume, labels, scheme="totalseg") > 0
    assert overfull_mask(spine, volume.spacing) is None
    assert overfull_mask(np.zeros_like(spine), volume.spacing) is None
