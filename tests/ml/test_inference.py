"""The fast inference path (bf16 autocast, channels_last, prefetching) gives the labels of plain fp32."""

import shutil

import numpy as np
import pytest
import torch

from bonescreen.errors import BoneScreenError
from bonescreen.io.volume import volume_from_ijk
from bonescreen.metrics import dice_score
from bonescreen.phantom import PhantomConfig, make_case
from bonescreen.pipeline import Screener
from bonescreen.pipeline.inference import InferenceSettings

#: Stated tolerance of the bf16 path against fp32: Dice of the vertebra masks at least this.
BF16_MIN_DICE = 0.995


@pytest.fixture(scope="module")
def volume():
    """L4-L1 of a phantom (27 slices of 5 mm): the paths are compared slice by slice, so the lower slices would
    only add time (the bf16 path is emulated on a CPU without AVX-512 bf16)."""
    case = make_case(7171, 0, PhantomConfig(thickness=5.0, contrast_probability=0))
    first, last = 14, 41
    affine = case.affine.copy()
    affine[:3, 3] += first * affine[:3, 2]  # the crop's first slice
    return volume_from_ijk(case.hu[first:last].transpose(2, 1, 0), affine, "phantom", None, "phantom")


def test_settings():
    assert InferenceSettings(precision="fp32").dtype(torch.device("cpu")) is None
    assert InferenceSettings(precision="bf16").dtype(torch.device("cpu")) == torch.bfloat16
    with pytest.raises(BoneScreenError, match="precision"):
        InferenceSettings(precision="int4").dtype(torch.device("cpu"))


def test_fast_path_matches_fp32(volume):
    plain = Screener(device="cpu", settings=InferenceSettings(precision="fp32", channels_last=False, batch=1))
    fast = Screener(device="cpu", settings=InferenceSettings(precision="bf16", channels_last=True, batch=8))
    a, b = plain.segment(volume), fast.segment(volume)
    assert dice_score(a.mark, b.mark) >= BF16_MIN_DICE
    assert np.mean(a.labels != b.labels) < 0.001
    fp32_batched = Screener(device="cpu", settings=InferenceSettings(precision="fp32", channels_last=True, batch=8))
    c = fp32_batched.segment(volume)
    # batching, channels_last and prefetching alone change nothing beyond float rounding
    assert dice_score(a.mark, c.mark) > 0.9999
    ra, rb = plain.classify(volume, a.labels), fast.classify(volume, a.labels)
    for la, lb in zip(ra["levels"], rb["levels"], strict=True):
        for k in la["probabilities"]:
            assert abs(la["probabilities"][k] - lb["probabilities"][k]) < 0.05


@pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None, reason="torch.compile on the CPU needs a C++ compiler"
)
def test_compiled_path_matches_eager(volume):
    """The optional torch.compile path (``--compile``) gives eager's labels and probabilities (first pass: ~20 s)."""
    eager = Screener(device="cpu", settings=InferenceSettings(precision="fp32"))
    compiled = Screener(device="cpu", settings=InferenceSettings(precision="fp32", compile=True))
    assert type(compiled.model("segmentation")).__name__ == "OptimizedModule"  # really compiled
    a, b = eager.segment(volume), compiled.segment(volume)
    assert dice_score(a.mark, b.mark) > 0.999
    ra, rb = eager.classify(volume, a.labels), compiled.classify(volume, a.labels)
    for la, lb in zip(ra["levels"], rb["levels"], strict=True):
        for k in la["probabilities"]:
            assert abs(la["probabilities"][k] - lb["probabilities"][k]) < 0.01
