"""What users read: the grade as every front end shows it."""

from bonescreen.messages import grade_text, users_naming_rule


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
