"""One loaded :class:`~bonescreen.pipeline.Screener` per (weights, device), shared by the widgets."""

from __future__ import annotations

from functools import lru_cache

from bonescreen.pipeline import Screener


@lru_cache(maxsize=4)
def get_screener(seg_weights: str | None, cls_weights: str | None, device: str) -> Screener:
    """A screener; its networks load on first use (in the worker thread)."""
    return Screener(seg_weights, cls_weights, device)
