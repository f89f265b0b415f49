"""The bonescreen command line: phantom, train-seg, train-cls, evaluate; clear one-line errors."""

import io
import json
import os
import subprocess
import sys

import nibabel as nib
import pytest

from bonescreen import console_bar
from bonescreen.checkpoint import load_model
from bonescreen.cli import main
from bonescreen.pipeline import Screener


def test_phantom_command(tmp_path, capsys):
    assert (
        main(["phantom", str(tmp_path / "p"), "--cases", "2", "--seed", "4", "--thickness", "3", "--format", "dicom"])
        == 0
    )
    table = (tmp_path / "p" / "cases.csv").read_text().splitlines()
    assert table[0].startswith("case_id,class,") and len(table) == 3
    case = tmp_path / "p" / table[1].split(",")[0]
    assert (case / "dicom").is_dir() and (case / "levels.nii.gz").is_file() and (case / "body.nii.gz").is_file()
    assert nib.load(case / "levels.nii.gz").shape[:2] == (512, 512)
    err = capsys.readouterr().err
    assert err.startswith("phantom cases: 2/2 in ") and err.count("\n") == 1  # one line in a log, no redraws


@pytest.fixture(scope="module")
def trained(small_set, tmp_path_factory, tiny_train_cls, tiny_train_seg):
    out = tmp_path_factory.mktemp("weights")
    assert main(tiny_train_seg(small_set, out / "seg")) == 0
    assert main(tiny_train_cls(small_set, out / "cls", 2)) == 0
    return out


def test_train_commands_write_checkpoints(trained):
    _seg, meta = load_model(trained / "seg")
    assert meta["model"] == "msnet-small" and meta["input_size"] == 512
    assert meta["preprocessing"]["window_hu"] == [-250.0, 1250.0]
    assert meta["data"]["train_cases"] == 2 and meta["data"]["val_cases"] == 1
    assert "val_dice" in meta["metrics"]
    _cls, meta = load_model(trained / "cls")
    assert meta["model"] == "bccnet" and meta["epoch"] == 1 and "val_accuracy" in meta["metrics"]
    assert meta["training"]["optimizer"] == "SGD"
    # BCC-Net's crops are energy-normalized by default, and the pipeline prepares them so for these weights
    assert meta["preprocessing"]["energy_reference_kev"] == 70
    assert Screener(seg_weights=trained / "seg", cls_weights=trained / "cls", device="cpu").energy_normalized


def test_train_cls_on_two_case_sets_with_the_papers_hu_crops(small_set, tmp_path, tiny_train_cls):
    assert main([*tiny_train_cls(small_set, tmp_path / "cls", 1), "--also", str(small_set), "--input", "hu"]) == 0
    _, meta = load_model(tmp_path / "cls")
    assert meta["data"]["train_cases"] + meta["data"]["val_cases"] == 6
    assert meta["data"]["also"] == [str(small_set.resolve())]
    assert "energy_reference_kev" not in meta["preprocessing"]


def test_resume(small_set, trained, tmp_path, tiny_train_cls):
    import shutil

    shutil.copytree(trained / "cls", tmp_path / "cls")
    assert main([*tiny_train_cls(small_set, tmp_path / "cls", 3), "--resume"]) == 0
    _, meta = load_model(tmp_path / "cls")
    assert meta["epoch"] == 2


