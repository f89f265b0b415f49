"""Device and inference options: auto-detection, clear errors for devices that are not there, the CPU fallback
message, precision and batch size on the command line and in result.json."""

import json

import pytest
import torch

from bonescreen.cli import main
from bonescreen.device import CPU_FALLBACK, available_devices, fallback_note, resolve_device
from bonescreen.errors import BoneScreenError
from bonescreen.pipeline import Screener

HAS_GPU = torch.cuda.is_available() or (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def test_named_and_auto_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type in (("cuda", "mps") if HAS_GPU else ("cpu",))
    names = available_devices()
    assert names[0] == "auto" and names[-1] == "cpu"


def test_missing_devices_are_clear_errors():
    with pytest.raises(BoneScreenError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(BoneScreenError, match="'cpu:1': only CUDA GPUs are numbered; use 'cpu'"):
        resolve_device("cpu:1")  # (helper-36: accepted, and it ran on the CPU)
    if not torch.cuda.is_available():
        with pytest.raises(BoneScreenError, match="no CUDA GPU is available"):
            resolve_device("cuda")
    else:
        with pytest.raises(BoneScreenError, match="does not exist"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_fallback_note():
    cpu = torch.device("cpu")
    assert fallback_note("auto", cpu) == CPU_FALLBACK
    assert fallback_note("cpu", cpu) is None  # asked for: nothing to explain
    assert fallback_note("auto", torch.device("cuda")) is None
    assert Screener(device="cpu").device_note is None
    assert Screener(device="auto").device_note == (None if HAS_GPU else CPU_FALLBACK)


@pytest.mark.skipif(HAS_GPU, reason="this machine has a GPU: auto does not fall back")
def test_screen_says_it_runs_on_the_cpu(shared_data, tmp_path, capsys):
    assert main(["screen", str(shared_data / "pancreasct-slice/explicit_VR-UN.dcm"), "--out", str(tmp_path / "o")]) == 0
    assert f"bonescreen: {CPU_FALLBACK}" in capsys.readouterr().err


def test_screen_inference_options(shared_data, tmp_path):
    out = tmp_path / "o"
    ct = str(shared_data / "pancreasct-slice/explicit_VR-UN.dcm")
    argv = ["screen", ct, "--out", str(out), "--device", "cpu", "--precision", "fp32", "--batch-size", "2"]
    assert main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["device"] == "cpu"
    assert result["inference"] == {"precision": "fp32", "batch_size": 2, "compiled": False}


@pytest.mark.parametrize("bad", [["--batch-size", "0"], ["--batch-size", "four"], ["--precision", "int8"]])
def test_bad_inference_options(bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["screen", str(tmp_path), "--out", str(tmp_path / "o"), *bad])
    assert stop.value.code == 2 and bad[0] in capsys.readouterr().err
