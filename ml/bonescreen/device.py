"""Choose the torch device: CUDA, then MPS, then CPU."""

from __future__ import annotations

import logging

import torch

from .errors import BoneScreenError

log = logging.getLogger(__name__)


#: What users are told when ``auto`` finds no GPU (a sentence: the CLI and the GUIs show it as it is).
CPU_FALLBACK = "No GPU (CUDA or MPS) found: running on the CPU."


def fallback_note(requested: str | torch.device, device: torch.device) -> str | None:
    """:data:`CPU_FALLBACK` when ``auto`` was asked for and gave the CPU, else None."""
    return CPU_FALLBACK if str(requested).strip().lower() == "auto" and device.type == "cpu" else None


def available_devices() -> list[str]:
    """Return the device names usable here, ``auto`` first."""
    names = ["auto"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` into a torch device.

    Parameters
    ----------
    name : str or torch.device
        ``auto`` picks CUDA, then MPS, then the CPU (logged at DEBUG level: the CLI and the GUIs show
        :func:`fallback_note` instead).

    Raises
    ------
    BoneScreenError
        If a named device is not one of ``cpu``, ``cuda[:N]``, ``mps``, or not present on this machine.
    """
    if isinstance(name, torch.device):
        return name
    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        log.debug(CPU_FALLBACK)  # callers show fallback_note() (the CLI printed it twice under -v)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):  # torch knows more types than BoneScreen runs on
        raise BoneScreenError(f"unknown device {name!r}; use one of {', '.join(available_devices())}")
    if device.type != "cuda" and device.index is not None:  # "cpu:1" meant nothing and ran on the CPU
        raise BoneScreenError(f"device {name!r}: only CUDA GPUs are numbered; use {device.type!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BoneScreenError(f"device {name!r} was asked for but no CUDA GPU is available here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise BoneScreenError(f"device {name!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise BoneScreenError("device 'mps' was asked for but Apple MPS is not available here")
    return device


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for training on ``device``, or None for full fp32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None
