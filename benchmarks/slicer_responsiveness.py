"""How responsive Slicer's panel stays while BoneScreen segments a 120-slice 512x512 volume on its worker thread.

The panel's controller (BoneScreenLib.controller) runs on slicer-core's real MRML scene; Qt's event loop
(qtpy's QCoreApplication) stands in for Slicer's. A 10 ms QTimer polls the controller on the GUI thread,
as the panel's timer does; the longest gap between two ticks is the longest stall the user would feel,
and the conversion of the result into a segmentation node (GUI thread) is timed on its own. Run:

    .venv/bin/python benchmarks/slicer_responsiveness.py
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import slicer
from qtpy.QtCore import QCoreApplication, QTimer

from bonescreen.phantom import PhantomConfig, make_case

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "slicer_extension" / "BoneScreen"))
from BoneScreenLib.controller import PanelController
from BoneScreenLib.logic import add_ct_volume_node


class Parameters:
    """The module's parameter node fields (slicer-core has no parameterNodeWrapper)."""

    inputVolume = outputSegmentation = resultsTable = None
    device, weightsFolder, newSegmentationEachRun = "cpu", "", True


def main() -> None:
    case = make_case(777, 0, PhantomConfig(thickness=1.5))
    hu = case.hu[:120]
    scene = slicer.vtkMRMLScene()
    add_ct_volume_node(scene, hu, case.spacing, "120-slice phantom")
    params = Parameters()
    controller = PanelController(scene, lambda: params)
    controller.enter()
    controller.logic().screener.model("segmentation")  # weights loaded before timing, as after a first run

    app = QCoreApplication.instance() or QCoreApplication([])
    ticks: list[float] = []
    polls: list[float] = []

    def tick() -> None:
        ticks.append(time.perf_counter())
        t0 = time.perf_counter()
        running = controller.poll()
        polls.append(time.perf_counter() - t0)
        if not running:
            timer.stop()
            app.quit()

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    t0 = time.perf_counter()
    controller.start_segment()
    timer.start()
    app.exec_()
    total = time.perf_counter() - t0
    gaps = np.diff([t0, *ticks])
    report = {
        "machine": platform.processor() or platform.machine(),
        "slices": int(hu.shape[0]),
        "segment_s": round(total, 2),
        # the GUI thread is busy for the longest of: a gap between ticks while the worker runs, and a poll
        # (the last one makes the segmentation node, on the GUI thread since MRML is not thread-safe)
        "longest_stall_ms": round(1000 * max(float(gaps.max()), max(polls)), 1),
        "longest_stall_while_running_ms": round(1000 * float(gaps.max()), 1),
        "p99_gap_ms": round(1000 * float(np.percentile(gaps, 99)), 1),
        "segmentation_node_ms": round(1000 * polls[-1], 1),
        "ticks": len(ticks),
        "segments": params.outputSegmentation.GetSegmentation().GetNumberOfSegments(),
    }
    print(json.dumps(report, indent=2))
    out = Path("bench-out/slicer_responsiveness.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
