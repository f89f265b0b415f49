"""Runs that meet in one output folder, and runs stopped half-way (helper-97, stop 62).

Two ``screen`` runs into one ``--out`` left result.json of one CT beside levels.nii.gz of the other, both "written"
(``screen`` took the folder's lock and let it go at once); a ``screen`` into a running batch's folder was refused only
after its whole screening; SIGTERM (``timeout``, systemd, Slurm) ended a run at once, leaving a temporary file that no
later run removed; an edit set aside by a run then stopped was never mentioned again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bonescreen.atomic import lock_output_folder
from bonescreen.errors import BoneScreenError
from bonescreen.hu import HUThresholds
from bonescreen.screen import screen_file

#: The refusal of an output folder that another run holds.
BUSY = r"another bonescreen run \(a batch or a screen\) is writing into this output folder"


@pytest.mark.parametrize("there", [True, False], ids=["folder there", "folder made by the first run"])
def test_a_folder_another_run_holds_is_refused_before_any_work(tmp_path, there):
    """The lock is tried first: the input (here one that does not exist) is not even read. A folder that was not
    there is made and locked by the first run at once (helper-98: it was locked after the work, so the second run
    took it and the first was refused after all its work), and taken away again if nothing was written into it."""
    from bonescreen.atomic import held_output_folder

    out = tmp_path / "new" / "out"
    if there:
        out.mkdir(parents=True)
    with held_output_folder(out):  # the first run
        with pytest.raises(BoneScreenError, match=BUSY):
            screen_file(tmp_path / "no-such-ct.nii.gz", out, device="cpu")
        assert list(out.iterdir()) == []
    assert out.is_dir() == there and (tmp_path / "new").exists() == there
    with pytest.raises(BoneScreenError, match="no such file"):  # free: the input is read, and fails
        screen_file(tmp_path / "no-such-ct.nii.gz", out, device="cpu")
    assert out.is_dir() == there  # a failed run leaves no folder it made


@pytest.mark.parametrize("command", ["screen", "batch"])
def test_the_command_line_refuses_a_held_folder_before_torch_loads(tmp_path, command):
    """Stop 63: ``bonescreen screen`` into a folder another run held was refused only after torch and the networks
    had loaded (3-7 s on this CPU), and ``batch`` after its workers started too (helper-100: 4-11 s). Both now check
    and lock the folder first: a refused run imports no torch. A subprocess, whose imports are its own (this one
    holds torch already); the lock is this process's, as another run's."""
    out = tmp_path / "out"
    out.mkdir()
    source = str(tmp_path / "ct.nii.gz") if command == "screen" else str(tmp_path)  # (batch: a folder)
    script = (
        "import sys\n"
        "from bonescreen.cli import main\n"
        f"rc = main([{command!r}, {source!r}, '--out', {str(out)!r}, '--device', 'cpu'])\n"
        "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')\n"
        "sys.exit(rc)\n"
    )
    fd = lock_output_folder(out)
    try:
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    finally:
        os.close(fd)
    assert run.returncode == 2 and "torch not loaded" in run.stdout, run.stdout + run.stderr
    assert "another bonescreen run (a batch or a screen) is writing into this output folder" in run.stderr
    assert list(out.iterdir()) == []


def test_a_screen_into_a_batch_study_folder_is_refused(tmp_path):
    """helper-98: a screen into a batch's study folder wrote another CT's results there, which the next batch took
    for the study's (its input fingerprint stayed)."""
    from bonescreen.output_folder import FINGERPRINT_FILE

    study = tmp_path / "batch" / "study-0c9d1c373970"
    study.mkdir(parents=True)
    (study / FINGERPRINT_FILE).write_text("abc\n")
    with pytest.raises(BoneScreenError, match="the output folder is a study of a batch"):
        screen_file(tmp_path / "no-such-ct.nii.gz", study, device="cpu")
    assert sorted(p.name for p in study.iterdir()) == [FINGERPRINT_FILE]


