"""Training samples from labelled sets: split by case, on-the-fly augmentation, paper-style crops."""

import numpy as np
import pytest
import torch

from bonescreen.data import ClassificationCrops, SegmentationSlices, load_case_set, split_by_case
from bonescreen.errors import BoneScreenError
from bonescreen.labels import class_index
from bonescreen.preprocess import roi_crop


def test_load_and_split(small_set):
    records = load_case_set(small_set)
    assert sorted(r.label for r in records) == ["low_bone_mass", "normal", "osteoporosis"]
    train, test = split_by_case(records * 4, 0.25, seed=0)
    assert len(test) == 3 and len(train) == 9
    records = load_case_set(small_set)
    tr, te = split_by_case(records, 0.34, seed=1)
    assert not {r.case_id for r in tr} & {r.case_id for r in te}


def test_bad_sets(tmp_path):
    with pytest.raises(BoneScreenError, match=r"no cases\.csv"):
        load_case_set(tmp_path)
    (tmp_path / "cases.csv").write_text("case_id,class\nc1,weird\n")
    with pytest.raises(BoneScreenError, match="unknown class 'weird'"):
        load_case_set(tmp_path)


def test_segmentation_slices(small_set):
    records = load_case_set(small_set)[:1]
    ds = SegmentationSlices(records, slices_per_case=6, augment=True, seed=3)
    assert len(ds) == 6
    x, y = ds[2]
    assert x.shape == (1, 512, 512) and y.shape == (1, 512, 512)
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and set(torch.unique(y).tolist()) <= {0.0, 1.0}
    x2, _ = ds[2]
    assert torch.equal(x, x2)  # same epoch, same sample
    ds.set_epoch(1)
    x3, _ = ds[2]
    assert not torch.equal(x, x3)  # new epoch, new augmentation
    plain = SegmentationSlices(records, slices_per_case=6, augment=False)
    assert plain.marks.any(axis=(1, 2)).sum() >= 4  # most slices show vertebra


def test_classification_crops(small_set):
    records = load_case_set(small_set)
    ds = ClassificationCrops(records, crops_per_case=20, augment=True, seed=0)
    assert len(ds) == 60
    labels = [ds[i][1] for i in range(len(ds))]
    assert labels == [class_index(r.label) for r in records for _ in range(20)]
    x, _ = ds[0]
    assert x.shape == (1, 224, 224)
    assert float(x[0, 0, 0]) == 0.0 and float(x.max()) > 0.2  # masked: background is 0
    levels = {key[1] for key in ds.keys}
    assert levels == {1, 2, 3, 4, 5}


def test_roi_crop_fills_the_frame():
    hu = np.full((100, 100), 300.0)
    mask = np.zeros((100, 100), bool)
    mask[30:70, 20:60] = True
    crop = roi_crop(hu, mask, 224, scale=1.0)
    inside = crop > 0
    rows, cols = np.nonzero(inside)
    assert rows.min() <= 2 and rows.max() >= 221 and cols.min() <= 2 and cols.max() >= 221
    smaller = roi_crop(hu, mask, 224, scale=0.8)
    assert (smaller > 0.5 * smaller.max()).mean() == pytest.approx(0.64, abs=0.02)
    with pytest.raises(BoneScreenError, match="empty"):
        roi_crop(hu, np.zeros_like(mask))


def test_classification_crops_leave_out_cement_and_screwed_levels(small_set, tmp_path):
    """A vertebroplasty or a screw is no bone of the case's class: the case set's cement_levels and screw_levels
    are not cropped for BCC-Net (the pipeline finds such levels dense and leaves them out too)."""
    import csv
    import shutil

    root = tmp_path / "set"
    shutil.copytree(small_set, root)
    with open(root / "cases.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0]["cement_levels"], rows[0]["screw_levels"] = "L2", "L4 L5"
    with open(root / "cases.csv", "w", newline="") as f:
        w = csv.DictWriter(f, [*rows[0].keys()])
        w.writeheader()
        w.writerows(rows)
    records = load_case_set(root)
    ds = ClassificationCrops(records, crops_per_case=4, augment=False)
    first = {level for case_id, level, _ in ds.keys if case_id == records[0].case_id}
    other = {level for case_id, level, _ in ds.keys if case_id == records[1].case_id}
    assert first == {1, 3} and other == {1, 2, 3, 4, 5}


def test_classification_crops_spread_over_every_level_when_a_case_has_more_slices_than_samples(small_set):
    """A thin-slice case has more body slices than samples per case: the samples must reach L1 to L5,
    not the first slices only (which were L1 and L2), and each epoch must draw other slices."""
    records = load_case_set(small_set)
    plain = ClassificationCrops(records, crops_per_case=5, augment=False)
    for case_id in {key[0] for key in plain.keys}:
        slices = [p for p, key in enumerate(plain.keys) if key[0] == case_id]
        drawn = [p for p in plain.items if plain.keys[p][0] == case_id]
        assert len(slices) > 5 and len(drawn) == 5
        assert {plain.keys[p][1] for p in drawn} >= {1, 5}  # the first and the last level both sampled
    assert plain.items == ClassificationCrops(records, crops_per_case=5, augment=False).items  # repeats
    augmented = ClassificationCrops(records, crops_per_case=5, augment=True, seed=0)
    first = list(augmented.items)
    augmented.set_epoch(1)
    assert augmented.items != first and len(augmented.items) == len(first)
    few = ClassificationCrops(records, crops_per_case=200, augment=False)  # more samples than slices: cycle
    assert set(few.items) == set(range(len(few.keys)))
