"""Batch screening on a dask.distributed LocalCluster, and training on 2 processes (gloo)."""

import csv
import datetime
import hashlib
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from bonescreen.batch import find_studies, run_batch, screen_study
from bonescreen.checkpoint import load_model
from bonescreen.cli import main
from bonescreen.errors import BoneScreenError
from bonescreen.io import load_ct
from bonescreen.phantom import PhantomConfig, make_case
from bonescreen.phantom.write import write_case
from bonescreen.pipeline.inference import InferenceSettings


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """6 studies: 3 NIfTI, 2 DICOM series in patient-named folders, 1 corrupt DICOM series."""
    root = tmp_path_factory.mktemp("archive")
    for i in range(5):
        case = make_case(6060, i, PhantomConfig(thickness=5.0, contrast_probability=0))
        if i < 3:
            write_case(case, root / f"nifti_{i}", "nifti")
            for extra in ("body", "spine"):  # levels.nii.gz stays: a label map is not a study
                (root / f"nifti_{i}" / f"{extra}.nii.gz").unlink()
        else:
            write_case(case, root / f"DOE^JOHN_{i}", "dicom")
            for extra in ("levels", "body", "spine"):
                (root / f"DOE^JOHN_{i}" / f"{extra}.nii.gz").unlink()
    bad = make_case(6060, 9, PhantomConfig(thickness=5.0))
    files = write_case(bad, root / "corrupt", "dicom") / "dicom"
    for extra in ("levels", "body", "spine"):
        (root / "corrupt" / f"{extra}.nii.gz").unlink()
    victim = sorted(files.iterdir())[4]
    victim.write_bytes(victim.read_bytes()[:3000])
    return root


def test_find_studies(archive):
    studies = find_studies(archive)
    assert len(studies) == 6
    assert all(k.startswith("study-") and "DOE" not in k for k in studies)


def test_label_maps_of_the_labelled_layouts_are_no_studies(tmp_path):
    """Stop 54: an int16 or float label map was a study that failed ("it looks like a label map"); the maps the
    labelled layouts name as such (VerSe's and BIDS's *_msk, nnU-Net's labelsTr, TotalSegmentator's
    segmentations) are passed over as the 8-bit ones are, and their CT stays a study."""
    import nibabel as nib
    import numpy as np

    ct = np.full((8, 8, 8), -1000, np.int16)
    labels = np.zeros((8, 8, 8), np.int16)
    files = {
        "verse/sub-1/sub-1_ct.nii.gz": ct,
        "verse/sub-1/sub-1_seg-vert_msk.nii.gz": labels,
        "nnunet/imagesTr/case_0000.nii.gz": ct,
        "nnunet/labelsTr/case.nii.gz": labels.astype(np.float32),
        "totalseg/s01/ct.nii.gz": ct,
        "totalseg/s01/segmentations/vertebrae_L1.nii.gz": labels,
    }
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / rel)
    found = sorted(p.relative_to(tmp_path).as_posix() for p in find_studies(tmp_path).values())
    assert found == ["nnunet/imagesTr/case_0000.nii.gz", "totalseg/s01/ct.nii.gz", "verse/sub-1/sub-1_ct.nii.gz"]