def test_a_summary_that_cannot_be_written_leaves_no_earlier_one_passing_for_it(tmp_path, monkeypatch):
    """helper-98: a rerun on a full disk ended "summary.csv: no space left on device" and left the earlier run's
    summary.csv and manifest.json ("succeeded": true) in place. The summary's write fails here as a full disk
    fails it."""
    import contextlib
    import errno

    import nibabel as nib
    import numpy as np

    import bonescreen.batch as batch

    root = tmp_path / "archive"
    root.mkdir()
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), -1000, np.int16), np.eye(4)), root / "ct.nii.gz")  # fails at once
    out = tmp_path / "out"
    batch.run_batch(root, out, workers=1, device="cpu", progress=False)  # the earlier run, its summary written
    assert (out / "summary.csv").is_file() and (out / "manifest.json").is_file()
    real = batch.atomic_path

    @contextlib.contextmanager
    def full_disk(path, *args, **kwargs):
        if os.path.basename(path) == "summary.csv":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        with real(path, *args, **kwargs) as tmp:
            yield tmp

    monkeypatch.setattr(batch, "atomic_path", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        batch.run_batch(root, out, workers=1, device="cpu", progress=False)
    assert not (out / "summary.csv").exists() and not (out / "manifest.json").exists()


@pytest.mark.parametrize("made", [True, False], ids=["folder there", "folder made by the run"])
def test_a_screen_holds_its_output_folder_while_it_writes(tmp_path, shared_data, monkeypatch, made):
    """While the outputs are written, another run is refused the folder (before: the lock was let go at once)."""
    import bonescreen.screen as screen_module

    out = tmp_path / "out"
    if made:
        out.mkdir()
    tried = []
    real = screen_module.render_report

    def report(*args, **kwargs):  # another run trying the folder while this one writes its outputs
        try:
            os.close(lock_output_folder(out))
            tried.append("free")
        except BoneScreenError as exc:
            tried.append(str(exc))
        return real(*args, **kwargs)

    monkeypatch.setattr(screen_module, "render_report", report)
    screen_file(shared_data / "dcmqi-ct3slice", out, device="cpu")
    assert len(tried) == 1 and "is writing into this output folder" in tried[0]
    os.close(lock_output_folder(out))  # and let go once the run ends


def test_a_stopped_runs_temporary_files_go_and_its_kept_files_are_named(tmp_path, shared_data):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".report.k2x8f0.tmp.png").write_bytes(b"half a PNG")  # left by a run stopped while writing
    (out / ".levels.nii.q1.tmp.nii.gz").write_bytes(b"half")
    kept = out / "levels.kept-20261206T170000.nii.gz"  # an edit set aside by a run stopped after it
    kept.write_bytes(b"the user's labels")
    (out / "notes.tmp.txt").write_text("the user's")  # not a temporary name of BoneScreen's: stays
    result = screen_file(shared_data / "dcmqi-ct3slice", out, device="cpu")
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(".")], names
    assert kept.read_bytes() == b"the user's labels" and "notes.tmp.txt" in names
    said = [n for n in result["output_notes"] if "kept from earlier runs" in n]
    assert said == [f"kept from earlier runs in this folder (set aside, not BoneScreen's outputs): {kept.name}"]
    assert json.loads((out / "result.json").read_text())["output_notes"] == result["output_notes"]
    # said once: the next run does not name it again (stop 63: every run did), and it stays
    again = screen_file(shared_data / "dcmqi-ct3slice", out, device="cpu")
    assert not [n for n in again["output_notes"] if "kept from earlier runs" in n] and kept.exists()


