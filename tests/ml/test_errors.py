"""One error type at the boundaries: bad input and bad arguments raise BoneScreenError, anything else is a bug.

Two checks of the mechanism: no module of the package raises a built-in exception type itself
(``raise ValueError`` ...), and each public function or class given a bad value raises
BoneScreenError naming the value. The command line validates values where argparse parses them,
maps BoneScreenError to exit code 2, and lets any other exception surface as a bug.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import numpy as np
import pytest
import torch

import bonescreen.cli as cli
from bonescreen.errors import BoneScreenError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_CODE = [
    *sorted((ROOT / "ml" / "bonescreen").rglob("*.py")),
    *sorted((ROOT / "napari_bonescreen").rglob("*.py")),
    ROOT / "slicer_extension" / "BoneScreen" / "BoneScreenLib" / "logic.py",
    ROOT / "slicer_extension" / "BoneScreen" / "BoneScreenLib" / "controller.py",
]
BUILTIN_ERRORS = {name for name in dir(builtins) if name.endswith("Error")} | {"Exception"}
#: (file name, function): why that function must raise a built-in type.
ALLOWED = {
    ("checkpoint.py", "_json_default"): "json.dumps' default= hook must raise TypeError",
    ("evaluate.py", "_nan_safe"): "json.dumps' default= hook must raise TypeError",
    ("__init__.py", "__getattr__"): "a module's __getattr__ (PEP 562) must raise AttributeError",
}


def _raises(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(target, ast.Name) and target.id in BUILTIN_ERRORS:
                    yield func.name, target.id, node.lineno


def test_no_module_raises_a_builtin_exception_type_itself():
    found = [
        f"{path.relative_to(ROOT)}:{line} {func}() raises {name}"
        for path in PACKAGE_CODE
        if path.is_file()
        for func, name, line in _raises(path)
        if (path.name, func) not in ALLOWED
    ]
    assert not found, "raise BoneScreenError (bonescreen.errors) instead:\n" + "\n".join(found)


def _volume():
    from bonescreen.io.volume import CTVolume

    return CTVolume(np.zeros((4, 64, 64), np.float32), (3.0, 1.0, 1.0), np.eye(4), None)


def _bad_calls():
    """(what, call, words the message must hold): one bad value for each public entry point."""
    from bonescreen.data import ClassificationCrops, SegmentationSlices, SliceShards, load_case_set, split_by_case
    from bonescreen.device import resolve_device
    from bonescreen.hu import HUThresholds
    from bonescreen.io import load_ct
    from bonescreen.io.volume import CTVolume
    from bonescreen.label_schemes import map_labels
    from bonescreen.labels import as_level_labels, class_index, rename_vertebra, shift_names
    from bonescreen.metrics import dice_score
    from bonescreen.nets import DenseNet, MSNet, create_model, model_names, model_task
    from bonescreen.phantom import PhantomConfig, make_case, trabecular_hu, vbmd_class
    from bonescreen.pipeline import Screener
    from bonescreen.pipeline.inference import InferenceSettings
    from bonescreen.pipeline.level_settings import LevelSettings
    from bonescreen.train import TrainConfig, classification_lr, evaluate_model, segmentation_lr
    from bonescreen.weights import default_weights

    return [
        ("device", lambda: resolve_device("tpu"), "tpu"),
        ("device type torch knows", lambda: resolve_device("meta"), "meta"),
        ("shift names", lambda: shift_names(np.full((2, 2), 300), 1), "300"),
        ("rename", lambda: rename_vertebra(np.ones((2, 2), np.uint8), 1, 20), "20"),
        ("label scheme", lambda: map_labels(np.ones(3), "amos"), "amos"),
        ("Screener device", lambda: Screener(device="gpu7"), "gpu7"),
        ("Screener weights", lambda: Screener(seg_weights="/nonexistent/w").model("segmentation"), "not found"),
        ("Screener classify shape", lambda: Screener(device="cpu").classify(_volume(), np.zeros((2, 2, 2))), "shape"),
        ("Screener top_level", lambda: Screener(device="cpu").segment(_volume(), top_level=9), "top_level"),
        ("HU thresholds", lambda: HUThresholds(osteoporosis_max=200, normal_min=100), "threshold"),
        ("inference precision", lambda: InferenceSettings(precision="fp8"), "fp8"),
        ("inference batch", lambda: InferenceSettings(batch=0), "batch"),
        ("level settings", lambda: LevelSettings(core_depth_mm=-1.0), "core_depth_mm"),
        ("model name", lambda: create_model("resnet"), "resnet"),
        ("model argument", lambda: create_model("bccnet", widht=2), "widht"),
        ("model task", lambda: model_task("resnet"), "resnet"),
        ("model_names task", lambda: model_names("detection"), "detection"),
        ("MSNet width", lambda: MSNet(width=0), "width"),
        ("MSNet channels", lambda: MSNet(in_channels=0), "in_channels"),
        ("MSNet input", lambda: MSNet(width=0.0625)(torch.zeros(1, 1, 100, 100)), "multiples"),
        ("DenseNet drop", lambda: DenseNet(drop_rate=1.5), "drop_rate"),
        ("DenseNet input", lambda: DenseNet()(torch.zeros(1, 1, 64, 64)), "224"),
        ("weights task", lambda: default_weights("detection"), "detection"),
        ("load_ct missing", lambda: load_ct("/nonexistent/ct.nii.gz"), "no such file"),
        ("CTVolume dims", lambda: CTVolume(np.zeros((4, 4)), (1, 1, 1), np.eye(4), None), "3-D"),
        ("CTVolume spacing", lambda: CTVolume(np.zeros((2, 4, 4)), (0, 1, 1), np.eye(4), None), "spacing"),
        ("level labels", lambda: as_level_labels(np.full((2, 2, 2), 300)), "300"),
        ("class name", lambda: class_index("osteopenia"), "osteopenia"),
        ("dice shapes", lambda: dice_score(np.zeros((2, 2)), np.zeros((3, 3))), "shape"),
        ("phantom size", lambda: PhantomConfig(size=10), "size"),
        ("phantom contrast", lambda: PhantomConfig(contrast_probability=1.5), "contrast_probability"),
        ("phantom seed", lambda: make_case(-1), "seed"),
        ("vBMD", lambda: vbmd_class(float("nan")), "vbmd"),
        ("vBMD to HU", lambda: trabecular_hu(-5.0), "vbmd"),
        ("case set", lambda: load_case_set("/nonexistent"), "cases.csv"),
        ("split fraction", lambda: split_by_case([], 1.5), "fraction"),
        ("crops per case", lambda: ClassificationCrops([], crops_per_case=0), "crops_per_case"),
        ("slices per case", lambda: SegmentationSlices([], slices_per_case=0), "slices_per_case"),
        ("shards", lambda: SliceShards(["/nonexistent"]), "shards"),
        ("train model", lambda: TrainConfig(model="resnet"), "resnet"),
        ("train epochs", lambda: TrainConfig(epochs=0), "epochs"),
        ("train device", lambda: TrainConfig(device="tpu"), "tpu"),
        ("evaluate task", lambda: evaluate_model("detection", MSNet(width=0.0625), [], torch.device("cpu")), "task"),
        ("seg schedule", lambda: segmentation_lr(5, 3), "epoch"),
        ("cls schedule", lambda: classification_lr(-1), "iteration"),
    ]


CALLS = _bad_calls()


@pytest.mark.parametrize(("what", "call", "words"), CALLS, ids=[c[0] for c in CALLS])
def test_each_bad_argument_raises_bonescreen_error_naming_it(what, call, words):
    with pytest.raises(BoneScreenError, match=words):
        call()


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["screen", "ct.nii.gz", "--out", "o", "--device", "gpu7"], "--device"),
        (["screen", "ct.nii.gz", "--out", "o", "--batch-size", "0"], "--batch-size"),
        (["screen", "ct.nii.gz", "--out", "o", "--orientation", "XYZ"], "--orientation"),
        (["phantom", "o", "--cases", "0"], "--cases"),
        (["phantom", "o", "--cases", "1", "--seed", "-1"], "--seed"),
        (["screen", "ct.nii.gz", "--out", "o", "--device", "xpu"], "--device"),
        (["phantom", "o", "--cases", "2", "--contrast-probability", "1.5"], "--contrast-probability"),
        (["phantom", "o", "--cases", "2", "--thickness", "-3"], "--thickness"),
        (["train-seg", "d", "--out", "o", "--epochs", "0"], "--epochs"),
        (["train-cls", "d", "--out", "o", "--val-fraction", "1"], "--val-fraction"),
        (["train-cls", "d", "--out", "o", "--lr", "nan"], "--lr"),
        (["batch", "d", "--out", "o", "--workers", "0"], "--workers"),
        (["evaluate", "d", "--out", "o", "--slices-per-case", "-1"], "--slices-per-case"),
    ],
)
def test_cli_validates_values_where_it_parses_them(argv, option, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_an_option_that_only_applies_with_another_is_refused_without_it(tmp_path, capsys):
    """--label-scheme names the ids of --labels: alone it would be ignored silently."""
    ct = tmp_path / "ct.nii.gz"
    ct.write_bytes(b"")
    assert cli.main(["screen", str(ct), "--out", str(tmp_path / "o"), "--label-scheme", "verse"]) == 2
    err = capsys.readouterr().err
    assert "--label-scheme" in err and "--labels" in err and not (tmp_path / "o" / "result.json").exists()


def test_cli_reports_bonescreen_errors_as_user_errors(tmp_path, capsys):
    assert cli.main(["screen", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bonescreen: error:") and "missing.nii.gz" in err


def test_cli_lets_an_unexpected_exception_surface_as_a_bug(tmp_path, monkeypatch, capsys):
    """A bug inside a command (stood in for by a command that raises ValueError) is no user error (exit 2)."""

    def broken(args):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(cli, "cmd_phantom", broken)
    with pytest.raises(ValueError, match="invariant"):
        cli.main(["phantom", str(tmp_path / "o"), "--cases", "1"])
    assert "bonescreen: error" not in capsys.readouterr().err


def test_an_output_folder_that_cannot_be_made_is_refused_before_any_work(tmp_path):
    """Permissions do not tell everything: as root every folder looks writable, yet nothing can be made under
    /proc or on a read-only mount. The check tries to make the folder and leaves nothing behind."""
    from bonescreen.output_folder import check_output_folder

    if Path("/proc/self").is_dir():  # Linux: /proc takes no new folder, whoever asks
        with pytest.raises(BoneScreenError, match="cannot be written"):
            check_output_folder("/proc/bonescreen-test/out")
    deep = tmp_path / "a" / "b" / "c"
    check_output_folder(deep)
    assert not (tmp_path / "a").exists()  # made to try, then removed
    (tmp_path / "kept").mkdir()
    check_output_folder(tmp_path / "kept")
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())  # the probe file is gone
