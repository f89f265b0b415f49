"""Dock widgets: "Segment vertebrae" and "Classify bone condition".

The work runs in napari thread workers; the widgets only convert layers to the
core's types and back. Errors become notifications in plain words.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Generator
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, PushButton, RadioButtons
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bonescreen.atomic import write_text_atomic
from bonescreen.density import vbmd_text
from bonescreen.device import available_devices
from bonescreen.errors import BoneScreenError
from bonescreen.hu import HUThresholds, body_slice, hu_text
from bonescreen.io import load_ct
from bonescreen.io.dicom import missing_referenced_uids
from bonescreen.io.nifti import AXIS_CODES
from bonescreen.io.volume import ORIENTATION_UNKNOWN, flagged_orientation_unknown
from bonescreen.io.writers import automatic_ids, own_labels, read_labels_nifti, write_dicom_seg
from bonescreen.label_schemes import MASK_SCHEME, SCHEME_NAMES
from bonescreen.labels import (
    ALL_VERTEBRA_IDS,
    CLASS_NAMES,
    CLASS_TITLES,
    UNNAMED_FIRST,
    VERTEBRA_NAMES,
    level_digests,
    level_id,
    levels_present,
    lumbar_levels,
    mark_digests,
    rename_vertebra,
    shift_names,
    spine_rank,
    vertebra_name,
    vertebrae_in,
)
from bonescreen.messages import (
    grade_text,
    headline,
    left_out_of_overall,
    overall_row_basis,
    segmentation_done,
    segmentation_messages,
    status_basis,
    status_confirmed,
    user_messages,
    users_naming_notes,
    users_naming_rule,
)
from bonescreen.pipeline.levels import upside_down_note
from bonescreen.pipeline.progress import Cancelled, listened, step_text, without_progress
from bonescreen.pipeline.screener import (
    RESULT_SCHEMA_VERSION,
    given_names,
    own_labels_changes,
    own_labels_changes_note,
    own_labels_edited,
    own_labels_naming,
    segmentation_record,
)
from bonescreen.screen import input_record

from ._convert import (
    DEFAULT_SCALE_FLAG,
    META_KEY,
    checked_levels,
    image_layer_data,
    labels_from_layer,
    labels_layer_data,
    layer_digests,
    layer_id,
    mark_naming,
    names_changed,
    same_read,
    unwrapped,
    volume_from_layer,
)
from ._head_up import keep_head_up
from ._level_names import show_level_names
from ._screener_cache import get_screener

BUNDLED = "bundled"


#: The Classify table's columns: short title, and the full meaning as the header's tooltip.
TABLE_HEADERS = (
    ("level", "vertebral level"),
    (
        "flag",
        "yes: uncertain, out: left out of the overall figures (a fracture, a dense or cut body, HU unlike its "
        "neighbours'); the reasons are in the rows' tooltips and below the pie",
    ),
    ("call (p)", "the network's class and its calibrated probability; a cell's tooltip gives all three"),
    ("HU", "trabecular attenuation (Hounsfield units)"),
    ("HU call", "class by the HU thresholds"),
    ("vBMD", "volumetric bone mineral density (mg/cm3), internal calibration; the overall row: L1-L4 unfractured"),
    ("ACR", "ACR QCT category of vBMD (normal > 120, low 80-120, osteoporosis < 80 mg/cm3)"),
    (
        "grade",
        "Genant fracture grade (0-3) and shape; the overall row: the bone status (fx: a fracture decides it, "
        "fx?: a fracture found while the split, the names or the mask are in doubt)",
    ),
)
SHORT_CLASS = {"normal": "norm.", "low_bone_mass": "low", "osteoporosis": "osteo.", "": ""}
#: Fracture shapes as the narrow grade column shows them (the full word is in the row's tooltip).
SHORT_SHAPE = {"wedge": "wedge", "biconcave": "bicon.", "crush": "crush"}


def table_cells(row: dict, overall: dict, thresholds: HUThresholds) -> list[str]:
    """The Classify dock's table cells (:data:`TABLE_HEADERS`) of one row: a level of result.json, or its ``overall``
    with ``name`` "overall"."""
    p = row["probabilities"]
    out = row["name"] != "overall" and left_out_of_overall(overall, row["name"])
    return [
        row["name"],
        # second: seen however narrow the dock; "out": left out of the overall figures (helper-104: a left-out 210 HU
        # level showed as any other)
        "out" if out else "yes" if row["uncertain"] else "",
        f"{SHORT_CLASS[row['prediction']]} {p[row['prediction']]:.2f}" if p else "",
        "" if row.get("trabecular_hu") is None else hu_text(row["trabecular_hu"], thresholds),
        SHORT_CLASS.get(row.get("hu_category") or "", ""),
        "" if row.get("vbmd_mg_cm3") is None else vbmd_text(row["vbmd_mg_cm3"]),
        SHORT_CLASS.get(row.get("acr_category") or "", ""),
        _grade_cell(row),
    ]


def _note_edit(event) -> None:
    """A brush, eraser or fill stroke on a labels layer: its mask is now the user's (checked, ``edited``)."""
    layer = getattr(event, "source", None)
    if layer is not None:
        layer.metadata.setdefault(META_KEY, {})["edited"] = True


def _layer_digest(layer) -> str:
    """A digest of a layer's data: tells an edit made without napari's events (a script's in-place change)."""
    import hashlib

    data = np.ascontiguousarray(np.asarray(layer.data))
    return hashlib.blake2b(data.view(np.uint8).ravel(), digest_size=16).hexdigest() + str(data.shape)


def _grade_cell(row: dict) -> str:
    """The grade column: a level's Genant grade (and shape; '?' when the slices cannot tell it from the grade
    on the other side of grade 2's bound), the overall row's bone status."""
    if row.get("bone_status"):
        basis = row["bone_status"]["basis"]
        sure = status_confirmed(row["bone_status"])
        if basis.startswith("vertebral fracture"):
            return SHORT_CLASS[row["bone_status"]["class"]] + (" (fx)" if sure else " (fx?)")
        # unconfirmed by anything else (names, one vertebra's vBMD, a grade 1 that may be 2): a question too
        return SHORT_CLASS[row["bone_status"]["class"]] + ("" if sure else "?")
    if row.get("bone_status_withheld"):  # the overall row of a CT whose orientation looks wrong, or too short a series
        return "none"
    fracture = row.get("fracture")
    if not fracture:
        return ""
    return grade_text(fracture) + (f" {SHORT_SHAPE[fracture['shape']]}" if fracture["shape"] else "")


def _row_tooltip(row: dict) -> str:
    """A table row's tooltip: the bone status's basis (overall row), the fracture in full words (a graded
    level), the BCC-Net probabilities, then the row's flags."""
    status = [f"bone status: {row['bone_status']['basis']}"] if row.get("bone_status") else []
    if row.get("bone_status_withheld"):
        status.append(f"bone status: none ({row['bone_status_withheld']})")
    fracture = row.get("fracture") or {}
    if fracture.get("genant_grade"):
        status.append(
            f"Genant grade {fracture['genant_grade']} ({fracture['shape']}), height loss "
            f"{100 * fracture['height_loss']:.0f}%"
        )
    p = row["probabilities"]  # None: no overall call (every level's labels off the bone)
    probabilities = [", ".join(f"{CLASS_TITLES[k]} {p[k]:.2f}" for k in CLASS_NAMES)] if p else []
    return "; ".join([*status, *probabilities, *row.get("reasons", [])])


class SegmentCancelled(Cancelled):
    """Raised in a Segment worker's thread by Cancel during a step that yields no progress (the level split)."""

    def __init__(self, message: str = "segmentation cancelled") -> None:
        super().__init__(message)


class _Interruptible:
    """Lets Cancel stop a worker inside a step that yields nothing until it ends (the level split, a minute or two
    on a thin-slice CT: helper-81 found Cancel took effect only once it ended, and the result was then dropped).

    :meth:`wrap` runs in the worker's thread and passes the work's ``(stage, done, total)`` through, listening to
    the core's :func:`~bonescreen.pipeline.progress.heartbeat` while the work runs: once :meth:`interrupt` is
    called, the next heartbeat (the split beats between its parts, a few seconds apart at most) raises
    :class:`SegmentCancelled` in the worker, which ends the run without a result.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()

    def _check(self) -> None:
        if self._stop.is_set():
            raise SegmentCancelled()

    def wrap(self, work: Generator) -> Generator:
        """``work`` (a ``(stage, done, total)`` generator), stoppable at the core's heartbeats; its result."""
        return (yield from listened(work, self._check))

    def interrupt(self) -> None:
        """Stop the work at its next heartbeat."""
        self._stop.set()


