"""Host memory settings for screening: keep activation memory mapped, and no huge-page compaction stalls.

These settings are process-wide and glibc's cannot be read back or undone, so only processes that
are BoneScreen's own apply them: the ``bonescreen`` command line and the batch workers. The library
(``Screener``, ``train``) never does, so napari's, Slicer's or a user's Python is left as it was.

1. By default glibc returns freed memory at the top of the heap to the OS as soon as
   more than a few MB are free there, and serves blocks over 32 MB straight from
   ``mmap``. A CPU forward pass of MS-Net frees and reallocates hundreds of MB of
   activations, so every pass page-faults them in again (zeroed by the kernel).
   Raising glibc's two thresholds keeps that memory in the process between passes
   (up to 25% faster passes; ``benchmarks/inference_speed.py --default-allocator``);
   peak memory does not change.
2. numpy asks the kernel for transparent huge pages on every array over 4 MB. Where
   the kernel defragments on request (``/sys/kernel/mm/transparent_hugepage/defrag``
   = ``madvise``, common on workstations), the first touch of such an array can
   stall on memory compaction: a quarter of a second of system time in the level
   split of a 300-slice volume right after the network ran. Screening turns the
   request off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys

log = logging.getLogger(__name__)

#: mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (glibc's largest allowed value on 64-bit).
MMAP_THRESHOLD = 32 * 1024**2
#: Free memory kept at the top of the heap before it is returned to the OS.
TRIM_THRESHOLD = 128 * 1024**2


@functools.lru_cache(maxsize=1)
def tune_host_memory() -> bool:
    """Both settings of the module docstring, once per process; True when glibc's thresholds were raised."""
    _no_numpy_hugepages()
    return tune_cpu_allocator()


def _no_numpy_hugepages() -> None:
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:  # the user's choice
        return
    import numpy as np

    setter = getattr(getattr(np, "_core", np).multiarray, "_set_madvise_hugepage", None)
    if setter is not None:
        setter(False)


@functools.lru_cache(maxsize=1)
def tune_cpu_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they were set.

    Does nothing off Linux/glibc, or when the user tunes malloc already
    (``GLIBC_TUNABLES`` or ``MALLOC_*`` in the environment).
    """
    if not sys.platform.startswith("linux"):
        return False
    if "GLIBC_TUNABLES" in os.environ or any(k.startswith("MALLOC_") for k in os.environ):
        log.debug("malloc is tuned by the environment; leaving it alone")
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("malloc thresholds %s", "raised" if ok else "left as they were")
    return ok
