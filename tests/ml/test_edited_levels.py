"""Which vertebrae a user has edited: a stroke on one vertebra leaves the others MS-Net's mark as it came."""

from __future__ import annotations

import numpy as np
from test_noise import SPACING, spine_in_fat  # three lumbar bodies whose labels fill the discs, as MS-Net's mark

from bonescreen.io.volume import volume_from_ijk
from bonescreen.labels import edited_levels, level_digests, renamed_levels


def test_a_stroke_on_one_vertebra_edits_that_one_only():
    labels = np.zeros((6, 8, 8), np.uint8)
    labels[1:3, 2:6, 2:6] = 1
    labels[3:5, 2:6, 2:6] = 2
    labels[5, 2:6, 2:6] = 7
    made = level_digests(labels)
    assert edited_levels(made, labels) == []
    stroke = labels.copy()
    stroke[5, 2, 2] = 0  # one voxel of the sacrum erased
    assert edited_levels(made, stroke) == [7]
    grown = labels.copy()
    grown[2, 1, 3] = 1  # L1 painted one voxel larger
    assert edited_levels(made, grown) == [1]
    # renamed, not edited: the names change, the voxels do not (helper-66: "All names one down" made every
    # vertebra the user's, each read as drawn)
    renamed = np.where(labels == 2, 3, labels)  # L2 renamed L3
    assert edited_levels(made, renamed) == [] and renamed_levels(made, renamed) == {3: 2}
    shifted = np.where(labels == 1, 6, np.where(labels == 2, 1, labels))  # all one up: L1 -> T12, L2 -> L1
    assert edited_levels(made, shifted) == [] and renamed_levels(made, shifted) == {6: 1, 1: 2}
    renamed[3, 2, 2] = 0  # and a voxel of the renamed one erased: edited, no longer told renamed by its voxels
    assert edited_levels(made, renamed) == [2, 3] and renamed_levels(made, renamed) == {}  # L2 gone, L3 drawn
    removed = np.where(labels == 1, 0, labels)
    assert edited_levels(made, removed) == [1] and renamed_levels(made, removed) == {}
    assert edited_levels({str(k): v for k, v in made.items()}, labels) == []  # keys as JSON stores them


def test_levels_the_user_did_not_edit_are_read_as_msnets_mark():
    """helper-63: erasing two voxels of the sacrum made the whole mask the user's, every body was read as drawn
    (the discs MS-Net's mark fills no longer cut off), and an unfractured L1 got grade 1. Three bodies whose labels
    fill half of each disc, as MS-Net's mark does: with L1 edited and L2, L3 not, L2 and L3 keep the heights of
    the unchecked mark and its caveat; L1 is read as drawn, as on a fully checked mask."""
    from bonescreen.pipeline import Screener

    hu, labels = spine_in_fat(15.0)
    volume = volume_from_ijk(hu.transpose(2, 1, 0), np.diag([-1.5, -1.5, 3.0, 1.0]), "nifti", None, "edited")
    screener = Screener(device="cpu")

    def heights(mask_checked):
        result = screener.classify(volume, labels, mask_checked=mask_checked)
        walls = ("height_anterior_mm", "height_middle_mm", "height_posterior_mm")
        return {lv["name"]: [lv["fracture"][w] for w in walls] for lv in result["levels"]}, result["overall"]

    unchecked, unchecked_overall = heights(False)
    checked, _ = heights(True)
    assert checked["L2"] != unchecked["L2"]  # the case this is about: the two readings differ (36 mm against 27)
    nothing_lumbar, overall = heights([])  # a stroke on a vertebra that is not lumbar (the sacrum)
    assert nothing_lumbar == unchecked and overall["bone_status"] == unchecked_overall["bone_status"]
    l1_edited, overall = heights([1])
    assert l1_edited["L1"] == checked["L1"]
    assert l1_edited["L2"] == unchecked["L2"] and l1_edited["L3"] == unchecked["L3"]
    assert "fractures of L2, L3 looked for on MS-Net's mask, not yet checked" in overall["bone_status"]["basis"]
    _, overall = heights([1, 2, 3])
    assert "MS-Net's mask" not in overall["bone_status"]["basis"]
    assert SPACING == (3.0, 1.5, 1.5)  # the grid the affine above gives


