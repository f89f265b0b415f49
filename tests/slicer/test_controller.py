"""The panel's controller on slicer-core's real MRML: lifecycle, inputs that enable the buttons, the core rebuilt
when settings change, and Segment/Classify on a worker thread that can be cancelled.

slicer-core has no ``slicer.parameterNodeWrapper`` (it comes with the Slicer application), so a dataclass with
the wrapper's fields stands in for the module's parameter node; the scene and every node in it are real.
Where an event loop is needed, Qt's own (qtpy's QCoreApplication with a QTimer, as Slicer's panel polls)
stands in for Slicer's.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
from BoneScreenLib.controller import PARAMETERS, PanelController

from bonescreen.errors import BoneScreenError
from bonescreen.phantom import PhantomConfig, make_case
from bonescreen.weights import default_weights


@dataclass
class Parameters:
    """Stands in for the module's parameterNodeWrapper (same fields)."""

    inputVolume: object = None
    outputSegmentation: object = None
    resultsTable: object = None
    device: str = "cpu"
    weightsFolder: str = ""
    newSegmentationEachRun: bool = True


class SceneParameters:
    """The scene's one parameter node, as ScriptedLoadableModuleLogic.getParameterNode gives it."""

    def __init__(self) -> None:
        self.node: Parameters | None = None

    def __call__(self) -> Parameters:
        if self.node is None:
            self.node = Parameters()
        return self.node

    def scene_cleared(self) -> None:
        self.node = None


@pytest.fixture(scope="module")
def case():
    return make_case(5151, 0, PhantomConfig(thickness=3.0, contrast_probability=0))


@pytest.fixture
def panel(scene):
    params = SceneParameters()
    return PanelController(scene, params), params


