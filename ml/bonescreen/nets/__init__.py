"""Networks: MS-Net (segmentation) and the DenseNet-BC family (BCC-Net and ablations).

The names are imported on first use (PEP 562): :mod:`.names` (the networks' names and tasks) is read
by the command line's parser without loading torch.
"""

from __future__ import annotations

import importlib

__all__ = ["BCCNet", "DenseNet", "MSNet", "create_model", "model_names", "model_task"]

_WHERE = {
    "BCCNet": (".densenet", "DenseNet"),
    "DenseNet": (".densenet", "DenseNet"),
    "MSNet": (".msnet", "MSNet"),
    "create_model": (".registry", "create_model"),
    "model_names": (".names", "model_names"),
    "model_task": (".registry", "model_task"),
}


def __getattr__(name: str):
    if name in _WHERE:
        module, attr = _WHERE[name]
        return getattr(importlib.import_module(module, __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
