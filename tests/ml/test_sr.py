"""DICOM SR (issue "Beyond the paper", part 3): `screen` writes a TID 1500 Measurement Report beside seg.dcm."""

import json
import shutil
import subprocess

import pydicom
import pytest

from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct
from bonescreen.io.sr import PRIVATE_CODES, SCHEME, read_sr_levels, write_dicom_sr
from bonescreen.screen import screen_file


@pytest.fixture(scope="module")
def screened(small_case_files, tmp_path_factory):
    """``screen`` on the phantom's DICOM series with its true levels (the SR is what is tested, not MS-Net)."""
    out = tmp_path_factory.mktemp("sr_out")
    result = screen_file(
        small_case_files / "dicom" / "dicom", out, labels_path=small_case_files / "nifti" / "levels.nii.gz"
    )
    return out, result


def test_sr_numbers_equal_result_json(screened):
    out, _ = screened
    result = json.loads((out / "result.json").read_text())
    assert result["outputs"]["sr"] == "sr.dcm" and "sr.dcm" in result["identifying_tags"]
    groups = read_sr_levels(out / "sr.dcm")
    assert set(groups) == {lv["name"] for lv in result["levels"]} | {"overall"}
    assert sum(lv["fracture"] is not None for lv in result["levels"]) >= 3
    for lv in result["levels"]:  # every doubt reaches the level's reasons
        if lv["acr_category"] != lv["prediction"]:
            said = [r for r in lv["reasons"] if r.startswith("ACR category")]
            assert lv["uncertain"] and said
            assert "_" not in said[0]  # the classes in words ("low bone mass"), not their ids
        if lv["fracture"] is None:
            assert any("heights not measured (the body reaches the first or last slice" in r for r in lv["reasons"])
    for lv in result["levels"]:
        g = groups[lv["name"]]
        m, e = g["measurements"], g["evaluations"]
        assert m["Mean Attenuation Coefficient"] == lv["trabecular_hu"]
        assert m["Volumetric bone mineral density (hydroxyapatite)"] == lv["vbmd_mg_cm3"]
        assert m["Uncertainty of volumetric bone mineral density (1 SD)"] == lv["vbmd_sd_mg_cm3"]
        for where, site in (("anterior", "Anterior"), ("middle", "Central"), ("posterior", "Posterior")):
            if lv["fracture"] is None:  # a body cut by the scan range has no heights: none in the SR either
                assert f"Height {site}" not in m and "Genant semiquantitative grade" not in e
            else:
                assert m[f"Height {site}"] == lv["fracture"][f"height_{where}_mm"]
        assert m["Probability of normal bone mass (BCC-Net)"] == lv["probabilities"]["normal"]
        assert m["Probability of low bone mass (BCC-Net)"] == lv["probabilities"]["low_bone_mass"]
        assert m["Probability of osteoporosis (BCC-Net)"] == lv["probabilities"]["osteoporosis"]
        if lv["fracture"] is not None:
            assert e["Genant semiquantitative grade"] == PRIVATE_CODES[f"GENANT{lv['fracture']['genant_grade']}"]
            assert m["Vertebral body height loss"] == lv["fracture"]["height_loss"]
        names = {"normal": "Normal", "low_bone_mass": "Osteopenia", "osteoporosis": "Osteoporosis"}
        assert e["Bone condition by BCC-Net"] == names[lv["prediction"]]
        assert e["ACR QCT category of vBMD"] == names[lv["acr_category"]]
    overall = groups["overall"]
    assert (
        overall["measurements"]["Volumetric bone mineral density (hydroxyapatite)"] == result["overall"]["vbmd_mg_cm3"]
    )
    # every overall number of result.json, the trabecular HU and BCC-Net's probabilities too (helper-116)
    m = overall["measurements"]
    assert m["Mean Attenuation Coefficient"] == result["overall"]["trabecular_hu"]
    assert m["Probability of normal bone mass (BCC-Net)"] == result["overall"]["probabilities"]["normal"]
    assert m["Probability of low bone mass (BCC-Net)"] == result["overall"]["probabilities"]["low_bone_mass"]
    assert m["Probability of osteoporosis (BCC-Net)"] == result["overall"]["probabilities"]["osteoporosis"]
    assert overall["evaluations"]["Bone status"] in ("Normal", "Osteopenia", "Osteoporosis")
    # the doubts travel with the numbers: whether the status is confirmed, the result and each level flagged
    confirmed = "unconfirmed" not in result["overall"]["bone_status"]["basis"]
    assert overall["evaluations"]["Bone status confirmed"] == ("Yes" if confirmed else "No")
    assert overall["evaluations"]["Result flagged uncertain"] == ("Yes" if result["overall"]["uncertain"] else "No")
    for lv in result["levels"]:
        assert groups[lv["name"]]["evaluations"]["Result flagged uncertain"] == ("Yes" if lv["uncertain"] else "No")
        # and the reasons with them (helper-38: "flagged: Yes" without why)
        assert groups[lv["name"]]["reasons"] == lv["reasons"]
    assert overall["reasons"] == result["overall"]["reasons"]


