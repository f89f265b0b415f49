"""Vertebral bodies from whole-vertebra labels, as trabecular HU is measured on a user's mask."""

import numpy as np

from bonescreen.hu import body_from_levels, trabecular_hu, with_endplates


def _vertebra(shape=(40, 120, 120), spacing=(1.0, 1.0, 1.0)):
    """A body (cylinder, radius 18 mm, slices 10-29), a pedicle and lamina ring behind it on the body's
    slices, and a thick articular process (16 x 16 mm) on slices 30-37, above the body, joined to the ring."""
    z, y, x = np.indices(shape)
    labels = np.zeros(shape, np.uint8)
    body = ((y - 50) ** 2 + (x - 60) ** 2 < 18**2) & (z >= 10) & (z < 30)
    ring = (((y - 80) ** 2 + (x - 60) ** 2) < 16**2) & (((y - 80) ** 2 + (x - 60) ** 2) > 11**2) & (z >= 12) & (z < 32)
    process = (np.abs(y - 90) < 8) & (np.abs(x - 60) < 8) & (z >= 28) & (z < 38)
    labels[body | ring | process] = 3
    return labels, body, spacing


def test_body_leaves_out_processes_above_and_below_it():
    labels, body, spacing = _vertebra()
    found = body_from_levels(labels, spacing) == 3
    dice = 2 * (found & body).sum() / (found.sum() + body.sum())
    assert dice > 0.9
    assert not found[30:].any()  # the articular process above the body is not body
    # trabecular HU from it: the body's 150 HU, not the 900 HU cortex of the process
    hu = np.where(body, 150.0, np.where(labels > 0, 900.0, 0.0)).astype(np.float32)
    assert abs(trabecular_hu(hu, found.astype(np.uint8) * 3, spacing)[3]["mean_hu"] - 150.0) < 1.0


def test_body_with_endplates_keeps_the_rims_of_concave_endplates():
    """Concave endplates at 3 mm slices: the end slices of the body are thin rings (the disc bulges into the
    middle). The core (for trabecular HU) leaves them out; the body for heights keeps them, so its anterior
    and posterior walls are the body's full height, its middle the height between the concavities, and the
    articular process above the body stays out."""
    from bonescreen.fracture import body_heights

    shape, spacing = (16, 120, 120), (3.0, 1.0, 1.0)
    z, y, x = np.indices(shape)
    r2 = (y - 50) ** 2 + (x - 60) ** 2
    body = (r2 < 18**2) & (z >= 3) & (z < 12)  # 9 slices: 27 mm
    body &= ~(((z == 3) | (z == 11)) & (r2 < 10**2))  # the end slices: rims 8 mm wide round each concavity
    arch = (((y - 80) ** 2 + (x - 60) ** 2) < 16**2) & (((y - 80) ** 2 + (x - 60) ** 2) > 11**2) & (z >= 4) & (z < 12)
    process = (np.abs(y - 90) < 8) & (np.abs(x - 60) < 8) & (z >= 11) & (z < 15)
    labels = np.zeros(shape, np.uint8)
    labels[body | arch | process] = 3
    core = body_from_levels(labels, spacing)
    walls = with_endplates(core, labels, spacing) == 3
    core = core == 3
    assert not core[3].any() and not core[11].any()
    assert walls[3].any() and walls[11].any() and not walls[13:].any()
    h = body_heights(walls, spacing)
    assert abs(h["anterior"] - 27.0) <= 1.5 and abs(h["posterior"] - 27.0) <= 1.5
    assert abs(h["middle"] - 21.0) <= 1.5
    assert body_heights(core, spacing)["anterior"] < 22.0  # what the core alone would report
