"""What users read: the grade as every front end shows it."""

from bonescreen.messages import grade_text


def test_grade_text_marks_a_doubted_grade_and_leaves_an_unmeasured_body_empty():
    assert grade_text(None) == "" and grade_text({"genant_grade": None}) == ""
    assert grade_text({"genant_grade": 0, "grade_doubt": None}) == "0"
    assert grade_text({"genant_grade": 2, "grade_doubt": {"grade": 1, "reason": "within 1 SD of 25 %"}}) == "2?"
