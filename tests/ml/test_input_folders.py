"""Input folders as users' file systems hold them (stop 61).

Folders built of symbolic links read as the folders they link to: ``os.walk`` and ``Path.rglob`` do not enter a
linked folder, so a batch folder of links to studies screened nothing, a DICOM folder whose series lay in a linked
subfolder held "no DICOM files", and a labelled TotalSegmentator tree of links had "no labelled CT found". Each
test also puts a link to a folder above in the tree: the walk must end, reading each folder once.

Named pipes (and sockets, devices) are never opened: a pipe in a DICOM folder froze ``screen`` and napari's
reader (opening one waits for a writer).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from contextlib import contextmanager

import nibabel as nib
import numpy as np
import pytest

from bonescreen.batch import find_studies
from bonescreen.data.labelled import find_labelled
from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct
from bonescreen.io.folders import find_files, walk_folders

pytestmark = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")


def _link(target, link) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link, target_is_directory=True)


def test_a_batch_folder_of_links_to_studies_finds_each_study_once(tmp_path, small_case_files):
    store = tmp_path / "store"
    (store / "nifti_study").mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), -1000, np.int16), np.eye(4)), store / "nifti_study" / "ct.nii.gz")
    shutil.copytree(small_case_files / "dicom" / "dicom", store / "dicom_study")
    batch = tmp_path / "batch"
    _link(store / "nifti_study", batch / "patient_a")
    _link(store / "dicom_study", batch / "patient_b")
    _link(store / "dicom_study", batch / "again" / "patient_b_copy")  # a second link to the same study
    _link(batch, batch / "patient_b_loop")  # a link to the batch folder itself
    found = sorted(p.relative_to(batch).as_posix() for p in find_studies(batch).values())
    assert found == ["patient_a/ct.nii.gz", "patient_b"]


def test_a_dicom_folder_whose_series_is_a_linked_subfolder_reads_the_series(tmp_path, small_case_files):
    source = small_case_files / "dicom" / "dicom"
    folder = tmp_path / "export"
    _link(source, folder / "series_1")
    _link(folder, folder / "series_1_up")  # a loop: the export folder inside itself
    linked = load_ct(folder)
    direct = load_ct(source)
    assert linked.hu.shape == direct.hu.shape
    np.testing.assert_array_equal(linked.hu, direct.hu)
    assert not [n for n in linked.notes if "copy" in n]  # the loop did not read the series twice


def test_a_labelled_totalsegmentator_tree_of_links_is_found(tmp_path, small_case):
    store = tmp_path / "store" / "s0001"
    (store / "segmentations").mkdir(parents=True)
    nib.save(nib.Nifti1Image(small_case.hu.transpose(2, 1, 0), small_case.affine), store / "ct.nii.gz")
    mask = np.ascontiguousarray((small_case.levels == 3).astype(np.uint8).transpose(2, 1, 0))
    nib.save(nib.Nifti1Image(mask, small_case.affine), store / "segmentations" / "vertebrae_L3.nii.gz")
    tree = tmp_path / "train"
    _link(store, tree / "case_1")
    _link(tree, tree / "case_1" / "segmentations" / "loop")
    (case,) = find_labelled(tree, "totalseg")
    assert case.name == "case_1"
    labels = case.load_labels(case.load_volume())
    assert set(np.unique(labels[small_case.levels == 3])) == {3}  # L3 in BoneScreen's ids (DESIGN.md)
    assert find_files(tree, "segmentations/vertebrae_*.nii.gz") == [
        tree / "case_1" / "segmentations" / "vertebrae_L3.nii.gz"
    ]


def test_walk_folders_skips_hidden_and_unkept_folders_and_can_stop_at_the_top(tmp_path):
    for rel in ("a/deep", ".hidden", "out"):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "f.txt").write_text("x")
    walked = [p.relative_to(tmp_path).as_posix() for p, _, _ in walk_folders(tmp_path, keep=lambda d: d.name != "out")]
    assert walked == [".", "a", "a/deep"]
    top = []
    for here, dirs, files in walk_folders(tmp_path):
        top.append((here, files))
        dirs[:] = []
    assert top == [(tmp_path, [])]


@contextmanager
def _pipes(*paths):
    """Named pipes at ``paths``, watched: a reader that opens one is let go at once (its writer end opened and
    closed: it reads an empty file) and recorded, so that a regression fails the test instead of freezing the
    suite (a reader blocked in a worker thread cannot be interrupted)."""
    for path in paths:
        os.mkfifo(path)
    opened: list[str] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            for path in paths:
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # fails (ENXIO) while no reader has it open
                except OSError:
                    continue
                os.close(fd)
                opened.append(path.name)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield opened
    finally:
        done.set()
        watcher.join()


def test_named_pipes_are_never_opened_and_are_named(tmp_path, small_case_files):
    folder = tmp_path / "series"
    shutil.copytree(small_case_files / "dicom" / "dicom", folder)
    alone = tmp_path / "only_a_pipe"
    alone.mkdir()
    with _pipes(folder / "pipe.dcm", folder / "IM9999", alone / "ct.nii.gz") as opened:
        volume = load_ct(folder)
        assert volume.hu.shape == load_ct(small_case_files / "dicom" / "dicom").hu.shape
        assert "not a file (a named pipe): IM9999, pipe.dcm" in " ".join(volume.notes)
        assert all("pipe" not in f for f in volume.flags)  # not taken for a damaged image of the series
        with pytest.raises(BoneScreenError, match=r"not a file but a named pipe") as err:
            load_ct(alone / "ct.nii.gz")
        assert str(err.value.path) == str(alone / "ct.nii.gz")
        with pytest.raises(BoneScreenError, match=r"no DICOM files in the folder \(not a file \(a named pipe\)"):
            load_ct(alone)
        # a batch makes a pipe named as CT a study that fails by name (helper-94: it vanished from the summary)
        assert list(find_studies(alone).values()) == [alone / "ct.nii.gz"]
    assert opened == []


def _run_without_permission_override(code: str, cwd) -> dict:
    """Run ``code`` in a Python that file permissions bind: as root (CI runs so), with the capabilities that let root
    read any file dropped by util-linux's ``setpriv``; the code prints one JSON object."""
    import json
    import subprocess
    import sys

    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without util-linux's setpriv: permissions cannot be made to bind")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, "--bounding-set", drop, "--inh-caps", drop, "--", *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_files_and_folders_without_read_permission_are_named_not_passed_over(tmp_path, small_case_files):
    """helper-92: a series split over two folders, one of them without read permission, read half its slices with no
    flag; such a folder was left out of a batch that then "succeeded"; a file without permission was "damaged, or
    another format"."""
    files = sorted((small_case_files / "dicom" / "dicom").iterdir())
    half = len(files) // 2
    for sub, part in (("a", files[:half]), ("b", files[half:])):
        (tmp_path / "split" / sub).mkdir(parents=True)
        for f in part:
            shutil.copy(f, tmp_path / "split" / sub / f.name)
    (tmp_path / "split" / "b").chmod(0)
    (tmp_path / "split" / "a" / files[0].name).chmod(0)
    code = f"""
import json
from bonescreen.batch import find_studies
from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct
said = {{}}
volume = load_ct("split/a")
said["flags"] = volume.flags
said["studies"] = sorted(p.as_posix() for p in find_studies("split").values())
for path in ("split/b", "split/a/{files[0].name}"):
    try:
        load_ct(path)
    except BoneScreenError as exc:
        said[path] = exc.problem
volume = load_ct("split")
said["whole"] = [volume.hu.shape[0], volume.flags]
print(json.dumps(said))
"""
    try:
        said = _run_without_permission_override(code, tmp_path)
    finally:
        (tmp_path / "split" / "b").chmod(0o755)
    assert said["split/b"] == said[f"split/a/{files[0].name}"] == "cannot be read (permission denied)"
    assert said["studies"] == ["split/a", "split/b"]  # the folder without permission is a study that fails by name
    flag = "1 file or folder that cannot be read may hold images of this series and was left out (cannot be read "
    assert any(f.startswith(flag) and files[0].name in f for f in said["flags"])
    n, flags = said["whole"]
    listed = f"(cannot be read (permission denied): a/{files[0].name}, b)"
    assert n == half - 1 and any(f.startswith("2 files or folders that cannot be read") and listed in f for f in flags)


