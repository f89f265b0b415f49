"""What ``evaluate`` and ``real_ct.py`` say of the vertebrae found on a CT labelled for some vertebrae only."""

from __future__ import annotations

from bonescreen.labelled_eval import found_text


def test_the_found_list_of_a_ct_whose_given_vertebrae_no_vertebra_found_lies_within():
    """helper-86: a sacrum-only map printed "0 of 0 vertebrae found named as given ( and 7 not labelled; given S1)"."""
    row = {"partial": True, "found": [{"name": n, "truth": None} for n in ("S1", "L5", "L4")]}
    assert found_text(row) == "none mostly within the given vertebrae; 3 other vertebrae found, not labelled"
    row["found"][0]["truth"] = "S1"
    # (helper-111: "T12 and 13 not labelled" read as the names T12 and T13)
    assert found_text(row) == "S1; 2 other vertebrae found, not labelled"
    row["found"][1]["truth"] = "L5"
    assert found_text(row) == "S1, L5; 1 other vertebra found, not labelled"
    assert found_text({"partial": False, "found": []}) == "none"
