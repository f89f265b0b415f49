"""Post-processing spread over threads: same results as a plain loop, in order, no deadlock when nested."""

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