def run_to_end(controller: PanelController, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while controller.poll():
        assert time.monotonic() < end, "the background run did not end"
        time.sleep(0.02)


def test_parameter_fields_match_the_module():
    assert set(PARAMETERS) == set(Parameters.__dataclass_fields__)


def test_enter_picks_the_ct_and_the_buttons_follow_the_inputs(panel, case, add_volume):
    controller, params = panel
    controller.enter()
    state = controller.state()
    assert not state.can_segment and "CT" in state.why_not  # empty scene
    node = add_volume(controller.scene, case)
    controller.exit()
    controller.enter()  # module re-entry: the same parameter node, now with the CT chosen
    assert controller.params is params.node and params.node.inputVolume is node
    state = controller.state()
    assert state.can_segment and not state.can_classify and not state.can_export and not state.can_cancel
    assert "Segment first" in state.why_not


def test_segment_and_classify_run_off_the_gui_thread(panel, case, tmp_path, add_volume):
    controller, params = panel
    node = add_volume(controller.scene, case)
    controller.enter()
    controller.start_segment()
    assert controller.state().can_cancel and not controller.state().can_segment  # busy: one run at a time
    with pytest.raises(BoneScreenError, match="already running"):
        controller.start_classify()
    run_to_end(controller)
    seg = params.node.outputSegmentation
    assert seg is not None and seg.GetSegmentation().GetNumberOfSegments() == 7  # T12, L1-L5, S1
    # what was found and every note, as napari's dock says it (helper-60: the notes waited for Classify)
    status = controller.state().status
    assert status.startswith("Found 7 vertebrae (T12, L1, ") and controller.state().progress[0] > 0
    notes = seg.GetAttribute("BoneScreen.Notes").split("\n")
    assert all(f"- {n}" in status for n in notes if n)
    controller.start_classify()
    run_to_end(controller)
    assert params.node.resultsTable.GetNumberOfRows() == 6 and controller.chart is not None
    # the answer first: the bone status, then BCC-Net's call as the network's
    first, second = controller.state().status.splitlines()[:2]
    assert first.startswith("Bone status") and second.startswith("BCC-Net (network), ")
    # the table's overall row averages different levels per column: said beside it (stop 55)
    assert controller.state().status.splitlines()[2].startswith("Overall row: call and HU of L1+L2")
    assert controller.state().can_export
    written = controller.export(str(tmp_path / "out"))
    assert {p.rsplit("/", 1)[-1] for p in written} == {"result.json", "report.png", "levels.nii.gz", "vertebrae.nii.gz"}
    assert node.GetScene() is controller.scene


def test_cancel_stops_the_run_and_changes_nothing(panel, case, add_volume):
    controller, params = panel
    add_volume(controller.scene, case)
    controller.enter()
    before = controller.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    controller.start_segment()
    while not controller.run.progress() and controller.run.running:
        time.sleep(0.01)  # the first batch has been reported
    controller.cancel()
    t0 = time.monotonic()
    run_to_end(controller)
    assert time.monotonic() - t0 < 30  # stops at the next batch, not at the end of the volume
    assert controller.state().status == "Cancelled: nothing was changed."
    assert params.node.outputSegmentation is None
    assert controller.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == before
    assert controller.state().can_segment


def test_scene_close_stops_the_run_and_a_shown_module_takes_the_new_parameter_node(panel, case, add_volume):
    controller, params = panel
    add_volume(controller.scene, case)
    controller.enter()
    old = controller.params
    controller.start_segment()
    controller.scene_start_close()
    assert controller.run is None and controller.params is None
    controller.scene.Clear(0)
    params.scene_cleared()
    controller.scene_end_close(shown=True)
    assert controller.params is not None and controller.params is not old
    assert controller.params.inputVolume is None and not controller.state().can_segment
    assert controller.poll() is False  # nothing left running


def test_a_settings_change_reaches_the_core(panel, case, tmp_path, add_volume):
    controller, params = panel
    add_volume(controller.scene, case)
    controller.enter()
    first = controller.logic()
    assert controller.logic() is first  # unchanged settings: the loaded networks are kept
    folder = tmp_path / "my-weights"
    folder.mkdir()
    src = default_weights("segmentation")
    shutil.copy(src, folder / "model.safetensors")
    shutil.copy(src.with_suffix(".json"), folder / "model.json")
    params.node.weightsFolder = str(folder)
    second = controller.logic()
    assert second is not first and str(second.screener._paths["segmentation"]) == str(folder)
    params.node.device = "auto"
    assert controller.logic() is not second and controller.logic().screener.device.type == "cpu"
    params.node.weightsFolder = str(tmp_path / "missing")
    with pytest.raises(BoneScreenError, match="missing"):
        controller.start_segment()  # reported when the run starts, not on the worker thread
    assert controller.run is None and controller.state().can_segment
    assert "cpu" in controller.devices() and controller.devices()[0] == "auto"


def test_runs_to_the_end_under_a_qt_event_loop(panel, case, add_volume):
    """As in Slicer: a QTimer polls the controller while the worker segments; the loop keeps ticking."""
    from qtpy.QtCore import QCoreApplication, QTimer

    app = QCoreApplication.instance() or QCoreApplication([])
    controller, params = panel
    slab = make_case(5151, 1, PhantomConfig(thickness=5.0, contrast_probability=0))
    add_volume(controller.scene, slab)
    controller.enter()
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.perf_counter())
        if not controller.poll():
            timer.stop()
            app.quit()

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    controller.start_segment()
    timer.start()
    app.exec_()
    assert params.node.outputSegmentation is not None
    assert len(ticks) > 10 and np.all(np.diff(ticks) >= 0)  # the GUI thread ran its loop throughout


