"""Build networks by name: ``create_model('bccnet')``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from ..errors import BoneScreenError, check_choice
from .densenet import DenseNet
from .msnet import MSNet

#: name -> (task, builder, default keyword arguments)
_MODELS: dict[str, tuple[str, Callable[..., nn.Module], dict]] = {
    "msnet": ("segmentation", MSNet, {"width": 1.0}),
    "msnet-small": ("segmentation", MSNet, {"width": 0.25}),
    "bccnet": ("classification", DenseNet, {"block_config": (1, 2, 4, 2), "growth_rate": 12}),
    "densenet-1": ("classification", DenseNet, {"block_config": (1, 1, 2, 1), "growth_rate": 12}),
    "densenet-2": ("classification", DenseNet, {"block_config": (2, 4, 6, 4), "growth_rate": 12}),
    "densenet121": (
        "classification",
        DenseNet,
        {"block_config": (6, 12, 24, 16), "growth_rate": 32, "num_init_features": 64},
    ),
}


def model_names(task: str | None = None) -> list[str]:
    """Names accepted by :func:`create_model`, optionally only those of one task."""
    if task is not None:
        check_choice("task", task, ("segmentation", "classification"))
    return [n for n, (t, _, _) in _MODELS.items() if task is None or t == task]


def model_task(name: str) -> str:
    """``segmentation`` or ``classification`` for a model name."""
    return _lookup(name)[0]


def _lookup(name: str) -> tuple[str, Callable[..., nn.Module], dict]:
    try:
        return _MODELS[name]
    except KeyError:
        raise BoneScreenError(f"unknown model {name!r}; expected one of {', '.join(_MODELS)}") from None


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
    _, builder, defaults = _lookup(name)
    allowed = inspect.signature(builder).parameters
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise BoneScreenError(f"{name} takes no argument {', '.join(unknown)}; it takes {', '.join(allowed)}")
    model = builder(**{**defaults, **kwargs})
    model.model_name = name
    return model
