"""What users read: the grade as every front end shows it."""

from bonescreen.messages import grade_text, overall_row_basis, users_naming_rule


def test_grade_text_marks_a_doubted_grade_and_leaves_an_unmeasured_body_empty():
    assert grade_text(None) == "" and grade_text({"genant_grade": None}) == ""
    assert grade_text({"genant_grade": 0, "grade_doubt": None}) == "0"
    assert grade_text({"genant_grade": 2, "grade_doubt": {"grade": 1, "reason": "within 1 SD of 25 %"}}) == "2?"


def test_the_users_naming_rule_keeps_bonescreens_rule_beside_it_once():
    rule = "counted up from the sacrum (lowest vertebra: widest)"
    changed = users_naming_rule(rule)
    assert changed == f"names changed by the user (BoneScreen's: {rule})"
    assert users_naming_rule(changed) == changed  # a second shift does not nest it
    assert users_naming_rule(None) == users_naming_rule("given by the user (verse ids)") == "names changed by the user"


def test_the_naming_notes_are_marked_as_bonescreens_once_the_user_renames():
    """helper-34: after the user's renaming (names taken as certain) the notes still said "level names are
    uncertain" as if of the user's names."""
    from bonescreen.messages import BEFORE_RENAMING, users_naming_notes

    notes = ["level names are uncertain: neither the sacrum nor ribs were found to count from"]
    marked = users_naming_notes(notes)
    assert marked == [BEFORE_RENAMING + notes[0]] and users_naming_notes(marked) == marked  # once
    # said of any change of names: a fill with an unnamed id was called a "renaming" (stop 54)
    assert "renaming" not in marked[0] and "changed the names" in marked[0]


def test_a_level_flag_that_is_an_overall_flag_too_is_said_once_with_its_level():
    """A clean-clone trial (stop 38): with one level classified (the three-slice series) every flag of L1 was an
    overall flag too, and the report, the CLI and the panels printed each twice ("UNCERTAIN: close call ..." and
    "L1: close call ...")."""
    from bonescreen.messages import user_messages

    close = "close call between low bone mass (0.46) and normal bone mass (0.33)"
    result = {
        "overall": {"reasons": [close, "the overall result rests on one level (L1)"]},
        "levels": [
            {"name": "L1", "reasons": [close, "body heights not measured"]},
            {"name": "L2", "reasons": []},
        ],
        "segmentation": {
            "naming_rule": "top vertebra in view taken as L1 (no sacrum or ribs to count from)",
            "naming_certain": False,
            "notes": ["level names are uncertain"],
        },
    }
    lines = user_messages(result)
    assert lines == [
        f"UNCERTAIN: L1: {close}",
        "UNCERTAIN: the overall result rests on one level (L1)",
        "names: top vertebra in view taken as L1 (no sacrum or ribs to count from)",
        "note: level names are uncertain",
        "L1: body heights not measured",
    ]
    assert sum(close in line for line in lines) == 1
    # an overall flag that names its level ("L1: <the level's flag>") is said once too (helper-104: L1's HU unlike
    # its neighbour's, printed as "UNCERTAIN: L1: ..." and again as "L1: ...")
    unlike = "trabecular HU 86 lies 125 HU below its neighbour's (L2 210): one of the two reads wrong"
    result["overall"]["reasons"].append(f"L1: {unlike}")
    result["levels"][0]["reasons"].append(unlike)
    result["levels"][1]["reasons"].append(unlike.replace("86", "210"))
    lines = user_messages(result)
    assert sum(unlike in line for line in lines) == 1 and f"UNCERTAIN: L1: {unlike}" in lines
    assert f"L2: {unlike.replace('86', '210')}" in lines


def test_every_front_end_says_how_the_levels_were_named():
    """A clean-clone trial (stop 38): with the user's labels nothing on screen said where the names came from
    (given by the user, BoneScreen's own unedited labels, counted from the sacrum); result.json alone held it.
    The naming rule is now a line of the messages that the CLI, napari, Slicer and report.png all show."""
    from bonescreen.messages import user_messages

    given = {"overall": {"reasons": []}, "levels": [], "segmentation": {"naming_rule": "given by the user"}}
    assert user_messages(given) == ["names: given by the user"]
    counted = {"segmentation": {"naming_rule": "counted up from the sacrum (lowest vertebra: sacroiliac joints)"}}
    counted["segmentation"]["naming_certain"] = True
    assert user_messages(counted) == ["names: counted up from the sacrum (lowest vertebra: sacroiliac joints)"]
    assert user_messages({"overall": {"reasons": []}, "levels": []}) == []  # no naming: no line


def test_the_overall_rows_basis_names_the_levels_of_each_average():
    """napari's overall row showed the network's call and HU of L1+L2 beside vBMD of L1-L4, said only in
    tooltips (stop 55): the sentence under the table names both sets, and only the averages there are."""
    overall = {
        "levels_used": ["L1", "L2"],
        "probabilities": {"normal": 0.2, "low_bone_mass": 0.7, "osteoporosis": 0.1},
        "vbmd_levels_used": ["L1", "L3", "L4"],  # L2 fractured: left out of vBMD
        "vbmd_mg_cm3": 97.0,
    }
    said = overall_row_basis(overall)
    assert "call and HU of L1+L2" in said and "vBMD and ACR of L1+L3+L4" in said
    assert "vBMD" not in overall_row_basis({**overall, "vbmd_mg_cm3": None})  # no density: not said
    assert overall_row_basis({"levels_used": [], "probabilities": None}) == ""  # nothing classified


def test_the_segment_step_says_an_orientation_doubt_first_also_once_the_user_renamed():
    """helper-101: "Found 5 vertebrae ... then classify" came before the note that the spine lies in the front of the
    body. The orientation's notes (front and back, upside down, names reversed; also as marked once the user renamed
    the vertebrae) come before the CT's flags and the other notes, and the status's first line says so."""
    import numpy as np

    from bonescreen.messages import (
        ORIENTATION_FIRST,
        segmentation_done,
        segmentation_messages,
        users_naming_notes,
    )
    from bonescreen.orientation_check import ARCHES_IN_FRONT, NAMES_REVERSED, UPSIDE_DOWN, orientation_notes

    labels = np.zeros((3, 4, 4), np.uint8)
    labels[1, 1:3, 1:3] = 1
    other = "the level names are not confirmed"
    for doubt in (f"{ARCHES_IN_FRONT} on 9 of 9 slices", f"{UPSIDE_DOWN}: a sacrum at the top", f"{NAMES_REVERSED}: x"):
        for notes in ([other, doubt], users_naming_notes([other, doubt])):
            assert orientation_notes(notes) == [notes[1]]
            said = segmentation_messages(["no tube voltage (KVP) in the header"], notes, ["read as LPS"])
            assert said == [notes[1], "no tube voltage (KVP) in the header", notes[0], "read as LPS"]
            first, found = segmentation_done(labels, "rule", "Correct the mask", notes).split("\n")
            assert first == ORIENTATION_FIRST and found.startswith("Found 1 vertebra (L1); lumbar: L1 (rule)")
    assert segmentation_done(labels, "rule", "Correct the mask", [other]).startswith("Found 1 vertebra (L1)")
    assert segmentation_messages(["flag"], [other], []) == ["flag", other]
