"""Labels that do not sit on the CT's bone (another scan's, or this one's in another orientation, on the same
grid) are flagged on every level they touch, first among the overall reasons, and the bone status says so."""

import json

import numpy as np
import pytest

from bonescreen.io.volume import CTVolume
from bonescreen.mask_fit import off_bone
from bonescreen.messages import headline
from bonescreen.pipeline import Screener
from bonescreen.pipeline.classify import OFF_BONE_NULLED


@pytest.fixture(scope="module")
def case_volume(small_case):
    return CTVolume(small_case.hu, small_case.spacing, np.diag([*small_case.spacing[::-1], 1.0]), None)


def _misplaced(levels: np.ndarray) -> dict[str, np.ndarray]:
    """The same labels swapped in x and y, and flipped front to back: on the grid, off the spine."""
    return {
        "swapped": np.ascontiguousarray(levels.transpose(0, 2, 1)),
        "flipped": np.ascontiguousarray(levels[:, ::-1]),
    }


def test_labels_on_the_bone_pass_and_misplaced_ones_are_named(small_case):
    assert off_bone(small_case.hu, small_case.levels) == {}
    for how, labels in _misplaced(small_case.levels).items():
        off = off_bone(small_case.hu, labels, [1, 2, 3, 4, 5])
        assert sorted(off) == [1, 2, 3, 4, 5], how
        assert off[3].startswith("the labels of L3 do not sit on bone: their rim reads")


def test_a_real_crops_labels_pass_and_flipped_they_do_not(shared_data):
    from bonescreen.data.labelled import builtin_real_cases

    case = next(c for c in builtin_real_cases() if c.name == "tptbox-l3-crop")
    volume = case.load_volume()
    truth = case.load_labels(volume)
    assert off_bone(volume.hu, truth) == {}
    assert sorted(off_bone(volume.hu, np.ascontiguousarray(truth[:, ::-1]))) == sorted(
        int(k) for k in np.unique(truth) if k
    )


def test_classifying_misplaced_labels_says_so_first(case_volume, small_case):
    screener = Screener(device="cpu")
    fitting = screener.classify(case_volume, small_case.levels)
    assert not any("do not sit on bone" in r for r in fitting["overall"]["reasons"])
    result = screener.classify(case_volume, _misplaced(small_case.levels)["swapped"])
    overall = result["overall"]
    assert overall["uncertain"] and overall["reasons"][0].startswith(
        "the labels of L1, L2, L3, L4, L5 do not sit on bone"
    )
    # every level off the bone: no vBMD and no bone status rest on them (helper-32: "Osteoporosis?" from vBMD 79)
    assert overall["bone_status"] is None and overall["vbmd_mg_cm3"] is None
    assert overall["labels_off_bone"] == ["L1", "L2", "L3", "L4", "L5"]
    # ...nor any overall figure: no network call, no HU, no pie (helper-33: the pie and the HU were still shown)
    assert overall["probabilities"] is None and overall["prediction"] is None and overall["levels_used"] == []
    assert overall["trabecular_hu"] is None and overall["hu_category"] is None
    for lv in result["levels"]:
        assert lv["uncertain"] and lv["reasons"][0].startswith(f"the labels of {lv['name']} do not sit on bone")
        # ...and no figure of it, nor another flag read from those figures (helper-36: levels[] kept their HU,
        # probabilities and a Genant grade, with flags about them)
        assert len(lv["reasons"]) == 1
        assert all(lv[key] is None for key in OFF_BONE_NULLED), {k: lv[k] for k in OFF_BONE_NULLED}
    line, cls = headline(overall)
    assert line.startswith("No bone status: the labels do not sit on") and cls is None
    # the report shows no class for them either (helper-35: "L1 slice 82: Osteoporosis (flagged)", red HU bars)
    from bonescreen.labels import CLASS_TITLES
    from bonescreen.report import report_figure

    fig = report_figure(case_volume.hu, _misplaced(small_case.levels)["swapped"], small_case.spacing, result)
    said = " ".join([t.get_text() for ax in fig.axes for t in (ax.title, *ax.texts)] + [fig._suptitle.get_text()])
    assert "labels off the bone" in said and "no overall call" in said
    assert not any(title in said for title in CLASS_TITLES.values())
    # one level off: left out of the averages and the status, which is unconfirmed
    part = small_case.levels.copy()
    part[part == 2] = 0
    part[_misplaced(small_case.levels)["swapped"] == 2] = 2
    result = screener.classify(case_volume, part)
    overall = result["overall"]
    assert overall["labels_off_bone"] == ["L2"]
    assert "L2" not in overall["vbmd_levels_used"] and "L2" not in overall["levels_used"]
    # ...and it moves no other level's heights nor grade (helper-37: with L1 and L2 off the bone, L3's unchanged
    # labels read 26.5/32.4/26.5 mm against 25/25/25, and L4 got a grade 1): they are measured without it
    truth = {lv["name"]: lv["fracture"] for lv in fitting["levels"]}
    for lv in result["levels"]:
        # (L1, whose only neighbour in view was L2, is graded on its shape alone now: its grade may differ)
        if lv["name"] in ("L3", "L4", "L5") and lv["fracture"] is not None and truth[lv["name"]] is not None:
            assert lv["fracture"]["genant_grade"] == truth[lv["name"]]["genant_grade"], lv["name"]
            for key in ("height_anterior_mm", "height_middle_mm", "height_posterior_mm"):  # (the axis, from one
                # body fewer, moves a little)
                assert abs(lv["fracture"][key] - truth[lv["name"]][key]) <= 0.5, (lv["name"], key)
    assert overall["bone_status"]["basis"].endswith("unconfirmed: the labels of L2 do not sit on bone")


