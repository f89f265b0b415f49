"""How the networks run at inference: precision, memory format, compilation.

``precision="auto"`` uses bf16 autocast on CUDA GPUs that support it (else fp16)
and on CPUs with native bf16 instructions (AVX512-BF16 or AMX), fp32 elsewhere.
The labels of the bf16 path are checked against fp32 by
``benchmarks/inference_speed.py`` and ``tests/ml/test_inference.py``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where the settings are used: made, they cost no import (helper-100: a batch
    # refused at its output folder had loaded torch for them)
    import torch

from ..errors import check_choice, check_number

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


#: MS-Net batch on the CPU: the bundled network runs fastest at 4 slices per pass on the 2-core CPU in fp32
#: and bf16 alike (``benchmarks/RESULTS.md``); larger batches spill its activations out of the caches.
CPU_BATCH = 4
#: MS-Net batch on GPUs.
GPU_BATCH = 8


@dataclass(frozen=True)
class InferenceSettings:
    """Settings of the inference path.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast type; ``auto`` as described in the module docstring.
    channels_last : bool
        NHWC memory format (faster convolutions on CPU and tensor cores).
    compile : bool
        ``torch.compile`` the networks (slow first call; for long batch runs).
    batch : int, optional
        Slices per MS-Net forward pass; None picks :data:`CPU_BATCH` on the CPU and
        :data:`GPU_BATCH` on GPUs (:meth:`batch_size`).
    """

    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    batch: int | None = None

    def __post_init__(self) -> None:
        check_choice("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        if self.batch is not None:
            check_number("batch", self.batch, 1, whole=True)

    def describe(self, device: torch.device) -> dict:
        """What ran on ``device``, for result.json: precision, MS-Net batch, compilation."""
        import torch

        dtype = self.dtype(device)
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
        return {"precision": precision, "batch_size": self.batch_size(device), "compiled": self.compile}

    def batch_size(self, device: torch.device) -> int:
        """Slices per MS-Net pass on ``device``: :attr:`batch`, or the default for the device."""
        return self.batch or (CPU_BATCH if device.type == "cpu" else GPU_BATCH)

    def dtype(self, device: torch.device) -> torch.dtype | None:
        """The autocast type on ``device``, or None for plain fp32."""
        import torch

        if self.precision == "fp32":
            return None
        if self.precision == "bf16":
            return torch.bfloat16
        if self.precision == "fp16":
            return torch.float16
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None

    @contextlib.contextmanager
    def forward_context(self, device: torch.device) -> Iterator[None]:
        """A context for the enclosed forward passes: autocast to :meth:`dtype`, and cuDNN's benchmark mode on CUDA.

        cuDNN picks its fastest kernels once for the fixed 512x512 slices. The process-wide
        ``torch.backends.cudnn.benchmark`` is set back to what it was on exit, so a GUI's or a
        script's own setting is kept outside BoneScreen's passes.
        """
        import torch

        dtype = self.dtype(device)
        cast = contextlib.nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)
        benchmark = torch.backends.cudnn.benchmark
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        try:
            with cast:
                yield
        finally:
            torch.backends.cudnn.benchmark = benchmark

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Put a loaded (eval-mode) model in the chosen memory format, compiled if asked."""
        import torch

        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            model = torch.compile(model)
        return model

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the chosen memory format."""
        import torch

        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