def test_an_unconfirmed_bone_status_is_no_plain_finding_in_the_sr(screened, small_case_files, tmp_path):
    """helper-32: the CLI said "Bone status unconfirmed: Normal bone mass?" and the SR, the output that travels to
    PACS, said "Bone status: Normal" and nothing more. It now says whether the status and the names are confirmed."""
    out, _ = screened
    result = json.loads((out / "result.json").read_text())
    result["overall"]["bone_status"]["basis"] += "; unconfirmed: the level names are not confirmed"
    result["overall"]["uncertain"] = True
    why = "bone status unconfirmed (Normal bone mass?): the level names are not confirmed (these may not be L1-L4)"
    result["overall"]["reasons"] = [why]
    result["levels"][0]["reasons"] = ["close call between normal bone mass (0.46) and low bone mass (0.40)"]
    result["segmentation"] = {"naming_certain": False}
    volume = load_ct(small_case_files / "dicom" / "dicom")
    write_dicom_sr(volume, out / "seg.dcm", result, tmp_path / "sr.dcm")
    groups = read_sr_levels(tmp_path / "sr.dcm")
    e = groups["overall"]["evaluations"]
    assert e["Bone status confirmed"] == "No" and e["Result flagged uncertain"] == "Yes"
    assert e["Level names confirmed"] == "No"
    # and why, as result.json says it (helper-38: "flagged: Yes" without the reasons)
    assert groups["overall"]["reasons"] == [why]
    assert groups[result["levels"][0]["name"]]["reasons"] == result["levels"][0]["reasons"]


def test_a_grade_the_slices_cannot_confirm_reaches_the_sr(screened, small_case_files, tmp_path):
    """A level whose grade lies within the heights' uncertainty of grade 2's bound (fracture.grade_doubt) carries
    the other grade in the SR beside its own, so that a reader of the SR alone sees the doubt result.json has."""
    out, _ = screened
    result = json.loads((out / "result.json").read_text())
    lv = next(lv for lv in result["levels"] if lv["fracture"] is not None)
    lv["fracture"].update(genant_grade=2, shape="wedge", height_loss=0.262)
    lv["fracture"]["grade_doubt"] = {"grade": 1, "reason": "Genant grade 2 may be 1 (test)"}
    others = [o for o in result["levels"] if o is not lv and o["fracture"] is not None]
    for o in others:
        o["fracture"]["grade_doubt"] = None
    volume = load_ct(small_case_files / "dicom" / "dicom")
    write_dicom_sr(volume, out / "seg.dcm", result, tmp_path / "sr.dcm")
    groups = read_sr_levels(tmp_path / "sr.dcm")
    e, m = groups[lv["name"]]["evaluations"], groups[lv["name"]]["measurements"]
    assert e["Genant semiquantitative grade"] == PRIVATE_CODES["GENANT2"]
    assert e["Genant grade the slice spacing cannot rule out"] == PRIVATE_CODES["GENANT1"]
    assert m["Vertebral body height loss"] == 0.262
    assert others and all(
        "Genant grade the slice spacing cannot rule out" not in groups[o["name"]]["evaluations"] for o in others
    )


def test_sr_references_the_seg_and_the_source_series(screened, small_case_files):
    out, _ = screened
    sr = pydicom.dcmread(out / "sr.dcm")
    seg = pydicom.dcmread(out / "seg.dcm", stop_before_pixels=True)
    source = load_ct(small_case_files / "dicom" / "dicom")
    series_uid = source.source.dicom["SeriesInstanceUID"]
    assert sr.Modality == "SR" and sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = {
        (str(series.SeriesInstanceUID), str(item.ReferencedSOPInstanceUID))
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert (str(seg.SeriesInstanceUID), str(seg.SOPInstanceUID)) in evidence
    assert sum(s == series_uid for s, _ in evidence) == len(source.source.dicom_files)  # every source image
    assert sr.StudyInstanceUID == seg.StudyInstanceUID
    labels = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence}
    for name, g in read_sr_levels(out / "sr.dcm").items():
        if name != "overall":
            assert labels[g["segment"]] == name and g["segmentation_uid"] == seg.SOPInstanceUID
    # BoneScreen's own codes carry their private designator
    codes = set()

    def walk(items) -> None:
        for item in items:
            if "ConceptNameCodeSequence" in item:
                codes.add(str(item.ConceptNameCodeSequence[0].CodingSchemeDesignator))
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    assert SCHEME in codes and "DCM" in codes


