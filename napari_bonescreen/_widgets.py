"""Dock widgets: "Segment vertebrae" and "Classify bone condition".

The work runs in napari thread workers; the widgets only convert layers to the
core's types and back. Errors become notifications in plain words.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, PushButton, RadioButtons
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bonescreen.atomic import write_text_atomic
from bonescreen.device import available_devices
from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct
from bonescreen.io.nifti import AXIS_CODES
from bonescreen.labels import CLASS_NAMES, CLASS_TITLES, levels_present
from bonescreen.messages import user_messages

from ._convert import META_KEY, image_layer_data, labels_from_layer, labels_layer_data, volume_from_layer
from ._screener_cache import get_screener

BUNDLED = "bundled"


def _layers_of(viewer, kind) -> list:
    return [layer for layer in viewer.layers if isinstance(layer, kind)]


class _Base(QWidget):
    """Shared parts: layer pickers that follow the layer list, device and weights choice, status line."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.device = ComboBox(
            label="device",
            choices=available_devices(),
            value="auto",
            tooltip="auto: CUDA, then Apple MPS, then the CPU",
        )
        self.status = QLabel("")
        self.status.setWordWrap(True)
        # a long message wraps to the dock's width instead of widening the dock over the canvas
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)

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
        message = str(exc) if isinstance(exc, BoneScreenError | ValueError) else f"{type(exc).__name__}: {exc}"
        self.status.setText(f"Error: {message}")
        show_error(f"BoneScreen: {message}")


class SegmentWidget(_Base):
    """Segment the lumbar vertebrae with MS-Net into a new, editable Labels layer (L1-L5)."""

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
        self.image.changed.connect(self._show_orientation)
        form = Container(
            widgets=[
                self.image,
                self.orientation,
                self.reread_button,
                self.device,
                self.weights,
                self.weights_file,
                self.range,
                self.run_button,
                self.cancel_button,
            ]
        )
        self.bar = QProgressBar()
        layout = QVBoxLayout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addStretch()
        self._form = form
        self._follow_layers(self.image)
        self.last_layer: Labels | None = None
        self._show_orientation()

    def _orientation_unknown(self, layer) -> bool:
        meta = layer.metadata.get(META_KEY, {}) if layer is not None else {}
        return any(f.startswith("orientation unknown") for f in meta.get("flags", []))

    def _show_orientation(self, *_) -> None:
        layer = self.image.value
        unknown = self._orientation_unknown(layer)
        self.orientation.visible = self.reread_button.visible = unknown
        if unknown:  # say why the choice appears, before anything is run
            flags = layer.metadata[META_KEY]["flags"]
            self.status.setText(next(f for f in flags if f.startswith("orientation unknown")))

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

        self.worker = create_worker(work)
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(lambda seg: self._on_done(seg, layer, slices, screener.device_note))
        self.worker.errored.connect(self._fail)
        self.worker.aborted.connect(self._on_cancelled)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.setText("Segmenting...")
        self.bar.setValue(0)
        self.worker.start()

    def cancel(self) -> None:
        """Stop the run between batches of slices; nothing is added."""
        if self.worker is not None:
            self.worker.quit()

    def _on_progress(self, event) -> None:
        stage, done, total = event
        self.bar.setMaximum(max(total, 1))
        self.bar.setValue(done)
        self.status.setText(f"{stage}: {done} of {total}")

    def _on_cancelled(self) -> None:
        self.status.setText("Cancelled: no layer was added.")
        show_info("BoneScreen: segmentation cancelled; no layer was added")

    def _on_finished(self) -> None:
        self.run_button.enabled, self.cancel_button.enabled = True, False
        self.worker = None

    def _on_done(self, seg, image_layer, slices, device_note: str | None = None) -> None:
        labels = seg.labels
        if slices is not None and not labels.any() and seg.mark.any():
            labels = seg.mark.astype(np.uint8)  # one slice cannot be named: mark it L1, the user sets the level
            show_warning("BoneScreen: one slice cannot be named; it is marked L1. Set the level with the label value.")
        name = f"{image_layer.name} levels"
        data, meta, _ = labels_layer_data(
            labels,
            image_layer,
            name,
            {
                "rule": seg.rule,
                "certain": seg.certain,
                "vertebrae": [v.name for v in seg.vertebrae],
                "notes": list(seg.notes),
            },
        )
        self.last_layer = self.viewer.add_labels(data, **meta)  # always a new layer: edits elsewhere are kept
        found = ", ".join(seg.level_names()) or "no lumbar level"
        done = f"Found {found} ({seg.rule}). Correct the mask with the brush and eraser, then classify."
        source = image_layer.metadata.get(META_KEY, {})
        messages = [*source.get("flags", []), *seg.notes, *source.get("notes", [])]
        lines = [done, *(f"- {m}" for m in messages), *([device_note] if device_note else [])]
        self.status.setText("\n".join(lines))
        for message in messages:
            show_warning(f"BoneScreen: {message}")


