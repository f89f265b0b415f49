"""Labelled case sets and the datasets that train MS-Net and BCC-Net."""

from .cases import CaseRecord, load_case_set, split_by_case
from .datasets import ClassificationCrops, SegmentationSlices

__all__ = ["CaseRecord", "ClassificationCrops", "SegmentationSlices", "load_case_set", "split_by_case"]