def test_a_nested_archive_gives_each_series_once_and_damaged_folders_are_studies_too(tmp_path, capsys):
    """Faults found by a user trial: a folder study read its subfolders too (one series screened twice,
    the folder's own series never); a folder of files named .dcm that are not DICOM vanished from the
    summary; an output folder inside the input root was searched as studies; a missing input root gave
    "0 studies" and exit code 0, an output path that is a file a traceback."""
    root = tmp_path / "archive"
    one = make_case(6061, 0, PhantomConfig(thickness=5.0, contrast_probability=0))
    two = make_case(6061, 1, PhantomConfig(thickness=3.0, contrast_probability=0))
    visit = root / "SMITH_JANE" / "visit1"
    write_case(one, visit, "dicom")
    write_case(two, visit / "sub", "dicom")
    for folder in (visit, visit / "sub"):  # the series' files directly in each folder
        for f in (folder / "dicom").iterdir():
            f.rename(folder / f.name)
        (folder / "dicom").rmdir()
        for extra in ("levels", "body", "spine"):
            (folder / f"{extra}.nii.gz").unlink()
    fake = root / "fake_dicom"
    fake.mkdir()
    (fake / "IM0001.dcm").write_text("not a DICOM file")
    (root / "empty").mkdir()
    out = root / "bonescreen-out"
    (out / "study-0123456789ab").mkdir(parents=True)
    (out / "study-0123456789ab" / "seg.dcm").write_bytes((visit / sorted(os.listdir(visit))[0]).read_bytes())

    studies = find_studies(root, exclude=out)
    rel = sorted(p.relative_to(root).as_posix() for p in studies.values())
    assert rel == ["SMITH_JANE/visit1", "SMITH_JANE/visit1/sub", "fake_dicom"]
    assert "bonescreen-out/study-0123456789ab" in [p.relative_to(root).as_posix() for p in find_studies(root).values()]
    # a folder study holds only its own files: each series once, the folder's own one too
    assert load_ct(visit, recursive=False).hu.shape[0] == one.hu.shape[0]
    assert load_ct(visit / "sub", recursive=False).hu.shape[0] == two.hu.shape[0] != one.hu.shape[0]
    assert load_ct(visit).hu.shape[0] == two.hu.shape[0]  # `screen` of the folder still searches below it
    failed = screen_study("study-x", str(fake), str(tmp_path / "o"), None, None, "cpu")
    assert (
        # (no header read to tell the patient's name by: no file of the study named in summary.csv, helper-78)
        failed["status"] == "error" and "1 file named as DICOM (<file>) but none reads as DICOM" in failed["error"]
    )

    assert main(["batch", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2
    assert "missing: no such folder" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["batch", str(root), "--out", str(tmp_path / "afile")]) == 2
    assert "the output folder is a file" in capsys.readouterr().err


def test_batch_on_local_cluster_resumes(archive, tmp_path):
    out = tmp_path / "out"
    settings = InferenceSettings(precision="fp32", batch=2)  # travels to the worker processes
    partial = run_batch(archive, out, workers=2, device="cpu", progress=False, limit=2, settings=settings)
    assert not partial["complete"] and partial["workers"] == 2
    done_first = {p.name for p in out.iterdir() if p.is_dir() and (p / "result.json").is_file()}
    assert len(done_first) >= 2
    for name in done_first:
        inference = json.loads((out / name / "result.json").read_text())["inference"]
        assert inference == {"precision": "fp32", "batch_size": 2, "compiled": False}
    manifest = run_batch(archive, out, workers=2, device="cpu", progress=False)
    assert manifest["complete"] and manifest["studies"] == 6
    assert manifest["counts"]["error"] == 1
    assert manifest["counts"]["skipped"] >= len(done_first)  # finished studies were not redone
    assert manifest["counts"]["done"] + manifest["counts"]["skipped"] == 5
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    errors = [r for r in rows if r["status"] == "error"]
    assert len(errors) == 1 and errors[0]["error"]
    assert manifest["failed"] == [errors[0]["study"]]  # the CLI prints them (helper-32: counted, not named)
    for r in rows:
        if r["status"] != "error":
            assert r["prediction"] and float(r["p_normal"]) + float(r["p_low_bone_mass"]) + float(
                r["p_osteoporosis"]
            ) == pytest.approx(1.0, abs=1e-3)
    # no patient name in keys, folder names, summary or results; no half-written folders left
    text = (out / "summary.csv").read_text() + (out / "manifest.json").read_text()
    for p in out.iterdir():
        assert "DOE" not in p.name and not p.name.endswith(".tmp")
        if p.is_dir():
            text += (p / "result.json").read_text()
    assert "DOE" not in text and "JOHN" not in text
    # the keys cannot be turned back into the folder names by trying names (helper-76 recovered a 7-digit
    # medical record number from its plain SHA-256 in 4 s): keyed with the output folder's own secret, kept
    # beside inputs.csv so that the reruns below find their studies
    secret = bytes.fromhex((out / "key_secret.txt").read_text().strip())
    assert len(secret) == 32 and (out / "key_secret.txt").stat().st_mode & 0o077 == 0  # its owner's alone
    for key, path in find_studies(archive, secret=secret).items():
        rel = path.relative_to(archive).as_posix().encode()
        assert key in {r["study"] for r in rows} and key != "study-" + hashlib.sha256(rel).hexdigest()[:12]
    assert set(find_studies(archive, secret=b"another")) != {r["study"] for r in rows}
    assert manifest["models"]["segmentation"]["sha256"]
    assert manifest["devices_used"] == ["cpu"] and manifest["options"]["hu_thresholds"]["normal_min"] == 160.0
    assert json.loads((out / "manifest.json").read_text())["counts"] == manifest["counts"]
    assert not manifest["succeeded"] and not manifest["interrupted"]
    # the command line says so: a study failed, so the exit code is 1 (the rest are skipped as done)
    assert main(["batch", str(archive), "--out", str(out), "--workers", "1", "--device", "cpu"]) == 1
    # an input rewritten since it was screened is screened again, not skipped as done (the rerun kept a stale
    # result when only the path was compared); the others stay skipped
    changed = archive / "nifti_0" / "ct.nii.gz"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    again = run_batch(archive, out, workers=1, device="cpu", progress=False)
    assert again["counts"]["done"] == 1 and again["counts"]["skipped"] == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_training_two_processes(small_set, tmp_path, tiny_train_cls):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        f"--master-port={_free_port()}",
        "-m",
        "bonescreen",
        *tiny_train_cls(small_set, out, 1),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, meta = load_model(out)
    assert meta["training"]["world_size"] == 2 and meta["epoch"] == 0
    assert (out / "training.safetensors").is_file()


def test_a_batch_reads_and_measures_every_study_with_the_options_screen_takes(tmp_path):
    """`batch` lacked `screen`'s --hu-offset, --orientation and HU thresholds: an archive of series stored
    without their rescale could not be screened at all. Each study now takes them, and a study screened with
    other options is screened again on a rerun (its stored result was made with the old ones)."""
    import pydicom

    from bonescreen.batch import StudyOptions
    from bonescreen.hu import HUThresholds

    case = make_case(6062, 0, PhantomConfig(thickness=5.0, contrast_probability=0))
    series = write_case(case, tmp_path / "raw", "dicom") / "dicom"
    for f in series.iterdir():  # stored values without their rescale, as some exports leave them
        ds = pydicom.dcmread(f)
        del ds.RescaleIntercept, ds.RescaleSlope
        ds.save_as(f)
    out = tmp_path / "out"
    plain = screen_study("study-a", str(series), str(out), None, None, "cpu")
    assert plain["status"] == "error" and "--hu-offset -1024" in plain["error"]
    options = StudyOptions(HUThresholds(100.0, 150.0, 0.0), hu_offset=-1024.0)
    done = screen_study("study-a", str(series), str(out), None, None, "cpu", options=options)
    assert done["status"] == "done", done
    result = json.loads((out / "study-a" / "result.json").read_text())
    assert result["hu_thresholds"]["osteoporosis_max"] == 100.0 and result["hu_thresholds"]["normal_min"] == 150.0
    assert any("-1024 added" in n for n in result["input_notes"])
    again = screen_study("study-a", str(series), str(out), None, None, "cpu", options=options)
    assert again["status"] == "skipped"
    # other thresholds: screened again; axis codes, a NIfTI's, leave a DICOM series as it is (an archive holds both)
    other = StudyOptions(HUThresholds(110.0, 160.0, 0.0), hu_offset=-1024.0, orientation="LPS")
    assert screen_study("study-a", str(series), str(out), None, None, "cpu", options=other)["status"] == "done"
    # a rerun that fails (here: no offset any more) keeps the earlier run's files but says they are stale, and
    # the next run tries again (the folder held an old result.json while summary.csv said error)
    assert screen_study("study-a", str(series), str(out), None, None, "cpu")["status"] == "error"
    last = (out / "study-a" / "last_error.txt").read_text()
    assert "failed" in last and "--hu-offset -1024" in last and "earlier run" in last
    assert (out / "study-a" / "result.json").is_file()
    assert screen_study("study-a", str(series), str(out), None, None, "cpu", options=other)["status"] == "done"
    assert not (out / "study-a" / "last_error.txt").exists()
    # the command line takes them for batch as for screen
    from bonescreen.cli import build_parser

    options = ["--hu-offset", "-1024", "--orientation", "LPS", "--normal-hu", "150"]
    args = build_parser().parse_args(["batch", str(tmp_path), "--out", str(out), *options])
    assert (args.hu_offset, args.orientation, args.normal_hu) == (-1024.0, "LPS", 150.0)


def test_a_rerun_with_other_weights_screens_again_and_keeps_what_the_user_left_there(tmp_path):
    """helper-38: a rerun with other BCC-Net weights kept the old results ("already done") and the manifest named
    the old weights; a rerun with other options deleted a levels.nii.gz the user had corrected in the study's
    folder, and a file of the user's there; a bad weights path failed every study on its own, or none."""
    import shutil

    import nibabel as nib
    import numpy as np
    from safetensors.torch import load_file, save_file

    from bonescreen.batch import models_fingerprint
    from bonescreen.errors import BoneScreenError
    from bonescreen.pipeline import Screener
    from bonescreen.weights import default_weights

    # other BCC-Net weights: the bundled ones with their classifier's bias moved
    bundled = default_weights("classification")
    other = tmp_path / "w" / "bccnet.safetensors"
    other.parent.mkdir()
    tensors = load_file(bundled)
    key = next(k for k in tensors if k.endswith("classifier.bias"))
    tensors[key] = tensors[key] + 1.0
    save_file(tensors, other)
    shutil.copy(bundled.with_suffix(".json"), other.with_suffix(".json"))
    first, second = (models_fingerprint(Screener(None, w, "cpu").models()) for w in (None, str(other)))
    assert first != second

    case = make_case(6063, 0, PhantomConfig(thickness=5.0, contrast_probability=0))
    study = write_case(case, tmp_path / "in" / "a", "nifti") / "ct.nii.gz"
    out = tmp_path / "out"
    assert (
        screen_study("study-a", str(study), str(out), None, None, "cpu", models_fingerprint=first)["status"] == "done"
    )
    folder = out / "study-a"
    assert (
        screen_study("study-a", str(study), str(out), None, None, "cpu", models_fingerprint=first)["status"]
        == "skipped"
    )
    # the user corrects the levels in place and leaves a file of their own
    img = nib.load(folder / "levels.nii.gz")
    data = np.asarray(img.dataobj).copy()
    data[data == 5] = 0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), folder / "levels.nii.gz")
    (folder / "my_notes.txt").write_text("L5 removed by hand")
    again = screen_study("study-a", str(study), str(out), None, str(other), "cpu", models_fingerprint=second)
    assert again["status"] == "done", again
    assert (folder / "my_notes.txt").read_text() == "L5 removed by hand"
    kept = list(folder.glob("levels.kept-*.nii.gz"))
    assert len(kept) == 1 and not (np.asarray(nib.load(kept[0]).dataobj) == 5).any()
    result = json.loads((folder / "result.json").read_text())
    assert any("kept as" in n for n in result["output_notes"]), result["output_notes"]
    # ...and summary.csv says so too, with how to screen with it (helper-76: said in result.json only, telling
    # batch users to "give it with --labels", an option batch has not)
    from bonescreen.batch import _row

    noted = _row(again)["output_notes"]
    # the kept file's path, not its name alone (helper-106: the command failed when copied, "no such label file")
    assert f"kept as {kept[0].name}" in noted and f"bonescreen screen INPUT --labels {kept[0]}" in noted
    assert result["models"]["classification"]["sha256"] != result["models"]["segmentation"]["sha256"]
    # a run stopped (Ctrl-C) just after this study was moved into place, before its outcome was collected: the
    # summary still lists it, from its folder (helper-38), and only for the weights it was screened with
    from bonescreen.batch import StudyOptions, finished_on_disk

    studies, before = {"study-a": study}, datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    listed = finished_on_disk(studies, out, set(), StudyOptions(), second, before)
    assert [(o["study"], o["status"]) for o in listed] == [("study-a", "done")]
    assert listed[0]["result"]["levels"] == result["levels"]
    assert finished_on_disk(studies, out, set(), StudyOptions(), first, before) == []
    # ...the folder, of other weights than the stopped run's, is said to be stale (helper-76: it passed for the
    # current result), and the next run screens it again
    assert "was stopped before it screened this study again" in (folder / "last_error.txt").read_text()
    assert (folder / "input_fingerprint.txt").read_text().strip() == "failed"
    assert finished_on_disk(studies, out, {"study-a"}, StudyOptions(), second, before) == []
    # a bad weights path: one error before any study, nothing written
    with pytest.raises(BoneScreenError, match="bccnet"):
        run_batch(tmp_path / "in", tmp_path / "out2", cls_weights=str(tmp_path / "nowhere" / "bccnet.safetensors"))
    assert not (tmp_path / "out2" / "manifest.json").exists()
    # no study under the root: an error, not "0 studies", a success
    (tmp_path / "empty").mkdir()
    with pytest.raises(BoneScreenError, match="no CT study under the folder"):
        run_batch(tmp_path / "empty", tmp_path / "out3")
    # an earlier run's output inside the root is no study (its seg.dcm and sr.dcm failed as "no CT images")
    shutil.copytree(out, tmp_path / "in" / "old-out")
    (tmp_path / "in" / "old-out" / "study-a" / "seg.dcm").write_bytes(b"DICM")
    assert list(find_studies(tmp_path / "in").values()) == [study]
    # ...but a user's own result.json does not make a folder BoneScreen's (helper-76: the folder and its series
    # were passed over without a word)
    own = write_case(case, tmp_path / "in" / "mine", "nifti") / "ct.nii.gz"
    (own.parent / "result.json").write_text('{"my": "own analysis"}')
    assert own in find_studies(tmp_path / "in").values()


