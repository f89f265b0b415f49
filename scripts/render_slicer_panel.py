"""Render the Slicer module panel from its .ui file with plain Qt (run under xvfb-run).

3D Slicer cannot run on the development machines, so Slicer's own widget classes
(qMRMLNodeComboBox, ctkCollapsibleButton, ctkPathLineEdit, qMRMLWidget) are stood
in by plain Qt widgets of the same shape, filled with example node names.
Writes docs/slicer_panel.png.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from PyQt5 import QtWidgets, uic  # PyQt6.uic cannot load this .ui (its spacers): `pip install PyQt5` to re-render

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "slicer_extension" / "BoneScreen" / "Resources" / "UI" / "BoneScreen.ui"


class qMRMLNodeComboBox(QtWidgets.QComboBox):
    def setMRMLScene(self, scene):
        pass

    def setNodeTypes(self, types):
        pass

    def setAddEnabled(self, value):
        pass

    def setRemoveEnabled(self, value):
        pass

    def setNoneEnabled(self, value):
        pass


class ctkCollapsibleButton(QtWidgets.QGroupBox):
    def setText(self, text):
        self.setTitle(text)

    def text(self):
        return self.title()


class ctkPathLineEdit(QtWidgets.QLineEdit):
    pass


class qMRMLWidget(QtWidgets.QWidget):
    pass


for name, cls in {
    "qMRMLNodeComboBox": qMRMLNodeComboBox,
    "ctkCollapsibleButton": ctkCollapsibleButton,
    "ctkPathLineEdit": ctkPathLineEdit,
    "qMRMLWidget": qMRMLWidget,
}.items():
    module = types.ModuleType(name)
    setattr(module, name, cls)
    sys.modules[name] = module


def main() -> None:
    app = QtWidgets.QApplication(sys.argv)
    text = UI.read_text()
    # uic cannot connect Slicer's mrmlSceneChanged signal: drop the connections for the rendering
    text = text.split("<connections>")[0] + "</ui>\n"
    tmp = Path("/tmp/BoneScreen_render.ui")
    tmp.write_text(text)
    w = uic.loadUi(str(tmp))
    w.inputSelector.addItem("CT abdomen (3 mm)")
    w.outputSelector.addItem("CT abdomen (3 mm) levels")
    w.tableSelector.addItem("CT abdomen (3 mm) BoneScreen results")
    w.deviceComboBox.addItems(["auto", "cpu", "cuda"])
    w.weightsPathLineEdit.setPlaceholderText("(bundled weights)")
    w.schemeComboBox.addItems(["bonescreen", "verse", "totalseg", "mask"])
    w.orientationComboBox.addItems(["LPS", "RAS"])
    w.progressBar.setValue(100)
    w.statusLabel.setText(
        "Bone status: Low bone mass (vBMD 96 mg/cm3 (ACR QCT categories))\n"
        "BCC-Net (network), L1, L2: Low bone mass\n"
        "L3: HU category osteoporosis (104 HU) disagrees with the network (low bone mass)"
    )
    w.resize(440, 700)
    w.show()
    app.processEvents()
    out = ROOT / "docs" / "slicer_panel.png"
    w.grab().save(str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