def test_evaluate_command(small_set, trained, tmp_path, capsys):
    assert (
        main(
            [
                "evaluate",
                str(small_set),
                "--out",
                str(tmp_path / "ev"),
                "--seg-weights",
                str(trained / "seg"),
                "--cls-weights",
                str(trained / "cls"),
                "--slices-per-case",
                "3",
                "--crops-per-case",
                "6",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(metrics["segmentation"]["per_image"]) == {"dice", "iou", "pa"}
    pc = metrics["classification"]["per_crop"]
    assert pc["n"] == 18 and len(pc["confusion_matrix"]) == 3 and len(pc["accuracy_ci95"]) == 2
    for name in ("roc.png", "confusion_matrix.png", "segmentation_distribution.png"):
        assert (tmp_path / "ev" / name).stat().st_size > 1000
    captured = capsys.readouterr()
    assert "accuracy" in captured.out
    # stderr is no terminal here (as a batch job's log): whole lines, each stage once, no redrawn bars
    lines = captured.err.splitlines()
    assert "\r" not in captured.err and lines and len(set(lines)) == len(lines)


def test_a_bar_in_a_log_writes_whole_lines(monkeypatch):
    out = io.StringIO()
    bar = console_bar.LineBar("studies", 3, out)
    bar.update(1)
    assert out.getvalue() == ""  # nothing per step
    monkeypatch.setattr(console_bar, "LOG_INTERVAL_S", -1.0)
    bar.set_postfix(errors=0)
    bar.update(1)
    bar.close()
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("studies: 2/3 in ") and lines[0].endswith(", errors=0")
    assert lines[1].startswith("studies: 2/3 in ")


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--out", str(tmp_path / "o"), "--cls-weights", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bonescreen: error:") and "cases.csv" in err and "\n" not in err


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [("--device", "cuda:99", "cuda:99"), ("--osteoporosis-hu", "abc", "abc"), ("--label-scheme", "amos", "amos")],
)
def test_a_refused_option_value_is_one_line_and_a_missing_option_shows_the_usage(tmp_path, capsys, option, value, said):
    """helper-101: ``--device cuda`` on a machine without a GPU printed argparse's usage block above the reason.
    A value an option refuses is one line naming the option and the value; a missing option keeps the usage."""
    ct = tmp_path / "ct.nii.gz"
    with pytest.raises(SystemExit) as stopped:
        main(["screen", str(ct), "--out", str(tmp_path / "o"), option, value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"bonescreen screen: error: argument {option}") and said in err and "\n" not in err
    assert "bonescreen screen --help" in err
    with pytest.raises(SystemExit) as stopped:
        main(["screen", str(ct)])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: bonescreen screen") and "required: --out" in err


def test_python_dash_m(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bonescreen", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("bonescreen ")
    # a folder named bonescreen where the command runs (an output folder; helper-49) is a namespace package on the
    # path; the installed package must still be the one imported. Run as installed: without the test's PYTHONPATH,
    # which would put the package ahead of that folder whatever the install did
    (tmp_path / "bonescreen").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-m", "bonescreen", "--version"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.returncode == 0 and out.stdout.startswith("bonescreen "), out.stderr[-300:]


def test_phantom_refuses_a_file_as_folder_and_realistic_options_without_realistic(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["phantom", str(afile), "--cases", "1"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["phantom", str(tmp_path / "set"), "--cases", "1", "--pixel", "3", "--findings", "none"]) == 2
    assert "--pixel, --findings apply to --realistic cases only" in capsys.readouterr().err
    assert not (tmp_path / "set").exists()


def test_an_hu_offset_no_stored_values_can_need_is_refused(tmp_path, capsys):
    """helper-38: --hu-offset 1e12 was taken, and the CT then "held 1e+12 everywhere: not a CT image"."""
    from bonescreen.errors import BoneScreenError
    from bonescreen.io import load_ct

    for command in ("screen", "batch"):
        with pytest.raises(SystemExit) as stop:
            main([command, str(tmp_path), "--out", str(tmp_path / "out"), "--hu-offset", "1e12"])
        assert stop.value.code == 2
        assert "--hu-offset: expected a number at least -65536 and at most 65536" in capsys.readouterr().err
    with pytest.raises(BoneScreenError, match="hu_offset must be"):
        load_ct(tmp_path, hu_offset=-1e6)


def test_ctrl_c_while_the_arguments_are_read_says_cancelled(monkeypatch, capsys):
    """Ctrl-C while the options were checked (devices are probed there) ended in a KeyboardInterrupt traceback
    (helper-30). The keypress is simulated by the parser raising it (it cannot be timed in a test)."""
    import bonescreen.cli as cli

    class Stopped:
        def parse_args(self, argv):
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", Stopped)
    assert cli.main(["screen", "x", "--out", "y"]) == 130
    assert capsys.readouterr().err.strip() == "bonescreen: cancelled"


def test_an_unconfirmed_status_says_its_doubts_once(shared_data, tmp_path, capsys):
    """The L2-L4 crop: names unconfirmed (no landmark), vBMD of one vertebra. The doubts stand once, in the status's
    flag; the status line gives its basis and points there (they were printed twice, in both lines). (The three-slice
    series served until stop 66: too short to name its vertebra, it now gets no status.)"""
    ct = shared_data / "tptbox-l3-crop" / "sub-ct_label-22_ct.nii.gz"
    assert main(["screen", str(ct), "--out", str(tmp_path / "o")]) == 0
    lines = capsys.readouterr().out.splitlines()
    status = next(line for line in lines if line.startswith("Bone status"))
    assert status.startswith("Bone status unconfirmed:") and "why is among the flags" in status
    doubt = "vBMD of one vertebra (QCT averages two or more)"
    assert doubt not in status
    assert sum(doubt in line for line in lines) == 1
    assert any(line.strip().startswith("- UNCERTAIN: bone status unconfirmed") and doubt in line for line in lines)