def test_a_study_folder_set_aside_for_its_rerun_is_put_back_if_the_new_one_never_came(tmp_path):
    """helper-76, from the code: the earlier folder was deleted before the new one was moved in, so a worker
    killed between the two left only the temporary folder, which the next run deleted with the user's files.
    The earlier folder is now set aside under a name the next run puts back."""
    from bonescreen.batch import SET_ASIDE_SUFFIX, remove_temporaries

    aside = tmp_path / f".study-0123456789ab.1a2b3c4d{SET_ASIDE_SUFFIX}"
    aside.mkdir()
    (aside / "levels.kept-20261205T000000.nii.gz").write_bytes(b"the user's correction")
    (tmp_path / ".study-0123456789ab.5e6f7a8b.tmp").mkdir()  # the new folder, cut off
    remove_temporaries(tmp_path)
    kept = tmp_path / "study-0123456789ab" / "levels.kept-20261205T000000.nii.gz"
    assert kept.read_bytes() == b"the user's correction" and [p.name for p in tmp_path.iterdir()] == [
        "study-0123456789ab"
    ]
    # set aside while the new folder did move in: the earlier one goes
    (tmp_path / f".study-0123456789ab.9f9f9f9f{SET_ASIDE_SUFFIX}").mkdir()
    remove_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["study-0123456789ab"]


