"""Vertebra names drawn on the canvas beside each vertebra of a labels layer, kept up with its edits.

napari's labels layer shows a vertebra's name only in the status bar under the cursor (its features); a
user scrolling through the slices wants to read at a glance which vertebra is which, as the report's
pictures and Slicer's segment names show it. The names are a points layer of text only (no markers),
one point per vertebra and slice, beside the vertebra on the side of increasing x (the patient's left,
the screen's right in BoneScreen's orientation), in the vertebra's colour; several vertebrae on one slice
(an arch running behind the body below) have their names one under the other. In the 3-D view each name
stands once, on its vertebra's middle slice. The layer follows the labels
layer: a rename or shift in the Classify dock, a brush or fill stroke with another label value (an undo
shows once the next edit is made: napari's undo sends no event); it is removed with the labels layer.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from scipy import ndimage

from bonescreen.labels import ALL_VERTEBRA_IDS, vertebra_color, vertebra_name

#: The names' centres stand this far (mm) beside the vertebra's last voxel on the slice.
NAME_GAP_MM = 8.0
#: A name stands on the slices where its vertebra holds at least this share of its largest section: the tip of
#: an arch or a speck the mark holds on a neighbour's slice gets none (it would stand over the neighbour's body).
MIN_SECTION_SHARE = 0.1
#: Names of two vertebrae on one slice stand at least this far apart (mm) in y: a 12-point name is about
#: 10 mm tall on a 400-500 mm field of view shown 500-600 pixels high.
NAME_SEPARATION_MM = 12.0
#: Text size of a name (napari's text points).
NAME_SIZE = 12
#: Layer metadata key tying a names layer to its labels layer (by the labels layer's id).
NAMES_FOR_KEY = "bonescreen_names_for"


def level_name_points(
    labels: np.ndarray, spacing_yx_mm: tuple[float, float]
) -> tuple[np.ndarray, list[str], list[str]]:
    """Where each vertebra's name is written: one point per vertebra and slice it holds.

    On each slice where the vertebra holds at least :data:`MIN_SECTION_SHARE` of its largest section, its
    name stands beside its own voxels there: at their mean row (y), and
    :data:`NAME_GAP_MM` beyond their last column (x). Where a slice holds several vertebrae (an arch
    that runs behind the body below), names closer than :data:`NAME_SEPARATION_MM` in y are moved apart
    downwards, so that none is written over another.

    Parameters
    ----------
    labels : ndarray
        (z, y, x) or (y, x) integer map of DESIGN.md vertebra ids (1-5 = L1-L5, 6 = T12, 7 = sacrum, ...);
        other values (0, ids without a vertebra name) get no name.
    spacing_yx_mm : tuple of float
        Voxel size (dy, dx) in mm.

    Returns
    -------
    (ndarray, list of str, list of str)
        The points (n, labels.ndim) in the map's voxel coordinates, each point's name, and each point's colour
        ("#rrggbb", the vertebra's colour of the report and Slicer).
    """
    data = np.asarray(labels)
    flat = data.ndim == 2
    if flat:
        data = data[None]
    dy, dx = (max(float(d), 1e-6) for d in spacing_yx_mm)
    boxes = ndimage.find_objects(data) if data.size else []  # uint8 as it is: a cast would copy the volume
    by_slice: dict[int, list[list]] = {}
    for vid, box in enumerate(boxes, start=1):
        if box is None or vid not in ALL_VERTEBRA_IDS:
            continue
        own = data[box] == vid
        rows = own.sum(axis=2)  # (z, y) voxels of each row
        cols = own.any(axis=1)  # (z, x)
        name = vertebra_name(vid)
        colour = "#{:02x}{:02x}{:02x}".format(*vertebra_color(vid))
        area = rows.sum(axis=1)
        for i in np.nonzero(area >= MIN_SECTION_SHARE * area.max())[0]:
            y = box[1].start + float(np.average(np.arange(rows.shape[1]), weights=rows[i]))
            x = box[2].start + float(np.nonzero(cols[i])[0][-1]) + NAME_GAP_MM / dx
            by_slice.setdefault(box[0].start + int(i), []).append([y, x, name, colour])
    points, names, colours = [], [], []
    step = NAME_SEPARATION_MM / dy
    for z, entries in sorted(by_slice.items()):
        entries.sort(key=lambda e: e[0])
        for above, below in pairwise(entries):
            below[0] = max(below[0], above[0] + step)
        for y, x, name, colour in entries:
            points.append((z, y, x))
            names.append(name)
            colours.append(colour)
    coords = np.asarray(points, float).reshape(-1, 3)
    if flat:
        coords = coords[:, 1:]
    return coords, names, colours


#: The names whose labels layer is in a viewer: napari's events hold their methods weakly.
_LIVE: set[LevelNames] = set()


class LevelNames:
    """The names layer of one labels layer in a viewer (:func:`show_level_names`)."""

    def __init__(self, viewer, labels_layer) -> None:
        self.viewer = viewer
        self.labels = labels_layer
        self.layer = None
        self._pending = False
        labels_layer.events.data.connect(self.schedule)
        labels_layer.events.paint.connect(self.schedule)
        viewer.layers.events.removed.connect(self._on_removed)
        viewer.dims.events.ndisplay.connect(self.schedule)
        _LIVE.add(self)
        self.update()

    def schedule(self, event=None) -> None:
        """Update once the current burst of edits is over (a stroke sends many events)."""
        if self._pending:
            return
        self._pending = True
        from qtpy.QtCore import QTimer

        QTimer.singleShot(200, self.update)

    def update(self) -> None:
        """Write the names of the labels layer's vertebrae as they are now."""
        self._pending = False
        if self.labels not in self.viewer.layers:
            return
        scale = tuple(self.labels.scale)
        coords, names, colours = level_name_points(np.asarray(self.labels.data), (scale[-2], scale[-1]))
        if self.viewer.dims.ndisplay == 3 and len(names):
            # the 3-D view shows every point at once: each name once, on its vertebra's middle named slice
            keep = [idx[len(idx) // 2] for idx in (np.flatnonzero(np.array(names) == n) for n in dict.fromkeys(names))]
            coords, names, colours = coords[keep], [names[i] for i in keep], [colours[i] for i in keep]
        if self.layer is None or self.layer not in self.viewer.layers:
            self.layer = self.viewer.add_points(
                coords,
                name=f"{self.labels.name} names",
                features={"name": names, "colour": colours},
                text={"string": "{name}", "size": NAME_SIZE, "color": {"feature": "colour"}, "anchor": "center"},
                size=0.1,
                face_color="transparent",
                border_color="transparent",
                border_width=0,
                scale=scale,
                translate=tuple(self.labels.translate),
                metadata={NAMES_FOR_KEY: id(self.labels)},
                blending="translucent_no_depth",
            )
            self.layer.editable = False
            # the labels layer stays the one selected: the user paints on it, not on the names
            self.viewer.layers.selection.active = self.labels
            return
        self.layer.data = coords
        self.layer.features = {"name": names, "colour": colours}

    def _on_removed(self, event) -> None:
        if event.value is not self.labels:
            return
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)
        self.viewer.layers.events.removed.disconnect(self._on_removed)
        self.viewer.dims.events.ndisplay.disconnect(self.schedule)
        _LIVE.discard(self)  # the removed labels layer is not kept alive


def show_level_names(viewer, labels_layer) -> LevelNames:
    """Draw the vertebra names of ``labels_layer`` on the canvas, beside each vertebra, and keep them current.

    Parameters
    ----------
    viewer : napari.Viewer
    labels_layer : napari.layers.Labels
        A vertebra map with DESIGN.md ids, as the Segment dock makes it.

    Returns
    -------
    LevelNames
        Holds the names layer (``.layer``, a points layer of text named "<labels> names").
    """
    return LevelNames(viewer, labels_layer)
