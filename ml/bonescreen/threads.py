"""Independent pieces of CPU work spread over the cores, for the steps between network passes.

Post-processing (per-slice distance transforms, ROI crops, per-level masks) runs
while the networks are idle, so it may use every core they use. The scipy and
numpy routines it calls release the GIL, so threads are enough.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_inside = threading.local()


@functools.lru_cache(maxsize=4)
def _cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs a container's CPU quota allows (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), None without one.

    Read once per process (:func:`cpu_workers` asks on every :func:`thread_map`)."""
    for quota_file, period_file in (
        (f"{root}/cpu.max", None),
        (f"{root}/cpu/cpu.cfs_quota_us", f"{root}/cpu/cpu.cfs_period_us"),
    ):
        try:
            with open(quota_file) as f:
                fields = f.read().split()
            if period_file is not None:
                with open(period_file) as f:
                    fields += f.read().split()
            quota, period = float(fields[0]), float(fields[1])
        except (OSError, ValueError, IndexError):  # no such file, "max" (no quota)
            continue
        if quota > 0 and period > 0:
            return quota / period
    return None


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity, which a container may set below
    ``os.cpu_count()``, and no more than its CPU quota allows (rounded up)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        cores = max(1, os.cpu_count() or 1)
    limit = _cgroup_cpu_limit()
    return cores if limit is None else max(1, min(cores, math.ceil(limit)))


def cpu_workers() -> int:
    """Threads to use: ``OMP_NUM_THREADS`` when set (batch workers set it), else :func:`usable_cores`."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return usable_cores()


@functools.lru_cache(maxsize=1)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bonescreen", initializer=_mark_worker)


def _mark_worker() -> None:
    _inside.worker = True


def thread_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]``, computed on :func:`cpu_workers` threads; results in order.

    Runs in the calling thread when there is one item, one core, or when called
    from one of the pool's own threads (nested use would wait on itself).
    """
    items = list(items)
    workers = cpu_workers()
    if len(items) <= 1 or workers == 1 or getattr(_inside, "worker", False):
        return [fn(x) for x in items]
    return list(_pool(workers).map(fn, items))


def split_range(n: int, parts: int | None = None) -> list[slice]:
    """``range(n)`` cut into at most ``parts`` (default :func:`cpu_workers`) contiguous, near-equal slices."""
    parts = max(1, min(parts or cpu_workers(), n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(edges) if b > a]