def test_reasons_name_the_classes_in_words():
    """A close call says "low bone mass", not the id low_bone_mass (as every other reason does)."""
    from bonescreen.pipeline.classify import _close_call

    said = _close_call(np.array([0.45, 0.44, 0.11]))
    assert said == "close call between normal bone mass (0.45) and low bone mass (0.44)"


def test_the_command_line_says_why_labels_off_the_bone_give_no_status(small_case, small_case_files, tmp_path, capsys):
    """helper-33: with every label off the bone report.png said "No bone status: ..." and the command line printed
    no headline at all."""
    import nibabel as nib

    from bonescreen.cli import main
    from bonescreen.io import load_ct

    ct = small_case_files / "nifti" / "ct.nii.gz"
    volume = load_ct(ct)
    flipped = volume.to_source(_misplaced(small_case.levels)["swapped"])
    nib.save(nib.Nifti1Image(flipped.astype(np.uint8), volume.source.affine), tmp_path / "off.nii.gz")
    argv = [
        "screen",
        str(ct),
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
        "--labels",
        str(tmp_path / "off.nii.gz"),
    ]
    assert main(argv) == 1  # written, but no result: a script can tell (helper-38: exit 0)
    out = capsys.readouterr().out
    assert "No bone status: the labels do not sit on this CT's bone" in out
    assert "overall BCC-Net" not in out  # no network call rests on labels off the bone either
    # nor a level's figures (helper-34: "L1: osteoporosis (p=0.84), -41 HU")
    assert "L3: labels off the bone, no figure means anything UNCERTAIN" in out and "(p=" not in out
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["overall"]["prediction"] is None and (tmp_path / "o" / "report.png").exists()
    assert all(lv["probabilities"] is None and lv["fracture"] is None for lv in result["levels"])


def test_labels_of_another_ct_on_the_same_grid_are_not_blamed_on_the_cts_orientation(small_case):
    """helper-114: the case's own map moved toward the front (40 voxels on the example CT), standing in for another
    patient's map on a same-size grid, was said to be off the bone, but the first flag blamed the CT's orientation
    ("front and back look swapped"), sending the user to fix the wrong file. Real BCC-Net on the phantom."""
    import numpy as np

    from bonescreen.io.volume import volume_from_ijk
    from bonescreen.messages import WITHHELD_ORIENTATION
    from bonescreen.pipeline import Screener

    volume = volume_from_ijk(small_case.hu.astype(np.float32).transpose(2, 1, 0), small_case.affine, "p", None, "p")
    moved = np.roll(small_case.levels, -100, axis=1)  # rows run from the front to the back: 70 mm forward
    overall = Screener(device="cpu").classify(volume, moved)["overall"]
    assert overall["labels_off_bone"] == ["L1", "L2", "L3", "L4", "L5"], "precondition: every level off the bone"
    assert overall["reasons"][0].startswith("the labels of L1, L2, L3, L4, L5 do not sit on bone")
    assert not any("front and back look swapped" in r for r in overall["reasons"])
    assert overall["bone_status_withheld"] != WITHHELD_ORIENTATION


def test_labels_flipped_head_to_feet_are_not_blamed_on_the_cts_orientation(small_case):
    """helper-115: TotalSegmentator's map of the example CT flipped head to feet (same affine) was off the bone, but
    a flag blamed the CT ("the image's head and feet look swapped ... check the file's orientation"). Labels on none
    of the CT's bone say nothing of the CT's orientation; the flag that they are off the bone says what is wrong."""
    import numpy as np

    from bonescreen.io.volume import volume_from_ijk
    from bonescreen.pipeline import Screener

    volume = volume_from_ijk(small_case.hu.astype(np.float32).transpose(2, 1, 0), small_case.affine, "p", None, "p")
    flipped = small_case.levels[::-1].copy()
    overall = Screener(device="cpu").classify(volume, flipped)["overall"]
    # L3 lands on L3's place flipped: four levels of five off the bone (most of them), which labels made on this
    # CT's anatomy are not, whatever its header says
    assert overall["labels_off_bone"] == ["L1", "L2", "L4", "L5"], "precondition"
    assert not any("head and feet look swapped" in r or "names run upside down" in r for r in overall["reasons"])
    assert overall["reasons"][0].startswith("the labels of L1, L2, L4, L5 do not sit on bone")
