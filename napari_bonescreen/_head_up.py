"""BoneScreen's volumes shown as radiologists read them: the head up, and the 3-D view not mirrored.

napari draws an array's rows downward. BoneScreen's volumes run (z, y, x) with z from inferior to superior, y
anterior to posterior and x from the patient's right to left (DESIGN.md), so when a user rolls or transposes the
axes to look at a sagittal or coronal plane, z becomes the rows and the patient stands on their head: the sacrum
above, T12 below. Radiology workstations show sagittal and coronal reformats with the head up (superior at the
top of the screen), and so does 3D Slicer. While the axis shown vertically is the volume's z, the camera's
vertical axis points up; otherwise (axial slices: y, anterior at the top) it points down, napari's default.

In 3-D, napari's camera takes the three displayed axes as a right-handed frame. BoneScreen's (superior,
posterior, left) is left-handed (DICOM's patient frame, left-posterior-superior, is right-handed: L x P = S, so
S x P = -L), and so is every even permutation of it: shown from the axial or sagittal order, the patient was
mirrored (helper-59: the patient's left on the screen's right while the camera looked down from the head). The
depth axis is turned where the displayed frame and the camera's differ in handedness: from the axial order the
view is then from the feet with the patient's left on the right, as axial CT is read.

Only while the viewer holds a layer of BoneScreen's (its reader's CT, the labels and names its docks make: layer
metadata under ``_convert.META_KEY``); other images keep napari's defaults.
"""

from __future__ import annotations

import weakref

from ._convert import META_KEY, unwrapped

#: Viewers whose camera follows the displayed axes (each connected once, whichever dock came first).
_FOLLOWED: weakref.WeakSet = weakref.WeakSet()


def camera_of(viewer):
    """The viewer's camera (napari 0.9 moved it to ``viewer.scene.camera``; earlier: ``viewer.camera``)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def rows_drawn_up(viewer) -> bool:
    """Whether the 2-D view draws rows upward (the camera's vertical axis "up")."""
    orientation = getattr(camera_of(viewer), "orientation2d", ("down", "right"))
    return viewer.dims.ndisplay == 2 and orientation[0] == "up"


def _displayed_zyx(viewer) -> tuple[int, ...] | None:
    """The displayed axes as BoneScreen's (0 z, 1 y, 2 x), depth first in 3-D; None without a volume's three."""
    dims = viewer.dims
    if dims.ndim < 3:
        return None
    first = dims.ndim - 3  # napari aligns layers at their last axes
    shown = tuple(int(a) - first for a in dims.order[-dims.ndisplay :])
    return shown if all(a >= 0 for a in shown) else None


def holds_bonescreen_layers(viewer) -> bool:
    """Whether any layer of the viewer is BoneScreen's (metadata under ``META_KEY``)."""
    return any(META_KEY in getattr(layer, "metadata", {}) for layer in viewer.layers)


def camera_orientation(viewer) -> tuple[str, str, str]:
    """The (depth, vertical, horizontal) orientation BoneScreen's layers want for the current view.

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel

    Returns
    -------
    tuple of str
        napari's default ("towards", "down", "right") unless the viewer holds BoneScreen's layers: then the
        vertical axis "up" where it shows z, and in 3-D the depth "away" where the displayed axes, depth first,
        would otherwise be drawn mirrored.
    """
    shown = _displayed_zyx(viewer)
    if shown is None or not holds_bonescreen_layers(viewer):
        return ("towards", "down", "right")
    up = shown[-2] == 0  # the vertical axis is the second-last displayed one, in 2-D and in 3-D
    depth = "towards"
    if len(shown) == 3:
        # an even permutation of (z, y, x) is left-handed; each axis turned flips the camera's handedness
        even = sum(1 for i in range(3) for j in range(i + 1, 3) if shown[i] > shown[j]) % 2 == 0
        depth = "away" if even != up else "towards"
    return (depth, "up" if up else "down", "right")


def keep_head_up(viewer) -> None:
    """Keep the camera in :func:`camera_orientation` as the displayed axes and the layers change, from now on.

    Parameters
    ----------
    viewer : napari.Viewer
        Connected once; later calls (each dock calls it) do nothing.
    """
    viewer = unwrapped(viewer)
    if viewer in _FOLLOWED or not hasattr(camera_of(viewer), "orientation"):  # napari before 0.5 has none
        return
    _FOLLOWED.add(viewer)
    ref = weakref.ref(viewer)

    def follow(event=None) -> None:
        v = ref()
        if v is None:
            return
        camera = camera_of(v)
        wanted = camera_orientation(v)
        if v.dims.ndisplay == 2:  # the depth axis means nothing there: left as it is
            wanted = (camera.orientation[0], *wanted[1:])
        if tuple(str(getattr(o, "value", o)) for o in camera.orientation) != wanted:
            camera.orientation = wanted

    viewer.dims.events.order.connect(follow)
    viewer.dims.events.ndisplay.connect(follow)
    viewer.dims.events.ndim.connect(follow)
    viewer.layers.events.inserted.connect(follow)
    viewer.layers.events.removed.connect(follow)
    follow()