#: How often (ms) the status of a step without progress says the time it has taken so far.
STEP_TICK_MS = 1000
#: The Classify dock's status while it runs (then the seconds so far).
CLASSIFYING = "Classifying..."


def _layers_of(viewer, kind) -> list:
    return [layer for layer in viewer.layers if isinstance(layer, kind)]


class _StatusLabel(QLabel):
    """The dock's status line: each new text is scrolled into view, so that a result or an error read in a
    dock squeezed by a small screen is not left below its visible part. The text's height is known only once
    the layout has run, so the label follows the scroll range until it is wholly in view."""

    #: How long (ms) after a new text the label follows the scroll range (the layout gives it its height later).
    FOLLOW_MS = 1500

    def setText(self, text: str) -> None:
        super().setText(text)
        self._token = getattr(self, "_token", 0) + 1
        self._pending = bool(text)
        QTimer.singleShot(0, self._into_view)
        QTimer.singleShot(self.FOLLOW_MS, lambda token=self._token: self._stop_following(token))

    def _stop_following(self, token: int) -> None:
        try:
            if token == self._token:
                self._pending = False
        except RuntimeError:  # the dock was closed
            pass

    def _scroll(self) -> QScrollArea | None:
        scroll = self.parent()
        while scroll is not None and not isinstance(scroll, QScrollArea):
            scroll = scroll.parent()
        if scroll is not None and not getattr(self, "_follows", False):
            scroll.verticalScrollBar().rangeChanged.connect(lambda *_: self._into_view(only_pending=True))
            self._follows = True
        return scroll

    def _into_view(self, only_pending: bool = False) -> None:
        try:
            scroll = self._scroll()
            if scroll is None or not self.text() or (only_pending and not getattr(self, "_pending", False)):
                return
            if self.height() + 12 > scroll.viewport().height():
                # taller than the view: its first line at the top (Qt centres such a widget, and the status's first
                # line, what was found, stood half out of view at 1280 x 800)
                top = self.mapTo(scroll.widget(), self.rect().topLeft()).y()
                scroll.verticalScrollBar().setValue(max(0, top - 6))
            else:
                scroll.ensureWidgetVisible(self, 0, 6)
        except RuntimeError:  # the dock was closed (its widgets deleted) before the timer fired
            pass


class _Base(QWidget):
    """Shared parts: layer pickers that follow the layer list, device and weights choice, status line."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        keep_head_up(napari_viewer)  # sagittal and coronal views with the head up
        self.worker = None
        self.device = ComboBox(
            label="device",
            choices=available_devices(),
            value="auto",
            tooltip="auto: CUDA, then Apple MPS, then the CPU",
        )
        self.status = _StatusLabel("")
        self.status.setWordWrap(True)
        # a long message wraps to the dock's width instead of widening the dock over the canvas
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)

    #: Share of the dock column's height this dock takes when both BoneScreen docks are open (see showEvent).
    HEIGHT_SHARE = 1

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._fit_width)
        QTimer.singleShot(0, self._share_dock_height)

    #: Most of the window's width a dock takes to show its form or its table whole (the canvas keeps the rest).
    MAX_DOCK_SHARE = 0.4

    def _fit_width(self) -> None:
        """Make the dock at least as wide as its form (up to :attr:`MAX_DOCK_SHARE` of the window): the scroll
        area does not scroll sideways, and at 1280x800 the Classify form was cut at the right (helper-32)."""
        scroll = getattr(self, "_scroll", None)
        window = self.window()
        if scroll is None or scroll.widget() is None or not isinstance(window, QMainWindow):
            return
        bar = max(scroll.verticalScrollBar().sizeHint().width(), scroll.verticalScrollBar().width())
        needed = scroll.widget().minimumSizeHint().width() + bar + 2 * scroll.frameWidth() + 2
        scroll.setMinimumWidth(min(needed, int(self.MAX_DOCK_SHARE * window.width())))

    def _share_dock_height(self) -> None:
        """With both BoneScreen docks in one column, give each its share of the height (the Segment dock's
        form is short, the Classify dock holds the table and the pie), instead of Qt's split by content."""
        window = self.window()
        if not isinstance(window, QMainWindow):
            return
        ours = [w for w in window.findChildren(QWidget) if isinstance(w, _Base) and w.isVisible()]
        docks = []
        for widget in ours:
            dock = widget.dock()
            if dock is not None and not dock.isFloating() and all(dock is not d for d, _ in docks):
                docks.append((dock, widget.HEIGHT_SHARE))
        if len(docks) < 2 or len({window.dockWidgetArea(d) for d, _ in docks}) != 1:
            return
        total = sum(d.height() for d, _ in docks)
        weight = sum(w for _, w in docks)
        window.resizeDocks([d for d, _ in docks], [int(total * w / weight) for _, w in docks], Qt.Vertical)

    def eventFilter(self, watched, event) -> bool:
        vertebra = getattr(self, "vertebra", None)
        if vertebra is not None and watched is vertebra.native and _opens_list(event):
            self._reread_vertebrae()
        scroll = getattr(self, "_scroll", None)
        if scroll is not None and watched is scroll.viewport() and event.type() == QEvent.Type.Resize:
            QTimer.singleShot(0, self.status._into_view)  # the other dock took height: the notes come back in view
        return super().eventFilter(watched, event)

    def dock(self) -> QDockWidget | None:
        """The napari dock that holds this widget (None before it is docked)."""
        dock = self.parent()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        return dock

    def _scrolling_layout(self) -> QVBoxLayout:
        """The dock's layout, inside a vertical scroll area: with both docks open on a small screen each
        dock scrolls instead of squashing its rows to nothing or making the window taller than the screen."""
        inner = QWidget()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setWidget(inner)
        self._scroll = scroll
        scroll.viewport().installEventFilter(self)  # a dock made shorter keeps its status in view (eventFilter)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        return QVBoxLayout(inner)

    def _follow_layers(self, *combos: ComboBox) -> None:
        for event in (
            self.viewer.layers.events.inserted,
            self.viewer.layers.events.removed,
            self.viewer.layers.events.reordered,
        ):
            event.connect(lambda *_: [c.reset_choices() for c in combos])
        for c in combos:
            c.reset_choices()

    def _fail(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, BoneScreenError) else f"{type(exc).__name__}: {exc}"
        self.status.setText(f"Error: {message}")
        show_error(f"BoneScreen: {message}")