def test_names_that_skip_a_vertebra_or_run_the_wrong_way_are_flagged():
    """helper-63: T12 renamed L1 below T11 was classified as "T11, L1" without a word. Two vertebrae next to each
    other whose names skip one, or run upward, are flagged; one left out of the labels (a gap of a body's height)
    or an unnamed vertebra between them is no such sequence."""
    from bonescreen.labels import name_gaps

    spacing = (3.0, 1.0, 1.0)

    def spine(*names_top_down, gap_after=None):
        ids = {"T11": 8, "T12": 6, "L1": 1, "L2": 2, "L3": 3, "L4": 4, "L5": 5, "L6": 10, "S1": 7, "unnamed 1": 21}
        vertebrae = np.zeros((60, 4, 4), np.uint8)
        z = 58
        for i, name in enumerate(names_top_down):
            vertebrae[z - 7 : z + 1, 1:3, 1:3] = ids[name]  # 24 mm of vertebra, then 6 mm of disc
            z -= 10 + (10 if gap_after == i else 0)
        return vertebrae

    assert name_gaps(spine("T11", "T12", "L1"), spacing) == []
    assert name_gaps(spine("T11", "L1"), spacing) == ["T11 lies next to L1, with no T12 between them: check the names"]
    upward = "L1 lies above T12: their names run the wrong way; check the names"
    assert name_gaps(spine("L1", "T12"), spacing) == [upward]
    assert name_gaps(spine("L1", "L3", gap_after=0), spacing) == []  # L2 left out: 36 mm apart
    assert name_gaps(spine("T12", "unnamed 1", "L2"), spacing) == []
    assert name_gaps(spine("L4", "L6"), spacing) == ["L4 lies next to L6, with no L5 between them: check the names"]
    assert name_gaps(spine("L5", "S1"), spacing) == [] and name_gaps(spine("L6", "S1"), spacing) == []


def test_a_skipped_name_reaches_the_result():
    from bonescreen.pipeline import Screener

    hu, labels = spine_in_fat(15.0)
    vertebrae = np.where(labels == 1, 8, labels).astype(np.uint8)  # L1 named T11: T11 above L2, no T12 or L1
    volume = volume_from_ijk(hu.transpose(2, 1, 0), np.diag([-1.5, -1.5, 3.0, 1.0]), "nifti", None, "renamed")
    reasons = Screener(device="cpu").classify(volume, vertebrae)["overall"]["reasons"]
    assert "T11 lies next to L2, with no T12, L1 between them: check the names" in reasons


def test_a_vertebra_painted_without_a_name_is_said_to_be_left_out():
    """helper-64: an 'unnamed 1' painted below L3 was classified without a word."""
    from bonescreen.labels import UNNAMED_FIRST
    from bonescreen.pipeline import Screener

    hu, labels = spine_in_fat(15.0)
    vertebrae = labels.copy()
    vertebrae[0:2, 60:80, 67:94] = UNNAMED_FIRST  # below L3
    volume = volume_from_ijk(hu.transpose(2, 1, 0), np.diag([-1.5, -1.5, 3.0, 1.0]), "nifti", None, "painted")
    result = Screener(device="cpu").classify(volume, vertebrae)
    assert "unnamed 1 not classified: only L1-L5 are; rename it if lumbar" in result["input_notes"]


def test_shifting_all_names_keeps_the_sacrum_and_runs_through_l6():
    """helper-64: "All names one up" renamed the sacrum S1 -> L5 (the sacrum is found by its shape, not counted);
    and L6 (a sixth lumbar vertebra) stood still while its neighbours moved, and was listed below S1."""
    import pytest

    from bonescreen.errors import BoneScreenError
    from bonescreen.labels import VERTEBRA_NAMES, shift_names, spine_rank, vertebra_id

    names = ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    spine = np.array([vertebra_id(n) for n in names], np.uint8)[:, None]  # one row of voxels per vertebra

    def named(ids):
        return [VERTEBRA_NAMES[int(i)] for i in ids.ravel()]

    up = shift_names(spine, -1)
    assert named(up) == ["T11", "T12", "L1", "L2", "L3", "L4", "S1"]
    down = shift_names(spine, 1)
    assert named(down) == ["L1", "L2", "L3", "L4", "L5", "L6", "S1"]
    np.testing.assert_array_equal(shift_names(down, -1), spine)  # and back: L6 -> L5
    with pytest.raises(BoneScreenError, match=r"L6 shifted by 1 is beyond T1\.\.L6"):
        shift_names(down, 1)
    assert sorted(["S1", "L6", "unnamed 2", "L5", "T12"], key=spine_rank) == ["T12", "L5", "L6", "S1", "unnamed 2"]