def test_folder_names_that_are_not_utf8_are_studies_of_a_batch(tmp_path):
    """helper-92: a folder named in Latin-1 (an old CD, a Windows archive) stopped `batch` with a traceback before
    any study was screened (the study's key and inputs.csv encoded its name as UTF-8)."""
    from bonescreen.batch import run_batch

    root = tmp_path / "archive"
    name = os.fsdecode(b"Jos\xe9")
    (root / name).mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), -1000, np.int16), np.eye(4)), root / name / "ct.nii.gz")
    (study,) = find_studies(root).values()
    assert study == root / name / "ct.nii.gz"
    manifest = run_batch(root, tmp_path / "out", workers=1, device="cpu", progress=False)
    assert manifest["studies"] == 1 and manifest["counts"]["error"] == 1  # 8 voxels of air: no CT to screen
    listed = (tmp_path / "out" / "inputs.csv").read_bytes()
    assert b"Jos\xe9/ct.nii.gz" in listed  # the name's own bytes, as the file system holds them


def test_paths_the_system_refuses_end_with_one_line_and_exit_code_2(tmp_path, capsys, monkeypatch):
    """helper-92: a name over the system's limit ended in a traceback; ``--out ''`` wrote into the current folder and
    ``screen ''`` read it; ``--out=~/x`` (where the shell leaves the "~") made a folder named "~"."""
    from bonescreen.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    too_long = tmp_path / ("x" * 300)
    for argv in (["screen", str(too_long), "--out", "out"], ["screen", str(tmp_path), "--out", str(too_long)]):
        assert main(argv) == 2
        said = capsys.readouterr().err
        assert said.startswith(f"bonescreen: error: {too_long}: ") and "file name too long" in said
    for argv in (["screen", "", "--out", "out"], ["screen", str(tmp_path), "--out", " "]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2 and "an empty path" in capsys.readouterr().err
    assert main(["screen", "~/scan.nii.gz", "--out=~/out"]) == 2
    assert capsys.readouterr().err.startswith(f"bonescreen: error: {tmp_path / 'home' / 'scan.nii.gz'}: no such file")
    assert not (tmp_path / "~").exists()


def test_a_result_json_that_cannot_be_written_ends_with_exit_code_1(tmp_path, shared_data, capsys, monkeypatch):
    """helper-92: result.json on a full disk ended with exit code 2, the code of bad input. A full disk cannot be
    made here without mounting one: the write of result.json is made to fail as a full disk fails (ENOSPC)."""
    import errno

    import bonescreen.screen
    from bonescreen.cli import main

    real = bonescreen.screen.write_text_atomic

    def full_disk(path, text):
        if os.path.basename(path) == "result.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, text)

    monkeypatch.setattr(bonescreen.screen, "write_text_atomic", full_disk)
    code = main(["screen", str(shared_data / "dcmqi-ct3slice"), "--out", str(tmp_path / "out"), "--device", "cpu"])
    said = capsys.readouterr().err
    assert code == 1 and "cannot write result.json (No space left on device); written: levels.nii.gz" in said


#: The refusal of an output folder that another run holds.
BUSY = r"another bonescreen run \(a batch or a screen\) is writing into this output folder"


def test_a_second_batch_into_the_same_output_folder_is_refused_and_touches_nothing(tmp_path, shared_data):
    """helper-92: a second batch into the folder of a running one removed its half-written study (`.study-*.tmp`),
    failed on it, and marked the first run's good result failed; helper-94: a `screen` into it wrote its outputs
    among the batch's. The running batch's lock is held here as that batch holds it."""
    from bonescreen.atomic import lock_output_folder
    from bonescreen.batch import run_batch
    from bonescreen.screen import screen_file

    root = tmp_path / "archive"
    root.mkdir()
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), -1000, np.int16), np.eye(4)), root / "ct.nii.gz")
    out = tmp_path / "out"
    (out / ".study-0123456789ab.tmp").mkdir(parents=True)  # the running batch's study being written
    held = lock_output_folder(out)
    try:
        with pytest.raises(BoneScreenError, match=BUSY):
            run_batch(root, out, workers=1, device="cpu", progress=False)
        with pytest.raises(BoneScreenError, match=BUSY):
            screen_file(shared_data / "dcmqi-ct3slice", out, device="cpu")
        assert sorted(p.name for p in out.iterdir()) == [".study-0123456789ab.tmp"]
    finally:
        os.close(held)
    assert run_batch(root, out, workers=1, device="cpu", progress=False)["studies"] == 1  # the lock is let go


