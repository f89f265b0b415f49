"""The learning rates equal the paper's formulas (section 3.2)."""

import itertools

import pytest

from bonescreen.errors import BoneScreenError
from bonescreen.train import classification_lr, segmentation_lr


def test_segmentation_schedule_paper():
    lrs = [segmentation_lr(e, 150) for e in range(150)]
    assert all(lr == 0.002 for lr in lrs[:100])
    assert lrs[100] == pytest.approx(0.002)
    assert lrs[125] == pytest.approx(0.002 * 25 / 50)
    assert lrs[149] == pytest.approx(0.002 / 50)
    # strictly falling and linear over the last 50 epochs
    steps = [a - b for a, b in itertools.pairwise(lrs[100:])]
    assert all(s == pytest.approx(0.002 / 50) for s in steps)


def test_segmentation_schedule_scaled():
    assert segmentation_lr(1, 3) == 0.002 and segmentation_lr(2, 3) == pytest.approx(0.002)
    assert segmentation_lr(4, 6) == pytest.approx(0.002) and segmentation_lr(5, 6) == pytest.approx(0.001)
    with pytest.raises(BoneScreenError):
        segmentation_lr(150, 150)


@pytest.mark.parametrize("it", [0, 1, 10, 100, 1000, 33750])
def test_classification_schedule_paper(it):
    assert classification_lr(it) == pytest.approx(0.01 * (1 + 0.006 * it) ** -0.98, rel=1e-12)


def test_classification_schedule_values():
    assert classification_lr(0) == 0.01
    assert classification_lr(1000) == pytest.approx(0.01 / 7**0.98)
