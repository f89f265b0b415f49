"""Vertebra names drawn on the canvas beside the vertebrae of a labels layer, kept up with its edits.

napari's labels layer shows a vertebra's name only in the status bar under the cursor (its features); a
user scrolling through the slices wants to read at a glance which vertebra is which, as the report's
pictures and Slicer's segment names show it. The names are a points layer of text only (no markers), one
point per vertebra and slice, in the vertebra's colour, on the slices the user scrolls through (axial, or
sagittal and coronal when napari's axes are rolled or transposed). On each slice the names stand in a column
to the right of every labelled voxel of that slice (on axial slices the side of increasing x: the patient's
left), each at its vertebra's mean row there; several vertebrae on one slice (an arch running behind the
body below) have their names one under the other. In the 3-D view each name stands once, on its vertebra's
middle slice.

The layer follows its labels layer: a rename or shift in the Classify dock, a brush or fill stroke, an undo
or redo; it is shown and hidden with it and removed with it. A names layer the user deletes stays deleted.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from scipy import ndimage

from bonescreen.errors import BoneScreenError
from bonescreen.labels import ALL_VERTEBRA_IDS, vertebra_color, vertebra_name

from ._convert import axes_of, unwrapped
from ._head_up import camera_of, rows_drawn_up

#: The names start this far (mm) beyond the last labelled voxel of their slice.
NAME_GAP_MM = 4.0
#: A name stands on the slices where its vertebra holds at least this share of its largest section, or the
#: largest section of the slice: the tip of an arch or a speck on a neighbour's slice gets none, the narrow
#: lower sacrum (alone on its slices) keeps its name.
MIN_SECTION_SHARE = 0.1
#: Names on one slice stand at least this far apart (mm) in y: a 12-point name is about 10 mm tall on a
#: 400-500 mm field of view shown 500-600 pixels high.
NAME_SEPARATION_MM = 12.0
#: Text size of a name (napari's text points).
NAME_SIZE = 12
#: Width (mm) of one character of a name, for names standing in a row (z across the screen): a 12-point glyph is
#: about 0.6 of the name's height (NAME_SEPARATION_MM) on the same field of view.
NAME_CHAR_MM = 7.0


def _name_width_mm(vid: int) -> float:
    """Width (mm) of a vertebra's name on the canvas, about (:data:`NAME_CHAR_MM` per character)."""
    return len(vertebra_name(vid)) * NAME_CHAR_MM


