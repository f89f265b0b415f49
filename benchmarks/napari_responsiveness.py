"""How responsive napari stays while BoneScreen segments a 120-slice 512x512 volume in its worker.

A 10 ms QTimer runs on the GUI thread during the segmentation; the longest gap between two
ticks is the longest event-loop stall the user would feel. Run under xvfb-run:

    xvfb-run -a .venv/bin/python benchmarks/napari_responsiveness.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from bonescreen.io.volume import volume_from_ijk
from bonescreen.phantom import PhantomConfig, make_case
from napari_bonescreen._convert import image_layer_data


def main() -> None:
    case = make_case(777, 0, PhantomConfig(thickness=1.5))
    hu = np.maximum(case.hu[:120].astype(np.float32), -1024)
    volume = volume_from_ijk(hu.transpose(2, 1, 0), case.affine, "phantom", None, "120-slice phantom")
    viewer = napari.Viewer(show=True)
    data, meta, _ = image_layer_data(volume)
    viewer.add_image(data, **meta)
    _, seg = viewer.window.add_plugin_dock_widget("napari-bonescreen", "Segment vertebrae")
    app = QApplication.instance()
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    t0 = time.perf_counter()
    seg.run()
    while seg.worker is not None:
        app.processEvents()
        time.sleep(0.002)
    total = time.perf_counter() - t0
    timer.stop()
    gaps = np.diff(ticks) * 1000
    result = {
        "slices": 120,
        "seconds": round(total, 2),
        "ticks": len(ticks),
        "longest_stall_ms": round(float(gaps.max()), 1),
        "p99_gap_ms": round(float(np.percentile(gaps, 99)), 1),
        "median_gap_ms": round(float(np.median(gaps)), 1),
    }
    print(json.dumps(result, indent=2))
    out = Path("bench-out/napari_responsiveness.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    viewer.close()


if __name__ == "__main__":
    main()