class ClassifyWidget(_Base):
    """Classify each lumbar level on the (corrected) labels: BCC-Net probabilities, trabecular HU, flags."""

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self.image = ComboBox(label="image", choices=lambda _: _layers_of(self.viewer, Image))
        self.labels = ComboBox(
            label="labels",
            choices=lambda _: _layers_of(self.viewer, Labels),
            tooltip="Level labels (1-5 = L1-L5), as corrected by you",
        )
        self.run_button = PushButton(text="Classify")
        self.run_button.changed.connect(self.run)
        form = Container(widgets=[self.image, self.labels, self.device, self.run_button])
        self.table = QTableWidget(0, 8)
        self.table.setHorizontalHeaderLabels(
            ["level", "normal", "low bone mass", "osteoporosis", "prediction", "HU", "HU category", "flag"]
        )
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._go_to_level)
        self.table.setMinimumHeight(200)
        self.table.verticalHeader().setVisible(False)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 3.0))
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(240)
        self.flag = QLabel("")
        self.flag.setWordWrap(True)
        self.export_json = QPushButton("Export result.json")
        self.export_report = QPushButton("Export report.png")
        for b in (self.export_json, self.export_report):
            b.setEnabled(False)
        self.export_json.clicked.connect(lambda: self._ask_and_save("result.json", self.save_result))
        self.export_report.clicked.connect(lambda: self._ask_and_save("report.png", self.save_report))
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_json)
        buttons.addWidget(self.export_report)
        layout = QVBoxLayout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        layout.addWidget(self.canvas)
        layout.addWidget(self.flag)
        layout.addLayout(buttons)
        self._form = form
        self._follow_layers(self.image, self.labels)
        self.result: dict | None = None
        self._inputs = None

    def run(self) -> None:
        """Classify in a worker thread with the labels as they are now."""
        image, labels_layer = self.image.value, self.labels.value
        if image is None or labels_layer is None:
            self._fail(BoneScreenError("pick the CT image and its levels labels layer (segment first)"))
            return
        try:
            volume = volume_from_layer(image)
            labels = labels_from_layer(labels_layer, volume).copy()  # the user may keep editing meanwhile
            if not levels_present(labels):
                raise BoneScreenError(f"the labels layer '{labels_layer.name}' is empty: no level 1-5 to classify")
            screener = get_screener(None, None, self.device.value)
        except BoneScreenError as exc:
            self._fail(exc)
            return
        made = labels_layer.metadata.get("bonescreen", {})
        certain = made.get("certain", True)
        self._inputs = (volume, labels, image)
        self.worker = create_worker(screener.classify, volume, labels, names_certain=certain)
        # the naming's notes travel with the labels layer; the result shows them with its own flags
        self.worker.returned.connect(
            lambda result: self._on_done({**result, "segmentation": {"notes": list(made.get("notes", []))}})
        )
        self.worker.errored.connect(self._fail)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled = False
        self.status.setText("Classifying...")
        self.worker.start()

    def _on_finished(self) -> None:
        self.run_button.enabled = True
        self.worker = None

    def _on_done(self, result: dict) -> None:
        self.result = result
        self.status.setText("Done. Select a level to go to its slices.")
        rows = [*result["levels"], {"name": "overall", **result["overall"]}]
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            p = row["probabilities"]
            cells = [
                row["name"],
                *(f"{p[c]:.2f}" for c in CLASS_NAMES),
                CLASS_TITLES[row["prediction"]],
                "" if row.get("trabecular_hu") is None else f"{row['trabecular_hu']:.0f}",
                row.get("hu_category") or "",
                "uncertain" if row["uncertain"] else "",
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignCenter)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self._draw_pie(result["overall"])
        messages = user_messages(result)
        self.flag.setText("\n".join(messages) if messages else "No uncertainty flag and no notes.")
        self.export_json.setEnabled(True)
        self.export_report.setEnabled(True)

    def _draw_pie(self, overall: dict) -> None:
        from bonescreen.figures import pie_axes

        self.figure.clear()
        ax = self.figure.add_subplot(111)
        pie_axes(ax, overall["probabilities"], f"overall ({', '.join(overall['levels_used'])})")
        self.figure.subplots_adjust(top=0.9, bottom=0.27)  # room for the legend
        self.canvas.draw_idle()

    def _go_to_level(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.result is None or rows[0].row() >= len(self.result["levels"]):
            return
        level = self.result["levels"][rows[0].row()]
        image = self._inputs[2]
        k = (level["body_slices"][0] + level["body_slices"][1]) / 2
        self.viewer.dims.set_point(0, k * image.scale[0] + image.translate[0])

    def _ask_and_save(self, default: str, save) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save", default)
        if path:
            save(path)

    def save_result(self, path: str) -> None:
        """Write the last result as result.json."""
        write_text_atomic(path, json.dumps({"input": self._inputs[2].name, **self.result}, indent=2) + "\n")
        show_info(f"BoneScreen: result written to {path}")

    def save_report(self, path: str) -> None:
        """Write the report figure of the last result."""
        from bonescreen.report import render_report

        volume, labels, image = self._inputs
        render_report(volume.hu, labels, volume.spacing, self.result, path, title=image.name)
        show_info(f"BoneScreen: report written to {path}")
