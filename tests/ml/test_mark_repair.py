"""Repairs of MS-Net's slice-by-slice mark: a body's section dropped on one slice, never a disc."""

import numpy as np

from bonescreen.phantom.realistic import RealisticConfig, make_realistic_case
from bonescreen.pipeline.levels import split_levels
from bonescreen.pipeline.mark_repair import bridge_dropped_sections


def _column(hu_by_slice, radius=12):
    """A (z, 40, 40) stack: a disc of ``radius`` pixels on every slice, marked, with the given HU."""
    yy, xx = np.indices((40, 40))
    section = (yy - 20) ** 2 + (xx - 20) ** 2 < radius**2
    hu = np.full((len(hu_by_slice), 40, 40), -100.0, np.float32)
    for k, value in enumerate(hu_by_slice):
        hu[k][section] = value
    mark = np.repeat(section[None], len(hu_by_slice), axis=0)
    return mark, hu, section


def test_a_section_dropped_inside_a_body_is_filled_and_a_disc_is_not():
    # inside a body: the dropped slice reads as the trabecular bone beside it (noise averages out)
    mark, hu, section = _column([300, 160, 150, 145, 155, 300])
    hu += np.random.default_rng(0).normal(0, 40, hu.shape).astype(np.float32)
    mark[3] = False
    repaired, slices = bridge_dropped_sections(mark, hu, (3.0, 1.0, 1.0))
    assert slices == 1 and (repaired[3] == section).all()
    assert not mark[3].any()  # the caller's mark is not changed in place
    # a narrowed disc between two marked endplates: darker than both, left out
    mark, hu, _section = _column([150, 160, 280, 90, 290, 150])
    mark[3] = False
    repaired, slices = bridge_dropped_sections(mark, hu, (3.0, 1.0, 1.0))
    assert slices == 0 and repaired is mark
    # a sliver of the mark's edge is not a dropped section
    mark, hu, section = _column([150, 150, 150], radius=12)
    mark[1] = section & (np.indices((40, 40))[1] < 30)
    assert bridge_dropped_sections(mark, hu, (3.0, 1.0, 1.0))[1] == 0


def test_a_dropped_section_no_longer_splits_a_vertebra_in_two():
    """On TotalSegmentator's example CT MS-Net left L2's middle slice empty, the split found two vertebrae
    there and every name above shifted. Here the same slice of L3's body is taken out of the true mask."""
    config = RealisticConfig(extent="abdomen-pelvis", slice_mm=3.0, pixel_mm=2.0, findings="none")
    case = make_realistic_case(21, 0, config)
    mask = case.spine > 0
    z3 = np.nonzero((case.body == 3).any(axis=(1, 2)))[0]
    mid = int(np.median(z3))
    mask[mid] = False  # the whole slice, as MS-Net dropped it
    hu = case.hu.astype(np.float32)
    broken = split_levels(mask, case.spacing, hu)
    assert [v.name for v in broken.vertebrae][:6] != ["S1", "L5", "L4", "L3", "L2", "L1"] or not broken.certain
    repaired, slices = bridge_dropped_sections(mask, hu, case.spacing)
    assert slices >= 1 and repaired[mid][case.body[mid] == 3].mean() > 0.8
    split = split_levels(repaired, case.spacing, hu)
    assert [v.name for v in split.vertebrae][:6] == ["S1", "L5", "L4", "L3", "L2", "L1"] and split.certain