def test_another_tools_vertebra_map_opens_as_segments(panel, case, add_volume, tmp_path):
    """Bring your own segmentation in Slicer: a TotalSegmentator map of the CT becomes named segments."""
    import nibabel as nib
    from BoneScreenLib.logic import segmentation_to_labels, volume_node_to_ct

    controller, params = panel
    node = add_volume(controller.scene, case)
    controller.enter()
    volume = volume_node_to_ct(node)
    theirs = np.zeros(case.spine.shape, np.uint16)
    for ours, total in {1: 31, 2: 30, 3: 29, 4: 28, 5: 27, 6: 32, 7: 25}.items():
        theirs[case.spine == ours] = total
    theirs[0, :3, :3] = 92  # a rib id of TotalSegmentator (a corner of the first slice): no vertebra
    nib.save(nib.Nifti1Image(volume.to_source(theirs), volume.source.affine), tmp_path / "total.nii.gz")
    controller.import_label_map(str(tmp_path / "total.nii.gz"), "totalseg")
    seg = params.node.outputSegmentation
    np.testing.assert_array_equal(segmentation_to_labels(seg, node, volume), case.spine)
    assert "T12" in controller.state().status and controller.state().can_classify
    # named in the spine's order, head first (helper-115: by id, "L1, L2, L3, L4, L5, T12, S1")
    assert "(totalseg ids): T12, L1, L2, L3, L4, L5, S1." in controller.state().status
    with pytest.raises(BoneScreenError, match="label scheme must be one of"):
        controller.import_label_map(str(tmp_path / "total.nii.gz"), "amos")
    # a binary mask of the spine with the ids 'mask': split and named on the worker, into a new segmentation
    binary = (case.spine > 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(volume.to_source(binary), volume.source.affine), tmp_path / "mask.nii.gz")
    controller.import_label_map(str(tmp_path / "mask.nii.gz"), "mask")
    run_to_end(controller)
    split = segmentation_to_labels(params.node.outputSegmentation, node, volume)
    assert params.node.outputSegmentation is not seg
    for level in range(1, 6):
        assert (case.levels[split == level] == level).mean() > 0.9
    assert "(split from mask.nii.gz; " in controller.state().status


def test_a_mask_split_on_a_mirrored_spine_says_first_that_the_orientation_looks_wrong(panel, case, tmp_path):
    """helper-101: napari's Segment step said "Found 5 vertebrae ... then classify" before the note that the spine lies
    in the front of the body, and Slicer's split of a user's mask gave no note at all. The CT and its mask mirrored
    front to back under the same geometry: the status says first that the orientation looks wrong, then what was
    found, then the front-back note."""
    import nibabel as nib
    from BoneScreenLib.logic import add_ct_volume_node, volume_node_to_ct

    from bonescreen.messages import ORIENTATION_FIRST
    from bonescreen.orientation_check import FRONT_BACK_FLAGS

    controller, _ = panel
    hu = np.ascontiguousarray(case.hu[:, ::-1])
    node = add_ct_volume_node(controller.scene, hu, case.spacing, "mirrored CT", origin=(123.0, -45.0, 678.0))
    controller.enter()
    volume = volume_node_to_ct(node)
    mask = np.ascontiguousarray(case.spine[:, ::-1] > 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(volume.to_source(mask), volume.source.affine), tmp_path / "mask.nii.gz")
    controller.import_label_map(str(tmp_path / "mask.nii.gz"), "mask")
    run_to_end(controller)
    lines = controller.state().status.splitlines()
    assert lines[0] == ORIENTATION_FIRST, lines
    assert lines[1].startswith("Found") and "(split from mask.nii.gz; " in lines[1]
    assert lines[2].startswith(tuple(f"- {flag}" for flag in FRONT_BACK_FLAGS)), lines


def test_a_segmentation_of_another_ct_is_refused_as_such(panel, case, add_volume):
    """helper-60: a segmentation whose segments lie off the CT was refused as holding "no segment", to be renamed."""
    from BoneScreenLib.logic import add_ct_volume_node, labels_to_segmentation, volume_node_to_ct

    controller, params = panel
    node = add_volume(controller.scene, case)
    controller.enter()
    params.node.outputSegmentation = labels_to_segmentation(case.levels, volume_node_to_ct(node), node)
    elsewhere = add_ct_volume_node(controller.scene, case.hu, case.spacing, "another CT", origin=(900.0, 900.0, 900.0))
    params.node.inputVolume = elsewhere
    with pytest.raises(BoneScreenError, match=r"\(L1, L2, L3, L4, L5\) hold no voxel of the CT 'another CT'"):
        controller.start_classify()


