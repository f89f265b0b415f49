"""Host memory settings: glibc keeps freed activation-sized blocks mapped; numpy asks for no huge pages.

A forward pass allocates blocks of tens of MB and frees them at its end; with glibc's defaults the freed
memory goes back to the OS and the next pass faults it in again. The pattern below is that one, kept
deterministic (one thread, fixed sizes); ``benchmarks/inference_speed.py --default-allocator`` measures
what the tuning gives MS-Net itself.
"""

import os
import subprocess
import sys
import textwrap

import pytest

# A child process, so that the thresholds (process-wide) are set, or not, from a clean start.
CHILD = textwrap.dedent(
    """
    import resource
    import numpy as np
    from bonescreen.allocator import tune_cpu_allocator
    tuned = tune_cpu_allocator()
    faults = []
    for _ in range(5):  # three 30 MB blocks per "pass", all freed at its end
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [np.ones(30 * 2**20 // 4, np.float32) for _ in range(3)]
        del blocks
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(tuned, *faults)
    """
)


def _run(env_extra: dict) -> tuple[bool, list[int]]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True)
    tuned, *faults = out.stdout.split()
    return tuned == "True", [int(f) for f in faults]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_tuned_allocator_keeps_freed_blocks_mapped():
    tuned, faults = _run({})
    untuned, default_faults = _run({"GLIBC_TUNABLES": "glibc.malloc.check=0"})  # a user's own tuning wins
    assert tuned and not untuned
    # after the first pass: nothing to fault in when tuned; glibc's defaults fault the blocks in every pass
    assert min(default_faults[1:]) > 100, default_faults
    assert max(faults[1:]) * 10 < min(default_faults[1:]), (faults, default_faults)


HUGEPAGE_CHILD = textwrap.dedent(
    """
    import numpy as np
    from bonescreen.allocator import tune_host_memory
    tune_host_memory()
    print(np._core.multiarray._set_madvise_hugepage(False))  # returns the setting it replaces
    """
)


@pytest.mark.parametrize(("env", "expected"), [({}, "False"), ({"NUMPY_MADVISE_HUGEPAGE": "1"}, "True")])
def test_numpy_huge_page_requests_off_unless_the_user_chose(env, expected):
    base = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    out = subprocess.run(
        [sys.executable, "-c", HUGEPAGE_CHILD], capture_output=True, text=True, env={**base, **env}, check=True
    )
    assert out.stdout.strip() == expected
