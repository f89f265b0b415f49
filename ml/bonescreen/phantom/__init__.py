"""Synthetic lumbar CT phantom with known bone condition and ground-truth labels."""

from .bone import VBMD_RANGES, trabecular_hu, vbmd_class
from .generate import PhantomCase, PhantomConfig, make_case

__all__ = ["VBMD_RANGES", "PhantomCase", "PhantomConfig", "make_case", "trabecular_hu", "vbmd_class"]
