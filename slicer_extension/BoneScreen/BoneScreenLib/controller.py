"""The module panel's state and long work, without Qt: what the widget shows is decided here.

The widget (BoneScreen.py) forwards Slicer's events (enter, exit, scene close) and button clicks
to :class:`PanelController` and polls it from a timer. Long work (MS-Net, the level split,
BCC-Net) runs on a worker thread (:class:`BackgroundRun`); MRML nodes are read before and written
after it, on the GUI thread, since MRML is not thread-safe. Tested headless on slicer-core's real
MRML nodes (tests/slicer/test_controller.py).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: What the panel needs from its parameter node (the widget's parameterNodeWrapper has these fields).
PARAMETERS = ("inputVolume", "outputSegmentation", "resultsTable", "device", "weightsFolder", "newSegmentationEachRun")


def first_ct(scene):
    """The scene's first scalar volume that is no label map (a label map is a scalar volume too: helper-60), or None."""
    volumes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    for i in range(volumes.GetNumberOfItems()):
        node = volumes.GetItemAsObject(i)
        if not node.IsA("vtkMRMLLabelMapVolumeNode"):
            return node
    return None


def _no_lumbar_vertebra(segmentation_node, vertebrae: list[str]) -> str:
    """Why a segmentation cannot be classified when it holds no lumbar vertebra: the vertebrae it holds, and the
    segments it holds that are named as none (helper-76: one segment 'Segment_1' was said to be "no segment")."""
    from BoneScreenLib.logic import vertebra_segments

    segmentation = segmentation_node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    named = set(vertebra_segments(segmentation_node))
    others = [repr(n) for n in names if n not in named]
    held = [", ".join(vertebrae)] * bool(vertebrae)
    if others:
        held.append(f"{', '.join(others)}, not named as {'a vertebra' if len(others) == 1 else 'vertebrae'}")
    if not held:
        return (
            f"the segmentation '{segmentation_node.GetName()}' holds no segment: segment the CT, or paint the "
            "vertebrae in the Segment Editor and name them L1..L5"
        )
    return (
        f"the segmentation '{segmentation_node.GetName()}' holds no lumbar vertebra: it holds {' and '.join(held)}. "
        "Rename the segments L1..L5 in the Segment Editor (double-click a name) or shift all names, then classify"
    )


class BackgroundRun:
    """``work(progress)`` on a worker thread; the GUI thread polls it and may cancel it.

    ``progress(stage, done, total)`` is called by the work between batches; after :meth:`cancel`
    it returns False, and the core then stops with :class:`bonescreen.pipeline.Cancelled`.
    """

    def __init__(self, work: Callable[[Callable[[str, int, int], bool]], Any]) -> None:
        self._work = work
        self._events: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bonescreen-run", daemon=True)
        self.result: Any = None
        self.error: BaseException | None = None
        self.cancelled = False

    def start(self) -> BackgroundRun:
        self._thread.start()
        return self

    def _progress(self, stage: str, done: int, total: int) -> bool:
        self._events.put((stage, done, total))
        return not self._cancel.is_set()

    def _run(self) -> None:
        from bonescreen.pipeline import Cancelled

        try:
            self.result = self._work(self._progress)
        except Cancelled:
            self.cancelled = True
        except BaseException as exc:  # handed to the GUI thread, which shows it
            self.error = exc

    def cancel(self) -> None:
        """Ask the work to stop at its next progress report."""
        self._cancel.set()

    @property
    def cancelling(self) -> bool:
        return self._cancel.is_set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def progress(self) -> list[tuple[str, int, int]]:
        """The progress reports since the last call (GUI thread)."""
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


@dataclass
class PanelState:
    """What the widget shows: button states, progress and the status line."""

    can_segment: bool
    can_classify: bool
    can_export: bool
    can_cancel: bool
    why_not: str
    status: str
    progress: tuple[int, int]


def _segmentation_status(seg, volume, rule: str, after: Sequence[str] = (), last: Sequence[str] = ()) -> str:
    """The panel's status after a split (MS-Net's mark or a user's mask), as napari's dock says it: what was found
    (:func:`~bonescreen.messages.segmentation_done`), ``after`` it, then every doubt and note (helper-60: the names'
    doubts and the notes waited for Classify), then ``last``."""
    from bonescreen.messages import segmentation_done, segmentation_messages

    done = segmentation_done(
        seg.vertebra_labels(), rule, "Correct the segments (Segment Editor) and their names", seg.notes
    )
    messages = segmentation_messages(volume.flags, seg.notes, volume.notes)
    return "\n".join([done, *after, *(f"- {m}" for m in messages), *last])