def test_sr_needs_a_dicom_source_and_a_matching_seg(screened, small_case_files, tmp_path):
    out, result = screened
    nifti = load_ct(small_case_files / "nifti" / "ct.nii.gz")
    with pytest.raises(BoneScreenError, match="DICOM source"):
        write_dicom_sr(nifti, out / "seg.dcm", result, tmp_path / "sr.dcm")
    dicom = load_ct(small_case_files / "dicom" / "dicom")
    (tmp_path / "broken.dcm").write_bytes(b"not dicom")
    with pytest.raises(BoneScreenError, match="SEG cannot be read"):
        write_dicom_sr(dicom, tmp_path / "broken.dcm", result, tmp_path / "sr.dcm")
    renamed = {**result, "levels": [{**result["levels"][0], "name": "L9"}]}
    with pytest.raises(BoneScreenError, match="no segment for L9"):
        write_dicom_sr(dicom, out / "seg.dcm", renamed, tmp_path / "sr.dcm")
    assert not (tmp_path / "sr.dcm").exists()


def test_a_level_whose_labels_are_off_the_bone_carries_no_figure_into_the_sr(screened, small_case_files, tmp_path):
    """helper-36: levels[] of labels off the bone kept their probabilities and grade, and the SR, the output that
    travels to PACS, carried them. Such a level's figures are now null (pipeline.classify.OFF_BONE_NULLED), and
    its SR group holds only the flag."""
    from bonescreen.pipeline.classify import OFF_BONE_NULLED

    out, _ = screened
    result = json.loads((out / "result.json").read_text())
    lv = result["levels"][0]
    lv.update({key: None for key in OFF_BONE_NULLED}, uncertain=True, reasons=["the labels of L1 do not sit on bone"])
    volume = load_ct(small_case_files / "dicom" / "dicom")
    write_dicom_sr(volume, out / "seg.dcm", result, tmp_path / "sr.dcm")
    group = read_sr_levels(tmp_path / "sr.dcm")[lv["name"]]
    assert group["measurements"] == {}
    assert group["evaluations"] == {"Result flagged uncertain": "Yes"}


def _items(items, path=()):
    """Every content item below ``items``, with the concept names (CodeValue) of its ancestors."""
    for item in items:
        yield path, item
        if "ContentSequence" in item:
            name = item.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in item else None
            yield from _items(item.ContentSequence, (*path, name))


def test_the_sr_lists_the_source_images_in_the_image_library_tid_1500_requires(screened, small_case_files):
    """helper-80: TID 1500's row 5, the Image Library (TID 1600), is mandatory, and the SR had none (highdicom writes
    one only when given every image, each with its own descriptors). It now lists the source images, in one group
    whose shared descriptors are the modality and the frame of reference, between the procedure reported (row 4)
    and the Imaging Measurements (row 6)."""
    out, _ = screened
    sr = pydicom.dcmread(out / "sr.dcm")
    root = [(str(i.ValueType), str(i.ConceptNameCodeSequence[0].CodeValue)) for i in sr.ContentSequence]
    assert ("CONTAINER", "111028") in root, "no Image Library (DCM 111028) in the report"
    library = root.index(("CONTAINER", "111028"))
    assert root.index(("CODE", "121058")) < library < root.index(("CONTAINER", "126010"))
    groups = sr.ContentSequence[library].ContentSequence
    assert [str(g.ConceptNameCodeSequence[0].CodeValue) for g in groups] == ["126200"]  # one Image Library Group
    shared = {
        str(i.ConceptNameCodeSequence[0].CodeValue): i
        for i in groups[0].ContentSequence
        if i.RelationshipType == "HAS ACQ CONTEXT"
    }
    assert shared["121139"].ConceptCodeSequence[0].CodeValue == "CT"  # Modality, CID 29
    headers = [
        pydicom.dcmread(f, stop_before_pixels=True)
        for f in load_ct(small_case_files / "dicom" / "dicom").source.dicom_files
    ]
    assert shared["112227"].UID == headers[0].FrameOfReferenceUID
    entries = [i for i in groups[0].ContentSequence if i.ValueType == "IMAGE"]
    referenced = [
        (
            str(e.ReferencedSOPSequence[0].ReferencedSOPClassUID),
            str(e.ReferencedSOPSequence[0].ReferencedSOPInstanceUID),
        )
        for e in entries
    ]
    assert referenced == [(str(h.SOPClassUID), str(h.SOPInstanceUID)) for h in headers]  # every image, in slice order
    assert all(e.RelationshipType == "CONTAINS" for e in entries)
    assert set(read_sr_levels(out / "sr.dcm")) >= {"overall"}  # and highdicom still reads the report


