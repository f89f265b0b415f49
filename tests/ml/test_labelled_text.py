"""What ``evaluate`` and ``real_ct.py`` say of the vertebrae found on a CT labelled for some vertebrae only."""

from __future__ import annotations

from bonescreen.labelled_eval import found_text


def test_the_found_list_of_a_ct_whose_given_vertebrae_no_vertebra_found_lies_within():
    """helper-86: a sacrum-only map printed "0 of 0 vertebrae found named as given ( and 7 not labelled; given S1)"."""
    row = {"partial": True, "found": [{"name": n, "truth": None} for n in ("S1", "L5", "L4")]}
    assert found_text(row) == "none mostly within the given vertebrae; 3 not labelled"
    row["found"][0]["truth"] = "S1"
    assert found_text(row) == "S1 and 2 not labelled"
    assert found_text({"partial": False, "found": []}) == "none"
