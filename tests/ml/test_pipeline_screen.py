"""The screening pipeline with the bundled weights: phantoms the training never saw, real CT, bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bonescreen.checkpoint import file_sha256
from bonescreen.cli import main
from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct
from bonescreen.labels import CLASS_NAMES
from bonescreen.metrics import dice_score
from bonescreen.phantom import PhantomConfig, make_case
from bonescreen.phantom.write import write_case
from bonescreen.pipeline import Cancelled, Screener
from bonescreen.weights import default_weights

UNSEEN_SEED = 5150  # training used seeds 1000 (train) and 2000 (held-out test)


@pytest.fixture(scope="module")
def screener():
    return Screener(device="cpu")


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    case = make_case(UNSEEN_SEED, 0, PhantomConfig(thickness=2.5))
    root = tmp_path_factory.mktemp("unseen")
    write_case(case, root, "dicom")
    return case, root


def test_segment_unseen_phantom(screener, unseen):
    case, root = unseen
    volume = load_ct(root / "dicom")
    seg = screener.segment(volume)
    assert seg.labels.shape == volume.shape and seg.labels.dtype == np.uint8
    assert dice_score(seg.labels > 0, case.levels > 0) > 0.9
    for lv in range(1, 6):
        assert dice_score(seg.labels == lv, case.levels == lv) > 0.85, f"L{lv}"
    assert "sacrum" in seg.rule and seg.certain
    assert seg.level_names() == ["L1", "L2", "L3", "L4", "L5"]


def test_classify_takes_the_users_labels(screener, unseen):
    case, root = unseen
    volume = load_ct(root / "dicom")
    result = screener.classify(volume, case.levels)
    assert [lv["name"] for lv in result["levels"]] == ["L1", "L2", "L3", "L4", "L5"]
    for lv in result["levels"]:
        assert sum(lv["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert lv["prediction"] in CLASS_NAMES
        # this phantom's texture thins out in patches: one body's slice medians lie up to 70 HU apart, and the
        # ROI (hu.trabecular_roi, hu.consistent_slices) may read a level 20-25 HU off the whole core's mean
        assert lv["trabecular_hu"] == pytest.approx(case.trabecular_hu[lv["name"]], abs=25)
    assert result["overall"]["levels_used"] == ["L1", "L2"]
    # an edit changes what is classified: erase L1, and cut L2 down to its body's left half
    edited = case.levels.copy()
    edited[edited == 1] = 0
    cols = np.nonzero((edited == 2).any(axis=(0, 1)))[0]
    edited[:, :, cols.mean().astype(int) :][edited[:, :, cols.mean().astype(int) :] == 2] = 0
    changed = screener.classify(volume, edited)
    assert [lv["name"] for lv in changed["levels"]] == ["L2", "L3", "L4", "L5"]
    l2_before = next(lv for lv in result["levels"] if lv["name"] == "L2")["probabilities"]
    l2_after = changed["levels"][0]["probabilities"]
    assert l2_before != l2_after
    assert changed["overall"]["levels_used"] == ["L2", "L3", "L4", "L5"]


def test_bad_labels(screener, unseen):
    case, root = unseen
    volume = load_ct(root / "dicom")
    with pytest.raises(BoneScreenError, match="do not fit"):
        screener.classify(volume, case.levels[:-1])
    with pytest.raises(BoneScreenError, match=r"values 20, 300 are not level ids .allowed: 0 = background, 1-19"):
        levels = case.levels.astype(np.int32)
        screener.classify(volume, np.select([levels == 1, levels == 2], [20, 300], levels))
    # T12, the sacrum, unnamed vertebrae: taken as named, and L1-L5 are classified; none lumbar: said so
    with pytest.raises(BoneScreenError, match="no lumbar level"):
        screener.classify(volume, np.where(case.levels > 0, 6, 0))


def test_cancel_between_batches(screener, unseen):
    _, root = unseen
    volume = load_ct(root / "dicom")
    calls = []

    def progress(stage, done, total):
        calls.append(done)
        return done == 0  # let the first report pass, cancel at the next

    with pytest.raises(Cancelled):
        screener.segment(volume, progress)
    batch = screener.settings.batch_size(screener.device)
    assert batch == (4 if screener.device.type == "cpu" else 8)
    assert calls == [0, batch]  # cancelled after the first batch of slices


def test_other_grids(screener, tmp_path):
    """A 256x256 slice at 1.5 mm and 5 mm slices: resampled for the networks, labels back on the input grid."""
    import nibabel as nib
    from scipy import ndimage

    case = make_case(UNSEEN_SEED, 1, PhantomConfig(thickness=5.0, contrast_probability=0))
    hu = ndimage.zoom(case.hu.astype(np.float32), (1, 0.5, 0.5), order=1)
    truth = case.levels[:, ::2, ::2]
    affine = np.diag([-case.spacing[2] * 2, -case.spacing[1] * 2, case.spacing[0], 1.0])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(hu.transpose(2, 1, 0)), affine), tmp_path / "low.nii.gz")
    volume = load_ct(tmp_path / "low.nii.gz")
    assert volume.shape == truth.shape
    seg = screener.segment(volume)
    assert seg.labels.shape == truth.shape
    assert dice_score(seg.labels > 0, truth > 0) > 0.8
    assert {"L1", "L3", "L5"} <= set(seg.level_names())


def test_screen_command_outputs(unseen, tmp_path, capsys):
    _, root = unseen
    out = tmp_path / "out"
    assert main(["screen", str(root / "dicom"), "--out", str(out), "--device", "cpu"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert {"input", "device", "levels", "overall", "models", "timings_s"} <= set(result)
    lv = result["levels"][0]
    assert {"name", "slices", "probabilities", "prediction", "trabecular_hu", "hu_category"} <= set(lv)
    assert list(lv["probabilities"]) == list(CLASS_NAMES)
    assert {"probabilities", "prediction", "uncertain"} <= set(result["overall"])
    assert result["models"]["segmentation"]["sha256"] == file_sha256(default_weights("segmentation"))
    assert {"load", "segment", "classify"} <= set(result["timings_s"])
    recorded = result["segmentation"]["level_settings"]  # the split's constants in force, each with its source
    assert recorded["core_depth_mm"]["value"] == 6.0 and "Clouthier" in recorded["core_depth_mm"]["source"]
    assert recorded["rib_search_mm"]["value"] == [2.0, 45.0]
    assert "PatientID" in result["identifying_tags"]["seg.dcm"]
    for name in ("levels.nii.gz", "seg.dcm", "report.png"):
        assert (out / name).stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "L3:" in printed and "overall" in printed
    # the overall HU and its category, as the report gives them, and each level's category (helper-34)
    o = result["overall"]
    assert f"trabecular HU ({'+'.join(o['levels_used'])}): " in printed and f"{o['hu_category']} (HU" in printed
    assert f"{lv['hu_category']} (HU thresholds)" in printed.split(f"{lv['name']}:")[1].splitlines()[0]
    assert "BoneScreen^Phantom" not in printed and "case5150" not in printed  # no patient name or id printed


def test_screen_corrected_labels(unseen, tmp_path):
    _case, root = unseen
    out = tmp_path / "o1"
    assert (
        main(
            [
                "screen",
                str(root / "dicom"),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--labels",
                str(root / "levels.nii.gz"),
            ]
        )
        == 0
    )
    result = json.loads((out / "result.json").read_text())
    assert result["segmentation"]["source"] == "user" and len(result["levels"]) == 5


def test_screen_without_a_lumbar_level_says_why_no_seg_or_sr(screener, unseen, tmp_path, capsys):
    """A DICOM scan whose mask holds no lumbar level (here a corrected mask with T12 only) writes no SEG or SR,
    and result.json and the printed lines say why instead of leaving the files silently out."""
    from bonescreen.io.writers import write_labels_nifti

    case, root = unseen
    volume = load_ct(root / "dicom")
    only_t12 = np.where(case.levels == 1, 6, 0).astype(np.uint8)  # the L1 region, named T12
    labels = write_labels_nifti(volume, only_t12, tmp_path / "t12.nii.gz")
    out = tmp_path / "out"
    # written, but no result: exit 1, as for labels off the bone, so that a script can tell
    assert main(["screen", str(root / "dicom"), "--out", str(out), "--device", "cpu", "--labels", str(labels)]) == 1
    result = json.loads((out / "result.json").read_text())
    assert result["levels"] == [] and not (out / "seg.dcm").exists() and not (out / "sr.dcm").exists()
    assert any("seg.dcm and sr.dcm were not written" in n for n in result["output_notes"])
    assert "seg.dcm and sr.dcm were not written" in capsys.readouterr().out
    # every overall field of a classified scan, null or empty (helper-111: bone_status_withheld and labels_off_bone
    # were missing, a reader's KeyError)
    full = screener.classify(volume, case.levels)
    assert set(result["overall"]) == set(full["overall"])
    assert result["overall"]["bone_status_withheld"] is None and result["overall"]["labels_off_bone"] == []


def test_a_rerun_into_the_same_folder_leaves_no_earlier_output_and_keeps_the_users_labels(unseen, tmp_path):
    """Screening a NIfTI into a folder where a DICOM run wrote seg.dcm and sr.dcm left that other run's SEG and
    SR beside the new result.json (another CT's, perhaps another patient's). They are removed, with a note; the
    labels the user corrected in place and gives back (--labels OUT/levels.nii.gz) are never overwritten."""
    from bonescreen.io.writers import write_labels_nifti

    case, root = unseen
    out = tmp_path / "out"
    labels = root / "levels.nii.gz"
    assert main(["screen", str(root / "dicom"), "--out", str(out), "--device", "cpu", "--labels", str(labels)]) == 0
    assert (out / "seg.dcm").is_file() and (out / "sr.dcm").is_file()
    # the same CT as NIfTI: no SEG or SR from this run
    nifti = write_case(case, tmp_path / "nifti", "nifti") / "ct.nii.gz"
    assert main(["screen", str(nifti), "--out", str(out), "--device", "cpu", "--labels", str(labels)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert not (out / "seg.dcm").exists() and not (out / "sr.dcm").exists()
    assert sum("of an earlier run in this folder was removed" in n for n in result["output_notes"]) == 2
    # ... and says why this run wrote none (a NIfTI has no series UIDs for them to reference)
    assert any("written for DICOM input only" in n for n in result["output_notes"])
    assert result["outputs_sha256"]["levels.nii.gz"] == file_sha256(out / "levels.nii.gz")
    # the user corrects levels.nii.gz in the output folder (L5 taken out) and screens again without giving it
    # (helper-30: it was overwritten): it is kept under a new name, with a note
    corrected = np.where(case.levels == 5, 0, case.levels).astype(np.uint8)
    write_labels_nifti(load_ct(root / "dicom"), corrected, out / "levels.nii.gz")
    before = (out / "levels.nii.gz").read_bytes()
    assert main(["screen", str(nifti), "--out", str(out), "--device", "cpu", "--labels", str(labels)]) == 0
    kept = list(out.glob("levels.kept-*.nii.gz"))
    assert len(kept) == 1 and kept[0].read_bytes() == before
    result = json.loads((out / "result.json").read_text())
    assert any(kept[0].name in n and "edited?" in n for n in result["output_notes"])
    # ... and screens again with it: never overwritten
    write_labels_nifti(load_ct(root / "dicom"), corrected, out / "levels.nii.gz")
    before = (out / "levels.nii.gz").read_bytes()
    mine = out / "levels.nii.gz"
    assert main(["screen", str(root / "dicom"), "--out", str(out), "--device", "cpu", "--labels", str(mine)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert (out / "levels.nii.gz").read_bytes() == before
    assert [lv["name"] for lv in result["levels"]] == ["L1", "L2", "L3", "L4"]
    assert any("is the labels given" in n for n in result["output_notes"])
    assert (out / "seg.dcm").is_file()


def test_names_are_corrected_in_vertebrae_nii_gz_and_given_back(unseen, tmp_path, capsys):
    """helper-106: levels.nii.gz holds L1-L5 only (DESIGN.md), so a T12 taken for L1 could not be renamed from the
    command line. vertebrae.nii.gz holds every vertebra found with DESIGN.md's ids: renamed there (L1 called T12, T12
    T11, as a user who counts a thirteenth rib would) and given back, the names are the user's. Edited in place, a
    rerun keeps it under a new name with a command that works where the user ran (not the bare file name)."""
    import nibabel as nib

    from bonescreen.io.writers import own_labels

    _, root = unseen
    out = tmp_path / "a"
    assert main(["screen", str(root / "dicom"), "--out", str(out), "--device", "cpu"]) == 0
    result = json.loads((out / "result.json").read_text())
    img = nib.load(out / "vertebrae.nii.gz")
    every = np.asarray(img.dataobj)
    levels = np.asarray(nib.load(out / "levels.nii.gz").dataobj)
    assert {1, 2, 3, 4, 5, 6} <= set(np.unique(every).tolist())  # T12 too
    np.testing.assert_array_equal(np.where(every <= 5, every, 0), levels)
    assert result["outputs_sha256"]["vertebrae.nii.gz"] == file_sha256(out / "vertebrae.nii.gz")
    assert own_labels(out / "vertebrae.nii.gz")["edited"] == []  # MS-Net's mark, as named

    renamed = every.copy()
    renamed[every == 6], renamed[every == 1] = 8, 6
    nib.save(nib.Nifti1Image(renamed, img.affine, img.header), out / "vertebrae.nii.gz")  # edited in place
    assert own_labels(out / "vertebrae.nii.gz")["named_from"] == {8: 6, 6: 1}
    again = tmp_path / "b"
    assert main(["screen", str(root / "dicom"), "--out", str(again), "--labels", str(out / "vertebrae.nii.gz")]) == 0
    second = json.loads((again / "result.json").read_text())
    assert [lv["name"] for lv in second["levels"]] == ["L2", "L3", "L4", "L5"]
    assert second["segmentation"]["naming_rule"].startswith("names changed by the user")
    # the vertebrae given, lowest first (helper-106: null with --labels)
    given = second["segmentation"]["vertebrae"]
    assert given[-2:] == ["T12", "T11"] and given.index("L5") < given.index("L2")
    assert not (np.asarray(nib.load(again / "levels.nii.gz").dataobj) == 1).any()
    capsys.readouterr()
    # a rerun into the first folder keeps the edited map, and its note's command names the path
    assert main(["screen", str(root / "dicom"), "--out", str(out), "--device", "cpu"]) == 0
    kept = list(out.glob("vertebrae.kept-*.nii.gz"))
    assert len(kept) == 1 and (np.asarray(nib.load(kept[0]).dataobj) == 8).any()
    notes = json.loads((out / "result.json").read_text())["output_notes"]
    assert any(n.endswith(f"bonescreen screen INPUT --labels {kept[0]} --out NEW_FOLDER") for n in notes), notes


def test_a_run_stopped_while_writing_leaves_nothing_of_the_earlier_run(unseen, tmp_path, monkeypatch):
    """Ctrl-C while the outputs were written left the earlier run's result.json, then (helper-30) its report,
    SEG and SR, beside this run's new levels.nii.gz. Stopping is simulated by a KeyboardInterrupt from the
    report (a keypress cannot be timed in a test)."""
    import bonescreen.screen as screen_module

    _case, root = unseen
    out = tmp_path / "out"
    labels = root / "levels.nii.gz"
    assert main(["screen", str(root / "dicom"), "--out", str(out), "--device", "cpu", "--labels", str(labels)]) == 0

    def stopped(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(screen_module, "render_report", stopped)
    with pytest.raises(KeyboardInterrupt):
        screen_module.screen_file(root / "dicom", out, device="cpu", labels_path=labels)
    # this run's only, and its record of them (the next run removes them as a stopped run's, stop 63)
    assert sorted(p.name for p in out.iterdir()) == [
        screen_module.WRITING_RECORD,
        "levels.nii.gz",
        "seg.dcm",
        "sr.dcm",
        "vertebrae.nii.gz",
    ]
    assert not list(out.glob("levels.kept-*"))  # the earlier levels.nii.gz was BoneScreen's own: not kept


def test_screen_executable(unseen, tmp_path):
    """The installed entry point ends the process without Python's teardown: output must still be complete."""
    _, root = unseen
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "bonescreen", "screen", str(root / "dicom"), "--out", str(out), "--device", "cpu"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.rstrip().endswith(f"results written to {out}")  # stdout is a pipe: block-buffered
    assert json.loads((out / "result.json").read_text())["levels"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    bad = subprocess.run(
        [sys.executable, "-m", "bonescreen", "screen", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "missing" in bad.stderr and "no such file" in bad.stderr


def test_screen_bad_input(tmp_path, capsys):
    bad = tmp_path / "scan.dcm"
    bad.write_bytes(b"not dicom at all")
    assert main(["screen", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bonescreen: error:") and "scan.dcm" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["totalseg-t11t12-dicom", "pancreasct-slice/explicit_VR-UN.dcm", "dcmqi-ct3slice"])
def test_screen_real_ct_runs_to_the_end(shared_data, tmp_path, name):
    out = tmp_path / "real"
    # the T11-T12 series holds no lumbar level: written, but no result (exit 1)
    expected = 1 if name == "totalseg-t11t12-dicom" else 0
    assert main(["screen", str(shared_data / name), "--out", str(out), "--device", "cpu"]) == expected
    result = json.loads((out / "result.json").read_text())
    assert (out / "report.png").is_file() and (out / "levels.nii.gz").is_file()
    for lv in result["levels"]:
        if lv["trabecular_hu"] is not None:
            assert 0 < lv["trabecular_hu"] < 500  # plausible trabecular bone
    if name == "totalseg-t11t12-dicom":
        # no lumbar vertebra: the overall flag says so and which were found; the naming's notes (the disc
        # left out of the mark) stay notes, not flags
        assert result["overall"]["uncertain"] and not result["levels"]
        reasons = result["overall"]["reasons"]
        assert len(reasons) == 2 and reasons[0].startswith("no lumbar vertebra")
        assert reasons[1].startswith("vertebrae found:") and "T12" in reasons[1]
        assert any("disc" in n for n in result["segmentation"]["notes"])


def test_a_ct_without_orientation_gives_names_and_status_unconfirmed(screener, small_case_files, tmp_path):
    """helper-33: a NIfTI without qform and sform is read with nibabel's default axes, upside down or mirrored for
    all BoneScreen knows; the reader flagged it, but the names were called certain and the bone status confirmed.
    Read upside down, the names would run the wrong way: they are unconfirmed, and so is a status from density."""
    import nibabel as nib

    from bonescreen.messages import headline, status_confirmed

    src = nib.load(small_case_files / "nifti" / "ct.nii.gz")
    bare = nib.Nifti1Image(np.asarray(src.dataobj), None)
    bare.header.set_zooms(src.header.get_zooms())
    bare.header.set_qform(None, code=0)
    bare.header.set_sform(None, code=0)
    nib.save(bare, tmp_path / "bare.nii.gz")
    volume = load_ct(tmp_path / "bare.nii.gz")
    assert volume.orientation_unknown
    result, _, _ = screener.screen(volume)
    seg = result["segmentation"]
    assert not seg["naming_certain"] and any("the file states no orientation" in n for n in seg["notes"])
    status = result["overall"]["bone_status"]
    assert status is None or not status_confirmed(status)
    assert "Bone status:" not in headline(result["overall"])[0]  # a question or no status, never a sure call
    # the same CT with its orientation: the names stand
    assert not load_ct(small_case_files / "nifti" / "ct.nii.gz").orientation_unknown


def test_own_labels_given_back_keep_their_doubts_and_edited_vertebrae_are_the_users(screener, shared_data, tmp_path):
    """helper-39: a run's own levels.nii.gz, given back unedited as --labels, was taken as the user's labels: names the
    split could not confirm (the real L2-L4 crop has no landmark: its L2-L4 are named L1-L3) became certain, and the
    bone status lost its doubt. The file now carries the run's naming with its digests; unedited, the names stay
    flagged (given back once more, the rule is not nested). helper-64: one voxel edited in another tool made the
    whole map the user's (napari and Slicer check vertebra by vertebra): now the vertebra edited is the user's, the
    others stay MS-Net's and the names keep their doubt; a vertebra renamed makes the names the user's."""
    import nibabel as nib

    from bonescreen.io.writers import own_labels
    from bonescreen.pipeline.screener import OWN_LABELS_RULE
    from bonescreen.screen import screen_file

    ct = shared_data / "tptbox-l3-crop" / "sub-ct_label-22_ct.nii.gz"
    first = screen_file(ct, tmp_path / "a", screener=screener)
    assert first["segmentation"]["naming_certain"] is False
    rule = first["segmentation"]["naming_rule"]
    again = screen_file(ct, tmp_path / "b", labels_path=tmp_path / "a" / "levels.nii.gz", screener=screener)
    seg = again["segmentation"]
    assert seg["naming_certain"] is False and seg["naming_rule"] == f"{OWN_LABELS_RULE} ({rule})"
    assert any(n.startswith("the labels given are BoneScreen's own, unedited") for n in seg["notes"]), seg["notes"]
    overall = again["overall"]
    assert overall["uncertain"] and any("level names could not be confirmed" in r for r in overall["reasons"]), overall
    third = screen_file(ct, tmp_path / "c", labels_path=tmp_path / "b" / "levels.nii.gz", screener=screener)
    assert third["segmentation"]["naming_rule"] == seg["naming_rule"]

    # one voxel of the lowest vertebra edited (the extension kept, as nibabel keeps it): that one is the user's
    img = nib.load(tmp_path / "a" / "levels.nii.gz")
    stored = np.asarray(img.dataobj)
    data = stored.copy()
    ids = [int(v) for v in np.unique(data) if v]
    lowest = max(ids)  # named L1-L3 from the top
    data[tuple(np.argwhere(data == lowest)[0])] = 0
    edited = tmp_path / "edited.nii.gz"
    nib.save(nib.Nifti1Image(data, img.affine, img.header), edited)
    assert nib.load(edited).header.extensions  # the note is still there: only the digests tell
    assert own_labels(edited)["edited"] == [lowest]
    partly = screen_file(ct, tmp_path / "d", labels_path=edited, screener=screener)
    naming = partly["segmentation"]
    assert naming["naming_rule"] == rule and naming["naming_certain"] is False
    assert not any("unedited" in n for n in naming["notes"])
    assert f"BoneScreen's own labels with L{lowest} edited since they were written: that one read as drawn" in (
        " ".join(naming["notes"])
    )
    assert any("level names could not be confirmed" in r for r in partly["overall"]["reasons"])
    # written again by this run, the map keeps the edit: given back once more, the same vertebra is the user's
    assert own_labels(tmp_path / "d" / "levels.nii.gz")["edited"] == [lowest]

    # a vertebra renamed (its voxels under another id): the names are the user's, taken as given; the voxels stay
    # MS-Net's (helper-66: the whole map became the user's, where napari kept them MS-Net's); the top one renamed
    # T12 above L2 is flagged as a skipped name (helper-66: flagged in napari, not here)
    from bonescreen.messages import users_naming_rule

    renamed = np.where(stored == min(ids), 6, stored).astype(stored.dtype)  # the top one called T12
    nib.save(nib.Nifti1Image(renamed, img.affine, img.header), tmp_path / "renamed.nii.gz")
    assert own_labels(tmp_path / "renamed.nii.gz") == {
        "naming_rule": rule,  # as BoneScreen named them; the renaming is read from the ids
        "naming_certain": False,
        "edited": [],
        "renamed": True,
        "named_from": {6: min(ids)},
        "upside_down": None,  # the split's note that the image looked upside down: none here
    }
    users = screen_file(ct, tmp_path / "e", labels_path=tmp_path / "renamed.nii.gz", screener=screener)
    assert users["segmentation"]["naming_rule"] == users_naming_rule(rule)
    assert users["segmentation"]["naming_certain"] is True
    reasons = users["overall"]["reasons"]
    assert not any("level names could not be confirmed" in r for r in reasons)
    assert any("T12 lies next to L2, with no L1 between them" in r for r in reasons), reasons
    assert own_labels(tmp_path / "e" / "levels.nii.gz")["naming_rule"] == users_naming_rule(rule)


def test_own_labels_edited_in_another_tool_are_read_vertebra_by_vertebra(
    screener, small_case, small_case_files, tmp_path
):
    """helper-64: BoneScreen's own labels with one vertebra edited in another tool (the file's note kept) were the
    user's whole: every body was read as drawn. Here each vertebra carries a slice into the discs beside it, as
    MS-Net's mark fills them: read as MS-Net's, a body ends at its endplates; read as drawn, it is taller. A voxel
    of the sacrum edited leaves every lumbar body as MS-Net's; a voxel of L3 edited makes L3 alone the user's."""
    import nibabel as nib
    from scipy import ndimage

    from bonescreen.io import load_ct
    from bonescreen.io.writers import own_labels, write_labels_nifti
    from bonescreen.screen import screen_file

    ct = small_case_files / "nifti" / "ct.nii.gz"
    volume = load_ct(ct)
    spine = small_case.spine
    marked = np.where(spine == 0, ndimage.grey_dilation(spine, size=(3, 1, 1)), spine)
    naming = {"naming_rule": "counted up from the sacrum", "naming_certain": True}
    own = write_labels_nifti(volume, marked, tmp_path / "own.nii.gz", naming=naming)
    img = nib.load(own)
    stored = np.asarray(img.dataobj)

    def heights(path, out):
        result = screen_file(ct, tmp_path / out, labels_path=path, screener=screener)
        return {lv["name"]: lv["fracture"]["height_anterior_mm"] for lv in result["levels"]}

    def edited(vid, name):
        data = stored.copy()
        data[tuple(np.argwhere(data == vid)[0])] = 0  # one voxel erased
        nib.save(nib.Nifti1Image(data, img.affine, img.header), tmp_path / name)
        return tmp_path / name

    msnets = heights(own, "a")
    sacrum = edited(7, "sacrum.nii.gz")
    assert own_labels(sacrum)["edited"] == [7]
    assert heights(sacrum, "b") == msnets
    l3 = edited(3, "l3.nii.gz")
    assert own_labels(l3)["edited"] == [3]
    mixed = heights(l3, "c")
    assert mixed["L3"] > msnets["L3"] + 1.5  # read as drawn: the disc slices count
    assert {k: v for k, v in mixed.items() if k != "L3"} == {k: v for k, v in msnets.items() if k != "L3"}
    # a vertebra removed is said to be removed, not "read as drawn" (helper-67)
    data = np.where(stored == 5, 0, stored).astype(stored.dtype)
    nib.save(nib.Nifti1Image(data, img.affine, img.header), tmp_path / "no_l5.nii.gz")
    notes = screen_file(ct, tmp_path / "d", labels_path=tmp_path / "no_l5.nii.gz", screener=screener)["segmentation"]
    assert "BoneScreen's own labels with L5 removed; the others read as MS-Net's mask, not checked" in notes["notes"]
    # names the user had changed when the map was saved (napari) stay the user's, not "unedited (names changed ...)"
    from bonescreen.messages import users_naming_rule
    from bonescreen.pipeline.screener import own_labels_naming

    users = {**naming, "naming_rule": users_naming_rule(naming["naming_rule"])}
    saved = own_labels(write_labels_nifti(volume, marked, tmp_path / "users.nii.gz", naming=users))
    assert own_labels_naming(saved) == (users["naming_rule"], [])
    # shifted one down when saved (napari), shifted back since: BoneScreen's names again, with their doubt
    # (helper-68: read as the user's)
    from bonescreen.labels import shift_names

    down = shift_names(marked, 1)
    ids = np.array([v for v in np.unique(marked) if v], np.uint8)
    named_from = {int(new): int(old) for old, new in zip(ids, shift_names(ids, 1), strict=True) if new != old}
    shifted = write_labels_nifti(volume, down, tmp_path / "down.nii.gz", naming={**naming, "named_from": named_from})
    assert own_labels(shifted)["renamed"]
    img = nib.load(shifted)
    back = shift_names(np.asarray(img.dataobj), -1)
    nib.save(nib.Nifti1Image(back, img.affine, img.header), tmp_path / "back.nii.gz")
    again = own_labels(tmp_path / "back.nii.gz")
    assert not again["renamed"] and again["named_from"] == {} and again["edited"] == []


def test_automatic_ids_are_msnets_vertebrae_as_it_marked_them():
    """The one rule for ``screen``, napari and Slicer (helper-117: napari and Slicer wrote MS-Net's unedited mark as
    SEMIAUTOMATIC segments): the ids of MS-Net's mark the user neither edited nor renamed; none of the user's own."""
    from bonescreen.io.writers import automatic_ids

    held = np.array([[[0, 1, 2], [3, 4, 5]]], np.uint8)
    assert automatic_ids(held, {}) == {1, 2, 3, 4, 5}
    assert automatic_ids(held, {"edited": [3], "named_from": {5: 4}}) == {1, 2, 4}
    assert automatic_ids(held, None) == set()


def test_seg_segments_say_whether_a_user_took_part(unseen, tmp_path):
    """helper-80: every segment of seg.dcm was SEMIAUTOMATIC, a screen that no one touched included. DICOM PS3.3
    C.8.20.2: MS-Net's levels as it made them are AUTOMATIC ("calculated segment"); a level the user edited, or
    labels of the user's own, SEMIAUTOMATIC ("calculated segment with user assistance")."""
    import nibabel as nib
    import pydicom

    from bonescreen.labels import LEVEL_NAMES

    def algorithm_types(out):
        seg = pydicom.dcmread(out / "seg.dcm")
        return {s.SegmentLabel: s.SegmentAlgorithmType for s in seg.SegmentSequence}

    _case, root = unseen
    assert main(["screen", str(root / "dicom"), "--out", str(tmp_path / "a"), "--device", "cpu"]) == 0
    made = algorithm_types(tmp_path / "a")
    assert made and set(made.values()) == {"AUTOMATIC"}
    # the run's own levels.nii.gz with one voxel of L3 erased, as another tool would save it
    img = nib.load(tmp_path / "a" / "levels.nii.gz")
    data = np.asarray(img.dataobj).copy()
    data[tuple(np.argwhere(data == 3)[0])] = 0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), tmp_path / "edited.nii.gz")
    args = ["screen", str(root / "dicom"), "--out", str(tmp_path / "b"), "--device", "cpu"]
    assert main([*args, "--labels", str(tmp_path / "edited.nii.gz")]) == 0
    edited = algorithm_types(tmp_path / "b")
    assert edited == {name: "SEMIAUTOMATIC" if name == LEVEL_NAMES[3] else "AUTOMATIC" for name in made}
    # labels that BoneScreen did not write: the user's
    args[3] = str(tmp_path / "c")
    assert main([*args, "--labels", str(root / "levels.nii.gz")]) == 0
    assert set(algorithm_types(tmp_path / "c").values()) == {"SEMIAUTOMATIC"}


def test_files_of_the_output_names_that_bonescreen_did_not_write_are_kept_not_replaced(shared_data, tmp_path):
    """helper-92: a user's own result.json, seg.dcm and report.png in --out were replaced without a word (only an
    edited levels.nii.gz was kept). Each is kept under a new name with a note; BoneScreen's own earlier outputs are
    replaced as before."""
    out = tmp_path / "out"
    out.mkdir()
    theirs = {"result.json": b'{"mine": 1}\n', "seg.dcm": b"their own SEG", "report.png": b"their own figure"}
    for name, data in theirs.items():
        (out / name).write_bytes(data)
    series = shared_data / "dcmqi-ct3slice"
    assert main(["screen", str(series), "--out", str(out), "--device", "cpu"]) == 0
    notes = json.loads((out / "result.json").read_text())["output_notes"]
    for name, data in theirs.items():
        stem, suffix = name.split(".", 1)
        (kept,) = out.glob(f"{stem}.kept-*.{suffix}")
        assert kept.read_bytes() == data
        assert any(
            n.startswith(f"{name} in the folder was not written by BoneScreen's last run there: kept as {kept.name}")
            for n in notes
        )
    # a rerun replaces this run's own outputs, keeping nothing more
    assert main(["screen", str(series), "--out", str(out), "--device", "cpu"]) == 0
    assert len(list(out.glob("*.kept-*"))) == 3
    assert not [n for n in json.loads((out / "result.json").read_text())["output_notes"] if "kept as" in n]