def test_a_label_map_is_no_ct_and_segments_named_twice_or_not_at_all_are_said(panel, case, add_volume, tmp_path):
    """helper-60: a label map loaded first was picked as the CT and "segmented"; two segments renamed to one name
    were refused with a hint for importing label maps; a segment the user drew anew was dropped without a word."""
    from BoneScreenLib.logic import BoneScreenLogic, labels_to_segmentation, volume_node_to_ct

    controller, params = panel
    labelmap = controller.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "their labels")
    import slicer

    slicer.util.updateVolumeFromArray(labelmap, np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(BoneScreenError, match="'their labels' is a label map, not a CT"):
        volume_node_to_ct(labelmap)
    node = add_volume(controller.scene, case)
    controller.enter()
    assert params.node.inputVolume is node  # the CT, not the label map added before it
    seg = labels_to_segmentation(case.levels, volume_node_to_ct(node), node)
    segmentation = seg.GetSegmentation()
    logic = BoneScreenLogic("cpu")
    segmentation.AddEmptySegment("", "Segment_1")  # drawn anew in the Segment Editor: no vertebra's name, no tag
    inputs = logic.classify_inputs(node, seg)
    assert any("'Segment_1' left out" in n for n in inputs.notes)
    # classified first: a refused Classify then leaves no result on the panel (helper-110: the earlier bone status
    # stayed shown and Export enabled)
    params.node.inputVolume, params.node.outputSegmentation = node, seg
    controller.start_classify()
    run_to_end(controller)
    assert controller.state().can_export
    l4 = segmentation.GetSegmentIdBySegmentName("L4")
    segmentation.GetSegment(l4).SetName("L2")
    # the one the user renamed says which vertebra it was (helper-110: which of the two 'L1's was BoneScreen's T12?)
    twice = r"segments 'L2', 'L2' \(BoneScreen's L4\) of .* are all L2: give each vertebra its own"
    with pytest.raises(BoneScreenError, match=twice):
        logic.classify_inputs(node, seg)
    with pytest.raises(BoneScreenError, match=twice):
        controller.start_classify()
    assert controller.state().status.startswith("Classify refused: segments 'L2', 'L2' (BoneScreen's L4)")
    # the table and chart on screen say they no longer hold (their rows kept as they were)
    table = params.node.resultsTable
    chart = controller.scene.GetNodeByID(table.GetAttribute("BoneScreen.Chart"))
    assert table.GetName().endswith(" BoneScreen results (out of date)") and table.GetNumberOfRows() == 6
    assert chart.GetTitle() == "BoneScreen: out of date (Classify refused)"
    with pytest.raises(BoneScreenError, match="changed since it was classified"):  # the last result is not the names'
        controller.export(str(tmp_path / "out"))
    segmentation.GetSegment(l4).SetName("L4")  # named back and classified again: the table holds again
    controller.start_classify()
    run_to_end(controller)
    assert params.node.resultsTable is table and table.GetName().endswith(" BoneScreen results")
    assert table.GetAttribute("BoneScreen.OutOfDate") is None
    assert chart.GetTitle() == "BoneScreen: class probabilities per level"


def test_a_volume_that_is_no_ct_in_hu_is_refused_at_segment_and_classify_for_the_command_lines_reason(
    panel, case, tmp_path, load_file
):
    """helper-76: the command line and napari refuse values that are not HU, NaN and a label map, but Slicer segmented
    random 0-799 values ("Found 1 vertebra (L1)") and gave them a bone status. Segment and Classify now refuse such a
    volume with the command line's reason, its advice in Slicer's words (Slicer has no --hu-offset nor --labels),
    said once (helper-78: a lead of "is not a CT in Hounsfield units" doubled the reason's own words)."""
    import nibabel as nib
    import slicer

    from bonescreen.io import load_ct

    controller, params = panel
    controller.enter()
    affine = np.diag([-1.0, -1.0, 3.0, 1.0])
    random = (np.random.default_rng(0).random((64, 64, 40)) * 800).astype(np.int16)  # MR-like: no air, no fat
    nan = np.full((32, 32, 20), -500.0, np.float32)
    nan[16, 16, 10] = np.nan
    spine = np.ascontiguousarray(case.spine.transpose(2, 1, 0)).astype(np.int16)  # a vertebra map as a volume
    # (Slicer's file reader makes NaN 0: a node holds NaN when a script or module puts them there)
    with_nan = controller.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "nan.nii.gz")
    slicer.util.updateVolumeFromArray(with_nan, np.ascontiguousarray(nan.transpose(2, 1, 0)))
    for name, data in (("random.nii.gz", random), ("nan.nii.gz", nan), ("spine.nii.gz", spine)):
        nib.save(nib.Nifti1Image(data, affine), tmp_path / name)
        with pytest.raises(BoneScreenError) as cli:
            load_ct(tmp_path / name)
        reason = cli.value.problem.split("; it looks like a label map")[0]
        node = with_nan if name == "nan.nii.gz" else load_file(controller.scene, tmp_path / name)
        params.node.inputVolume, params.node.outputSegmentation = node, None
        with pytest.raises(BoneScreenError) as segment:
            controller.start_segment()
        assert f"the volume '{name}': {reason}" in str(segment.value), name
        # said once (helper-78: "is not a CT in Hounsfield units: the values do not look like CT in Hounsfield units")
        assert str(segment.value).count("Hounsfield units") <= 1, str(segment.value)
        assert "--" not in str(segment.value)  # no command-line option named in Slicer
        assert controller.run is None and params.node.outputSegmentation is None
        params.node.outputSegmentation = controller.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        with pytest.raises(BoneScreenError, match=f"the volume '{name}': ") as classify:
            controller.start_classify()
        assert reason in str(classify.value) and controller.run is None
        assert str(classify.value).count("Hounsfield units") <= 1, str(classify.value)
    assert "looks like a label map" in str(segment.value) and "Open a vertebra label map" in str(segment.value)