def test_what_is_not_named_as_an_image_is_no_image_of_the_series_even_when_it_does_not_open(tmp_path, small_case_files):
    """helper-94: files that do not open (a report.pdf without permission, a dangling link README, a loop of links)
    beside a series of .dcm files were counted as its damaged images: the series was flagged, or refused with "more
    damaged files than images read". The rule is that of damaged files: named as DICOM, or without a suffix beside
    images without one."""
    folder = tmp_path / "series"
    shutil.copytree(small_case_files / "dicom" / "dicom", folder)
    for name in ("report.pdf", "README", "notes.txt", "mask.nii.gz"):
        os.symlink(tmp_path / "nowhere", folder / name)
    os.symlink(folder / "loop_b", folder / "loop_a")
    os.symlink(folder / "loop_a", folder / "loop_b")
    volume = load_ct(folder)
    assert not volume.flags or not any("cannot be read" in f or "damaged" in f for f in volume.flags)
    assert volume.hu.shape == load_ct(small_case_files / "dicom" / "dicom").hu.shape


def test_a_disc_export_is_screened_where_its_series_lie_and_names_that_are_not_utf8_are_hashed(tmp_path, series):
    """helper-94: a folder holding a disc's DICOMDIR failed as a study ("no CT images in the folder"), and a file name
    that is not UTF-8 stopped batch with a traceback in the input's fingerprint."""
    import pydicom
    from pydicom.fileset import FileSet

    from bonescreen.batch import input_fingerprint

    files = FileSet()
    for f in sorted(series.iterdir())[:3]:
        files.add(pydicom.dcmread(f))
    files.write(tmp_path / "disc")
    studies = list(find_studies(tmp_path / "disc").values())
    assert len(studies) == 1 and studies[0] != tmp_path / "disc" and load_ct(studies[0]).hu.shape[0] == 3
    latin = tmp_path / "latin"
    latin.mkdir()
    for i, f in enumerate(sorted(series.iterdir())[:3]):
        shutil.copy(f, os.fsdecode(bytes(latin) + b"/im\xe9%d.dcm" % i))
    assert len(input_fingerprint(latin)) == 64


