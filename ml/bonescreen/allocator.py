"""Keep glibc's allocator from handing the networks' activation memory back to the OS after every pass.

By default glibc returns freed memory at the top of the heap to the OS as soon as
more than a few MB are free there, and serves blocks over 32 MB straight from
``mmap``. A CPU forward pass of MS-Net frees and reallocates hundreds of MB of
activations, so every pass page-faults all of it in again (zeroed by the kernel):
about a quarter of the forward time of the bundled MS-Net on a 2-core CPU
(``benchmarks/inference_speed.py`` measures it). Raising the two thresholds keeps
that memory in the process between passes; peak memory does not change.
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
