"""The screening pipeline: :class:`Screener` segments, names and classifies the lumbar levels.

The names are imported on first use (PEP 562), so that ``bonescreen.pipeline.progress`` (the command
line's cancel signal) does not load torch: ``bonescreen --version`` and argument errors stay fast.
"""

from __future__ import annotations

import importlib

__all__ = ["Cancelled", "Screener", "Segmentation"]

_WHERE = {"Cancelled": ".progress", "Screener": ".screener", "Segmentation": ".screener"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