def test_a_nifti_named_in_latin1_is_labelled_printably_and_an_output_error_carries_no_traceback(
    tmp_path, small_case_files
):
    """helper-94: a NIfTI whose name is not UTF-8 lost report.png (matplotlib refused the name's surrogates in the
    title); a seg.dcm on a full disk recorded pydicom's traceback in output_errors and on the console."""
    import errno

    from bonescreen.screen import write_output

    latin = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.nii.gz")
    shutil.copy(small_case_files / "nifti" / "ct.nii.gz", latin)
    label = load_ct(latin).description
    assert label == "NIfTI caf\ufffd.nii.gz" and label.encode("utf-8")

    def full_disk(path):  # as pydicom re-raises a write error: its message holds the traceback
        raise OSError(
            f"With tag (7FE0,0010) got exception: [Errno {errno.ENOSPC}] No space left on device\n"
            'Traceback (most recent call last):\n  File "pydicom/tag.py", line 1'
        )

    errors: dict = {}
    write_output(tmp_path, "seg", "seg.dcm", full_disk, {}, errors, {})
    assert errors["seg.dcm"].endswith("No space left on device") and "Traceback" not in errors["seg.dcm"]
    # helper-97: in the system's words, without pydicom's "With tag ... got exception" around them
    assert errors["seg.dcm"] == os.strerror(errno.ENOSPC)