def test_a_step_without_progress_shows_a_busy_bar_and_its_seconds_so_far(panel, case, add_volume):
    """Stop 56: napari's Segment dock shows a busy bar and the seconds so far while the levels are named (a minute
    or more on a thin-slice CT), but Slicer's panel said "name levels: 0 of 1" with its bar at 0 % all the while. The
    panel now says what the step does and counts its seconds at each poll (the widget's timer), its bar busy (maximum
    0), back to a bar with a value once the run moves on. The step here stands in for the level split (a minute of
    CPU): it reports as the core's ``drive`` does, again at each heartbeat."""
    from bonescreen.pipeline.progress import step_text

    controller, _params = panel
    add_volume(controller.scene, case)
    controller.enter()
    go_on = threading.Event()

    def work(progress):
        progress("segment", 3, 3)
        progress("name levels", 0, 1)
        go_on.wait(10)
        progress("name levels", 0, 1)  # a heartbeat: the same report again
        go_on.clear()
        go_on.wait(10)
        progress("name levels", 1, 1)
        return "named"

    controller._start(work, lambda result: f"done: {result}")
    time.sleep(0.2)
    assert controller.poll()
    state = controller.state()
    assert state.progress == (0, 0) and state.status == step_text("name levels", 0.1)
    assert state.status.startswith("name levels: naming the levels") and "0 s so far" in state.status
    time.sleep(1.1)
    go_on.set()  # the heartbeat's report does not restart the count
    time.sleep(0.2)
    assert controller.poll() and "1 s so far" in controller.state().status
    go_on.set()
    run_to_end(controller)
    state = controller.state()
    assert state.status == "done: named" and state.progress == (1, 1)


def test_a_ct_under_a_transform_is_refused_until_the_transform_is_hardened(panel, case, add_volume):
    """helper-76: a CT with a parent transform (flipped head to feet) was segmented on its own grid, without a word,
    and its segmentation was not under the transform. Segment and Classify refuse it, saying how to harden it; an
    identity transform changes nothing and is let through."""
    import vtk
    from BoneScreenLib.logic import volume_node_to_ct

    controller, params = panel
    node = add_volume(controller.scene, case)
    controller.enter()
    flip = controller.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "flip S-I")
    m = vtk.vtkMatrix4x4()
    m.SetElement(2, 2, -1)
    flip.SetMatrixTransformToParent(m)
    node.SetAndObserveTransformNodeID(flip.GetID())
    said = r"the CT 'phantom CT' has a transform \('flip S-I'\): harden it \(Data module > right-click the CT > Harden"
    with pytest.raises(BoneScreenError, match=said):
        controller.start_segment()
    assert controller.run is None and params.node.outputSegmentation is None
    params.node.outputSegmentation = controller.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    with pytest.raises(BoneScreenError, match=said):
        controller.start_classify()
    flip.SetMatrixTransformToParent(vtk.vtkMatrix4x4())  # the identity: the voxels lie where they are
    np.testing.assert_array_equal(volume_node_to_ct(node).hu, np.maximum(case.hu, -1024))


