"""The screening pipeline: :class:`Screener` segments, names and classifies the lumbar levels."""

from .progress import Cancelled
from .screener import Screener, Segmentation

__all__ = ["Cancelled", "Screener", "Segmentation"]
