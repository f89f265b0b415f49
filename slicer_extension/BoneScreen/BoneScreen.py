"""BoneScreen: opportunistic osteoporosis screening on lumbar CT (3D Slicer scripted module).

Segment L1-L5 with MS-Net into a segmentation node, correct it in the Segment
Editor, classify each level with BCC-Net beside its trabecular HU, and read the
results in a table and a chart. The work is done by the ``bonescreen`` core;
torch comes from the SlicerPyTorch extension.
"""

from __future__ import annotations

import logging

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
    """The module panel."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._run = None
        self._timer = qt.QTimer()
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._step)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        ui_widget = slicer.util.loadUI(self.resourcePath("UI/BoneScreen.ui"))
        self.layout.addWidget(ui_widget)
        self.ui = slicer.util.childWidgetVariables(ui_widget)
        ui_widget.setMRMLScene(slicer.mrmlScene)
        self.ui.deviceComboBox.addItems(["auto", "cpu", "cuda", "mps"])
        self.logic = BoneScreenModuleLogic()
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.editButton.connect("clicked(bool)", self.onEdit)
        self.ui.classifyButton.connect("clicked(bool)", self.onClassify)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        # a CT whose file had no orientation (NIfTI without qform/sform): the user states it, as in napari
        row = qt.QHBoxLayout()
        self.orientationBox = qt.QComboBox()
        self.orientationBox.editable = True  # any of the 48 axis codes (e.g. PIR); the usual ones listed
        self.orientationBox.addItems(["LPS", "RAS", "LAS", "RPS", "LPI", "RAI", "LAI", "RPI"])
        self.orientationBox.toolTip = "Axis codes of the CT's array (where i, j, k run), for a file without orientation"
        orientationButton = qt.QPushButton("Set the CT's orientation")
        orientationButton.connect("clicked(bool)", self.onOrientation)
        row.addWidget(qt.QLabel("File orientation:"))
        row.addWidget(self.orientationBox)
        row.addWidget(orientationButton)
        self.layout.addLayout(row)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.initializeParameterNode()

    def onOrientation(self) -> None:
        volume = self._parameterNode.inputVolume
        if volume is None:
            slicer.util.errorDisplay("Select the CT first.")
            return
        from BoneScreenLib.logic import set_volume_orientation

        try:
            set_volume_orientation(volume, self.orientationBox.currentText)
        except Exception as exc:  # an invalid code typed by the user: say which
            slicer.util.errorDisplay(f"BoneScreen: {exc}")
            return
        self.ui.statusLabel.text = f"Orientation of {volume.GetName()} set to {self.orientationBox.currentText}"

    def cleanup(self) -> None:
        self.removeObservers()
        self._timer.stop()

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancel()

    def initializeParameterNode(self) -> None:
        self._parameterNode = BoneScreenParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        self._parameterNode.connectGui(self.ui)

    def _core_logic(self):
        from BoneScreenLib.logic import BoneScreenLogic

        folder = self._parameterNode.weightsFolder or None
        return BoneScreenLogic(self._parameterNode.device, seg_weights=folder)

    def onSegment(self) -> None:
        volume = self._parameterNode.inputVolume
        if volume is None:
            slicer.util.errorDisplay("Select a CT volume first.")
            return
        if not ensure_core():
            return
        target = None if self._parameterNode.newSegmentationEachRun else self._parameterNode.outputSegmentation
        try:
            self.core = self._core_logic()
            self._run = self.core.iter_segment(volume, target)
        except Exception as exc:  # shown to the user, not as a traceback
            slicer.util.errorDisplay(f"BoneScreen could not start: {exc}")
            return
        self.ui.progressBar.setValue(0)
        self.ui.segmentButton.enabled, self.ui.cancelButton.enabled = False, True
        self._timer.start()

    def _step(self) -> None:
        """One batch per timer tick: Slicer stays responsive and Cancel acts between batches."""
        try:
            stage, done, total = next(self._run)
            self.ui.progressBar.setMaximum(max(total, 1))
            self.ui.progressBar.setValue(done)
            self.ui.statusLabel.text = f"{stage}: {done} of {total}"
        except StopIteration as stop:
            self._finish()
            node = stop.value
            self._parameterNode.outputSegmentation = node
            note = self.core.screener.device_note
            self.ui.statusLabel.text = (
                f"Segmented ({node.GetAttribute('BoneScreen.NamingRule')}). Correct, then classify."
                + (f"\n{note}" if note else "")
            )
        except Exception as exc:
            self._finish()
            logging.exception("BoneScreen segmentation failed")
            slicer.util.errorDisplay(f"BoneScreen: {exc}")

    def _finish(self) -> None:
        self._timer.stop()
        self._run = None
        self.ui.segmentButton.enabled, self.ui.cancelButton.enabled = True, False

    def onCancel(self) -> None:
        if self._run is not None:
            self._run.close()
            self._finish()
            self.ui.statusLabel.text = "Cancelled: nothing was changed."

    def onEdit(self) -> None:
        node = self._parameterNode.outputSegmentation
        if node is None:
            slicer.util.errorDisplay("Segment first, or pick a segmentation.")
            return
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(node)
        editor.setSourceVolumeNode(self._parameterNode.inputVolume)

    def onClassify(self) -> None:
        volume, seg = self._parameterNode.inputVolume, self._parameterNode.outputSegmentation
        if volume is None or seg is None:
            slicer.util.errorDisplay("Select the CT and its segmentation (segment first).")
            return
        if not ensure_core():
            return
        try:
            with _busy():
                self.core = getattr(self, "core", None) or self._core_logic()
                result, table, chart = self.core.classify(volume, seg, self._parameterNode.resultsTable)
        except Exception as exc:
            slicer.util.errorDisplay(f"BoneScreen: {exc}")
            return
        self._parameterNode.resultsTable = table
        slicer.modules.plots.logic().ShowChartInLayout(chart)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()
        from bonescreen.messages import user_messages

        o = result["overall"]
        messages = user_messages(result)
        flag = "\n".join(messages) if messages else "no uncertainty flag and no notes"
        self.ui.statusLabel.text = f"Overall ({', '.join(o['levels_used'])}): {o['prediction']}\n{flag}"

    def onExport(self) -> None:
        if getattr(self, "core", None) is None or self.core.last_result is None:
            slicer.util.errorDisplay("Classify first.")
            return
        folder = qt.QFileDialog.getExistingDirectory(None, "Export BoneScreen results")
        if folder:
            written = self.core.export(folder)
            slicer.util.infoDisplay("Written:\n" + "\n".join(written))


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
        import numpy as np

        if not ensure_core():
            self.skipTest("the bonescreen core is not installed")
        from BoneScreenLib.logic import BoneScreenLogic

        from bonescreen.sample import sample_case

        case = sample_case("osteoporosis")
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "phantom")
        dz, dy, dx = case.spacing
        volume.SetSpacing(dx, dy, dz)
        m = vtk.vtkMatrix4x4()
        m.SetElement(0, 0, -1)
        m.SetElement(1, 1, -1)
        volume.SetIJKToRASDirectionMatrix(m)
        slicer.util.updateVolumeFromArray(volume, np.maximum(case.hu, -1024).astype(np.int16))
        logic = BoneScreenLogic("cpu")
        seg = logic.segment(volume)
        self.assertEqual(seg.GetSegmentation().GetNumberOfSegments(), 5)
        result, table, _chart = logic.classify(volume, seg)
        self.assertEqual([lv["name"] for lv in result["levels"]], ["L1", "L2", "L3", "L4", "L5"])
        self.assertEqual(table.GetNumberOfRows(), 6)
        self.delayDisplay("BoneScreen phantom flow passed")
