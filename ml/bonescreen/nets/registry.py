"""Build networks by name: ``create_model('bccnet')``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from ..errors import BoneScreenError
from .densenet import DenseNet
from .msnet import MSNet
from .names import MODEL_TASKS

#: name -> (builder, default keyword arguments); the tasks are in :data:`.names.MODEL_TASKS`
_BUILDERS: dict[str, tuple[Callable[..., nn.Module], dict]] = {
    "msnet": (MSNet, {"width": 1.0}),
    "msnet-small": (MSNet, {"width": 0.25}),
    "bccnet": (DenseNet, {"block_config": (1, 2, 4, 2), "growth_rate": 12}),
    "densenet-1": (DenseNet, {"block_config": (1, 1, 2, 1), "growth_rate": 12}),
    "densenet-2": (DenseNet, {"block_config": (2, 4, 6, 4), "growth_rate": 12}),
    "densenet121": (DenseNet, {"block_config": (6, 12, 24, 16), "growth_rate": 32, "num_init_features": 64}),
}
assert set(_BUILDERS) == set(MODEL_TASKS), "every named network has a builder and a task"


def model_task(name: str) -> str:
    """``segmentation`` or ``classification`` for a model name.

    Raises
    ------
    BoneScreenError
        If ``name`` is not a known network.
    """
    _lookup(name)
    return MODEL_TASKS[name]


def _lookup(name: str) -> tuple[Callable[..., nn.Module], dict]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise BoneScreenError(f"unknown model {name!r}; expected one of {', '.join(_BUILDERS)}") from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a network by name.

    Parameters
    ----------
    name : str
        ``msnet`` (paper, width 1), ``msnet-small`` (width 1/4), ``bccnet``,
        ``densenet-1``, ``densenet-2`` or ``densenet121``.
    **kwargs
        Override the builder's defaults (for example ``width=0.5``).
    """
    builder, defaults = _lookup(name)
    allowed = inspect.signature(builder).parameters
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise BoneScreenError(f"{name} takes no argument {', '.join(unknown)}; it takes {', '.join(allowed)}")
    model = builder(**{**defaults, **kwargs})
    model.model_name = name
    return model