def test_bodies_on_slices_too_far_apart_are_not_graded():
    """helper-66: 9 mm slices gave an unfractured L3 "grade 3" (loss 51 %) with no doubt; above 5 mm no body is
    graded (the grades' bands are narrower than the heights' uncertainty there), and each level says why."""
    from bonescreen.pipeline import Screener

    hu, labels = spine_in_fat(15.0)
    keep = slice(0, None, 2)  # every other 3 mm slice: 6 mm apart
    volume = volume_from_ijk(hu[keep].transpose(2, 1, 0), np.diag([-1.5, -1.5, 6.0, 1.0]), "nifti", None, "6 mm")
    result = Screener(device="cpu").classify(volume, labels[keep])
    for level in result["levels"]:
        assert level["fracture"] is None
        assert any("slices 6.0 mm apart, over the 5 mm at which" in r for r in level["reasons"]), level["reasons"]
    assert "vertebral fractures not assessed" in result["overall"]["bone_status"]["basis"]


def test_a_sixth_lumbar_vertebra_is_said_to_be_left_out():
    """helper-68: L5 renamed L6 was left out of the classification without a word (unnamed vertebrae had a note)."""
    from bonescreen.labels import vertebra_id
    from bonescreen.pipeline import Screener

    hu, labels = spine_in_fat(15.0)
    volume = volume_from_ijk(hu.transpose(2, 1, 0), np.diag([-1.5, -1.5, 3.0, 1.0]), "nifti", None, "L6")
    six = np.where(labels == 3, vertebra_id("L6"), labels).astype(np.uint8)  # the lowest body called L6
    result = Screener(device="cpu").classify(volume, six)
    assert [lv["name"] for lv in result["levels"]] == ["L1", "L2"]
    assert any("L6 not classified: only L1-L5 are" in n for n in result["input_notes"]), result["input_notes"]


def test_a_lumbar_level_deleted_between_two_kept_is_said_to_be_left_out(small_case):
    """helper-110: a vertebra the user deleted (or whose voxels were all erased) dropped out of the results without a
    word. Real BCC-Net on the phantom's levels with L3 (and then L2 and L3) removed."""
    from bonescreen.labels import missing_levels
    from bonescreen.messages import user_messages
    from bonescreen.pipeline import Screener

    assert missing_levels(small_case.levels) == []
    no_l3 = np.where(small_case.levels == 3, 0, small_case.levels).astype(np.uint8)
    assert missing_levels(no_l3) == [
        "L3 is not in the labels, between L2 and L4: not classified (a vertebra deleted or renamed, or its voxels all "
        "erased?)"
    ]
    two = np.where(np.isin(small_case.levels, (2, 3)), 0, small_case.levels).astype(np.uint8)
    assert [n[:36] for n in missing_levels(two)] == [
        "L2 is not in the labels, between L1 ",
        "L3 is not in the labels, between L1 ",
    ]
    # L1 gone at the end is no gap: the labels may start at L2 (a scan that starts there)
    assert missing_levels(np.where(small_case.levels == 1, 0, small_case.levels)) == []
    volume = volume_from_ijk(
        small_case.hu.astype(np.float32).transpose(2, 1, 0), small_case.affine, "phantom", None, "phantom"
    )
    result = Screener(device="cpu").classify(volume, no_l3)
    assert [lv["name"] for lv in result["levels"]] == ["L1", "L2", "L4", "L5"]
    assert any("L3 is not in the labels, between L2 and L4" in m for m in user_messages(result))
