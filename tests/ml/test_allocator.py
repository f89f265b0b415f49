"""glibc allocator thresholds: big blocks freed and allocated again stay in the process (no page faults)."""

import subprocess
import sys
import textwrap

import pytest

# A child process, so that the thresholds (process-wide) are set, or not, from a clean start: it counts
# the page faults of four forward passes of the bundled MS-Net as the pipeline runs it (batch 8, bf16 autocast,
# channels-last; bf16 runs on any CPU, if slowly without native support).
CHILD = textwrap.dedent(
    """
    import resource
    import torch
    from bonescreen.allocator import tune_cpu_allocator
    from bonescreen.checkpoint import load_model
    from bonescreen.pipeline.inference import InferenceSettings
    from bonescreen.weights import default_weights
    tuned = tune_cpu_allocator()
    cpu, settings = torch.device("cpu"), InferenceSettings(precision="bf16")
    model = settings.prepare(load_model(default_weights("segmentation"), cpu)[0])
    x = settings.input(torch.rand(8, 1, 512, 512))
    with torch.inference_mode(), settings.autocast(cpu):
        model(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(4):
            model(x)
    print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _run(env_extra: dict) -> tuple[bool, int]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True)
    tuned, faults = out.stdout.split()
    return tuned == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_tuned_allocator_keeps_freed_memory():
    tuned, faults = _run({})
    untuned_flag, untuned_faults = _run({"GLIBC_TUNABLES": "glibc.malloc.check=0"})  # a user's own tuning wins
    assert tuned and not untuned_flag
    assert faults * 3 < untuned_faults, (faults, untuned_faults)