def test_the_heights_sites_are_anatomic_modifiers(screened):
    """helper-80: the middle height's site was modified by DCM 111010 "Center", a code of CID 219 (Geometry
    Graphical Representation); the Topographical modifier of a Finding Site takes DCID 2 "Anatomic Modifier"
    (PS3.16 TID 1419), which has SCT 26216008 "Central"."""
    from pydicom.sr.codedict import codes

    out, _ = screened
    anatomic = {(c.value, c.scheme_designator) for c in codes.cid2.concepts.values()}
    modifiers = [
        (str(i.ConceptCodeSequence[0].CodeValue), str(i.ConceptCodeSequence[0].CodingSchemeDesignator))
        for path, i in _items(pydicom.dcmread(out / "sr.dcm").ContentSequence)
        if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "106233006"
    ]
    assert modifiers and set(modifiers) <= anatomic
    assert {("255549009", "SCT"), ("26216008", "SCT"), ("255551008", "SCT")} == set(modifiers)


def test_dciodvfy_finds_no_error_in_the_seg_and_sr(screened):
    """helper-80: seg.dcm and sr.dcm checked against their IODs (DICOM PS3.3 A.51 Segmentation, A.35.13 Comprehensive
    3D SR) by an independent validator, dciodvfy (dicom3tools, which `make system-deps` installs). Its warnings are
    left: 99BSCR, BoneScreen's private coding scheme (PS3.3 8.2 allows designators beginning with "99"), is not in
    its list of known schemes."""
    out, _ = screened
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        pytest.fail("dciodvfy is missing: install dicom3tools ('make system-deps' does, as root)")
    for name, iod in (("seg.dcm", "Segmentation"), ("sr.dcm", "Comprehensive3DSR")):
        run = subprocess.run([dciodvfy, str(out / name)], capture_output=True, text=True, timeout=60)
        lines = (run.stdout + run.stderr).splitlines()
        assert iod in lines, f"{name}: dciodvfy did not recognise a {iod}"
        # (a value dciodvfy quotes, " = <...>", is cut off: it may be a patient's name)
        errors = [line.split(" = <")[0] for line in lines if line.startswith("Error")]
        assert not errors, f"{name}: " + "; ".join(errors)


def test_a_malformed_birth_date_leaves_the_seg_and_sr_written_and_is_never_printed(
    screened, small_case, small_case_files, tmp_path, capfd
):
    """helper-89: a PatientBirthDate written "1961-05-03" (DICOM's DA is YYYYMMDD) made highdicom refuse the SEG, so
    the SR was lost too, and the refusal printed the date to the console and into result.json's output_errors. The
    date is now left empty in both, with a note naming the attribute, not its value."""
    from pydicom import config

    from bonescreen.io.writers import write_dicom_seg

    series = tmp_path / "series"
    shutil.copytree(small_case_files / "dicom" / "dicom", series)
    for f in sorted(series.iterdir()):
        ds = pydicom.dcmread(f)
        with config.disable_value_validation():
            ds.PatientBirthDate = "1961-05-03"
        ds.save_as(f)
    volume = load_ct(series)
    notes: list[str] = []
    write_dicom_seg(volume, small_case.levels, tmp_path / "seg.dcm", notes=notes)
    _, result = screened
    write_dicom_sr(volume, tmp_path / "seg.dcm", result, tmp_path / "sr.dcm")
    for name in ("seg.dcm", "sr.dcm"):
        assert pydicom.dcmread(tmp_path / name).PatientBirthDate == ""
    assert notes == [
        "seg.dcm, sr.dcm: PatientBirthDate of the source images is not a valid DICOM value (PS3.5 6.2: dates YYYYMMDD, "
        "times HHMMSS; PatientSex M, F or O): left empty in the SEG and the SR"
    ]
    out = capfd.readouterr()
    assert "1961" not in out.out + out.err