def level_name_points(
    labels: np.ndarray,
    spacing_mm: tuple[float, ...],
    order: tuple[int, int, int] = (0, 1, 2),
    rows_up: bool = False,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Where each vertebra's name is written: one point per vertebra and slice that shows it.

    A vertebra's name stands on the slices where it holds at least :data:`MIN_SECTION_SHARE` of its largest
    section, or the largest section of the slice. On each slice the names start :data:`NAME_GAP_MM` beyond
    the slice's last labelled column (x), each at its vertebra's mean row there (y), moved down where needed
    to stand :data:`NAME_SEPARATION_MM` below the name above it. A point is the lower left corner of its
    text on the screen (napari's "upper_left" text anchor); where the longest name of a slice would run past the
    image's last column (the canvas cuts it there), they end :data:`NAME_GAP_MM` before the slice's first labelled
    column instead, if they fit there. Where the columns are z (the spine lies across the
    screen), the names stand in a row under the slice's labels instead, each centred under its vertebra's mean
    column, moved right where needed to clear the name before it (:data:`NAME_CHAR_MM` per character).

    Parameters
    ----------
    labels : ndarray
        (z, y, x) or (y, x) integer map of DESIGN.md vertebra ids (1-5 = L1-L5, 6 = T12, 7 = sacrum,
        21-255 unnamed); 0 and values outside those ids get no name.
    spacing_mm : tuple of float
        Voxel size in mm: (dz, dy, dx), or (dy, dx) for a 2-D map or the axial slices (the slice axis' own
        spacing is not used).
    order : tuple of int
        For a (z, y, x) map: the axis the slices are taken along, then the axes shown as rows and as columns,
        as napari's ``dims.order`` gives them: (0, 1, 2) the axial slices (the default), (2, 0, 1) sagittal,
        (1, 0, 2) coronal. The names stand beyond the last labelled column, each at its vertebra's mean row.
    rows_up : bool
        Whether the view draws rows upward (napari's camera ``orientation2d`` vertical "up": the head up in a
        sagittal or coronal view, :mod:`._head_up`). napari draws a text anchored "upper_left" above its point
        on the screen (its lower left corner at the point, in either orientation), so the point is half a name
        below the row it names on the screen: towards higher rows normally, lower rows when they run up (until
        2026-12-05 the points stood half a name above, and each name a whole name above its vertebra's middle;
        helper-59).

    Returns
    -------
    (ndarray, list of str, list of str)
        The points (n, labels.ndim) in the map's voxel coordinates, each point's name, and each point's colour
        ("#rrggbb", the vertebra's colour of the report and Slicer).

    Raises
    ------
    BoneScreenError
        A (dy, dx) spacing with a sagittal or coronal ``order`` (the slice spacing is needed there).
    """
    data = np.asarray(labels)
    flat = data.ndim == 2
    spacing = [max(float(d), 1e-6) for d in spacing_mm]
    if flat:
        data, order = data[None], (0, 1, 2)
    else:
        data = np.transpose(data, order)  # a view: slices along the first axis, rows, columns
    if len(spacing) == 2:  # (dy, dx): only axial slices, whose own axis' spacing is never read
        if order != (0, 1, 2):
            raise BoneScreenError(f"a sagittal or coronal order {order} needs the slice spacing too: give (dz, dy, dx)")
        spacing = [float("nan"), *spacing]
    dy, dx = spacing[order[1]], spacing[order[2]]
    # z across the screen (napari's second roll: coronal slices, the head to the right): a column beyond the top of
    # the spine would stack every name there, so the names stand in a row under the labels instead, each under its
    # vertebra's middle; worked out with rows and columns swapped
    across = not flat and order[2] == 0
    if across:
        data, dy, dx = data.transpose(0, 2, 1), dx, dy
    boxes = ndimage.find_objects(data) if data.size else []  # the map as it is: a cast would copy the volume
    # slice -> (area, mean row, last column, id, first column) of each vertebra on it
    sections: dict[int, list[tuple]] = {}
    for vid, box in enumerate(boxes, start=1):
        if box is None or vid not in ALL_VERTEBRA_IDS:
            continue
        own = data[box] == vid
        rows = own.sum(axis=2)  # (z, y) voxels of each row
        cols = own.any(axis=1)  # (z, x)
        for i in np.nonzero(rows.any(axis=1))[0]:
            y = box[1].start + float(np.average(np.arange(rows.shape[1]), weights=rows[i]))
            held = np.nonzero(cols[i])[0]
            x, first = box[2].start + float(held[-1]), box[2].start + float(held[0])
            sections.setdefault(box[0].start + int(i), []).append((int(rows[i].sum()), y, x, vid, first))
    largest = {}
    for on_slice in sections.values():
        for area, _, _, vid, _ in on_slice:
            largest[vid] = max(largest.get(vid, 0), area)
    points, names, colours = [], [], []
    for z, on_slice in sorted(sections.items()):
        top = max(s[0] for s in on_slice)
        shown = sorted(
            ([y, vid] for area, y, _, vid, _ in on_slice if area >= MIN_SECTION_SHARE * largest[vid] or area == top),
            key=lambda e: e[0],
        )
        x = max(s[2] for s in on_slice) + NAME_GAP_MM / dx  # clear of every labelled voxel of the slice
        widest = max(_name_width_mm(vid) for _, vid in shown) / dx
        before = min(s[4] for s in on_slice) - NAME_GAP_MM / dx - widest
        if not across and x + widest > data.shape[2] and before >= 0:
            # past the image's last column the canvas cuts the names (helper-74: "unnamed 1" read "unnam" beyond
            # the spinous processes in a sagittal view): before the first labelled column instead, where they fit
            x = before
        if across:  # in a row under the labels: the text (above its point) clear of them, centred on its vertebra
            x += NAME_SEPARATION_MM / dx
            for entry in shown:
                entry[0] -= _name_width_mm(entry[1]) / dy / 2
            for left, right in pairwise(shown):
                right[0] = max(right[0], left[0] + (_name_width_mm(left[1]) + NAME_GAP_MM) / dy)
        else:
            # the text stands above its point on the screen: the point half a name's height below the row it names
            half = (NAME_SEPARATION_MM / dy / 2) * (-1.0 if rows_up else 1.0)
            shown[0][0] += half
            for above, below in pairwise(shown):
                below[0] = max(below[0] + half, above[0] + NAME_SEPARATION_MM / dy)
        for y, vid in shown:
            points.append((z, x, y) if across else (z, y, x))
            names.append(vertebra_name(vid))
            colours.append("#{:02x}{:02x}{:02x}".format(*vertebra_color(vid)))
    coords = np.asarray(points, float).reshape(-1, 3)
    if flat:
        return coords[:, 1:], names, colours
    back = np.empty_like(coords)
    back[:, list(order)] = coords  # into the map's own axes
    return back, names, colours


#: The names whose labels layer is in a viewer: napari's events hold their methods weakly.
_LIVE: set[LevelNames] = set()


class LevelNames:
    """The names layer of one labels layer in a viewer (:func:`show_level_names`)."""

    def __init__(self, viewer, labels_layer) -> None:
        self.viewer = unwrapped(viewer)
        self.labels = unwrapped(labels_layer)
        self.layer = None
        self._pending = False
        self._stale = False  # an update that waits for the names to be shown again
        self._history = self._history_size()
        self.labels.events.data.connect(self.schedule)
        self.labels.events.paint.connect(self.schedule)
        self.labels.events.set_data.connect(self._after_undo)
        self.labels.events.visible.connect(self._follow_visible)
        self.viewer.layers.events.removed.connect(self._on_removed)
        self.viewer.dims.events.ndisplay.connect(self.schedule)
        self.viewer.dims.events.order.connect(self.schedule)  # a sagittal or coronal view: names along it
        camera_of(self.viewer).events.orientation.connect(self.schedule)  # the head turned up (_head_up)
        _LIVE.add(self)
        self.update()

    def _history_size(self) -> tuple[int, int]:
        # napari's undo and redo send no paint or data event, only set_data (as every change of slice does):
        # the lengths of its undo and redo histories tell an undo from a slice change at no cost
        return len(getattr(self.labels, "_undo_history", ())), len(getattr(self.labels, "_redo_history", ()))

    def _after_undo(self, event=None) -> None:
        if self.labels is None:
            return
        size = self._history_size()
        if size != self._history:
            self._history = size
            self.schedule()

    def _follow_visible(self, event=None) -> None:
        if self.labels is not None and self.layer is not None:
            self.layer.visible = self.labels.visible

    def _on_names_visible(self, event=None) -> None:
        if self.layer is not None and self.layer.visible and self._stale:
            self.schedule()

    def schedule(self, event=None) -> None:
        """Update once the current burst of edits is over (a stroke sends many events)."""
        if self._pending or self.labels is None:
            return
        self._pending = True
        from qtpy.QtCore import QTimer

        QTimer.singleShot(200, self.update)

    def update(self) -> None:
        """Write the names of the labels layer's vertebrae as they are now."""
        self._pending = False
        if self.labels is None or self.labels not in self.viewer.layers:
            return
        self._history = self._history_size()
        if self.layer is not None and not self.layer.visible:
            # napari's text of a hidden points layer keeps the indices of the points it last showed: new data of
            # another length then fails in its refresh (h55: hidden, then 3-D, an IndexError that aborted a
            # script); the names are written when shown again
            self._stale = True
            return
        self._stale = False
        scale = tuple(self.labels.scale)
        data = np.asarray(self.labels.data)
        # the slices the user looks through: napari's dims order (the displayed axes last), on the layer's axes
        order = tuple(int(a) - (self.viewer.dims.ndim - data.ndim) for a in self.viewer.dims.order[-data.ndim :])
        if data.ndim != 3 or sorted(order) != [0, 1, 2]:
            order = (0, 1, 2)
        rows_up = rows_drawn_up(self.viewer)
        coords, names, colours = level_name_points(
            data, scale[-3:] if data.ndim == 3 else scale[-2:], order, rows_up=rows_up
        )
        if self.viewer.dims.ndisplay == 3 and len(names):
            # the 3-D view shows every point at once: each name once, on its vertebra's middle named slice
            keep = [idx[len(idx) // 2] for idx in (np.flatnonzero(np.array(names) == n) for n in dict.fromkeys(names))]
            coords, names, colours = coords[keep], [names[i] for i in keep], [colours[i] for i in keep]
        if self.layer is None:
            self.layer = self.viewer.add_points(
                coords,
                name=f"{self.labels.name} names",
                features={"name": names, "colour": colours},
                text={"string": "{name}", "size": NAME_SIZE, "color": {"feature": "colour"}, "anchor": "upper_left"},
                size=0.1,
                face_color="transparent",
                border_color="transparent",
                border_width=0,
                scale=scale,
                translate=tuple(self.labels.translate),
                **axes_of(self.labels, len(scale)),
                visible=self.labels.visible,
                blending="translucent_no_depth",
            )
            self.layer.editable = False
            self.layer.events.visible.connect(self._on_names_visible)
            # the labels layer stays the one selected: the user paints on it, not on the names
            self.viewer.layers.selection.active = self.labels
            return
        self.layer.data = coords
        self.layer.features = {"name": names, "colour": colours}

    def _on_removed(self, event) -> None:
        if self.labels is None:  # stopped while this event was being sent
            return
        removed = unwrapped(event.value)
        if removed is self.layer:  # the user deleted the names: they stay deleted
            self._stop()
        elif removed is self.labels:
            layer, viewer = self.layer, self.viewer
            self._stop()  # first: removing the names sends this event again
            if layer is not None and layer in viewer.layers:
                viewer.layers.remove(layer)

    def _stop(self) -> None:
        for emitter, callback in (
            (self.labels.events.data, self.schedule),
            (self.labels.events.paint, self.schedule),
            (self.labels.events.set_data, self._after_undo),
            (self.labels.events.visible, self._follow_visible),
            (self.viewer.layers.events.removed, self._on_removed),
            (self.viewer.dims.events.ndisplay, self.schedule),
            (self.viewer.dims.events.order, self.schedule),
            (camera_of(self.viewer).events.orientation, self.schedule),
        ):
            emitter.disconnect(callback)
        _LIVE.discard(self)  # a removed labels layer is not kept alive
        self.labels = None
        self.layer = None


def show_level_names(viewer, labels_layer) -> LevelNames:
    """Draw the vertebra names of ``labels_layer`` on the canvas, beside the vertebrae, and keep them current.

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
