"""Post-processing spread over threads: same results as a plain loop, in order, no deadlock when nested."""

import os
import threading

import numpy as np
import pytest

from bonescreen import threads


def test_thread_map_keeps_order_and_uses_the_pool(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    names = threads.thread_map(lambda i: (i * i, threading.current_thread().name), range(20))
    assert [v for v, _ in names] == [i * i for i in range(20)]
    assert any(name.startswith("bonescreen") for _, name in names)


def test_nested_thread_map_runs_inline(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")

    def outer(i):
        return threads.thread_map(lambda j: (i, j, threading.current_thread().name), range(3))

    result = threads.thread_map(outer, range(4))  # would wait forever if inner calls queued on the busy pool
    assert [[(i, j) for i, j, _ in row] for row in result] == [[(i, j) for j in range(3)] for i in range(4)]
    for row in result:  # each inner loop ran in the worker that ran its outer call
        assert len({name for _, _, name in row}) == 1


def test_one_core_runs_in_the_caller(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.cpu_workers() == 1
    me = threading.current_thread().name
    assert {n for n in threads.thread_map(lambda _: threading.current_thread().name, range(5))} == {me}


def test_exceptions_reach_the_caller(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")

    def fail(i):
        if i == 3:
            raise ValueError("bad item 3")
        return i

    with pytest.raises(ValueError, match="bad item 3"):
        threads.thread_map(fail, range(6))


@pytest.mark.parametrize(("n", "parts"), [(10, 3), (3, 8), (1, 2), (0, 2), (120, 2)])
def test_split_range_covers_everything_once(n, parts):
    pieces = threads.split_range(n, parts)
    covered = np.concatenate([np.arange(n)[s] for s in pieces]) if pieces else np.array([], int)
    assert covered.tolist() == list(range(n))
    assert len(pieces) <= max(parts, 1)
    if pieces:
        sizes = [s.stop - s.start for s in pieces]
        assert max(sizes) - min(sizes) <= 1


def test_cpu_workers_ignores_nonsense(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "zero")
    assert threads.cpu_workers() >= 1


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2: 1.5 CPUs
        ({"cpu.max": "max 100000\n"}, None),  # v2 without a quota
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1 without a quota
        ({}, None),
    ],
)
def test_a_containers_cpu_quota_is_read(tmp_path, files, limit):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads._cgroup_cpu_limit(str(tmp_path)) == limit


def test_usable_cores_keep_to_the_quota_and_ignore_omp_num_threads(monkeypatch):
    """A lent machine's command saw one core through ``nproc`` (which OMP_NUM_THREADS=1 also makes print 1):
    the count the generators are sized by comes from the affinity and the quota, never from that variable."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: None)
    free = threads.usable_cores()
    assert free == len(os.sched_getaffinity(0))
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 0.5)
    assert threads.usable_cores() == 1
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 64.0)
    assert threads.usable_cores() == free