def test_batch_refuses_an_output_folder_of_the_users_files_and_an_unreachable_scheduler(tmp_path, capsys, monkeypatch):
    """helper-76: a user's own summary.csv, inputs.csv and manifest.json in --out were replaced without a word; an
    unreachable --scheduler gave a 63-line traceback after 30 s. Both are errors naming the problem (exit 2), before
    anything is written."""
    import nibabel as nib
    import numpy as np

    import bonescreen.batch as batch

    root = tmp_path / "in"
    root.mkdir()
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), -1000, np.int16), np.eye(4)), root / "ct.nii.gz")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.csv").write_text("patient,score\n")
    assert main(["batch", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "summary.csv: the output folder holds a summary.csv that BoneScreen did not write" in err
    assert (out / "summary.csv").read_text() == "patient,score\n" and sorted(os.listdir(out)) == ["summary.csv"]

    monkeypatch.setattr(batch, "_SCHEDULER_TIMEOUT_S", 2)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fresh = tmp_path / "out"
    assert main(["batch", str(root), "--out", str(fresh), "--scheduler", f"tcp://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the dask scheduler at tcp://127.0.0.1:{port} within 2 s" in err and "Traceback" not in err
    # helper-78: an address that is none (a traceback), a web address (a traceback), and a port where something else
    # answers, a web server (it hung, or asked for 3 EiB of memory): each said in one line
    for address, said in (("notaurl", "is not a dask scheduler address"), ("http://127.0.0.1:8787", "web address")):
        with pytest.raises(SystemExit) as stop:
            main(["batch", str(root), "--out", str(fresh), "--scheduler", address])
        assert stop.value.code == 2 and said in capsys.readouterr().err
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # (dask's bytes, logged as a bad request)
            pass

    web = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)  # (a handler waiting on dask's bytes must
    web.daemon_threads = True  # not hold the server's shutdown)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        address = f"tcp://127.0.0.1:{web.server_address[1]}"
        assert main(["batch", str(root), "--out", str(fresh), "--scheduler", address]) == 2
    finally:
        web.shutdown()
    err = capsys.readouterr().err
    assert f"cannot reach the dask scheduler at {address} within 2 s" in err and "Traceback" not in err


def test_a_series_held_by_two_studies_is_named_in_both_rows_and_the_manifest(archive, tmp_path):
    """helper-38: two copies of one series (the same SeriesInstanceUID) were screened as two studies, with no word:
    an archive's figures would count that patient twice. Each is still screened; the repeat is named."""
    import shutil

    from bonescreen.batch import _write_summary, duplicate_studies

    root = tmp_path / "root"
    shutil.copytree(archive / "DOE^JOHN_3", root / "a")
    shutil.copytree(archive / "DOE^JOHN_3", root / "b")  # a copy of the series
    shutil.copytree(archive / "DOE^JOHN_4", root / "c")  # another series
    shutil.copy(archive / "nifti_0" / "ct.nii.gz", root / "x.nii.gz")
    shutil.copy(archive / "nifti_0" / "ct.nii.gz", root / "y.nii.gz")  # the same bytes
    shutil.copy(archive / "nifti_1" / "ct.nii.gz", root / "z.nii.gz")
    studies = find_studies(root)
    keys = {p.relative_to(root).as_posix(): k for k, p in studies.items()}
    repeats = duplicate_studies(studies)
    pairs = {frozenset((k, v)) for k, v in repeats.items()}
    assert pairs == {
        frozenset((keys["a/dicom"], keys["b/dicom"])),
        frozenset((keys["x.nii.gz"], keys["y.nii.gz"])),
    }, (repeats, keys)
    import datetime

    outcomes = [{"study": k, "status": "error", "error": "x"} for k in studies]
    started = datetime.datetime.now(datetime.timezone.utc)
    manifest = _write_summary(tmp_path, studies, outcomes, started, "cpu", None, 1, False, repeats=repeats)
    assert manifest["duplicates"] == dict(sorted(repeats.items()))
    rows = {r["study"]: r for r in csv.DictReader((tmp_path / "summary.csv").open())}
    for key, other in repeats.items():
        assert f"holds the same series as {other}" in rows[key]["input_notes"]


def test_batch_refuses_thresholds_that_no_value_can_meet(tmp_path, capsys):
    """A user trial (helper-28): --osteoporosis-hu nan and --contrast-offset inf screened a whole archive and
    called every level osteoporosis (inf also wrote Infinity into result.json, which strict JSON rejects);
    thresholds out of order were refused after "No GPU ... running on the CPU", without naming the options."""
    (tmp_path / "in").mkdir()
    for bad, said in (
        (["--osteoporosis-hu", "nan"], "expected a finite number"),
        (["--contrast-offset", "inf"], "expected a finite number"),
        (["--hu-offset=-inf"], "--hu-offset: expected a number at least -65536 and at most 65536"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "o"), *bad])
        assert exc.value.code == 2 and said in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--normal-hu", "100"]) == 2
    err = capsys.readouterr().err
    assert "--osteoporosis-hu (110) must be below --normal-hu (100)" in err and "GPU" not in err
    assert not (tmp_path / "o").exists()  # nothing ran
    # helper-38: "No GPU ... running on the CPU" came before "no such folder"; and an empty root was a success
    assert main(["batch", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "GPU" not in err
    assert main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no CT study under the folder" in err and "GPU" not in err
    from bonescreen.errors import BoneScreenError
    from bonescreen.hu import HUThresholds

    with pytest.raises(BoneScreenError, match="contrast_offset_hu"):
        HUThresholds(110.0, 160.0, float("inf"))
    # helper-32: --contrast-offset 1000 (a typo for 10) was accepted and called a 168 HU level osteoporosis
    # (helper-33: the error named the field contrast_offset_hu, which no user typed: it names the option)
    assert main(["screen", str(tmp_path / "in"), "--out", str(tmp_path / "o4"), "--contrast-offset", "1000"]) == 2
    err = capsys.readouterr().err
    assert "--contrast-offset" in err and "contrast_offset_hu" not in err and not (tmp_path / "o4").exists()
    # helper-29: --osteoporosis-hu -5000 was accepted, and no level could then be called osteoporosis
    assert main(["screen", str(tmp_path / "in"), "--out", str(tmp_path / "o3"), "--osteoporosis-hu=-5000"]) == 2
    err = capsys.readouterr().err
    assert "--osteoporosis-hu" in err and "osteoporosis_max" not in err and not (tmp_path / "o3").exists()


def test_summary_says_when_the_bone_status_is_unconfirmed():
    """summary.csv gave the bone status's class alone, so an unconfirmed status (a doubted fracture, level
    names not confirmed), shown as a question in the CLI, napari, Slicer and the report, read as a call."""
    from bonescreen.batch import _row

    def outcome(basis):
        overall = {
            "prediction": "normal",
            "probabilities": None,
            "trabecular_hu": None,
            "hu_category": None,
            "bone_status": {"class": "osteoporosis", "basis": basis},
            "uncertain": True,
            "reasons": [],
        }
        return {"study": "study-1", "status": "done", "result": {"overall": overall, "levels": [{"name": "L1"}]}}

    sure = _row(outcome("vBMD 72 mg/cm3 (ACR QCT categories)"))
    doubted = _row(outcome("vertebral fracture (L2 grade 2 wedge); unconfirmed: the mask is MS-Net's"))
    assert (sure["bone_status"], sure["bone_status_confirmed"]) == ("osteoporosis", 1)
    assert (doubted["bone_status"], doubted["bone_status_confirmed"]) == ("osteoporosis", 0)
    # and what it rests on, caveats included (helper-70: a status on vBMD beside fractures looked for on MS-Net's
    # unchecked mask read "confirmed", the caveat in result.json alone)
    unchecked = "vBMD 97 mg/cm3 (ACR QCT categories); vertebral fractures looked for on MS-Net's mask, not yet checked"
    assert _row(outcome(unchecked))["bone_status_basis"] == unchecked
    # the earlier columns keep their places: new ones come last
    assert list(_row(outcome(unchecked)))[-2:] == ["bone_status_basis", "output_notes"]
    empty = outcome("")
    empty["result"]["overall"]["bone_status"] = None
    none = _row(empty)
    assert none["bone_status"] == "" and none["bone_status_confirmed"] == "" and none["bone_status_basis"] == ""


def test_the_key_secret_is_kept_with_the_output_folder(tmp_path):
    """A new output folder gets a random secret; a folder whose earlier run wrote unkeyed keys keeps them (it
    resumes rather than screening its archive again); a damaged secret is an error naming the file."""
    from bonescreen.batch import KEY_SECRET_FILE, key_secret

    first, new = key_secret(tmp_path / "a")
    assert new and len(first) == 32 and key_secret(tmp_path / "b")[0] != first
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    plain = "study-" + hashlib.sha256(b"a/ct.nii.gz").hexdigest()[:12]
    (legacy / "inputs.csv").write_text(f"study,input\n{plain},a/ct.nii.gz\n")
    assert key_secret(legacy) == (b"", False)
    (legacy / KEY_SECRET_FILE).write_text("not hex\n")
    with pytest.raises(BoneScreenError, match="the study keys' secret cannot be read"):
        key_secret(legacy)
    # a folder whose keys were keyed, its secret deleted: refused, not read with plain hashes (helper-78: a rerun
    # then gave keys that name the folders back, and screened every study again beside the old ones)
    keyed = tmp_path / "keyed"
    keyed.mkdir()
    (keyed / "inputs.csv").write_text("study,input\nstudy-0123456789ab,a/ct.nii.gz\n")
    with pytest.raises(BoneScreenError, match=r"secret \(key_secret\.txt\) is gone from the output folder"):
        key_secret(keyed)


def test_ctrl_c_while_the_workers_start_stops_the_run_in_order(tmp_path):
    """helper-76: Ctrl-C in a batch's first seconds (the workers starting) printed worker tracebacks and an atexit
    error, and left the earlier run's manifest saying "complete"; the stderr claimed summary.csv listed the
    studies. Ctrl-C is sent to the process group, as a terminal does, from the moment the LocalCluster starts:
    exit 130, no traceback, and the manifest says the run was interrupted."""
    import signal
    import threading

    from bonescreen.device import CPU_FALLBACK, resolve_device

    if resolve_device("auto").type != "cpu":
        pytest.skip("the moment the workers start is told by the CPU note, said only where no GPU is")
    root = tmp_path / "in"
    case = make_case(6060, 0, PhantomConfig(thickness=5.0, contrast_probability=0))  # seconds to screen: the
    write_case(case, root / "a", "nifti")  # Ctrl-C lands before it is done
    for extra in ("levels", "body", "spine"):
        (root / "a" / f"{extra}.nii.gz").unlink()
    out = tmp_path / "out"
    out.mkdir()  # an earlier, complete run's files
    earlier = {"bonescreen": "0", "studies": 1, "counts": {"done": 1}, "complete": True, "interrupted": False}
    (out / "manifest.json").write_text(json.dumps(earlier))
    (out / "summary.csv").write_text("study,status\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bonescreen", "batch", str(root), "--out", str(out), "--workers", "1"],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, the workers' too: Ctrl-C reaches them all
        # Ctrl-C as a terminal gives it: a suite run in the background of a shell has SIGINT ignored, and a
        # child would inherit that (the run then went to its end)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []

    def read():
        for line in proc.stderr:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not any(CPU_FALLBACK in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the LocalCluster is starting its worker
    # Ctrl-C pressed again and again, from the workers' start (ignored then) on, as an impatient user does
    while proc.poll() is None and time.monotonic() < deadline and not any("stopped" in line for line in lines):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.5)
    code = proc.wait(timeout=120)
    reader.join(timeout=10)
    err = "".join(lines)
    assert code == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["interrupted"] and not manifest["complete"], manifest


def test_a_study_screened_without_a_result_is_said_to_be_and_the_batch_exits_1(tmp_path, capsys):
    """helper-111: a CT without the lumbar spine was "done" in summary.csv and the batch exited 0, where `screen` exits
    1 on it ("no lumbar level found"): a script checking the exit code took no result for a result. Real MS-Net on a
    phantom whose bone is soft tissue; a study with a result beside it."""
    import nibabel as nib
    import numpy as np

    from bonescreen.batch import NO_RESULT

    case = make_case(6063, 0, PhantomConfig(thickness=5.0, contrast_probability=0))
    root = tmp_path / "in"
    write_case(case, root / "spine", "nifti")
    img = nib.load(root / "spine" / "ct.nii.gz")
    hu = np.asarray(img.dataobj).copy()
    hu[hu > 150] = 40  # no bone at all: nothing for MS-Net to mark
    (root / "soft").mkdir()
    nib.save(nib.Nifti1Image(hu, img.affine, img.header), root / "soft" / "ct.nii.gz")
    for extra in ("levels", "body", "spine"):
        (root / "spine" / f"{extra}.nii.gz").unlink()
    out = tmp_path / "out"
    code = main(["batch", str(root), "--out", str(out), "--workers", "1", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 1
    with open(out / "summary.csv") as f:
        rows = {r["study"]: r for r in csv.DictReader(f)}
    manifest = json.loads((out / "manifest.json").read_text())
    empty = [k for k, r in rows.items() if r["status"] == NO_RESULT]
    assert len(rows) == 2 and len(empty) == 1 and manifest["no_result"] == empty
    assert rows[empty[0]]["bone_status_basis"] == f"{NO_RESULT}: no lumbar level found"
    assert [r["status"] for k, r in rows.items() if k not in empty] == ["done"]
    assert not manifest["succeeded"] and manifest["complete"] and manifest["counts"]["error"] == 0
    assert manifest["counts"]["no_result"] == 1  # (helper-114; helper-116: the count is not of those done before)
    assert "2 screened, 0 already done, 0 failed; 1 of those screened, now or before, without a result (" in printed
    assert f"no result: {empty[0]}" in printed
    # a rerun skips both (nothing changed) and says the same
    assert main(["batch", str(root), "--out", str(out), "--workers", "1", "--device", "cpu"]) == 1
    with open(out / "summary.csv") as f:
        assert [r["status"] for r in csv.DictReader(f) if r["study"] in empty] == [NO_RESULT]


def test_a_stopped_run_names_every_study_it_did_not_reach(tmp_path):
    """helper-111: a rerun stopped early wrote a summary.csv of the 2 studies it finished, where the one before had 8;
    the 6 not reached (one of them failed before) were named in neither summary.csv nor manifest.json."""
    import datetime as dt
    from pathlib import Path

    from bonescreen.batch import NOT_TRIED, _write_summary

    studies = {k: Path(f"/in/{k}") for k in ("study-a", "study-b", "study-c")}
    outcomes = [{"study": "study-b", "status": "error", "error": "not a CT"}]
    started = dt.datetime.now(dt.timezone.utc)
    manifest = _write_summary(tmp_path, studies, outcomes, started, "cpu", None, 1, True)
    with open(tmp_path / "summary.csv") as f:
        rows = {r["study"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["study-a", "study-b", "study-c"]
    assert rows["study-b"]["status"] == "error"
    assert [rows[k]["status"] for k in ("study-a", "study-c")] == [NOT_TRIED, NOT_TRIED]
    assert "stopped before it reached" in rows["study-a"]["error"]
    assert manifest["not_tried"] == ["study-a", "study-c"] and manifest["interrupted"] and not manifest["complete"]
    assert manifest["workers"] == 1