def test_the_outputs_of_a_run_stopped_before_its_result_are_not_taken_for_the_users(tmp_path, shared_data, monkeypatch):
    """Stop 63: a run stopped after writing its outputs and before result.json left files that the next run set aside
    as the user's ("levels.nii.gz ... (edited?)", seg.kept-..., report.kept-...), more kept files each time. The run
    records each output as it writes it (``WRITING_RECORD``); the next run removes those still as written, and keeps
    an edited one."""
    import nibabel as nib
    import numpy as np

    from bonescreen import screen

    def stop_at_result(write):
        def write_or_stop(path, text):
            if path.name == "result.json":
                raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) as result.json is about to be written
            return write(path, text)

        return write_or_stop

    out = tmp_path / "out"
    for edit in (False, True):
        with monkeypatch.context() as m:
            m.setattr(screen, "write_text_atomic", stop_at_result(screen.write_text_atomic))
            with pytest.raises(KeyboardInterrupt):
                screen_file(shared_data / "dcmqi-ct3slice", out, device="cpu")
        assert not (out / "result.json").exists() and (out / screen.WRITING_RECORD).exists()
        if edit:  # the user corrects the stopped run's labels in place: theirs now
            img = nib.load(out / "levels.nii.gz")
            data = np.asarray(img.dataobj).copy()
            data[tuple(np.argwhere(data == 0)[0])] = data.max()
            nib.save(nib.Nifti1Image(data, img.affine, img.header), out / "levels.nii.gz")
        result = screen_file(shared_data / "dcmqi-ct3slice", out, device="cpu")
        kept = sorted(p.name for p in out.glob("*.kept-*"))
        stopped = [n for n in result["output_notes"] if "stopped before its result.json" in n]
        assert not (out / screen.WRITING_RECORD).exists()
        if not edit:
            assert kept == [] and stopped == [
                "levels.nii.gz, vertebrae.nii.gz, seg.dcm, sr.dcm, report.png of an earlier run stopped before its "
                "result.json: removed"
            ], result["output_notes"]
        else:
            assert len(kept) == 1 and kept[0].startswith("levels.kept-"), kept
            assert any("(edited?)" in n for n in result["output_notes"]) and "levels.nii.gz" not in stopped[0]
    # stopped between an output's move into place and its record (helper-100: kept as "edited?" 1 time in 2): the
    # record names it before it is written
    for name in ("result.json", "vertebrae.nii.gz", "seg.dcm", "sr.dcm", "report.png"):  # stopped writing the first
        (out / name).unlink()
    (out / screen.WRITING_RECORD).write_text(json.dumps({"levels.nii.gz": screen.WRITING}))
    (out / "levels.nii.gz").write_bytes(b"half the run's own")
    before = set(out.glob("*.kept-*"))
    result = screen_file(shared_data / "dcmqi-ct3slice", out, device="cpu")
    assert set(out.glob("*.kept-*")) == before
    assert "levels.nii.gz of an earlier run stopped before its result.json: removed" in result["output_notes"]


@pytest.mark.skipif(os.name == "nt", reason="SIGTERM is a POSIX signal")
def test_sigterm_stops_a_screen_in_order(tmp_path, small_case_files):
    """SIGTERM while MS-Net runs: the run stops as Ctrl-C stops it, exit code 143, one line, no traceback, no
    result.json and no temporary file left."""
    import torch

    if torch.backends.mps.is_available():  # (macOS: its GPU cannot be hidden from the run, as CUDA's is below)
        pytest.skip("the moment MS-Net starts is told by the CPU note, said only where no GPU is")
    out = tmp_path / "out"
    ct = small_case_files / "nifti" / "ct.nii.gz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bonescreen", "screen", str(ct), "--out", str(out), "--device", "auto"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # the CPU, so that the CPU note says when MS-Net starts
    )
    said = []
    deadline = time.monotonic() + 180
    for line in iter(proc.stderr.readline, ""):  # said once the CT is read and the networks start
        said.append(line)
        if "running on the CPU" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)  # MS-Net at work
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=120)[1]
    err = "".join(said) + rest
    assert proc.returncode == 143, err
    assert "bonescreen: stopped (SIGTERM)" in err and "Traceback" not in err, err
    assert not out.exists() or not [p.name for p in out.iterdir() if p.name == "result.json" or p.name[0] == "."]


def _ct(shared_data):
    return str(shared_data / "dcmqi-ct3slice")  # three slices: a study screened in seconds