class SegmentWidget(_Base):
    """Segment every vertebra in view with MS-Net into a new, editable Labels layer (named vertebrae)."""

    HEIGHT_SHARE = 2

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self.image = ComboBox(
            label="image", choices=lambda _: _layers_of(self.viewer, Image), tooltip="The CT (in HU) to segment"
        )
        self.weights = ComboBox(
            label="weights",
            choices=[BUNDLED, "file"],
            value=BUNDLED,
            tooltip="The bundled MS-Net, or weights of your own (.safetensors with its .json)",
        )
        self.weights_file = FileEdit(label="weights file", filter="*.safetensors", visible=False)
        self.weights.changed.connect(lambda v: setattr(self.weights_file, "visible", v == "file"))
        self.range = RadioButtons(
            label="range",
            choices=["all slices", "current slice"],
            value="all slices",
            orientation="horizontal",
            tooltip="Segment the whole volume, or only the slice on screen",
        )
        self.run_button = PushButton(text="Segment")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        # a NIfTI without qform and sform says nothing of its orientation: the user states it here
        self.orientation = ComboBox(
            label="file orientation",
            choices=list(AXIS_CODES),
            value=AXIS_CODES[0],
            visible=False,
            tooltip="Axis codes of the file's array (where each axis runs towards), as --orientation",
        )
        self.reread_button = PushButton(text="Read again with this orientation", visible=False)
        self.reread_button.changed.connect(self.reread)
        # a layer that napari's own reader opened has no voxel size (scale 1, 1, 1): the user gives it
        self.spacing = LineEdit(
            label="spacing (mm)", value="", visible=False, tooltip="dz, dy, dx in mm, e.g. 2.5, 0.78, 0.78"
        )
        self.spacing_button = PushButton(text="Set the layer's spacing", visible=False)
        self.spacing_button.changed.connect(self.set_spacing)
        self.image.changed.connect(self._show_orientation)
        # bring your own segmentation: another tool's vertebra map opens as the editable layer
        self.label_file = FileEdit(label="label map", filter="*.nii *.nii.gz", tooltip="A vertebra label NIfTI")
        self.label_scheme = ComboBox(
            label="its ids",
            choices=list(SCHEME_NAMES),
            value="bonescreen",
            tooltip="bonescreen (DESIGN.md), verse (VerSe), totalseg (TotalSegmentator's total task), or mask (any id "
            "above 0 is vertebral bone: a mask of the spine, split and named by BoneScreen)",
        )
        self.open_labels_button = PushButton(text="Open as the editable vertebrae")
        self.open_labels_button.changed.connect(self.open_label_map)
        form = Container(
            widgets=[
                self.image,
                self.orientation,
                self.reread_button,
                self.spacing,
                self.spacing_button,
                self.device,
                self.weights,
                self.weights_file,
                self.range,
                self.run_button,
                self.cancel_button,
            ]
        )
        own = Container(widgets=[self.label_file, self.label_scheme, self.open_labels_button], label="or")
        self.bar = QProgressBar()
        layout = self._scrolling_layout()
        layout.addWidget(form.native)
        # the progress and the result's notes right under the buttons: on a 1280x800 screen, below the
        # label-map import they were out of view without scrolling the dock
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(own.native)
        layout.addStretch()
        self._own = own
        self._form = form
        self._follow_layers(self.image)
        self.last_layer: Labels | None = None
        # the status names the vertebrae of the layer it made; edits that change them (a rename or shift in the
        # Classify dock, a fill with another id) are said under it, read once the edits pause (helper-71: the
        # status went on listing the names from before a shift)
        self._said: tuple[str, list[str], list[str]] | None = None  # (first line, names then, lines under it)
        self._names_timer = QTimer(self)
        self._names_timer.setSingleShot(True)
        self._names_timer.setInterval(NAMES_REREAD_MS)
        self._names_timer.timeout.connect(self._say_names_now)
        # a step that yields no progress (the level split: a minute or two on a thin-slice CT) shows a busy bar
        # and the seconds it has taken, each second (helper-81: "name levels: 0 of 1" at 0% for two minutes)
        self._step: tuple[str, float] | None = None  # (stage, when it began)
        self._step_timer = QTimer(self)
        self._step_timer.setInterval(STEP_TICK_MS)
        self._step_timer.timeout.connect(self._say_step)
        self._interruptible: _Interruptible | None = None
        self._show_orientation()

    def _orientation_unknown(self, layer) -> bool:
        meta = layer.metadata.get(META_KEY, {}) if layer is not None else {}
        return flagged_orientation_unknown(meta.get("flags", []))

    def _show_orientation(self, *_) -> None:
        layer = self.image.value
        plain = layer is not None and META_KEY not in layer.metadata
        self.spacing.visible = self.spacing_button.visible = plain
        if plain:
            self.spacing.value = ", ".join(f"{s:g}" for s in tuple(layer.scale)[-min(layer.ndim, 3) :])
            if tuple(layer.scale)[-3:] == (1.0, 1.0, 1.0):
                self.status.setText(DEFAULT_SCALE_FLAG.format(name=layer.name))
        unknown = self._orientation_unknown(layer)
        self.orientation.visible = self.reread_button.visible = unknown
        if unknown:  # say why the choice appears, before anything is run
            flags = layer.metadata[META_KEY]["flags"]
            self.status.setText(next(f for f in flags if f.startswith(ORIENTATION_UNKNOWN)))

    def set_spacing(self) -> None:
        """Give a plain image layer its voxel size (dz, dy, dx in mm), typed by the user."""
        layer = self.image.value
        try:
            values = [float(v) for v in str(self.spacing.value).replace(";", ",").split(",")]
        except ValueError:
            values = []
        need = min(layer.ndim, 3)  # dz, dy, dx; dy, dx for one slice
        if len(values) != need or not all(np.isfinite(v) and v > 0 for v in values):
            given, names = self.spacing.value, "dz, dy, dx" if need == 3 else "dy, dx"
            self._fail(BoneScreenError(f"spacing is {need} positive numbers {names} in mm, got {given!r}"))
            return
        layer.scale = (*tuple(layer.scale)[:-need], *values)
        self.status.setText(f"Spacing of '{layer.name}' set to {', '.join(f'{v:g}' for v in values)} mm.")

    def open_label_map(self) -> None:
        """Open a vertebra label NIfTI (this tool's, TotalSegmentator's, VerSe's) as the editable vertebrae layer."""
        layer = self.image.value
        path = str(self.label_file.value or "")
        if layer is None or not path or path == ".":
            self._fail(BoneScreenError("pick the CT image and the label map file first"))
            return
        try:
            volume = volume_from_layer(layer)
            if volume.source.path is None or volume.source.kind == "napari":
                raise BoneScreenError(
                    f"layer '{layer.name}' was not read by BoneScreen, so its grid is unknown: open the CT with the "
                    "BoneScreen reader first"
                )
            vertebrae = read_labels_nifti(volume, path, allowed=ALL_VERTEBRA_IDS, scheme=self.label_scheme.value)
            screener = get_screener(None, None, self.device.value) if self.label_scheme.value == MASK_SCHEME else None
        except BoneScreenError as exc:
            self._fail(exc)
            return
        if screener is not None:  # a mask of the spine: split and named as MS-Net's mark is, in a worker

            def split():
                yield "name levels", 0, 1
                seg = screener.name_mark(volume, vertebrae)
                yield "name levels", 1, 1
                return seg

            self._start(split, layer, None, None, f"Splitting the mask of {Path(path).name}...", segmented=False)
            return
        name = f"{layer.name} vertebrae ({Path(path).name})"
        # BoneScreen's own levels.nii.gz: its names keep the doubt of the run that named them and its mask is
        # MS-Net's, unchecked vertebra by vertebra until edited, here or before (as `screen --labels` reads it)
        own = own_labels(path) if self.label_scheme.value == "bonescreen" else None
        made = {"rule": "given by the user", "certain": True}
        if own:  # the names as BoneScreen gave them; those the user changed are read at Classify (names_changed)
            rule, notes = own_labels_naming({**own, "renamed": False})
            made = {
                "rule": rule,
                "certain": own["naming_certain"],
                "segmented": True,
                "notes": notes,  # shown with the result's flags, as on the command line
                "own": own,
                # which vertebrae the user edits (checked_levels), those edited in another tool counted already
                "level_digests": mark_digests(vertebrae, own["edited"]),
            }
        self._add_vertebrae(*labels_layer_data(vertebrae, layer, name, made)[:2])
        present = ", ".join(vertebra_name(k) for k in vertebrae_in(vertebrae)) or "no vertebra"  # in the spine's order
        said = f"Opened {Path(path).name} ({self.label_scheme.value} ids): {present}."
        if own:
            edited, removed = own_labels_changes(own, vertebrae)  # (helper-68: "removed" not said here)
            changes = [f"{', '.join(edited)} edited"] * bool(edited) + [f"{', '.join(removed)} removed"] * bool(removed)
            state = f"{' and '.join(changes)} since, the others MS-Net's mark" if changes else "unedited"
            if own["renamed"]:
                state += ", with names changed by the user"
            # names the user changed are the user's, as Classify reads them (helper-113: "not confirmed" said here)
            doubt = "." if own["naming_certain"] or own["renamed"] else ": names not confirmed, check them."
            said += f" BoneScreen's own labels, {state} ({own['naming_rule']}){doubt}"
        self._say_found(f"{said} Correct, then classify.", vertebrae, [])

    def _add_vertebrae(self, data: np.ndarray, meta: dict) -> None:
        """Add a labels layer of vertebrae (always a new one: edits elsewhere are kept), its names on the canvas."""
        self.last_layer = self.viewer.add_labels(data, **meta)
        self.last_layer.events.paint.connect(_note_edit)
        events = self.last_layer.events
        # a stroke, a fill or a rename (data_setitem: labels_update), new data, an undo or redo (set_data)
        for event in (events.paint, events.labels_update, events.data, events.set_data):
            event.connect(self._names_may_change)
        show_level_names(self.viewer, self.last_layer)

    def _say_found(self, first: str, labels: np.ndarray, under: list[str]) -> None:
        """The status: what was found (``first``), then ``under``; the names are followed as the layer is edited."""
        self._said = (first, [vertebra_name(k) for k in vertebrae_in(labels)], under)
        self.status.setText("\n".join([first, *under]))

    def _names_may_change(self, event=None) -> None:
        source = unwrapped(getattr(event, "source", self.last_layer))  # the layer, behind napari's proxy
        if self._said is not None and source is unwrapped(self.last_layer):
            self._names_timer.start()  # restarted by every stroke: read once they pause

    def _say_names_now(self) -> None:
        if self._said is None or self.last_layer is None or unwrapped(self.last_layer) not in self.viewer.layers:
            return
        first, then, under = self._said
        now = [vertebra_name(k) for k in vertebrae_in(self.last_layer.data)]
        if now == then:
            self.status.setText("\n".join([first, *under]))
            return
        said = f"Names now, after edits: {', '.join(now) or 'no vertebra'} (the line above is as found)."
        self.status.setText("\n".join([first, said, *under]))

    def reread(self) -> None:
        """Read the image layer's NIfTI again with the orientation the user chose; the layer is updated."""
        layer = self.image.value
        if layer is None or not self._orientation_unknown(layer):
            return
        source = layer.metadata[META_KEY]["source"]
        try:
            volume = load_ct(source.path, orientation=self.orientation.value)
        except BoneScreenError as exc:
            self._fail(exc)
            return
        data, meta, _ = image_layer_data(volume, layer.name)
        layer.data = data
        layer.scale = meta["scale"]
        layer.metadata = meta["metadata"]
        self._show_orientation()
        self.status.setText(f"Read again as {self.orientation.value}: " + "; ".join(volume.notes))

    def _seg_weights(self) -> str | None:
        if self.weights.value == BUNDLED:
            return None
        if not str(self.weights_file.value or "").strip() or Path(self.weights_file.value) == Path():
            raise BoneScreenError("choose the weights file first (weights: file), or pick the bundled weights")
        path = Path(self.weights_file.value)
        if not path.is_file():
            raise BoneScreenError(f"weights file {path} does not exist")
        return str(path)

    def run(self) -> None:
        """Start segmenting in a worker thread; the viewer stays responsive."""
        layer = self.image.value
        if layer is None:
            self._fail(BoneScreenError("no image layer: open a CT first (File > Open, or a BoneScreen sample)"))
            return
        try:
            volume = volume_from_layer(layer)
            screener = get_screener(self._seg_weights(), None, self.device.value)
        except BoneScreenError as exc:
            self._fail(exc)
            return
        slices = None
        if self.range.value == "current slice":
            z = int(np.rint(layer.world_to_data(self.viewer.dims.point)[0]))
            slices = np.array([min(max(z, 0), volume.shape[0] - 1)])

        def work():
            return (yield from screener.iter_segment(volume, slices=slices))

        self._start(work, layer, slices, screener.device_note, "Segmenting...", screener=screener)

    def _start(
        self, work, layer, slices, device_note: str | None, status: str, segmented: bool = True, screener=None
    ) -> None:
        """Run ``work`` (a segmentation, or the split of a user's mask: ``segmented`` False) in a worker; its
        Segmentation becomes a new labels layer (:meth:`_on_done`), which records ``screener``'s MS-Net weights."""
        # errored given at creation: connected later, superqt also re-raises the error (helper-37: each error shown
        # twice, the second with a traceback)
        self._interruptible = _Interruptible()  # Cancel stops the level split too, not only between batches
        self.worker = create_worker(
            self._interruptible.wrap, work(), _connect={"errored": self._fail}, _start_thread=False
        )
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(lambda seg: self._on_done(seg, layer, slices, device_note, segmented, screener))
        self.worker.aborted.connect(self._on_cancelled)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self._said = None  # the earlier layer's names are no longer what the status says
        self.status.setText(status)
        self.bar.setValue(0)
        self.worker.start()

    def cancel(self) -> None:
        """Stop the run between batches of slices, or inside the level split; nothing is added."""
        if self.worker is None or self.worker.abort_requested:
            return
        self.worker.quit()
        if self._interruptible is not None:
            self._interruptible.interrupt()
        self.cancel_button.enabled = False  # pressed once: said, not pressed again and again
        self._end_step()
        self.status.setText("Cancelling...")

    def _on_progress(self, event) -> None:
        stage, done, total = event
        if self.worker is not None and self.worker.abort_requested:  # (a yield already on its way at Cancel)
            return
        if without_progress(done, total):  # one step without progress of its own: a busy bar and its seconds so far
            self.bar.setRange(0, 0)
            self._step = (stage, time.monotonic())
            self._step_timer.start()
            self._say_step()
            return
        self._end_step()
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        self.status.setText(f"{stage}: {done} of {total}")

    def _say_step(self) -> None:
        if self._step is None:
            return
        stage, began = self._step
        self.status.setText(step_text(stage, time.monotonic() - began))

    def _end_step(self) -> None:
        self._step = None
        self._step_timer.stop()
        if self.bar.maximum() == 0:  # busy: back to a bar that shows its value
            self.bar.setRange(0, 1)

    def _fail(self, exc: BaseException) -> None:
        self._end_step()
        if isinstance(exc, SegmentCancelled):  # Cancel stopped the level split
            self._on_cancelled()
            return
        super()._fail(exc)

    def _on_cancelled(self) -> None:
        self._end_step()
        self.status.setText("Cancelled: no layer was added.")
        show_info("BoneScreen: segmentation cancelled; no layer was added")

    def _on_finished(self) -> None:
        self._end_step()
        self.run_button.enabled, self.cancel_button.enabled = True, False
        self.worker = None
        self._interruptible = None

    def _on_done(
        self, seg, image_layer, slices, device_note: str | None = None, segmented: bool = True, screener=None
    ) -> None:
        if image_layer not in self.viewer.layers:  # closed while the network ran (helper-115: its vertebrae were added
            # all the same, without a word)
            self.status.setText(f"The vertebrae of '{image_layer.name}' were not added: that image was closed.")
            return
        labels = seg.vertebra_labels()  # every vertebra found, named or not: the user corrects all of them
        notes = list(seg.notes)
        if not labels.any() and seg.mark.any():  # e.g. one slice: bone marked, no vertebra could be split out
            labels = np.where(seg.mark, np.uint8(UNNAMED_FIRST), 0).astype(np.uint8)
            notes.append(
                "the marked bone could not be split into named vertebrae: it is 'unnamed 1'; "
                "rename it in the Classify dock (vertebra > new name > Rename) before classifying"
            )
        name = f"{image_layer.name} vertebrae"
        data, meta, _ = labels_layer_data(
            labels,
            image_layer,
            name,
            {
                "rule": seg.rule,
                "certain": seg.certain,
                "vertebrae": [v.name for v in seg.vertebrae],
                # what the naming saw of each vertebra, for result.json while the mark is MS-Net's as it came
                "evidence": seg.evidence(_spacing_of(image_layer), labels.shape[0]),
                "notes": notes,
                # MS-Net's mask: not checked by the user until edited (mask_checked); a user's mask is the user's
                "segmented": segmented,
                "level_digests": level_digests(labels),  # which vertebrae the user edits (checked_levels)
                # the MS-Net weights that made it, for result.json (helper-64: the bundled ones were named)
                "models": {"segmentation": screener.model_record("segmentation")} if screener is not None else {},
            },
        )
        self._add_vertebrae(data, meta)
        done = segmentation_done(
            labels, seg.rule, "Correct the mask (brush, eraser) and the names (Classify dock)", notes
        )
        source = image_layer.metadata.get(META_KEY, {})
        messages = segmentation_messages(source.get("flags", []), notes, source.get("notes", []))
        self._say_found(done, labels, [*(f"- {m}" for m in messages), *([device_note] if device_note else [])])
        for message in messages:
            show_warning(f"BoneScreen: {message}")


