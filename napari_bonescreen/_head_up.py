"""Sagittal and coronal views with the head up, as radiologists read them.

napari draws an array's rows downward. BoneScreen's volumes run (z, y, x) with z from inferior to superior
(DESIGN.md), so when a user rolls or transposes the axes to look at a sagittal or coronal plane, z becomes the
rows and the patient stands on their head: the sacrum above, T12 below. Radiology workstations show sagittal and
coronal reformats with the head up (superior at the top of the screen), and so does 3D Slicer. While the axis
shown vertically is the volume's z, the camera's vertical axis points up; otherwise (axial slices: y, anterior at
the top) it points down, napari's default. The 3-D view is left as napari draws it (turning one axis there would
mirror the patient; the user turns the volume by mouse).
"""

from __future__ import annotations

import weakref

#: Viewers whose camera follows the displayed axes (each connected once, whichever dock came first).
_FOLLOWED: weakref.WeakSet = weakref.WeakSet()


def _unwrapped(obj):
    """The object behind napari's PublicOnlyProxy (plugin docks get proxies of the viewer)."""
    return getattr(obj, "__wrapped__", obj)


def camera_of(viewer):
    """The viewer's camera (napari 0.9 moved it to ``viewer.scene.camera``; earlier: ``viewer.camera``)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def rows_drawn_up(viewer) -> bool:
    """Whether the 2-D view draws rows upward (the camera's vertical axis "up")."""
    orientation = getattr(camera_of(viewer), "orientation2d", ("down", "right"))
    return viewer.dims.ndisplay == 2 and orientation[0] == "up"


def z_shown_vertically(viewer) -> bool:
    """Whether the 2-D view shows BoneScreen's z (the third axis from the last) as its vertical axis.

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel

    Returns
    -------
    bool
        True in a 2-D view of a volume whose rows are z (sagittal, coronal); False for axial slices, 2-D
        images and the 3-D view.
    """
    dims = viewer.dims
    if dims.ndisplay != 2 or dims.ndim < 3:
        return False
    return int(dims.order[-2]) == dims.ndim - 3  # napari aligns layers at their last axes


def keep_head_up(viewer) -> None:
    """Point the camera's vertical axis up while z is shown vertically, down otherwise, from now on.

    Parameters
    ----------
    viewer : napari.Viewer
        Connected once; later calls (each dock calls it) do nothing.
    """
    viewer = _unwrapped(viewer)
    if viewer in _FOLLOWED or not hasattr(camera_of(viewer), "orientation2d"):  # napari before 0.5.? has none
        return
    _FOLLOWED.add(viewer)
    ref = weakref.ref(viewer)

    def follow(event=None) -> None:
        v = ref()
        if v is None:
            return
        camera = camera_of(v)
        vertical = "up" if z_shown_vertically(v) else "down"
        if camera.orientation2d[0] != vertical:
            camera.orientation2d = (vertical, camera.orientation2d[1])

    viewer.dims.events.order.connect(follow)
    viewer.dims.events.ndisplay.connect(follow)
    viewer.dims.events.ndim.connect(follow)
    follow()