def test_a_study_whose_output_failed_is_no_finished_study(tmp_path, shared_data, monkeypatch):
    """helper-97: on a full disk a batch's study without its report.png was "done" (exit 0), and a rerun on a freed
    disk skipped it as finished, the file never written. The report's write fails here as a full disk fails it."""
    import errno

    import bonescreen.screen as screen_module
    from bonescreen.batch import FINGERPRINT_FILE, screen_study

    real = screen_module.render_report

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(screen_module, "render_report", full_disk)
    out = tmp_path / "out"
    first = screen_study("study-a", _ct(shared_data), str(out), None, None, "cpu")
    assert first["status"] == "error" and first["error"].startswith("outputs not written: report.png"), first
    assert (out / "study-a" / "result.json").is_file()  # what was written stays
    assert (out / "study-a" / FINGERPRINT_FILE).read_text().strip() == "failed"
    monkeypatch.setattr(screen_module, "render_report", real)
    again = screen_study("study-a", _ct(shared_data), str(out), None, None, "cpu")
    assert again["status"] == "done" and (out / "study-a" / "report.png").is_file()


def test_a_study_that_fails_on_a_full_disk_fails_by_name(tmp_path, shared_data, monkeypatch):
    """helper-97: marking an earlier result stale on a full disk raised through dask (a traceback, the batch
    ended). Both the study and the marking fail here as a full disk fails them."""
    import errno

    import bonescreen.batch as batch
    import bonescreen.screen as screen_module

    out = tmp_path / "out"
    assert batch.screen_study("study-a", _ct(shared_data), str(out), None, None, "cpu")["status"] == "done"

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(screen_module, "screen_file", full_disk)
    monkeypatch.setattr(batch, "write_text_atomic", full_disk)
    other = batch.StudyOptions(HUThresholds(normal_min=165.0))  # other options: the study is screened again, and fails
    failed = batch.screen_study("study-a", _ct(shared_data), str(out), None, None, "cpu", options=other)
    assert failed["status"] == "error" and "could not be marked stale (No space left on device)" in failed["error"]


def test_labels_saved_into_a_study_folder_while_it_is_screened_again_are_kept(tmp_path, shared_data, monkeypatch):
    """helper-97: a levels.nii.gz corrected in napari and saved into a study's folder while a batch screened the
    study again was deleted with the old folder. The save is made here while the study is being screened."""
    import bonescreen.screen as screen_module
    from bonescreen.batch import StudyOptions, screen_study

    out = tmp_path / "out"
    assert screen_study("study-a", _ct(shared_data), str(out), None, None, "cpu")["status"] == "done"
    real = screen_module.screen_file

    def user_saves_meanwhile(*args, **kwargs):
        (out / "study-a" / "levels.nii.gz").write_bytes(b"the user's corrected labels")
        return real(*args, **kwargs)

    monkeypatch.setattr(screen_module, "screen_file", user_saves_meanwhile)
    again = screen_study(
        "study-a", _ct(shared_data), str(out), None, None, "cpu", options=StudyOptions(HUThresholds(normal_min=165.0))
    )
    assert again["status"] == "done"
    kept = sorted((out / "study-a").glob("levels.kept-*.nii.gz"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"the user's corrected labels"
    notes = json.loads((out / "study-a" / "result.json").read_text())["output_notes"]
    assert (
        f"levels.nii.gz was saved into the study's folder while it was screened again: kept as {kept[0].name}" in notes
    )


def test_a_kept_file_keeps_its_whole_name_before_the_file_type(tmp_path):
    """helper-118: "dlg.v2.nii.gz" was kept as "dlg.kept-<time>.v2.nii.gz"; the name before the file type stays whole,
    and a second kept file in the same second gets its own name."""
    from bonescreen.screen import kept_name

    for name, start, end in (
        ("dlg.v2.nii.gz", "dlg.v2.kept-", ".nii.gz"),
        ("levels.nii.gz", "levels.kept-", ".nii.gz"),
        ("seg.dcm", "seg.kept-", ".dcm"),
        ("noext", "noext.kept-", ""),
    ):
        kept = kept_name(tmp_path / name)
        assert kept.name.startswith(start) and kept.name.endswith(end) and kept.parent == tmp_path, kept.name
        kept.write_text("")
        again = kept_name(tmp_path / name)
        assert again != kept and again.name.startswith(start) and again.name.endswith(end)
