"""BoneScreen: opportunistic osteoporosis screening on lumbar CT (3D Slicer scripted module).

Segment every vertebra in view with MS-Net into a segmentation node (named T12,
L1..L5, S1 ...), correct the masks and the names in the Segment Editor, classify
each lumbar level with BCC-Net beside its trabecular HU, and read the
results in a table and a chart. The work is done by the ``bonescreen`` core;
torch comes from the SlicerPyTorch extension.
"""

from __future__ import annotations

import qt
import slicer
import vtk
from BoneScreenLib.install import install_command, is_installed
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class BoneScreen(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "BoneScreen"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = ["Segmentations", "Tables", "Plots"]
        self.parent.contributors = ["BoneScreen developers"]
        self.parent.helpText = (
            "Segment the lumbar vertebrae (L1-L5) of a CT, correct the segmentation in the Segment Editor, "
            "then classify bone condition per level (normal, low bone mass, osteoporosis) with a trabecular HU "
            "measurement and an uncertainty flag. Research software, not a medical device."
        )
        self.parent.acknowledgementText = "Reproduces MS-Net + BCC-Net; phantom-trained default weights."


@parameterNodeWrapper
class BoneScreenParameterNode:
    """Typed parameters of the module."""

    inputVolume: slicer.vtkMRMLScalarVolumeNode
    outputSegmentation: slicer.vtkMRMLSegmentationNode
    resultsTable: slicer.vtkMRMLTableNode
    device: str = "auto"
    weightsFolder: str = ""
    newSegmentationEachRun: bool = True


def ensure_core() -> bool:
    """Install ``bonescreen`` after asking the user; True when it can be imported."""
    if is_installed():
        return True
    try:
        import torch  # noqa: F401
    except ImportError:
        slicer.util.errorDisplay(
            "BoneScreen needs PyTorch: install the PyTorch extension (Extensions Manager), "
            "restart Slicer, and install torch from its module."
        )
        return False
    if not slicer.util.confirmOkCancelDisplay(
        "BoneScreen needs its Python package 'bonescreen' (and pydicom, "
        "nibabel, highdicom, scikit-image). Install it now?"
    ):
        return False
    with _busy():
        slicer.util.pip_install(install_command())
    return is_installed()


class _busy:
    def __enter__(self):
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)

    def __exit__(self, *args):
        qt.QApplication.restoreOverrideCursor()


class BoneScreenWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel, on the lifecycle of Slicer's scripted-module template.

    State and long work live in ``BoneScreenLib.controller.PanelController`` (GUI-free, tested on
    MRML); this class connects Slicer's events and widgets to it. Segment and Classify run on a
    worker thread that a timer polls, so Slicer stays responsive and Cancel stops them.
    """

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.controller = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._poll)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        ui_widget = slicer.util.loadUI(self.resourcePath("UI/BoneScreen.ui"))
        self.layout.addWidget(ui_widget)
        self.ui = slicer.util.childWidgetVariables(ui_widget)
        ui_widget.setMRMLScene(slicer.mrmlScene)
        self.ui.deviceComboBox.addItems(["auto"])  # the machine's devices are listed by the core once it is loaded
        self.logic = BoneScreenModuleLogic()
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.editButton.connect("clicked(bool)", self.onEdit)
        self.ui.classifyButton.connect("clicked(bool)", self.onClassify)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        # each in its section of the .ui (helper-110: added under the panel, after the status text, a classified
        # result pushed them out of view): a CT whose file had no orientation (NIfTI without qform/sform), which the
        # user states, as in napari
        self.orientationBox = self.ui.orientationComboBox  # any of the 48 axis codes (e.g. PIR); the usual ones listed
        self.orientationBox.addItems(["LPS", "RAS", "LAS", "RPS", "LPI", "RAI", "LAI", "RPI"])
        self.ui.orientationButton.connect("clicked(bool)", self.onOrientation)
        # the naming was off by one (T12 taken for L1, a sixth lumbar vertebra): move every name at once;
        # one segment is renamed in the Segment Editor (double-click its name: L1, T12, S1 ...)
        self.shiftUpButton, self.shiftDownButton = self.ui.shiftUpButton, self.ui.shiftDownButton
        self.shiftUpButton.connect("clicked(bool)", lambda: self.onShift(-1))
        self.shiftDownButton.connect("clicked(bool)", lambda: self.onShift(1))
        # bring your own segmentation: another tool's vertebra map of this CT as the editable segments
        self.schemeBox = self.ui.schemeComboBox
        self.schemeBox.addItems(["bonescreen"])  # the other schemes are listed by the core once it is loaded
        self.ui.importLabelsButton.connect("clicked(bool)", self.onImportLabels)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def _ensure_controller(self) -> bool:
        """The controller needs the core; until it is installed the panel only offers to install it."""
        if self.controller is None:
            if not ensure_core():
                return False
            from BoneScreenLib.controller import PanelController

            self.controller = PanelController(slicer.mrmlScene, lambda: self._parameterNode)
            self.ui.deviceComboBox.clear()
            self.ui.deviceComboBox.addItems(self.controller.devices())  # the devices this machine has
            from bonescreen.label_schemes import SCHEME_NAMES

            self.schemeBox.clear()
            self.schemeBox.addItems(list(SCHEME_NAMES))
            self.controller.enter()
        return True

    def cleanup(self) -> None:
        self._timer.stop()
        if self.controller is not None:
            self.controller.scene_start_close()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # the panel stops following the parameter node; a run goes on and is shown again on return
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self._timer.stop()
        if self.controller is not None:
            self.controller.scene_start_close()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(BoneScreenParameterNode(self.logic.getParameterNode()))
        if not self._parameterNode.inputVolume:
            from BoneScreenLib.controller import first_ct  # (Qt- and core-free: importable before the core is)

            self._parameterNode.inputVolume = first_ct(slicer.mrmlScene)
        if self.controller is not None:
            self.controller.enter()

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._updateButtons()

    def _updateButtons(self, caller=None, event=None) -> None:
        """Buttons enabled from the inputs and the run: the controller decides, the panel shows."""
        p = self._parameterNode
        if self.controller is None:  # the core is not installed yet: Segment offers to install it
            ready = p is not None and p.inputVolume is not None
            self.ui.segmentButton.enabled = ready
            idle = (self.ui.classifyButton, self.ui.exportButton, self.ui.cancelButton)
            for button in (*idle, self.shiftUpButton, self.shiftDownButton):
                button.enabled = False
            return
        state = self.controller.state()
        self.ui.segmentButton.enabled = state.can_segment
        self.ui.editButton.enabled = p is not None and p.outputSegmentation is not None
        self.ui.classifyButton.enabled = state.can_classify
        self.ui.exportButton.enabled = state.can_export
        for button in (self.shiftUpButton, self.shiftDownButton):
            button.enabled = state.can_classify
        self.ui.cancelButton.enabled = state.can_cancel
        self.ui.segmentButton.toolTip = state.why_not or "Segment the vertebrae with MS-Net"
        self.ui.progressBar.setMaximum(state.progress[1])
        self.ui.progressBar.setValue(state.progress[0])
        if state.status:
            self.ui.statusLabel.text = state.status

    def onOrientation(self) -> None:
        volume = self._parameterNode.inputVolume
        if volume is None:
            slicer.util.errorDisplay("Select the CT first.")
            return
        if not self._ensure_controller():
            return
        with slicer.util.tryWithErrorDisplay("BoneScreen could not set the orientation.", waitCursor=True):
            from BoneScreenLib.logic import set_volume_orientation

            set_volume_orientation(volume, self.orientationBox.currentText)
            self.ui.statusLabel.text = f"Orientation of {volume.GetName()} set to {self.orientationBox.currentText}"

    def onSegment(self) -> None:
        if not self._ensure_controller():
            return
        with slicer.util.tryWithErrorDisplay("BoneScreen could not start segmenting.", waitCursor=True):
            self.controller.start_segment()
            self._timer.start()
        self._updateButtons()

    def onClassify(self) -> None:
        if not self._ensure_controller():
            return
        with slicer.util.tryWithErrorDisplay("BoneScreen could not start classifying.", waitCursor=True):
            self.controller.start_classify()
            self._timer.start()
        self._updateButtons()

    def _poll(self) -> None:
        """Timer tick (GUI thread): progress, and the result into MRML nodes when the worker has ended."""
        running = True
        with slicer.util.tryWithErrorDisplay("BoneScreen failed.", waitCursor=False):
            try:
                running = self.controller.poll()
            finally:
                if not self.controller.run:
                    self._timer.stop()
        if not running and self.controller.chart is not None:
            self._show_results()
        self._updateButtons()

    def _show_results(self) -> None:
        slicer.modules.plots.logic().ShowChartInLayout(self.controller.chart)
        table = self._parameterNode.resultsTable
        if table is not None:
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()
        self.controller.chart = None

    def onImportLabels(self) -> None:
        if not self._ensure_controller():
            return
        path = qt.QFileDialog.getOpenFileName(None, "Vertebra label map", "", "NIfTI (*.nii *.nii.gz)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay("BoneScreen could not open the label map.", waitCursor=True):
            self.controller.import_label_map(path, self.schemeBox.currentText)
            if self.controller.run is not None:  # a mask of the spine: split on a worker thread
                self._timer.start()
        self._updateButtons()

    def onShift(self, steps: int) -> None:
        if not self._ensure_controller():
            return
        with slicer.util.tryWithErrorDisplay("BoneScreen could not shift the names.", waitCursor=True):
            self.controller.shift_names(steps)
        self._updateButtons()

    def onCancel(self) -> None:
        if self.controller is not None:
            self.controller.cancel()
        self._updateButtons()

    def onEdit(self) -> None:
        node = self._parameterNode.outputSegmentation
        if node is None:
            slicer.util.errorDisplay("Segment first, or pick a segmentation.")
            return
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(node)
        editor.setSourceVolumeNode(self._parameterNode.inputVolume)

    def onExport(self) -> None:
        with slicer.util.tryWithErrorDisplay("BoneScreen could not export the results.", waitCursor=True):
            folder = qt.QFileDialog.getExistingDirectory(None, "Export BoneScreen results")
            if folder:
                written = self.controller.export(folder)
                # what the export did beside writing, such as an earlier run's edited labels kept under a new name
                # (helper-110: said in result.json's output_notes only)
                notes = self.controller.logic().last_export_notes
                said = "\n\nNotes:\n" + "\n".join(f"- {n}" for n in notes) if notes else ""
                slicer.util.infoDisplay("Written:\n" + "\n".join(written) + said)


class BoneScreenModuleLogic(ScriptedLoadableModuleLogic):
    """Holds the parameter node; the work is in BoneScreenLib.logic.BoneScreenLogic (GUI-free)."""

    def getParameterNode(self):
        return ScriptedLoadableModuleLogic.getParameterNode(self)


class BoneScreenTest(ScriptedLoadableModuleTest):
    """Self-test inside Slicer: a phantom volume through segment -> edit -> classify."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_phantom_flow()

    def test_phantom_flow(self):

        if not ensure_core():
            self.skipTest("the bonescreen core is not installed")
        from BoneScreenLib.logic import BoneScreenLogic, add_ct_volume_node

        from bonescreen.sample import sample_case

        case = sample_case("osteoporosis")
        volume = add_ct_volume_node(slicer.mrmlScene, case.hu, case.spacing, "phantom")
        logic = BoneScreenLogic("cpu")
        seg = logic.segment(volume)
        segmentation = seg.GetSegmentation()
        names = {segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())}
        self.assertTrue({"L1", "L2", "L3", "L4", "L5"} <= names)
        result, table, _chart = logic.classify(volume, seg)
        self.assertEqual([lv["name"] for lv in result["levels"]], ["L1", "L2", "L3", "L4", "L5"])
        self.assertEqual(table.GetNumberOfRows(), 6)
        self.delayDisplay("BoneScreen phantom flow passed")