class PanelController:
    """The BoneScreen panel without its widgets.

    Parameters
    ----------
    scene : vtkMRMLScene
        The application's scene.
    make_parameters : callable
        Returns the module's parameter node wrapper (fields :data:`PARAMETERS`) for the scene,
        creating the node when needed (Slicer's ``ScriptedLoadableModuleLogic.getParameterNode``).
    """

    def __init__(self, scene, make_parameters: Callable[[], Any]) -> None:
        self.scene = scene
        self._make_parameters = make_parameters
        self.params = None
        self._logic = None
        self._logic_key: tuple | None = None
        self.run: BackgroundRun | None = None
        self._finish: Callable[[Any], str] | None = None
        self.status = ""
        self._progress = (0, 1)
        self._step: tuple[str, float] | None = None  # a step without progress of its own: its stage, when it began
        #: The plot chart node of the last classification (the widget shows it in the layout).
        self.chart = None

    # lifecycle -----------------------------------------------------------------------------------
    def enter(self) -> None:
        """The module is shown: take (or make) the scene's parameter node and choose a CT if none is."""
        self.params = self._make_parameters()
        if self.params.inputVolume is None:
            self.params.inputVolume = first_ct(self.scene)

    def exit(self) -> None:
        """The module is left: the parameter node stays in the scene; a run goes on in the background."""

    def scene_start_close(self) -> None:
        """The scene is being closed: stop any run (its nodes go) and forget the parameter node."""
        self.cancel()
        if self.run is not None:
            self.run.wait(30.0)
        self.run, self._finish = None, None
        self.params = None
        self.status = ""
        if self._logic is not None:
            self._logic.last_result = None

    def scene_end_close(self, shown: bool) -> None:
        """The scene was closed: a shown module takes the new scene's parameter node at once."""
        if shown:
            self.enter()

    # the core, rebuilt when its settings change --------------------------------------------------
    @staticmethod
    def devices() -> list[str]:
        """The devices of this machine, from the core (``auto`` first)."""
        from bonescreen.device import available_devices

        return available_devices()

    def logic(self):
        """The :class:`~BoneScreenLib.logic.BoneScreenLogic` for the current device and weights."""
        from BoneScreenLib.logic import BoneScreenLogic

        key = (self.params.device or "auto", self.params.weightsFolder or None)
        if self._logic is None or key != self._logic_key:
            self._logic = BoneScreenLogic(key[0], seg_weights=key[1])  # results of the old settings are not kept
            self._logic_key = key
        return self._logic

    # what the panel shows ------------------------------------------------------------------------
    def state(self) -> PanelState:
        p = self.params
        busy = self.run is not None
        why = ""
        if p is None:
            why = "no scene"
        elif p.inputVolume is None:
            why = "Select a CT volume."
        can_segment = not busy and not why
        can_classify = can_segment and p.outputSegmentation is not None
        if can_segment and not can_classify:
            why = "Segment first, or pick a segmentation."
        can_export = not busy and self._logic is not None and self._logic.last_result is not None
        return PanelState(can_segment, can_classify, can_export, busy, why, self.status, self._progress)

    # actions -------------------------------------------------------------------------------------
    def start_segment(self) -> None:
        """Segment the input CT on a worker thread; :meth:`poll` puts the result into a segmentation node.

        Raises
        ------
        BoneScreenError
            If the inputs are missing or unreadable, or the weights or device are wrong.
        """
        from bonescreen.errors import BoneScreenError
        from BoneScreenLib.logic import kept_as_edited, volume_node_to_ct

        self._require_idle()
        volume_node = self.params.inputVolume
        if volume_node is None:
            raise BoneScreenError("select a CT volume first")
        target = None if self.params.newSegmentationEachRun else self.params.outputSegmentation
        logic = self.logic()
        screener = logic.screener  # made here: a wrong device or weights folder is reported now
        screener.model("segmentation")
        volume = volume_node_to_ct(volume_node)

        def finish(seg) -> str:
            # read now, as it is overwritten: the user may have edited it while the network ran
            live = target if target is not None and target.GetScene() is not None else None  # (not deleted since)
            why = kept_as_edited(live, volume_node, volume) if live is not None else None
            node = logic.segmentation_node(seg, volume, volume_node, None if why else live)
            self.params.outputSegmentation = node
            kept = (
                [f"'{target.GetName()}' was kept as it is ({why}): the new segmentation is '{node.GetName()}'."]
                if why
                else []
            )
            now = self.params.inputVolume
            if now is None or now.GetID() != volume_node.GetID():  # (helper-110: another CT picked while it ran)
                kept.insert(0, f"This is the segmentation of '{volume_node.GetName()}', not of the CT now selected.")
            self._results_out_of_date("segmented again")  # the last result was for another segmentation
            note = screener.device_note
            return _segmentation_status(seg, volume, seg.rule, kept, [note] if note else [])

        self._start(lambda progress: screener.segment(volume, progress), finish)

    def start_classify(self) -> None:
        """Classify the (corrected) segmentation on a worker thread; :meth:`poll` fills the table and chart.

        Raises
        ------
        BoneScreenError
            If the CT or the segmentation is missing or holds no lumbar level.
        """
        import numpy as np

        from bonescreen.errors import BoneScreenError
        from bonescreen.labels import CLASS_TITLES, lumbar_levels, vertebra_name
        from bonescreen.messages import headline, overall_row_basis, status_basis, user_messages
        from BoneScreenLib.logic import vertebra_segments

        self._require_idle()
        volume_node, seg_node = self.params.inputVolume, self.params.outputSegmentation
        if volume_node is None or seg_node is None:
            raise BoneScreenError("select the CT and its segmentation (segment first)")
        logic = self.logic()
        try:
            inputs = logic.classify_inputs(volume_node, seg_node)
            if not inputs.labels.any() and (named := vertebra_segments(seg_node)):
                # (helper-60: a segmentation of another CT, or empty segments, was told to rename what it held)
                raise BoneScreenError(
                    f"the segments of '{seg_node.GetName()}' ({', '.join(named)}) hold no voxel of the CT "
                    f"'{volume_node.GetName()}': a segmentation of another CT, or empty segments; pick this CT's "
                    "segmentation, segment it, or paint the vertebrae in the Segment Editor"
                )
            if not lumbar_levels(inputs.labels).any():
                raise BoneScreenError(
                    _no_lumbar_vertebra(seg_node, [vertebra_name(k) for k in np.unique(inputs.labels) if k])
                )
        except BoneScreenError as exc:
            # the panel no longer shows the last result as if it held (helper-110: the earlier bone status stayed on
            # screen after a refused Classify); Export still writes it while the CT and segmentation are as they were
            # classified, and refuses otherwise (BoneScreenLogic.export)
            self.status = f"Classify refused: {exc}"
            self._results_out_of_date("Classify refused", keep=True)
            raise

        def work(progress):
            return logic.run_classify(inputs, progress)

        def finish(result) -> str:
            result, table, chart = logic.classify_outputs(result, inputs, volume_node, self.params.resultsTable)
            self.params.resultsTable = table
            self.chart = chart
            o = result["overall"]
            messages = user_messages(result)
            flag = "\n".join(messages) if messages else "no uncertainty flag and no notes"
            line, _ = headline(o)  # the bone status first; BCC-Net's call is the network's, below it
            basis = f" ({status_basis(o['bone_status'])})" if o.get("bone_status") else ""
            network = (
                f"BCC-Net (network), {', '.join(o['levels_used'])}: {CLASS_TITLES[o['prediction']]}"
                if o["prediction"]
                else "BCC-Net (network): no overall call"
            )
            # the table's overall row averages different levels per column: said beside it
            return "\n".join(filter(None, [f"{line}{basis}", network, overall_row_basis(o), flag]))

        self._start(work, finish)

    def import_label_map(self, path: str, scheme: str) -> None:
        """Open a vertebra label map of the input CT (``bonescreen``, ``verse`` or ``totalseg`` ids) as segments.

        With ``mask`` ids, every id above 0 is vertebral bone: the mask is split and named on a worker thread, as
        MS-Net's mark is (:meth:`bonescreen.pipeline.Screener.name_mark`); :meth:`poll` puts the vertebrae into a
        new segmentation node.

        Raises
        ------
        BoneScreenError
            If there is no CT, a run is going on, or the map does not fit the CT or the scheme.
        """
        from bonescreen.errors import BoneScreenError
        from BoneScreenLib.logic import in_slicers_words

        self._require_idle()
        volume_node = self.params.inputVolume
        if volume_node is None:
            raise BoneScreenError("select the CT the label map belongs to")
        try:
            self._import_label_map(path, scheme, volume_node)
        except BoneScreenError as exc:  # the core's advice, as Slicer's panel gives it (helper-76: --label-scheme)
            raise BoneScreenError(in_slicers_words(exc.problem), exc.path) from None

    def _import_label_map(self, path: str, scheme: str, volume_node) -> None:
        """:meth:`import_label_map`'s work, its errors in the core's words."""
        from bonescreen.io.writers import read_labels_nifti
        from bonescreen.label_schemes import MASK_SCHEME
        from BoneScreenLib.logic import import_label_map, volume_node_to_ct

        if scheme == MASK_SCHEME:
            volume = volume_node_to_ct(volume_node)
            mask = read_labels_nifti(volume, path, scheme=scheme)
            logic = self.logic()
            screener = logic.screener

            def finish(seg) -> str:
                node = logic.segmentation_node(seg, volume, volume_node, network=False)  # the user's mask
                self.params.outputSegmentation = node
                self._results_out_of_date("a label map opened")  # the last result was for another segmentation
                # its notes as after MS-Net's segmentation (a mirrored spine's first: helper-101)
                return _segmentation_status(seg, volume, f"split from {os.path.basename(path)}; {seg.rule}")

            self._start(lambda progress: screener.name_mark(volume, mask), finish)
            return
        node = import_label_map(path, scheme, volume_node)
        self.params.outputSegmentation = node
        self._results_out_of_date("a label map opened")  # the last result was for another segmentation
        segmentation = node.GetSegmentation()
        from bonescreen.labels import spine_rank

        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        names.sort(key=spine_rank)  # in the spine's order, head first, as napari lists them (helper-115)
        self.status = f"Opened ({scheme} ids): {', '.join(names) or 'no vertebra'}. Correct, then classify."

    def shift_names(self, steps: int) -> None:
        """Move every vertebra segment's name ``steps`` places along the spine (-1: L1 becomes T12).

        Raises
        ------
        BoneScreenError
            If there is no segmentation, a run is going on, or a name would leave T1..L6 (S1, the sacrum, keeps
            its name).
        """
        from bonescreen.errors import BoneScreenError
        from BoneScreenLib.logic import shift_segment_names

        self._require_idle()
        node = self.params.outputSegmentation
        if node is None:
            raise BoneScreenError("segment first, or pick a segmentation")
        shift_segment_names(node, steps)
        self.status = "Names shifted: classify again."
        self._results_out_of_date("names shifted")  # the results were for the old names

    def _results_out_of_date(self, why: str, keep: bool = False) -> None:
        """The shown results no longer hold: the table and chart say so (:func:`mark_results_out_of_date`).

        ``keep``: the last result stays for Export, which writes it only while the CT and segmentation are as they
        were classified (:meth:`BoneScreenLogic.export`); otherwise it is dropped.
        """
        from BoneScreenLib.logic import mark_results_out_of_date

        if self._logic is not None and not keep:
            self._logic.last_result = None
        if self.params is not None:
            mark_results_out_of_date(self.params.resultsTable, why)

    def _require_idle(self) -> None:
        from bonescreen.errors import BoneScreenError

        if self.run is not None:
            raise BoneScreenError("BoneScreen is already running: wait, or cancel it")
        if self.params is None:
            raise BoneScreenError("the module has no parameter node: open the module first")

    def _start(self, work, finish) -> None:
        self._finish = finish
        self._progress = (0, 1)
        self._step = None
        self.status = "Starting..."
        self.run = BackgroundRun(work).start()

    def cancel(self) -> None:
        """Stop the run at its next batch; the scene is left as it was."""
        if self.run is not None:
            self.run.cancel()
            self.status = "Cancelling..."

    def poll(self) -> bool:
        """Take the worker's progress, and its result once it has ended (GUI thread); True while running.

        Raises
        ------
        BaseException
            What the work raised (the widget shows it with its traceback).
        """
        from bonescreen.pipeline.progress import step_text, without_progress

        run = self.run
        if run is None:
            return False
        alive = run.running  # read first: the reports drained below include every one made before the end
        for stage, done, total in run.progress():
            if without_progress(done, total):  # the level split: a busy bar (maximum 0) and its seconds so far
                if self._step is None or self._step[0] != stage:  # (drive repeats the report at each heartbeat)
                    self._step = (stage, time.monotonic())
                self._progress = (0, 0)
                continue
            self._step = None
            self._progress = (done, max(total, 1))
            if not run.cancelling:
                self.status = f"{stage}: {done} of {total}"
        if self._step is not None and not run.cancelling:
            self.status = step_text(self._step[0], time.monotonic() - self._step[1])
        if alive:
            return True
        self.run, finish = None, self._finish
        self._finish = None
        if self._step is not None:
            self._step, self._progress = None, (0, 1)
        if run.cancelled:
            self.status = "Cancelled: nothing was changed."
        elif run.error is not None:
            self.status = f"Failed: {run.error}"
            raise run.error
        else:
            self.status = finish(run.result)
        return False

    def export(self, folder: str) -> list[str]:
        """Write result.json and report.png of the last classification (and seg.dcm, sr.dcm for a CT from
        Slicer's DICOM database).

        Raises
        ------
        BoneScreenError
            If nothing was classified yet, the CT or the segmentation changed since, or an output failed (the others
            are written; :meth:`BoneScreenLib.logic.BoneScreenLogic.export`).
        """
        from bonescreen.errors import BoneScreenError

        if self._logic is None or self._logic.last_result is None:
            raise BoneScreenError("classify first")
        return self._logic.export(folder, self.params.inputVolume, self.params.outputSegmentation)