def test_a_ct_put_under_a_transform_after_classify_is_refused_at_export(panel, case, add_volume, tmp_path):
    """Stop 55: a transform given to the CT after Classify was not noticed by Export, which wrote the results of the CT
    as it lay then. Export refuses it as Segment and Classify do, writing nothing; an identity transform is let
    through."""
    import vtk
    from BoneScreenLib.logic import labels_to_segmentation, volume_node_to_ct

    controller, params = panel
    node = add_volume(controller.scene, case)
    controller.enter()
    params.node.outputSegmentation = labels_to_segmentation(case.levels, volume_node_to_ct(node), node)
    controller.start_classify()
    run_to_end(controller)
    shift = controller.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift 3 mm")
    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 3, 3.0)
    shift.SetMatrixTransformToParent(m)
    node.SetAndObserveTransformNodeID(shift.GetID())
    said = r"the CT 'phantom CT' has a transform \('shift 3 mm'\): harden it \(Data module > right-click the CT"
    with pytest.raises(BoneScreenError, match=said):
        controller.export(str(tmp_path / "moved"))
    assert not (tmp_path / "moved").exists()
    shift.SetMatrixTransformToParent(vtk.vtkMatrix4x4())
    assert len(controller.export(str(tmp_path / "identity"))) == 4


def test_a_segmentation_under_a_transform_is_refused_at_classify_and_export_as_the_ct_is(
    panel, case, add_volume, tmp_path
):
    """helper-78: a segmentation node under a parent transform was classified as the transform placed it (a 3 mm shift
    gave other numbers without a word; a flip was said to hold "no voxel of the CT"), and Export called the shift "an
    edit or a rename". Classify and Export refuse it as they refuse a CT under one, saying how to harden it; an
    identity transform changes nothing and is let through."""
    import vtk
    from BoneScreenLib.logic import labels_to_segmentation, volume_node_to_ct

    controller, params = panel
    node = add_volume(controller.scene, case)
    controller.enter()
    seg = labels_to_segmentation(case.levels, volume_node_to_ct(node), node)
    params.node.outputSegmentation = seg
    controller.start_classify()
    run_to_end(controller)
    assert controller.state().can_export
    said = (
        r"the segmentation '.*' has a transform \('{}'\): harden it \(Data module > right-click the segmentation > "
        r"Harden transform\) first, or remove it"
    )
    for name, element, value in (("shift 3 mm", (0, 3), 3.0), ("flip S-I", (2, 2), -1.0)):
        moved = controller.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
        m = vtk.vtkMatrix4x4()
        m.SetElement(*element, value)
        moved.SetMatrixTransformToParent(m)
        seg.SetAndObserveTransformNodeID(moved.GetID())
        with pytest.raises(BoneScreenError, match=said.format(name)):
            controller.export(str(tmp_path / "moved"))
        assert not (tmp_path / "moved").exists()
        with pytest.raises(BoneScreenError, match=said.format(name)):
            controller.start_classify()
        assert controller.run is None
    moved.SetMatrixTransformToParent(vtk.vtkMatrix4x4())  # the identity: the segments lie where they are
    assert len(controller.export(str(tmp_path / "identity"))) == 4
    controller.start_classify()
    run_to_end(controller)
    assert controller.state().status.startswith("Bone status")


