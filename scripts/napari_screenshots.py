"""Screenshots of each step of the napari flow, for the README (run under xvfb-run).

Run: xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/napari_screenshots.py
Writes docs/napari_1_sample.png ... docs/napari_4_classified.png.
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


def main() -> None:
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
