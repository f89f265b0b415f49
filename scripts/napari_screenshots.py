"""Screenshots of each step of the napari flow, and of both docks at two window sizes, for the README.

Run: xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/napari_screenshots.py [--docks]
Writes docs/napari_1_sample.png ... docs/napari_4_classified.png; with --docks, both docks open at
1280x800 and at 1920x1080: docs/napari_docks_{size}_real.png (the real Pancreas-CT slice from
../shared/data, whose vertebra the naming cannot confirm, renamed by the user, then classified) and
docs/napari_docks_{size}_phantom.png (the classified phantom).
"""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

DOCS = Path(__file__).resolve().parents[1] / "docs"
PLUGIN = "napari-bonescreen"


def settle(ms: int = 300) -> None:
    app = QApplication.instance()
    for _ in range(max(ms // 20, 1)):
        app.processEvents()
        QApplication.instance().thread().msleep(20)


def wait(widget) -> None:
    while widget.worker is not None:
        settle(100)
    settle(300)


def shot(viewer, name: str) -> None:
    from imageio.v3 import imwrite
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):  # napari's own pop-ups
        toast.close()
    settle(200)
    imwrite(DOCS / name, viewer.screenshot(canvas_only=False, flash=False))
    print(f"wrote docs/{name}")


def docks(size: tuple[int, int]) -> None:
    """Both docks open, side by side with the canvas, at one window size."""
    tag = f"{size[0]}x{size[1]}"
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    for what in ("real", "phantom"):
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(*size)
        if what == "real":
            image = viewer.open(str(shared / "pancreasct-slice" / "explicit_VR-UN.dcm"), plugin=PLUGIN)[0]
        else:
            viewer.open_sample(PLUGIN, "phantom_low_bone_mass")
            image = viewer.layers[0]
        _, seg = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment vertebrae")
        _, cls = viewer.window.add_plugin_dock_widget(PLUGIN, "Classify bone condition")
        seg.image.value = image
        seg.run()
        wait(seg)
        cls.labels.value = seg.last_layer
        if what == "real":  # the user names the vertebra the rule could not confirm
            cls.vertebra.reset_choices()
            cls.vertebra.value = cls.vertebra.choices[0]
            cls.new_name.value = 2
            cls.rename()
        cls.run()
        wait(cls)
        viewer.dims.set_point(0, (image.data.shape[0] // 2) * image.scale[0])
        settle(500)
        shot(viewer, f"napari_docks_{tag}_{what}.png")
        viewer.close()


def main() -> None:
    import sys

    if "--docks" in sys.argv:
        for size in ((1280, 800), (1920, 1080)):
            docks(size)
        return
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample(PLUGIN, "phantom_osteoporosis")
    image = viewer.layers[0]
    _, seg = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment vertebrae")
    k = image.data.shape[0] // 2
    viewer.dims.set_point(0, k * image.scale[0])
    settle()
    shot(viewer, "napari_1_sample.png")
    seg.run()
    wait(seg)
    labels = seg.last_layer
    lv3 = np.nonzero((labels.data == 3).any(axis=(1, 2)))[0]
    viewer.dims.set_point(0, lv3[len(lv3) // 2] * image.scale[0])
    settle()
    shot(viewer, "napari_2_segmented.png")
    # an edit as a user would make it: erase part of the spinous process of L3 on this slice, paint a patch
    z = lv3[len(lv3) // 2]
    rows, _cols = np.nonzero(labels.data[z] == 3)
    labels.data[z, rows.max() - 25 : rows.max() + 1, :] = 0
    labels.selected_label = 3
    labels.mode = "paint"
    labels.refresh()
    settle()
    shot(viewer, "napari_3_edited.png")
    _, cls = viewer.window.add_plugin_dock_widget(PLUGIN, "Classify bone condition", tabify=True)
    cls.labels.value = labels
    cls.run()
    wait(cls)
    cls.table.selectRow(2)
    settle(500)
    shot(viewer, "napari_4_classified.png")
    viewer.close()


if __name__ == "__main__":
    main()