def test_segment_into_the_same_node_keeps_a_segmentation_the_user_edited(panel, case, add_volume):
    """helper-76: with "New segmentation each run" unchecked, Segment overwrote the user's edited output segmentation
    without asking. An output edited (painted, renamed, a segment removed) since BoneScreen made it is kept as it is:
    the new result goes into a new node, and the status says so; an unedited one is still replaced in place."""
    import slicer
    import vtk
    from BoneScreenLib.logic import (
        BoneScreenLogic,
        kept_as_edited,
        labels_to_segmentation,
        segmentation_to_labels,
        volume_node_to_ct,
    )

    from bonescreen.pipeline import Screener

    controller, params = panel
    node = add_volume(controller.scene, case)
    controller.enter()
    params.node.newSegmentationEachRun = False
    volume = volume_node_to_ct(node)

    def made_by_bonescreen():  # as Segment makes it (the level split of the phantom's mark, without MS-Net)
        return BoneScreenLogic("cpu").segmentation_node(
            Screener(device="cpu").name_mark(volume, case.spine > 0), volume, node
        )

    def names(seg):
        s = seg.GetSegmentation()
        return [s.GetNthSegment(i).GetName() for i in range(s.GetNumberOfSegments())]

    edited = made_by_bonescreen()
    assert kept_as_edited(edited, node, volume) is None
    segmentation = edited.GetSegmentation()
    segmentation.RemoveSegment(segmentation.GetSegmentIdBySegmentName("L5"))  # the user's edit
    before = (names(edited), segmentation_to_labels(edited, node, volume))
    params.node.outputSegmentation = edited
    controller.start_segment()
    run_to_end(controller)
    new = params.node.outputSegmentation
    assert new is not edited and new.GetName() == "phantom CT vertebrae_1"
    assert names(edited) == before[0]
    np.testing.assert_array_equal(segmentation_to_labels(edited, node, volume), before[1])
    said = f"'{edited.GetName()}' was kept as it is (segments were renamed, added or removed since BoneScreen made it)"
    assert f"{said}: the new segmentation is 'phantom CT vertebrae_1'." in controller.state().status.splitlines()
    # painted or renamed: kept too; a segmentation of the user's own is never BoneScreen's to replace
    painted = made_by_bonescreen()
    sid = painted.GetSegmentation().GetSegmentIdBySegmentName("L3")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(sid)
    stroke = controller.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "stroke")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(painted, ids, stroke, node)
    voxels = slicer.util.arrayFromVolume(stroke)
    voxels[np.flatnonzero(voxels.any(axis=(1, 2)))[0]] = 0  # L3's top slice erased, as the Erase effect does
    slicer.util.arrayFromVolumeModified(stroke)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(stroke, painted, ids)
    assert kept_as_edited(painted, node, volume) == "segments were edited since BoneScreen made it"
    renamed = made_by_bonescreen()
    renamed.GetSegmentation().GetSegment(renamed.GetSegmentation().GetSegmentIdBySegmentName("L1")).SetName("T12x")
    assert kept_as_edited(renamed, node, volume) is not None
    theirs = labels_to_segmentation(case.levels, volume, node)
    assert kept_as_edited(theirs, node, volume) == "it is not a segmentation BoneScreen made, or not as made"
    # BoneScreen's output as it came: replaced in place
    unedited = made_by_bonescreen()
    params.node.outputSegmentation = unedited
    controller.start_segment()
    run_to_end(controller)
    assert params.node.outputSegmentation is unedited and "kept as it is" not in controller.state().status
    assert names(unedited) == names(new)


