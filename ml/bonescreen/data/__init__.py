"""Labelled case sets and the datasets that train MS-Net and BCC-Net."""

from .cases import CaseRecord, load_case_set, split_by_case
from .datasets import ClassificationCrops, LabelledSlices, SegmentationSlices, SliceShards

__all__ = [
    "CaseRecord",
    "ClassificationCrops",
    "LabelledSlices",
    "SegmentationSlices",
    "SliceShards",
    "load_case_set",
    "split_by_case",
]