def _spacing_of(image_layer) -> tuple[float, float, float]:
    """The voxel size (z, y, x) in mm of a CT image layer: as BoneScreen's reader read it, else the layer's scale."""
    spacing = (image_layer.metadata.get(META_KEY) or {}).get("spacing")
    return tuple(float(v) for v in (spacing if spacing is not None else image_layer.scale[-3:]))


#: The Classify dock's Export DICOM SR button, as it says what it writes.
SR_TOOLTIP = "a TID 1500 measurement report (sr.dcm) and the SEG it references (sr_seg.dcm); DICOM CT only"

#: How long the Segment dock waits after the last edit of its layer before it reads the names again (ms).
NAMES_REREAD_MS = 400


def _opens_list(event) -> bool:
    """Whether ``event`` opens a combo box's list: a click, or the keys Qt opens it with (F4, Alt+Up/Down, Space;
    helper-67: opened by keyboard, the vertebra list was not read again)."""
    if event.type() == QEvent.Type.MouseButtonPress:
        return True
    if event.type() != QEvent.Type.KeyPress:
        return False
    alt = bool(event.modifiers() & Qt.KeyboardModifier.AltModifier)
    return event.key() in (Qt.Key.Key_F4, Qt.Key.Key_Space) or (alt and event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down))


class ClassifyWidget(_Base):
    """Classify each lumbar level on the (corrected) labels: BCC-Net probabilities, trabecular HU, flags."""

    HEIGHT_SHARE = 3

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self.image = ComboBox(label="image", choices=lambda _: _layers_of(self.viewer, Image))
        self.labels = ComboBox(
            label="labels",
            choices=lambda _: _layers_of(self.viewer, Labels),
            tooltip="The vertebrae (1-5 = L1-L5, 6 = T12, 7 = sacrum ...), as corrected and named by you",
        )
        # names: the user corrects what the naming got wrong (one vertebra, or the whole count shifted by one)
        self.vertebra = ComboBox(label="vertebra", choices=self._vertebrae_in_layer, tooltip="A vertebra of the layer")
        self.new_name = ComboBox(
            label="new name",
            choices=[(n, k) for k, n in sorted(VERTEBRA_NAMES.items(), key=lambda kv: spine_rank(kv[1]))],
            value=1,  # L1
            tooltip="Its right name (the label value changes to that name's id)",
        )
        # the new name starts as the vertebra's own: Rename pressed without a choice changes nothing (helper-32:
        # "T12 -> L1" stood ready after every segmentation)
        self.vertebra.changed.connect(self._new_name_follows)
        self._new_name_follows()  # the list was filled before the connection (helper-104: "T11 -> L1" stood ready)
        # the list is read again from the layer each time it is opened: undo and redo send no event that says which
        # vertebrae the layer now holds (helper-66: the list still named T10 after the rename was undone)
        self.vertebra.native.installEventFilter(self)
        self.rename_button = PushButton(text="Rename")
        self.rename_button.changed.connect(self.rename)
        self.shift_up = PushButton(text="All names one up (L1 -> T12)")
        self.shift_down = PushButton(text="All names one down (T12 -> L1)")
        self.shift_up.changed.connect(lambda: self.shift(-1))
        self.shift_down.changed.connect(lambda: self.shift(1))
        self.labels.changed.connect(lambda *_: self.vertebra.reset_choices())
        # labels BoneScreen made from an image: that image with them (helper-78: the image picker kept the other
        # series, and its voxels were measured with this one's mask)
        self.labels.changed.connect(self._image_follows_labels)
        self.labels.changed.connect(lambda *_: self._clear_result(self._picked_or_closed("labels")))
        self.image.changed.connect(lambda *_: self._clear_result(self._picked_or_closed("image")))
        self.run_button = PushButton(text="Classify")
        self.run_button.changed.connect(self.run)
        names = Container(
            widgets=[self.vertebra, self.new_name, self.rename_button, self.shift_up, self.shift_down],
            label="names",
        )
        form = Container(widgets=[self.image, self.labels, names, self.device, self.run_button])
        # compact, so that every column shows in a narrow dock: short headers, full names as tooltips
        self.table = QTableWidget(0, len(TABLE_HEADERS))
        for c, (title, tip) in enumerate(TABLE_HEADERS):
            item = QTableWidgetItem(title)
            item.setToolTip(tip)
            self.table.setHorizontalHeaderItem(c, item)
        # one line per row (a wrapped "osteo. 0.66" doubled every row's height): the columns fit their
        # contents (a stretched last column would keep Qt's 100 px default, wider than its text), the dock
        # widens to show them all (_fit_dock_to_table), and a dock narrower than the table scrolls sideways
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._go_to_level)
        self.table.setMinimumHeight(150)
        self.table.verticalHeader().setVisible(False)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 3.0))
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(220)
        self.canvas.setVisible(False)  # shown with a result: empty, it was a white block on the dark theme (h74)
        self.flag = QLabel("")
        self.flag.setWordWrap(True)
        # the overall row averages different levels per column (the network's, ISCD's): said under the table, not
        # only in its tooltips
        self.overall_basis = QLabel("")
        self.overall_basis.setWordWrap(True)
        self.overall_basis.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        # the answer first, in words and in its class's colour: the bone status (BCC-Net's call is the pie's)
        self.headline = QLabel("")
        self.headline.setWordWrap(True)
        for label in (self.flag, self.headline):  # wrapped to the dock's width, never wider than it
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.export_json = QPushButton("Export result.json")
        self.export_report = QPushButton("Export report.png")
        self.export_sr = QPushButton("Export DICOM SR")
        self.export_sr.setToolTip(SR_TOOLTIP)
        for b in (self.export_json, self.export_report, self.export_sr):
            b.setEnabled(False)
        self.export_json.clicked.connect(lambda: self._ask_and_save("result.json", self.save_result))
        self.export_report.clicked.connect(lambda: self._ask_and_save("report.png", self.save_report))
        self.export_sr.clicked.connect(lambda: self._ask_and_save("sr.dcm", self.save_sr))
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_json)
        buttons.addWidget(self.export_report)
        buttons.addWidget(self.export_sr)
        layout = self._scrolling_layout()
        layout.addWidget(form.native)
        layout.addWidget(self.status)
        layout.addWidget(self.headline)
        layout.addWidget(self.table)
        layout.addWidget(self.overall_basis)
        # the flags say why the headline is uncertain: right under the table, before the pie (helper-71: below the
        # pie they were out of view at 1600 x 1000)
        layout.addWidget(self.flag)
        layout.addWidget(self.canvas)
        layout.addLayout(buttons)
        self._form = form
        self._follow_layers(self.image, self.labels)
        self.result: dict | None = None
        self._inputs = None
        self._mark_naming: dict | None = None
        self._models: dict = {}
        self._classified = None  # (labels layer, digest of its data, image layer, digest of its data) of the last run
        # the classified labels or image closed: the result goes at once, said so (helper-115: it stayed on screen
        # until an export was tried; closed while classifying, it was said to be "picked")
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        # the labels layer the user selects (or Segment adds) is the one classified (helper-115: a second Segment's
        # layer was selected in the viewer while Classify kept the first)
        self.viewer.layers.selection.events.active.connect(self._labels_follow_selection)
        self._recheck = QTimer(self)
        self._recheck.setSingleShot(True)
        self._recheck.setInterval(300)  # ms after the last refresh
        self._recheck.timeout.connect(self._labels_still_current)
        # "Names now: ..." follows the layer after a rename or shift, through undo and redo (helper-74: it still
        # named the shifted names after the shift was undone), read once the edits pause
        self._names_layer = None  # the layer whose names the status says
        self._names_timer = QTimer(self)
        self._names_timer.setSingleShot(True)
        self._names_timer.setInterval(NAMES_REREAD_MS)
        self._names_timer.timeout.connect(self._say_names_now)
        # the run's seconds, each second: half a minute on a thin-slice CT on the CPU behind a still "Classifying..."
        # looked stuck (helper-81)
        self._began: float | None = None
        self._tick = QTimer(self)
        self._tick.setInterval(STEP_TICK_MS)
        self._tick.timeout.connect(self._say_seconds)

    def _clear_result(self, why: str) -> None:
        """Take down the last result (table, pie, flags, exports): it no longer belongs to the inputs."""
        if getattr(self, "result", None) is None:
            return
        self.result = None
        self.headline.setText("")
        self.table.setRowCount(0)
        self.overall_basis.setText("")
        self.figure.clear()
        self.canvas.setVisible(False)
        # said once, where the eye is: "Done. Select a level" stood above an emptied table (a screenshot's review);
        # the flags' box said it again below (helper-65), so it is emptied with the result it spoke for
        self.flag.setText("")
        self.status.setText(f"Previous result cleared: {why}.")
        self.export_json.setEnabled(False)
        self.export_report.setEnabled(False)
        self.export_sr.setEnabled(False)

    def _fail(self, exc: BaseException) -> None:
        self._clear_result("the last run failed")
        super()._fail(exc)

    def _made_from(self, labels_layer) -> tuple[dict | None, Image | None]:
        """What a labels layer records of the image layer BoneScreen made it from (``made_from``; None: labels of the
        user's own, or made before it was kept), and that image layer among the dock's choices (None: not in the
        viewer any more)."""
        made = (labels_layer.metadata.get(META_KEY) or {}).get("made_from") if labels_layer is not None else None
        if not made:
            return None, None
        return made, next((layer for layer in self.image.choices if layer_id(layer) == made["id"]), None)

    def _image_follows_labels(self, *_) -> None:
        """Labels picked that BoneScreen made from an image layer still in the viewer: that image is picked too."""
        _, image = self._made_from(self.labels.value)
        if image is not None and self.image.value is not image:
            self.image.value = image

    def _check_made_from(self, image, labels_layer) -> None:
        """Refuse labels BoneScreen made from another image layer than the one picked, whatever their grid.

        Where that layer was closed since, the CT read is compared instead (one file or folder, one series): the
        same CT opened again is classified, another is refused.

        Raises
        ------
        BoneScreenError
            Naming both layers, and what to pick.
        """
        made, source = self._made_from(labels_layer)
        if made is None or made["id"] == layer_id(image):
            return
        if source is not None:
            raise BoneScreenError(
                f"the labels layer '{labels_layer.name}' was made from the image layer '{source.name}', not from "
                f"'{image.name}', the image picked: pick '{source.name}' as the image, or labels made from "
                f"'{image.name}'"
            )
        then, now = labels_layer.metadata[META_KEY].get("source"), (image.metadata.get(META_KEY) or {}).get("source")
        if not same_read(then, now):
            raise BoneScreenError(
                f"the labels layer '{labels_layer.name}' was made from the image layer '{made['name']}', closed since, "
                f"not from '{image.name}', the image picked, which is another CT: open that CT again and pick it, or "
                f"segment '{image.name}'"
            )

    def _vertebrae_in_layer(self, _=None) -> list[tuple[str, int]]:
        layer = self.labels.value if hasattr(self, "labels") else None
        if layer is None:
            return []
        data = np.asarray(layer.data)
        present = np.flatnonzero(np.bincount(data.ravel())) if data.dtype == np.uint8 else np.unique(data)
        # ids that name no vertebra (napari's "+" from 19 paints 20): listed, so that Rename gives them one
        # (helper-115: Classify refused them, and nothing here could change them)
        odd = [int(k) for k in present if k > 0 and int(k) not in ALL_VERTEBRA_IDS]
        return [(vertebra_name(k), k) for k in vertebrae_in(data)] + [(f"id {k} (no vertebra)", k) for k in odd]

    def _relabel(self, change) -> None:
        """Apply ``change(map) -> map`` to the chosen labels layer; its names become the user's."""
        layer = self.labels.value
        if layer is None:
            self._fail(BoneScreenError("pick the labels layer whose names to change"))
            return
        data = np.asarray(layer.data)
        try:
            new = change(data)
        except BoneScreenError as exc:
            self._fail(exc)
            return
        # one step of the layer's undo history (helper-64: set as the layer's data, the rename left the strokes
        # before it in the history, and undoing one wrote its old ids into the renamed vertebrae)
        where = np.nonzero(new != data)
        if where[0].size:
            layer.data_setitem(where, new[where])
        layer.metadata.setdefault(META_KEY, {})["renamed"] = True  # names given by the user: taken as certain
        self._clear_result("names changed: classify again")
        self._say_names()
        if unwrapped(self._names_layer) is not unwrapped(layer):
            self._names_layer = layer
            for event in (layer.events.paint, layer.events.labels_update, layer.events.set_data):
                event.connect(self._names_may_change)
        # the Classify button and this line in view (helper-74: left scrolled to the cleared table, both above it)
        self._scroll.ensureWidgetVisible(self.status, 0, 0)
        self._scroll.ensureWidgetVisible(self.run_button.native, 0, 0)

    def _names_may_change(self, event=None) -> None:
        if unwrapped(getattr(event, "source", None)) is unwrapped(self._names_layer):
            self._names_timer.start()

    def _say_names_now(self) -> None:
        """The status's "Names now" line read again from the layer, while it is still the line shown (another
        labels layer picked clears the result, and the line with it)."""
        if self._names_layer is not None and self.status.text().startswith("Names now:"):
            self._say_names()

    def _say_names(self) -> None:
        """The vertebra list read again from the layer, and the status saying it."""
        self._reread_vertebrae()
        # the list just read, not a second pass over the map (in the spine's order: h54 read "T12, L1, L4, L5, T9")
        names = ", ".join(self.vertebra.native.itemText(i) for i in range(self.vertebra.native.count()))
        self.status.setText(f"Names now: {names or 'no vertebra'}. Classify again.")

    def _reread_vertebrae(self) -> None:
        """The vertebra list read again from the labels layer, the chosen one kept while the layer holds it."""
        chosen = self.vertebra.value
        # emptied first: magicgui keeps the items it already holds in their place and adds new ones at the end, so
        # the list left the spine's order after a rename (h55)
        self.vertebra.native.clear()
        self.vertebra.reset_choices()
        if chosen in self.vertebra.choices:
            self.vertebra.value = chosen

    def _new_name_follows(self, *_) -> None:
        if self.vertebra.value in VERTEBRA_NAMES:
            self.new_name.value = self.vertebra.value

    def rename(self) -> None:
        """Give the chosen vertebra the chosen name (its label value becomes that name's id)."""
        old, new = self.vertebra.value, self.new_name.value
        if old is None:
            self._fail(BoneScreenError("the labels layer holds no vertebra to rename"))
            return
        shown = vertebra_name(old) if old in ALL_VERTEBRA_IDS else f"id {old}"
        if old not in [k for _, k in self._vertebrae_in_layer()]:  # the layer changed since the list was read (undo)
            self._reread_vertebrae()
            self.status.setText(f"The layer holds no {shown} now (undone?): pick the vertebra again.")
            return
        if old == new:
            self.status.setText(f"{shown} already has that name: pick its new name, then Rename.")
            return
        self._relabel(lambda data: rename_vertebra(data, old, new))

    def shift(self, steps: int) -> None:
        """Move every named vertebra ``steps`` places along the spine (-1: L1 becomes T12)."""
        self._relabel(lambda data: shift_names(data, steps))

    def run(self) -> None:
        """Classify in a worker thread with the labels as they are now."""
        image, labels_layer = self.image.value, self.labels.value
        if image is None or labels_layer is None:
            self._fail(BoneScreenError("pick the CT image and its levels labels layer (segment first)"))
            return
        try:
            # labels of another image on the same grid pass every check below (helper-78)
            self._check_made_from(image, labels_layer)
            volume = volume_from_layer(image)
            labels = labels_from_layer(labels_layer, volume).copy()  # the user may keep editing meanwhile
            if not labels.any():  # (helper-34: told to rename vertebrae of an empty layer)
                raise BoneScreenError(
                    f"the labels layer '{labels_layer.name}' is empty: segment the CT first, or paint the vertebrae"
                )
            if not levels_present(lumbar_levels(labels)):
                present = ", ".join(n for n, _ in self._vertebrae_in_layer()) or "nothing"
                raise BoneScreenError(
                    f"the labels layer '{labels_layer.name}' holds no lumbar vertebra (it holds {present}): "
                    "name them first (vertebra > new name > Rename, or shift all names)"
                )
            screener = get_screener(None, None, self.device.value)
        except BoneScreenError as exc:
            self._fail(exc)
            return
        made = labels_layer.metadata.get(META_KEY, {})
        now = layer_digests(made, labels)
        renamed = names_changed(made, labels, now)  # (undone, the names are BoneScreen's again: helper-66)
        certain = made.get("certain", True) or renamed
        # MS-Net's mask as it came (no stroke since): a status resting on its fractures is unconfirmed, as on the
        # command line (helper-34: napari dropped that caveat); vertebra by vertebra, those the user edited are theirs
        checked = checked_levels(made, labels, now)
        rule, notes = made.get("rule", "given by the user"), list(made.get("notes", []))
        if made.get("own") and (checked or renamed):  # BoneScreen's own file, edited or renamed since (helper-63:
            # still called "unedited")
            rule, notes = own_labels_edited(made["own"]["naming_rule"], notes)
            # which, as `screen --labels` says it (helper-117: napari said it at open only)
            if isinstance(checked, list) and (said := own_labels_changes_note(checked, labels)):
                notes.append(said)
        self._inputs = (volume, labels, image)
        self._mark_naming = mark_naming(made, labels)  # MS-Net's unedited vertebrae: the SEG's AUTOMATIC segments
        # the image too: the volume classified shares the image layer's memory (helper-35: an image changed in
        # place by a script left the result up and exportable)
        self._classified = (labels_layer, _layer_digest(labels_layer), image, _layer_digest(image))
        edits = (labels_layer.events.paint, labels_layer.events.data, labels_layer.events.labels_update)
        for event in edits:  # an edit takes the result down (labels_update: undo and redo, helper-35)
            event.connect(self._labels_edited)
        # undo and redo refresh the layer without an edit's events (helper-69: an undone shift left its result on
        # screen): each refresh has the data checked once it settles (a scroll refreshes too: one digest, no edit)
        labels_layer.events.set_data.connect(self._labels_refreshed)
        self.worker = create_worker(
            screener.classify,
            volume,
            labels,
            names_certain=certain,
            mask_checked=checked,
            # the names are the user's too once changed: an unnamed vertebra is then said to be left out, as on the
            # command line (it was left out without a word)
            users_labels=bool(checked) or renamed,
            # the split found the sacrum at the top: no bone status, as on the command line
            upside_down=upside_down_note(notes),
            # names guessed from the top vertebra of a series too short to show a landmark: no bone status either
            naming_rule=rule,
            _connect={"errored": self._fail},  # (no second, re-raised report of the error)
            _start_thread=False,  # (started below, once every signal is connected)
        )
        # the naming's notes travel with the labels layer; the result shows them with its own flags, and result.json
        # says them as `screen` does (helper-117: source, vertebrae, evidence and level_settings were missing)
        if made.get("segmented") is False:
            source = "user mask"  # split and named by BoneScreen
        elif made.get("segmented") and not made.get("own") and not checked and not renamed:
            source = "bonescreen"  # MS-Net's mark as it came
        else:
            source = "user"
        segmentation = segmentation_record(
            source,
            users_naming_rule(rule) if renamed else rule,
            certain,
            users_naming_notes(notes) if renamed else notes,
            given_names(labels),
            screener.level_settings,
            made.get("evidence") if source != "user" else None,
        )
        started = time.perf_counter()
        # the weights that made the result: BCC-Net's, and MS-Net's where the labels came from it
        self._models = {**made.get("models", {}), "classification": None}

        def done(result: dict) -> None:
            self._models["classification"] = screener.model_record("classification")  # loaded by the worker
            timings = {"classify": round(time.perf_counter() - started, 3)}
            self._on_done({**screener.run_record(), **result, "segmentation": segmentation, "timings_s": timings})

        self.worker.returned.connect(done)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled = False
        self.status.setText(CLASSIFYING)
        self._began = time.monotonic()
        self._tick.start()
        self.worker.start()

    def _say_seconds(self) -> None:
        """The status while classifying: the seconds so far (left alone once the run has said anything else)."""
        if self.worker is None or self._began is None or not self.status.text().startswith(CLASSIFYING):
            self._tick.stop()
            return
        self.status.setText(f"{CLASSIFYING} {int(time.monotonic() - self._began)} s so far")

    def _on_finished(self) -> None:
        self._tick.stop()
        self._began = None
        self.run_button.enabled = True
        self.worker = None

    def _labels_still_current(self) -> None:
        """After the classified labels layer refreshed: the result taken down if its data changed (the labels'
        digest alone; the image is checked before any export, :meth:`_still_current`)."""
        if self.result is not None and self._classified is not None:
            labels, digest = self._classified[:2]
            if _layer_digest(labels) != digest:
                self._clear_result("the labels changed since they were classified: classify again")

    def _labels_refreshed(self, event=None) -> None:
        layer = getattr(event, "source", None)
        if self.result is not None and self._classified is not None and layer is self._classified[0]:
            self._recheck.start()

    def _labels_edited(self, event=None) -> None:
        layer = getattr(event, "source", None)
        if self._classified is not None and layer is self._classified[0]:
            self._clear_result("the labels were edited: classify again")

    def _labels_follow_selection(self, event=None) -> None:
        active = self.viewer.layers.selection.active
        if isinstance(active, Labels) and active is not self.labels.value:
            self.labels.reset_choices()
            if active in self.labels.choices:
                self.labels.value = active
                if self.result is None and self.status.text().startswith("Error: pick the CT image"):
                    self.status.setText("")  # (helper-115: the error stayed after a labels layer was there)

    def _on_layer_removed(self, event) -> None:
        if self._classified is None or self.result is None:
            return
        labels, _, image, _ = self._classified
        if event.value is labels or event.value is image:
            self._clear_result(self._picked_or_closed("labels" if event.value is labels else "image"))

    def _picked_or_closed(self, which: str) -> str:
        """Why the result no longer holds once the ``which`` ("labels" or "image") picker changed: the layer
        classified was closed, or another was picked (helper-115: a closed layer was said to be "picked")."""
        what = "labels layer" if which == "labels" else "image"
        if self._classified is not None:
            labels, _, image, _ = self._classified
            layer = labels if which == "labels" else image
            if layer not in self.viewer.layers:
                return f"the {what} '{layer.name}' was closed"
        return f"another {what} was picked"

    def _still_current(self) -> bool:
        """Whether the classified labels layer still holds what was classified; if not, the result is taken down.

        Catches edits that send no event (a script changing the data in place); a brush stroke clears at once.
        """
        if self.result is None or self._classified is None:
            return False
        labels, labels_digest, image, image_digest = self._classified
        if labels not in self.viewer.layers or image not in self.viewer.layers:  # (helper-115: said "picked")
            self._clear_result(f"{self._picked_or_closed('labels' if labels not in self.viewer.layers else 'image')}")
            return False
        if self.labels.value is not labels or self.image.value is not image:
            # another layer picked while the worker ran (helper-63: the old layer's result was shown and exported)
            self._clear_result("another layer was picked while classifying: classify again")
            return False
        if labels not in self.viewer.layers or _layer_digest(labels) != labels_digest:
            self._clear_result("the labels changed since they were classified: classify again")
            return False
        if image not in self.viewer.layers or _layer_digest(image) != image_digest:
            self._clear_result("the image changed since it was classified: classify again")
            return False
        return True

    def _on_done(self, result: dict) -> None:
        self.result = result
        if not self._still_current():  # edited while the worker ran: the result is of the earlier labels
            return
        self.status.setText("Done. Select a level to go to its slices.")
        self._show_headline(result)
        rows = [*result["levels"], {"name": "overall", **result["overall"]}]
        thresholds = HUThresholds(**result.get("hu_thresholds", {}))
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(table_cells(row, result["overall"], thresholds)):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignCenter)
                item.setToolTip(_row_tooltip(row))
                self.table.setItem(r, c, item)
        # every row shown: the table is as tall as its rows, and the dock scrolls instead
        self.table.resizeRowsToContents()
        height = self.table.horizontalHeader().height() + 2 * self.table.frameWidth()
        if self.table.horizontalScrollBar().isVisible() or self.table.horizontalHeader().length() > self.table.width():
            height += self.table.horizontalScrollBar().sizeHint().height()
        self.table.setFixedHeight(height + sum(self.table.rowHeight(r) for r in range(len(rows))))
        basis = overall_row_basis(result["overall"])
        if result["overall"].get("bone_status"):
            basis += " Grade column: the bone status."
        self.overall_basis.setText(basis.strip())
        self._draw_pie(result["overall"])
        messages = user_messages(result)
        self.flag.setText("\n".join(messages) if messages else "No uncertainty flag and no notes.")
        self.export_json.setEnabled(True)
        self.export_report.setEnabled(True)
        source = self._inputs[0].source
        # a series without the UIDs a SEG and SR reference gets neither: said on the button, not after the file
        # dialog (helper-115)
        missing = missing_referenced_uids(source.dicom) if source.kind == "dicom" else []
        self.export_sr.setEnabled(source.kind == "dicom" and bool(result["levels"]) and not missing)
        self.export_sr.setToolTip(
            f"not for this series: it has no {', '.join(missing)}, which a DICOM SEG and SR must reference"
            if missing
            else SR_TOOLTIP
        )
        QTimer.singleShot(0, self._show_results)

    def _show_results(self) -> None:
        """Fit the dock to the table, then, once the dock has its new size, scroll the whole table into view
        (scrolled before the resize is laid out, its last rows, the overall one, stayed below the fold)."""
        self._fit_dock_to_table()
        QTimer.singleShot(50, self._scroll_to_table)

    def _scroll_to_table(self) -> None:
        """The headline at the top of the view, then the table and the flags under it as far as the dock shows;
        where the dock is too short for the headline and the whole table, the table's last row (overall) shows."""
        try:
            bar, view = self._scroll.verticalScrollBar(), self._scroll.viewport().height()
            table_bottom = self.table.y() + self.table.height()
            bar.setValue(max(min(self.headline.y(), bar.maximum()), table_bottom - view))
        except RuntimeError:  # the dock was closed (its widgets deleted) before the timer fired
            pass

    def _fit_dock_to_table(self) -> None:
        """Widen the dock so that every column of the table shows (the grade and bone status are last),
        up to :attr:`MAX_DOCK_SHARE` of the window; narrower than that, the table scrolls sideways."""
        window, dock = self.window(), self.dock()
        if not isinstance(window, QMainWindow) or dock is None or dock.isFloating():
            return
        header = self.table.horizontalHeader()
        columns = sum(
            max(self.table.sizeHintForColumn(c), header.sectionSizeHint(c)) for c in range(self.table.columnCount())
        )
        margins = self._scroll.widget().layout().contentsMargins()
        # what the table needs (2: the grid line) and its frame and the dock's margins, against the scroll area's view
        needed = columns + 2 + 2 * self.table.frameWidth() + margins.left() + margins.right()
        # the results make the dock scroll: count its vertical scroll bar before it appears
        available = (
            self._scroll.width() - 2 * self._scroll.frameWidth() - self._scroll.verticalScrollBar().sizeHint().width()
        )
        missing = needed - available
        if missing <= 0:
            return
        width = min(dock.width() + missing, int(self.MAX_DOCK_SHARE * window.width()))
        if width > dock.width():
            window.resizeDocks([dock], [width], Qt.Horizontal)

    def _show_headline(self, result: dict) -> None:
        """The bone status (or, without one, BCC-Net's call) in bold, in its class's colour, with its basis."""
        from bonescreen.figures import class_color

        line, cls = headline(result["overall"])
        status = result["overall"].get("bone_status")
        basis = f"<br>{html.escape(status_basis(status))}" if status else ""
        # no class (unconfirmed, or nothing classified): the theme's own text colour, readable in napari's dark
        # and light themes alike (a fixed dark grey was 1.6:1 on the dark theme)
        color = class_color(cls, self.headline.palette().color(self.headline.foregroundRole()).name())
        bold, reason = line, ""
        if line.startswith("No bone status: "):  # withheld, or every level's labels off the bone (review, helper-112)
            # "No bone status" in bold, why in plain text after it (helper-108: a short series' whole reason in
            # 13 pt bold took seven lines of the dock before the table)
            bold, _, rest = line.partition(": ")
            bold, reason = f"{bold}:", f" {html.escape(rest)}"
        self.headline.setText(f'<b style="color:{color}; font-size:13pt">{html.escape(bold)}</b>{reason}{basis}')

    def _draw_pie(self, overall: dict) -> None:
        from bonescreen.figures import pie_axes

        self.figure.clear()
        self.canvas.setVisible(True)
        ax = self.figure.add_subplot(111)
        if overall["probabilities"] is None:  # no overall call (every level's labels off the bone): no pie
            ax.set_axis_off()
            ax.set_title("BCC-Net (network): no overall call", fontsize=9)
            self.canvas.draw_idle()
            return
        pie_axes(ax, overall["probabilities"], f"BCC-Net (network), {', '.join(overall['levels_used'])}")
        if overall["uncertain"]:  # the flag beside the pie, the reasons in the lines below it
            ax.set_title(f"{ax.get_title()}\nUNCERTAIN: see the flags above", color="#c62828", fontsize=9)
        self.figure.subplots_adjust(top=0.86, bottom=0.27)  # room for the title and the legend
        self.canvas.draw_idle()

    def _go_to_level(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.result is None or rows[0].row() >= len(self.result["levels"]):
            return
        level = self.result["levels"][rows[0].row()]
        volume, labels, image = self._inputs
        k = body_slice(labels == level_id(level["name"]), level["body_slices"], volume.spacing)
        self.viewer.dims.set_point(0, k * image.scale[0] + image.translate[0])

    def _exportable(self) -> bool:
        """Whether the shown result may be exported: it still belongs to the labels as they are (a warning if not)."""
        if self._still_current():
            return True
        show_warning("BoneScreen: the labels or the image changed since they were classified; classify again first")
        return False

    def _ask_and_save(self, default: str, save) -> None:
        # (each save checks that the result still belongs to the layers: the digests are read once, there)
        path, _ = QFileDialog.getSaveFileName(self, "Save", default)
        if not path:
            return
        # a few seconds of the viewer's thread on a thin-slice CT (helper-81: the DICOM SR 7 s, the report 4 s on
        # 735 slices, with no sign): said, with the wait cursor, and the buttons off so that no second click queues
        said = self.status.text()
        buttons = [b for b in (self.export_json, self.export_report, self.export_sr) if b.isEnabled()]
        for button in buttons:
            button.setEnabled(False)
        self.status.setText(f"Writing {Path(path).name}...")
        self.status.repaint()
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            save(path)
        finally:
            QApplication.restoreOverrideCursor()
            if self.status.text() == f"Writing {Path(path).name}...":  # (a save that took the result down says why)
                self.status.setText(said)
            for button in buttons:
                button.setEnabled(self.result is not None)

    def save_result(self, path: str) -> None:
        """Write the last result as result.json."""
        if not self._exportable():
            return
        volume, _, image = self._inputs
        # the file read and its grid, and the weights, as `screen` records them (helper-63: two inputs' results
        # named only the layer, "NIfTI ct.nii.gz", and no weights)
        record = input_record(volume, None if getattr(volume.source, "path", None) else image.name)
        doc = {
            "schema_version": RESULT_SCHEMA_VERSION,
            "input": record.pop("input"),
            **self.result,
            "models": self._models,
            **record,
        }
        write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
        show_info(f"BoneScreen: result written to {path}")

    def save_sr(self, path: str) -> None:
        """Write the last result as a DICOM SR (TID 1500) and, beside it, the DICOM SEG it references."""
        from bonescreen.io.sr import write_dicom_sr

        if not self._exportable():
            return
        volume, vertebrae, _ = self._inputs
        target = Path(path)
        seg_path = target.with_name(target.stem + "_seg.dcm")
        try:
            levels = lumbar_levels(vertebrae)
            write_dicom_seg(volume, levels, seg_path, automatic=automatic_ids(levels, self._mark_naming))
            tags = write_dicom_sr(volume, seg_path, self.result, target)
        except BoneScreenError as exc:
            show_error(f"BoneScreen could not write the DICOM SR: {exc}")
            return
        show_info(
            f"BoneScreen: {target.name} and {seg_path.name} written; they carry these identifying tags of the "
            f"study: {', '.join(tags)}"
        )

    def save_report(self, path: str) -> None:
        """Write the report figure of the last result."""
        from bonescreen.report import render_report

        if not self._exportable():
            return
        volume, vertebrae, image = self._inputs
        levels = lumbar_levels(vertebrae)
        render_report(volume.hu, levels, volume.spacing, self.result, path, title=image.name, vertebrae=vertebrae)
        show_info(f"BoneScreen: report written to {path}")