def test_classify_and_import_refusals_name_what_the_segmentation_holds_and_advise_in_slicers_words(
    panel, case, add_volume, tmp_path
):
    """helper-76: a segmentation holding one segment 'Segment_1' was refused as holding "no segment"; a mask split by
    BoneScreen (ids 'mask' chosen) whose segment held two vertebral bodies was told to "add --label-scheme mask", the
    command line's option, for what had been chosen; the CT itself opened as a label map was told its ids look like
    TotalSegmentator's. Each refusal now says what is there, and advises what fits, in Slicer's words."""
    import nibabel as nib
    from BoneScreenLib.logic import labels_to_segmentation, segmentation_to_labels, volume_node_to_ct

    controller, params = panel
    node = add_volume(controller.scene, case)
    controller.enter()
    volume = volume_node_to_ct(node)
    drawn = labels_to_segmentation(np.where(case.levels == 3, 3, 0).astype(np.uint8), volume, node)
    drawn.SetName("user drawn")
    drawn.GetSegmentation().GetNthSegment(0).SetName("Segment_1")  # painted anew: Slicer's default name
    params.node.outputSegmentation = drawn
    with pytest.raises(BoneScreenError) as err:
        controller.start_classify()
    assert str(err.value).startswith(
        "the segmentation 'user drawn' holds no lumbar vertebra: it holds 'Segment_1', not named as a vertebra. "
        "Rename the segments L1..L5 in the Segment Editor"
    )
    params.node.outputSegmentation = controller.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "nothing")
    with pytest.raises(BoneScreenError, match="'nothing' holds no segment: segment the CT, or paint the vertebrae"):
        controller.start_classify()
    # a mask of the spine, split by BoneScreen; L1 and L2 end up in one segment
    nib.save(
        nib.Nifti1Image(volume.to_source((case.spine > 0).astype(np.uint8)), volume.source.affine),
        tmp_path / "m.nii.gz",
    )
    controller.import_label_map(str(tmp_path / "m.nii.gz"), "mask")
    run_to_end(controller)
    split = params.node.outputSegmentation
    labels = segmentation_to_labels(split, node, volume)
    labels_to_segmentation(np.where(labels == 2, 1, labels).astype(np.uint8), volume, node, split)
    controller.start_classify()
    with pytest.raises(BoneScreenError) as err:
        run_to_end(controller)
    said = str(err.value)
    assert said.startswith("the labels of L1 hold 2 vertebral bodies one above the other")
    assert "BoneScreen split this mask (ids 'mask'" in said and "open it with its own ids" in said
    assert "--" not in said and "napari" not in said and "'Label map ids:' mask" not in said
    # a segmentation of the user's own: the mask is the advice, in Slicer's words only
    theirs = labels_to_segmentation(np.where(case.levels == 2, 1, case.levels).astype(np.uint8), volume, node)
    params.node.outputSegmentation = theirs
    controller.start_classify()
    with pytest.raises(BoneScreenError) as err:
        run_to_end(controller)
    assert "open the map with 'Label map ids:' mask" in str(err.value) and "--" not in str(err.value)
    # the CT given as a label map: it looks like a CT, and nothing of schemes
    nib.save(nib.Nifti1Image(volume.to_source(case.hu.astype(np.int16)), volume.source.affine), tmp_path / "ct.nii.gz")
    with pytest.raises(BoneScreenError) as err:
        controller.import_label_map(str(tmp_path / "ct.nii.gz"), "bonescreen")
    assert "this looks like a CT image, not a vertebra label map" in str(err.value)
    assert "TotalSegmentator" not in str(err.value) and "scheme" not in str(err.value) and "--" not in str(err.value)
    # another tool's ids read as VerSe's: the scheme that fits, as Slicer's panel names it
    total = np.where(case.spine == 1, 31, np.where(case.spine == 2, 30, 0)).astype(np.uint16)
    total[0, :3, :3] = 52  # an organ's id of TotalSegmentator
    nib.save(nib.Nifti1Image(volume.to_source(total), volume.source.affine), tmp_path / "total.nii.gz")
    with pytest.raises(BoneScreenError) as err:
        controller.import_label_map(str(tmp_path / "total.nii.gz"), "verse")
    assert "choose 'Label map ids:' totalseg and open the map again" in str(err.value)
    assert "--" not in str(err.value)


def test_a_segmentation_finished_after_another_ct_was_picked_names_its_own_ct(panel, case, add_volume):
    """helper-110: another CT picked while Segment ran, "Found 7 vertebrae ..." was shown beside it without saying
    which CT those were. Real MS-Net on the phantom."""
    controller, params = panel
    node = add_volume(controller.scene, case)
    controller.enter()
    params.node.inputVolume = node
    controller.start_segment()
    other = add_volume(controller.scene, case)
    other.SetName("another CT")
    params.node.inputVolume = other  # picked while the network runs
    run_to_end(controller)
    status = controller.state().status.splitlines()
    assert status[0].startswith("Found 7 vertebrae")
    assert status[1] == "This is the segmentation of 'phantom CT', not of the CT now selected."