def test_labels_and_weights_that_do_not_read_say_why(tmp_path, small_case_files):
    """helper-94: a named pipe given as --labels was "no such label file", one in place of the weights "weights file
    not found", and a pipe or broken link in place of BCC-Net's feature statistics switched the unlike-input check
    off without a word."""
    from bonescreen.checkpoint import load_model, read_meta
    from bonescreen.io.writers import read_labels_nifti
    from bonescreen.ood import density_path, load_feature_density
    from bonescreen.weights import __file__ as bundled

    weights = os.path.dirname(bundled)
    mine = tmp_path / "w"
    mine.mkdir()
    for name in ("bccnet.json", "bccnet.safetensors"):
        shutil.copy(os.path.join(weights, name), mine / name)
    volume = load_ct(small_case_files / "nifti" / "ct.nii.gz")
    with _pipes(tmp_path / "labels.nii.gz", tmp_path / "msnet.safetensors") as opened:
        shutil.copy(os.path.join(weights, "msnet-small.json"), tmp_path / "msnet.json")
        with pytest.raises(BoneScreenError, match=r"labels.nii.gz: not a file \(a named pipe\)"):
            read_labels_nifti(volume, tmp_path / "labels.nii.gz")
        with pytest.raises(BoneScreenError, match=r"msnet.safetensors: not a file \(a named pipe\)"):
            load_model(tmp_path / "msnet.safetensors")
    assert opened == []
    os.symlink(tmp_path / "nowhere", density_path(mine / "bccnet.safetensors"))
    with pytest.raises(BoneScreenError, match=r"unreadable feature statistics \(a link to nothing"):
        load_feature_density(mine / "bccnet.safetensors", read_meta(mine / "bccnet.safetensors"))


def test_labelled_scans_that_do_not_read_are_named_not_dropped(tmp_path, small_case):
    """helper-94: `evaluate` dropped without a word an nnU-Net image that is a broken link or a pipe, and a
    TotalSegmentator case folder without read permission."""
    from bonescreen.data.labelled import unpaired

    nnunet = tmp_path / "nnunet"
    (nnunet / "imagesTr").mkdir(parents=True)
    (nnunet / "labelsTr").mkdir()
    mask = np.ascontiguousarray((small_case.levels == 3).astype(np.uint8).transpose(2, 1, 0) * 22)  # VerSe L3
    for case in ("case1", "case2"):
        nib.save(nib.Nifti1Image(mask, small_case.affine), nnunet / "labelsTr" / f"{case}.nii.gz")
    os.symlink(tmp_path / "nowhere.nii.gz", nnunet / "imagesTr" / "case1_0000.nii.gz")
    with _pipes(nnunet / "imagesTr" / "case2_0000.nii.gz") as opened:
        cases = {c.name: c for c in find_labelled(nnunet, "nnunet")}
        assert sorted(cases) == ["case1", "case2"]
        with pytest.raises(BoneScreenError, match="no such file or folder"):
            cases["case1"].load_volume()
        with pytest.raises(BoneScreenError, match=r"not a file but a named pipe"):
            cases["case2"].load_volume()
    assert opened == []
    locked = tmp_path / "ts" / "s0002"
    locked.mkdir(parents=True)
    locked.chmod(0)
    code = f"""
import json
from bonescreen.data.labelled import unpaired
print(json.dumps(unpaired({str(tmp_path / "ts")!r}, "totalseg")))
"""
    try:
        lines = _run_without_permission_override(code, tmp_path)
    finally:
        locked.chmod(0o755)
    assert lines == ["s0002/: cannot be read (permission denied): not evaluated"]
    assert unpaired(tmp_path / "ts", "totalseg") == []  # readable now: nothing to say


def test_a_folder_whose_images_do_not_open_says_so_not_damaged(tmp_path):
    """helper-94: a series folder whose files could not be opened (no permission; here links to nothing, which fail
    the same way as root) said "files named as DICOM but none reads as DICOM: damaged, or another format"."""
    folder = tmp_path / "series"
    folder.mkdir()
    for i in range(3):
        os.symlink(tmp_path / f"gone{i}.dcm", folder / f"IM{i}.dcm")
    with pytest.raises(BoneScreenError) as err:
        load_ct(folder)
    assert err.value.problem == (
        "no DICOM file could be read (cannot be read (no such file or directory): IM0.dcm, IM1.dcm, IM2.dcm)"
    )
    with pytest.raises(BoneScreenError, match="not a folder"):
        find_labelled(folder / "IM0.dcm")
