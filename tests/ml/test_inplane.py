"""In-plane morphology by distance transforms equals scipy's per-slice binary morphology."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bonescreen import inplane
from bonescreen.labels import levels_present


def blobs(seed: int, shape=(5, 64, 72)) -> np.ndarray:
    """Random smooth blobs, some touching the array's edge, one empty slice."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(0, 4, 4))
    mask = field > np.quantile(field, 0.6)
    mask[2] = False
    return mask


def ellipse(radius_mm: float, spacing_yx) -> np.ndarray:
    """Structuring element: pixels (i, j) with (i dy)^2 + (j dx)^2 <= r^2 (the reference disc)."""
    ry, rx = int(radius_mm // spacing_yx[0]), int(radius_mm // spacing_yx[1])
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    return (yy * spacing_yx[0]) ** 2 + (xx * spacing_yx[1]) ** 2 <= radius_mm**2 + 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("spacing_yx", [(1.0, 1.0), (0.7, 0.7), (0.5, 0.9)])
@pytest.mark.parametrize("radius", [2.0, 3.5, 6.0])
def test_open_equals_scipy(seed, spacing_yx, radius):
    mask = blobs(seed)
    disc = ellipse(radius, spacing_yx)
    want_opened = np.stack([ndimage.binary_opening(s, structure=disc) for s in mask])
    np.testing.assert_array_equal(inplane.open_(mask, radius, spacing_yx), want_opened)
    assert want_opened.any() and want_opened.sum() < mask.sum()  # the cases are not trivial


def test_central_part_keeps_the_middle_of_each_section_and_no_thin_appendage():
    """A disc of radius 20 mm with a 6 mm wide bar (a pedicle) on slice 0, a disc of 10 mm on slice 1."""
    yy, xx = np.mgrid[:100, :100]
    mask = np.zeros((3, 100, 100), bool)
    mask[0] = ((yy - 50) ** 2 + (xx - 40) ** 2 <= 20**2) | ((np.abs(yy - 50) <= 3) & (xx >= 55) & (xx < 95))
    mask[1] = (yy - 50) ** 2 + (xx - 40) ** 2 <= 10**2
    got = inplane.central_part(mask, 0.5, 3.0, (1.0, 1.0))
    edt = np.stack([ndimage.distance_transform_edt(np.pad(s, 1))[1:-1, 1:-1] for s in mask])
    np.testing.assert_array_equal(got[0], edt[0] >= 0.5 * edt[0].max())
    r0 = np.sqrt(got[0].sum() / np.pi)
    assert 9 <= r0 <= 11.5 and not got[0][:, 70:].any()  # a disc of about half the radius, no bar
    np.testing.assert_array_equal(got[1], edt[1] >= 0.5 * edt[1].max())  # its own middle, about 5.5 mm deep
    assert not got[2].any()  # an empty slice stays empty
    assert inplane.central_part(mask, 0.1, 8.0, (1.0, 1.0))[1].sum() == (edt[1] >= 8.0).sum()  # the floor


def test_inscribed_radius_and_edt():
    mask = blobs(3)
    spacing = (0.8, 0.6)
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    want = np.stack([ndimage.distance_transform_edt(s, sampling=spacing) for s in padded])[:, 1:-1, 1:-1]
    np.testing.assert_allclose(inplane.inplane_edt(mask, spacing), want)
    np.testing.assert_allclose(inplane.inscribed_radius(mask, spacing), want.max(axis=(1, 2)))
    assert inplane.inscribed_radius(mask, spacing)[2] == 0  # the empty slice
    assert not inplane.inscribed_radius(np.zeros((3, 8, 8), bool), spacing).any()


def test_thickest_piece_keeps_the_deepest_blob_per_slice():
    mask = np.zeros((2, 60, 60), bool)
    yy, xx = np.mgrid[:60, :60]
    big = (yy - 20) ** 2 + (xx - 20) ** 2 <= 10**2
    small = (yy - 45) ** 2 + (xx - 45) ** 2 <= 6**2
    mask[0] = big | small
    mask[1] = small  # alone on its slice: kept
    got = inplane.thickest_piece(mask, (1.0, 1.0))
    np.testing.assert_array_equal(got[0], big)
    np.testing.assert_array_equal(got[1], small)


def test_bounding_box():
    mask = np.zeros((4, 10, 12), np.uint8)
    assert inplane.bounding_box(mask) is None
    mask[1:3, 0:2, 5:9] = 3
    assert inplane.bounding_box(mask) == (slice(1, 3), slice(0, 2), slice(5, 9))
    assert inplane.bounding_box(mask, margin=4) == (slice(1, 3), slice(0, 6), slice(1, 12))


def test_levels_present():
    labels = np.zeros((6, 20, 20), np.uint8)
    assert levels_present(labels) == []
    labels[1, 3, 3] = 4
    labels[4, 10:12, 10:12] = 2
    assert levels_present(labels) == [2, 4]
    assert levels_present(labels.astype(np.int32)) == [2, 4]
    assert levels_present(np.array([[0, 5], [1, 0]])) == [1, 5]


@pytest.mark.parametrize("spacing", [(0.625, 0.75, 0.75), (3.0, 1.5, 1.5), (2.5, 0.7, 0.7)])
def test_within_mm_and_grown_boxes_equal_the_whole_arrays_distance_transform(spacing):
    """:func:`inplane.within_mm` reads the distance transform in a grown box only: the same voxels as the transform
    of the whole array (which took seconds and gigabytes per call on a 735-slice CT); a distance read in a box grown
    by ``reach`` is exact up to ``reach``."""
    rng = np.random.default_rng(7)
    mask = np.zeros((60, 70, 80), bool)
    mask[20:26, 30:38, 12:15] = True
    mask[rng.integers(0, 60, 5), rng.integers(0, 70, 5), rng.integers(0, 80, 5)] = True
    for reach in (2.0, 7.5, 30.0):
        whole = ndimage.distance_transform_edt(~mask, sampling=spacing)
        assert np.array_equal(inplane.within_mm(mask, reach, spacing), whole <= reach)
        box = inplane.grow_box(inplane.bounding_box(mask), reach, spacing, mask.shape)
        part = ndimage.distance_transform_edt(~mask[box], sampling=spacing)
        near = whole[box] <= reach
        assert np.allclose(part[near], whole[box][near]) and (part[~near] > reach).all()
    assert not inplane.within_mm(np.zeros((4, 5, 6), bool), 5.0, spacing).any()


def test_label_centres_equal_scipys_over_the_whole_map():
    """:func:`inplane.label_centres` reads each id in its own box: the centres scipy gives over the whole map, NaN for
    an id absent."""
    rng = np.random.default_rng(3)
    labels, n = ndimage.label(rng.random((30, 40, 50)) > 0.97)
    ids = [1, n // 2, n, n + 2]
    ours = np.array(inplane.label_centres(labels, ids))
    theirs = np.array(ndimage.center_of_mass(labels > 0, labels, ids))
    assert np.allclose(ours[:3], theirs[:3]) and np.isnan(ours[3]).all()
