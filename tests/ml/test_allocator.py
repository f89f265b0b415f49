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
FAULT_PROBE = textwrap.dedent(
    """
    import resource
    import numpy as np
    faults = []
    for _ in range(5):  # three 30 MB blocks per "pass", all freed at its end
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [np.ones(30 * 2**20 // 4, np.float32) for _ in range(3)]
        del blocks
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
    """
)
CHILD = (
    textwrap.dedent(
        """
    from bonescreen.allocator import tune_cpu_allocator
    tuned = tune_cpu_allocator()
    """
    )
    + FAULT_PROBE
    + "print(tuned, *faults)\n"
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


# A GUI's Python (napari, Slicer) or a user's script: BoneScreen's library must leave its process settings alone.
# glibc's thresholds cannot be read back, and their effect cannot be measured reliably after screening: glibc raises
# its own mmap threshold when a large block is freed, and a heap fragmented by the screening serves the probe's
# blocks from holes below live data, which are never returned (the fault probe read "16 526 0 0 0" there once in
# three runs, with no mallopt call). So every mallopt call is recorded instead: ctypes.CDLL is wrapped before
# anything is imported, and the library reaches glibc only through it (``bonescreen.allocator``).
LIBRARY_CHILD = textwrap.dedent(
    """
    import ctypes

    calls = []

    class RecordingCDLL(ctypes.CDLL):
        def __getattr__(self, name):
            found = super().__getattr__(name)
            if name != "mallopt":
                return found
            def mallopt(param, value):
                calls.append((param, value))
                return found(param, value)
            return mallopt

    ctypes.CDLL = RecordingCDLL

    import numpy as np
    import torch
    from bonescreen import allocator
    from bonescreen.io.volume import CTVolume
    from bonescreen.phantom import PhantomConfig, make_case
    from bonescreen.pipeline import Screener

    torch.backends.cudnn.benchmark = {benchmark}
    hugepage = np._core.multiarray._set_madvise_hugepage
    before = hugepage(True)
    hugepage(before)

    case = make_case(seed=5, index=0, config=PhantomConfig(thickness=3.0))
    z = np.nonzero((case.levels == 3).any(axis=(1, 2)))[0]
    k = slice(int(z[0]), int(z[-1]) + 1)
    volume = CTVolume(case.hu[k].astype(np.float32), case.spacing, np.diag([*case.spacing[::-1], 1.0]), None)
    screener = Screener(device="cpu")
    screener.segment(volume)
    screener.classify(volume, case.levels[k])

    after = hugepage(before)
    tuned = allocator.tune_cpu_allocator.cache_info().misses + allocator.tune_host_memory.cache_info().misses
    print(torch.backends.cudnn.benchmark, before == after, tuned, len(calls))
    allocator.tune_cpu_allocator()  # the recorder sees a call when there is one
    print(len(calls))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
@pytest.mark.parametrize("benchmark", [False, True])
def test_a_screener_in_a_gui_process_leaves_its_settings_as_they_were(benchmark):
    """Screening through the library (as napari and Slicer do) changes no process-wide setting.

    cuDNN's benchmark flag and numpy's huge-page requests are read back; glibc's malloc thresholds cannot
    be, so no call of glibc's ``mallopt`` may happen while screening (recorded through ctypes), and the
    module that makes it was never asked to.
    """
    code = LIBRARY_CHILD.replace("{benchmark}", str(benchmark))
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    screened, probe = out.stdout.strip().splitlines()[-2:]
    # cuDNN's benchmark flag and numpy's huge pages unchanged, the tuning never asked for, no mallopt call
    assert screened.split() == [str(benchmark), "True", "0", "0"], screened
    assert int(probe) == 2  # the recorder works: the tuning itself makes two calls (mmap and trim thresholds)
