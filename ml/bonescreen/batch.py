"""``bonescreen batch``: screen every CT series under a folder as Dask tasks on dask.distributed.

- Studies: every NIfTI file but label maps (stored as uint8: no room for HU; or named as the labelled layouts
  name them: ``*_msk.nii.gz``, ``labelsTr/``, ``segmentations/``), and every folder that
  directly holds DICOM files (or files named as DICOM, so that a folder of damaged files is reported,
  not passed over); a folder study reads only the files directly in it, so a series in a subfolder is
  its own study. The output folder, when inside the input root, is not searched, nor any folder BoneScreen
  wrote (an earlier run's output: :func:`is_bonescreen_output`).
- Keys: ``study-`` + the first 12 hex digits of the HMAC-SHA-256 of the study's path relative to the input
  root under a random secret kept in the output folder (``key_secret.txt``). Keys and output folder names never
  carry names or IDs, nor can they be turned back into them without the secret; ``inputs.csv`` maps keys back to
  the input paths (which may carry identifiers: keep it, and the secret, where the data are).
- One screener per worker process, loaded on its first study (:func:`worker_screener`).
- Each study's outputs are written into a temporary folder and renamed into place when complete;
  a rerun skips studies whose folder holds ``result.json`` and whose input is unchanged since
  (``input_fingerprint.txt``: the names, sizes and modification times of the study's files); a study
  whose input changed is screened again.
- A failing study is recorded with its error; the batch goes on. Temporary folders of studies cut off
  by a stop are removed when the run ends and when the next run starts.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import __version__
from .atomic import atomic_path, lock_output_folder, write_text_atomic
from .console_bar import progress_bar
from .errors import BoneScreenError
from .hu import HUThresholds
from .io.dicom import DICOM_NAME_SUFFIXES, is_dicom_file, read_quietly
from .io.folders import CANNOT_BE_READ, walk_folders
from .io.identifiers import system_reason
from .io.nifti import is_nifti_path, sidecar_path
from .labels import CLASS_NAMES
from .messages import no_result, status_confirmed
from .output_folder import FINGERPRINT_FILE, check_output_folder
from .threads import usable_cores

#: summary.csv's status of a study screened whose outputs hold no result (:func:`bonescreen.messages.no_result`).
NO_RESULT = "no result"
#: summary.csv's status of a study that a stopped run did not reach.
NOT_TRIED = "not tried"

SUMMARY_COLUMNS = [
    "study",
    "status",
    "levels",
    "prediction",
    *(f"p_{c}" for c in CLASS_NAMES),
    "trabecular_hu",
    "hu_category",
    "vbmd_mg_cm3",
    "acr_category",
    "fractured_levels",
    "bone_status",
    "bone_status_confirmed",
    "uncertain",
    "reasons",
    "error",
    "input_notes",
    "bone_status_basis",
    "output_notes",
]


def find_studies(
    root: str | os.PathLike, exclude: str | os.PathLike | None = None, secret: bytes = b""
) -> dict[str, Path]:
    """Every CT series under ``root``: key (:func:`study_key` under ``secret``) -> path (NIfTI file, or folder
    directly holding DICOM files or files named as DICOM); ``exclude`` (the output folder) and hidden folders are
    not searched. A folder that cannot be read (no permission) is a study too, which fails by name, so that nothing
    is passed over without a word (helper-92: it was, and the batch "succeeded")."""
    root = Path(root)
    skip = Path(exclude).resolve() if exclude is not None else None
    found: dict[str, Path] = {}
    skipped: list[tuple[Path, str]] = []
    # linked study folders are followed (until 2026-12-06 a folder of links to studies was a batch of none)
    walk = walk_folders(root, keep=lambda d: d.resolve() != skip and not is_bonescreen_output(d), skipped=skipped)
    for here, _, files in walk:
        dicom_here = False
        for name in files:
            path = here / name
            if name.startswith(".") or name.upper() == "DICOMDIR":  # a disc's index: its series are read where
                continue  # they lie (helper-94: the DICOMDIR's folder failed as a study)
            if is_nifti_path(path):
                if not _is_label_nifti(path):
                    found[study_key(root, path, secret)] = path
            elif not dicom_here and (name.lower().endswith(DICOM_NAME_SUFFIXES) or is_dicom_file(path)):
                dicom_here = True
        if dicom_here:
            found[study_key(root, here, secret)] = here
    for path, why in skipped:  # what cannot be read may be a study: it fails by name (helper-94: pipes vanished)
        if why.startswith(CANNOT_BE_READ) and path.is_dir():
            found[study_key(root, path, secret)] = path
        elif is_nifti_path(path) or path.name.lower().endswith(DICOM_NAME_SUFFIXES):  # a pipe named as CT
            study = path if is_nifti_path(path) else path.parent
            found.setdefault(study_key(root, study, secret), study)
    return dict(sorted(found.items()))


def is_bonescreen_output(folder: Path) -> bool:
    """True for a folder BoneScreen wrote: a study's results (result.json) or a batch's (manifest.json and
    summary.csv). An earlier run's output inside the input root is not screened as a study (helper-38: its
    seg.dcm and sr.dcm failed as "no CT images in the folder")."""
    return _is_our_json(folder / "result.json", RESULT_KEYS) or (
        _is_our_json(folder / "manifest.json", MANIFEST_KEYS) and (folder / "summary.csv").is_file()
    )


#: Keys every result.json and batch manifest.json of BoneScreen's holds.
RESULT_KEYS = ("schema_version", "levels", "overall")
MANIFEST_KEYS = ("bonescreen", "studies", "counts")


def _is_our_json(path: Path, keys: tuple[str, ...]) -> bool:
    """Whether ``path`` is a JSON object holding ``keys``: one BoneScreen wrote (helper-76: a folder holding a
    user's own result.json was passed over as BoneScreen's output, with its series, and nothing said)."""
    if not path.is_file():
        return False
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and all(k in content for k in keys)


#: What a batch writes at the top of its output folder.
BATCH_FILES = ("summary.csv", "inputs.csv", "manifest.json")


def check_batch_output(out: Path) -> None:
    """Refuse an output folder holding a summary.csv, inputs.csv or manifest.json that BoneScreen did not write
    (helper-76: a user's own files of those names were replaced without a word).

    Raises
    ------
    BoneScreenError
        Naming the file.
    """
    ours = _is_our_json(out / "manifest.json", MANIFEST_KEYS) or (out / KEY_SECRET_FILE).is_file()
    if not ours and (out / "inputs.csv").is_file():  # a run stopped before its manifest was written
        try:
            with open(out / "inputs.csv", encoding="utf-8", errors="surrogateescape") as f:
                ours = f.readline().startswith("study,input (relative to the input root")
        except (OSError, UnicodeDecodeError):
            ours = False
    if ours:
        return
    for name in BATCH_FILES:
        if (out / name).exists():
            raise BoneScreenError(
                f"the output folder holds {'an' if name[0] in 'aeiou' else 'a'} {name} that BoneScreen did not "
                "write: a batch would replace it; "
                "choose another --out",
                out / name,
            )


def _series_identity(path: Path) -> str | None:
    """What makes two studies the same series: the SeriesInstanceUID of a DICOM folder's first readable file,
    or the SHA-256 of a NIfTI file (with its size, so that only files of one size are ever hashed); None when
    unreadable (the screening says why)."""
    try:
        if path.is_dir():
            for f in sorted(path.iterdir()):
                if f.is_file() and is_dicom_file(f):
                    try:
                        # (a damaged value's warning would quote its bytes)
                        uid = read_quietly(f, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
                        series = str(uid.get("SeriesInstanceUID", "") or "")
                    except Exception:
                        continue
                    return f"uid {series}" if series else None  # no UID: nothing to compare
            return None
        return f"nifti {path.stat().st_size}"
    except OSError:
        return None


def duplicate_studies(studies: dict[str, Path]) -> dict[str, str]:
    """Studies that hold a series another study holds too: key -> the first such study's key.

    DICOM folders with the same SeriesInstanceUID (a copy, or one series split over folders), NIfTI files with
    the same bytes. Each is still screened; summary.csv says which it repeats, so that a count of patients or
    a statistic over the archive does not take one series twice (helper-38: two copies were screened with no
    word).
    """
    from .checkpoint import file_sha256

    identities = {key: _series_identity(path) for key, path in studies.items()}
    sizes = Counter(v for v in identities.values() if v and v.startswith("nifti "))
    for key, identity in identities.items():
        if identity and identity.startswith("nifti ") and sizes[identity] > 1:  # one size: compare the bytes
            identities[key] = f"{identity} {file_sha256(studies[key])}"
    first: dict[str, str] = {}
    same: dict[str, str] = {}
    for key, identity in identities.items():
        if identity is None:
            continue
        if identity in first:
            same[key] = first[identity]
        else:
            first[identity] = key
    return same


#: Folders whose NIfTI files are label maps in the layouts BoneScreen reads (nnU-Net raw, TotalSegmentator).
LABEL_FOLDERS = frozenset({"labelsTr", "labelsTs", "segmentations"})


def _is_label_nifti(path: Path) -> bool:
    """True for a NIfTI stored as unsigned 8-bit or bool (a label map, never CT in HU: from the header alone), or
    named as a label map by the layouts BoneScreen reads (:mod:`bonescreen.data.labelled`): BIDS's and VerSe's
    ``*_msk.nii.gz``, nnU-Net's ``labelsTr/``, TotalSegmentator's ``segmentations/`` (an int16 or float map there
    was a study that failed as "it looks like a label map")."""
    import nibabel as nib
    import numpy as np

    stem = path.name.lower().removesuffix(".gz").removesuffix(".nii")
    if stem.endswith("_msk") or path.parent.name in LABEL_FOLDERS:
        return True

    try:
        dtype = nib.load(path).get_data_dtype()
    except Exception:
        return False  # unreadable: let the screening report it
    return np.dtype(dtype).kind in "ub" and np.dtype(dtype).itemsize == 1


def input_fingerprint(path: str | os.PathLike) -> str:
    """What a study reads, summed up: SHA-256 of the names, sizes and modification times of a NIfTI file
    (with its JSON sidecar) or of the files directly in a DICOM folder; it changes when a file is added,
    removed, replaced or rewritten."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        sidecar = sidecar_path(path)
        files = [path, *([sidecar] if sidecar.is_file() else [])]
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        # os.fsencode: a name that is not UTF-8 keeps its bytes (helper-94: a traceback, no summary written)
        h.update(os.fsencode(p.name) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def study_fingerprint(path: str | os.PathLike, options: StudyOptions, models_print: str = "") -> str:
    """What a finished study's result was made from: its input files, the options and the weights."""
    return input_fingerprint(path) + options.fingerprint() + models_print


def _unchanged(final: Path, fingerprint: str) -> bool:
    """A finished study whose input is as it was (outputs of runs before fingerprints count as finished)."""
    if not (final / "result.json").is_file():
        return False
    stored = final / FINGERPRINT_FILE
    return not stored.is_file() or stored.read_text().strip() == fingerprint


def models_fingerprint(models: dict) -> str:
    """The part of a study's fingerprint that names the weights (``Screener.models()``: names, SHA-256s and
    BCC-Net's temperature): results of other weights are screened again (helper-38: a rerun with new
    BCC-Net weights kept the old results and the manifest named the old weights)."""
    return " models " + hashlib.sha256(json.dumps(models, sort_keys=True).encode()).hexdigest()[:16]


def study_key(root: Path, path: Path, secret: bytes = b"") -> str:
    """A key that identifies the study without naming it: ``study-`` and 12 hex digits of the HMAC-SHA-256 of its
    path relative to ``root`` under the batch's ``secret`` (:func:`key_secret`). Without a secret (an output folder
    of a run before keys were keyed) the plain SHA-256, which can be turned back into a short folder name by trying
    every one (helper-76 recovered a 7-digit folder name, a medical record number, in 4 s)."""
    import hmac

    # os.fsencode: a folder name that is not UTF-8 (Latin-1 from an old CD) holds surrogates (helper-92: a traceback)
    rel = os.fsencode(path.relative_to(root).as_posix() or ".")
    digest = hmac.new(secret, rel, hashlib.sha256).hexdigest() if secret else hashlib.sha256(rel).hexdigest()
    return "study-" + digest[:12]


#: The batch's key secret (hex), in its output folder beside inputs.csv; both stay with the data.
KEY_SECRET_FILE = "key_secret.txt"


def key_secret(out: Path) -> tuple[bytes, bool]:
    """The secret the study keys of output folder ``out`` are made with, and whether it is new (to be written).

    An output folder keeps its secret (:data:`KEY_SECRET_FILE`), so that a rerun finds its studies; one that an
    earlier run wrote without a secret (its inputs.csv's keys are the plain hashes of its paths) keeps unkeyed keys
    (it resumes); a new one gets 32 random bytes.

    Raises
    ------
    BoneScreenError
        If the secret cannot be read, or is gone from a folder whose keys were made with one (helper-78: a rerun
        then fell back to plain hashes, which give back folder names, and screened every study again).
    """
    import secrets

    stored = out / KEY_SECRET_FILE
    lost = "restore it from a backup, or screen into a new output folder"
    if stored.is_file():
        try:
            return bytes.fromhex(stored.read_text(encoding="utf-8").strip()), False
        except (OSError, ValueError):
            raise BoneScreenError(f"the study keys' secret cannot be read: {lost}", stored) from None
    listed = out / "inputs.csv"
    if listed.is_file():
        try:
            with open(listed, newline="", encoding="utf-8", errors="surrogateescape") as f:
                rows = list(csv.reader(f))[1:]
        except (OSError, UnicodeDecodeError, csv.Error):
            rows = []
        if rows and all(len(r) >= 2 and r[0] == study_key(Path("."), Path(r[1])) for r in rows):
            return b"", False  # an output folder of a run before keys were keyed: it resumes
        raise BoneScreenError(f"the study keys' secret ({KEY_SECRET_FILE}) is gone from the output folder: {lost}", out)
    return secrets.token_bytes(32), True


@dataclass(frozen=True)
class StudyOptions:
    """What every study of a batch is read and measured with, as ``bonescreen screen`` takes them.

    ``hu_offset`` and ``orientation`` as :func:`~bonescreen.io.load_ct` takes them (stored values
    without their rescale; axis codes of a NIfTI without qform/sform); ``thresholds`` the HU cut-offs.
    Results screened with other options are screened again (:meth:`fingerprint`).
    """

    thresholds: HUThresholds = HUThresholds()
    hu_offset: float | None = None
    orientation: str | None = None

    def as_dict(self) -> dict:
        """Plain dict, for manifest.json."""
        return {
            "hu_thresholds": self.thresholds.as_dict(),
            "hu_offset": self.hu_offset,
            "orientation": self.orientation,
        }

    def fingerprint(self) -> str:
        """'' for the defaults (so results of batches before these options still count), else a digest."""
        if self == StudyOptions():
            return ""
        return " options " + hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


@lru_cache(maxsize=2)
def worker_screener(
    seg_weights: str | None,
    cls_weights: str | None,
    device: str,
    settings=None,
    thresholds: HUThresholds = HUThresholds(),
):
    """The screener of this worker process: the models load once per worker, not once per study.

    The worker process is BoneScreen's own, so its host memory settings are tuned
    (:func:`~bonescreen.allocator.tune_host_memory`).
    """
    from .allocator import tune_host_memory
    from .pipeline import Screener
    from .pipeline.inference import InferenceSettings

    tune_host_memory()
    return Screener(seg_weights, cls_weights, device, thresholds, settings=settings or InferenceSettings())


def screen_study(
    key: str,
    path: str,
    out: str,
    seg_weights: str | None,
    cls_weights: str | None,
    device: str,
    settings=None,
    options: StudyOptions = StudyOptions(),
    models_fingerprint: str = "",
) -> dict:
    """Screen one study into ``out/key`` (written under a temporary name first); never raises.

    ``settings`` is the :class:`~bonescreen.pipeline.inference.InferenceSettings` (the default when None);
    ``options`` how the study is read and measured; ``models_fingerprint`` the weights'
    (:func:`models_fingerprint`): a study screened before with other weights is screened again. An earlier
    run's folder is copied under the temporary name first, so that the new run treats it as ``screen`` treats
    its output folder: a levels.nii.gz the user corrected there is kept under a new name, with a note, and
    files BoneScreen did not write stay.
    """
    from .screen import screen_file

    final = Path(out) / key
    try:
        fingerprint = study_fingerprint(path, options, models_fingerprint)
    except OSError as exc:
        return {"study": key, "status": "error", "error": f"<input>: cannot be read ({exc.strerror or exc})"}
    if _unchanged(final, fingerprint):
        return {"study": key, "status": "skipped", "result": json.loads((final / "result.json").read_text())}
    tmp = Path(out) / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
    t0 = time.perf_counter()
    before: dict[str, tuple[int, int]] = {}
    try:
        if final.is_dir():  # (helper-38: a corrected levels.nii.gz and a user's own file were lost on a rerun)
            before = _file_states(final)  # what the copy holds: a file saved there meanwhile is kept below
            shutil.copytree(final, tmp, ignore=shutil.ignore_patterns(FINGERPRINT_FILE, LAST_ERROR_FILE))
        # result.json must not carry the input path (it may hold names): it names the study by its key
        screener = worker_screener(seg_weights, cls_weights, device, settings, options.thresholds)
        # a folder study is the files directly in it: its subfolders are studies of their own
        result = screen_file(
            path,
            tmp,
            screener=screener,
            input_name=key,
            out_name=final,  # the notes name the study's folder, not the temporary one the run writes
            recursive=False,
            hu_offset=options.hu_offset,
            # axis codes are a NIfTI's (a DICOM series carries its own orientation): an archive may hold both
            orientation=options.orientation if is_nifti_path(Path(path)) else None,
        )
        # an output not written (a full disk) leaves the study unfinished: tried again next time (helper-97: it was
        # "done", and a rerun on a freed disk never wrote the missing files)
        failed_outputs = result.get("output_errors") or {}
        (tmp / FINGERPRINT_FILE).write_text(("failed" if failed_outputs else fingerprint) + "\n")
        if final.is_dir() and (kept := _keep_saved_meanwhile(final, before, tmp)):
            result["output_notes"] = [*(result.get("output_notes") or []), *kept]
            write_text_atomic(tmp / "result.json", json.dumps(result, indent=2) + "\n")
        # the earlier folder is set aside, not deleted, until the new one is in place: a worker killed between the
        # two steps left only the temporary folder, which the next run deletes (helper-76, from the code)
        old = Path(out) / f".{key}.{uuid.uuid4().hex[:8]}{SET_ASIDE_SUFFIX}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        if failed_outputs:
            error = "outputs not written: " + "; ".join(f"{name}: {why}" for name, why in failed_outputs.items())
            return {"study": key, "status": "error", "error": error[:500], "seconds": time.perf_counter() - t0}
        return {"study": key, "status": "done", "result": result, "seconds": time.perf_counter() - t0}
    except (BoneScreenError, OSError) as exc:  # the study's input, or its files
        error = _study_error(exc, path)
    except Exception as exc:  # a bug met on this study: recorded as one, and the other studies go on
        error = f"internal error (a bug, please report it): {type(exc).__name__}: {exc}".replace(str(path), "<input>")[
            :500
        ]
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        _mark_stale(final, error)
    except OSError as exc:  # a full disk (helper-97: this raised through dask, and the batch ended with a traceback)
        error = f"{error}; and its folder's earlier results could not be marked stale ({system_reason(exc)})"[:500]
    return {"study": key, "status": "error", "error": error, "seconds": time.perf_counter() - t0}


def _file_states(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time (ns) of each file in ``folder`` and its subfolders, by relative path."""
    states = {}
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                st = path.stat()
                states[path.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
        except OSError:
            continue
    return states


def _keep_saved_meanwhile(final: Path, before: dict[str, tuple[int, int]], new: Path) -> list[str]:
    """Copy the files saved into a study's folder while it was screened again (``before``: their states when it was
    copied) into its new folder ``new`` under kept names, as :func:`~bonescreen.screen.clear_earlier_run` keeps them;
    notes naming them (helper-97: a levels.nii.gz the user corrected in napari meanwhile was deleted with the old
    folder)."""
    from .screen import kept_name

    notes = []
    for name, state in sorted(_file_states(final).items()):
        if name in (FINGERPRINT_FILE, LAST_ERROR_FILE) or before.get(name) == state:
            continue
        target = kept_name(new / name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(final / name, target)
        notes.append(f"{name} was saved into the study's folder while it was screened again: kept as {target.name}")
    return notes


def _study_error(exc: BaseException, path: str) -> str:
    """A failed study's error as summary.csv gives it (500 characters at most): its input named ``<input>``, also
    where the reader wrote the patient's name as ``[patient]`` in the path (helper-78: the error then began
    "phi3/[patient]_[patient]_19840302:"), and, where no header named the patient, no file of the study named
    (helper-78: a damaged file named after the patient was named in full; inputs.csv maps the key to the files)."""
    text = str(exc).replace(str(path), "<input>")
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        # copytree's list of (source, destination, why) (helper-97: last_error.txt held the raw list)
        first = exc.args[0][0]
        why = first[2] if isinstance(first, tuple) and len(first) == 3 else first
        text = f"cannot copy the study's earlier results ({len(exc.args[0])} file(s); the first: {why})"
    if isinstance(exc, BoneScreenError) and exc.path is not None:
        given, said = Path(path).parts, Path(exc.path).parts
        # the same path component by component, but for words the redaction replaced
        same = len(said) >= len(given) and all(
            a == b or "[patient]" in b for a, b in zip(given, said[: len(given)], strict=True)
        )
        if same:
            text = "/".join(["<input>", *said[len(given) :]]) + ": " + exc.problem
        if not getattr(exc, "identifiers_read", True):
            folder = Path(path) if Path(path).is_dir() else Path(path).parent
            try:
                names = sorted((p.name for p in folder.iterdir()), key=len, reverse=True)
            except OSError:
                names = []
            for name in names:
                text = text.replace(name, "<file>")
    return text[:500]


#: Written into a study's folder whose last run failed while results of an earlier run are there.
LAST_ERROR_FILE = "last_error.txt"


def _mark_stale(final: Path, error: str | None) -> None:
    """A study folder holding an earlier run's results says that the last run failed, and why (``error``), or,
    with ``error`` None, that the last run was stopped before it screened the study again.

    Its files were made from other inputs or options (else the study would have been skipped): they are
    kept (the user may want them) but no longer pass for the current result, and the next run tries again.
    """
    if not (final / "result.json").is_file():
        return
    # not a fingerprint: the next run tries again; first, so that a full disk cannot leave the earlier one in force
    write_text_atomic(final / FINGERPRINT_FILE, "failed\n")
    when = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    what = f"failed: {error}" if error is not None else "was stopped before it screened this study again"
    write_text_atomic(
        final / LAST_ERROR_FILE,
        f"The last run ({when}) of this study {what}\n"
        "The other files here are from an earlier run, made from other inputs, options or weights.\n",
    )


#: The name ending of a study's earlier folder while its new one moves into place.
SET_ASIDE_SUFFIX = ".old"


def remove_temporaries(out: Path) -> int:
    """Delete the temporary folders of studies that were interrupted (a stopped batch, a killed worker); an
    earlier folder set aside for a new one that never moved in is put back (it may hold the user's files)."""
    for old in sorted(out.glob(f".study-*{SET_ASIDE_SUFFIX}")):
        final = out / old.name[1:].split(".")[0]
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, final)
    stale = list(out.glob(".study-*.tmp"))
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return len(stale)


def _row(outcome: dict) -> dict:
    row = dict.fromkeys(SUMMARY_COLUMNS, "")
    row["study"], row["status"] = outcome["study"], outcome["status"]
    if outcome["status"] == "error":
        row["error"] = outcome["error"]
        return row
    r = outcome["result"]
    o = r["overall"]
    row["levels"] = " ".join(lv["name"] for lv in r["levels"])
    row["prediction"] = o["prediction"] or ""
    for c in CLASS_NAMES:
        row[f"p_{c}"] = "" if o["probabilities"] is None else o["probabilities"][c]
    row["trabecular_hu"] = "" if o["trabecular_hu"] is None else o["trabecular_hu"]
    row["hu_category"] = o["hu_category"] or ""
    row["vbmd_mg_cm3"] = "" if o.get("vbmd_mg_cm3") is None else o["vbmd_mg_cm3"]
    row["acr_category"] = o.get("acr_category") or ""
    row["fractured_levels"] = " ".join(
        f"{lv['name']}:{lv['fracture']['genant_grade']}"
        for lv in r["levels"]
        if (lv.get("fracture") or {}).get("genant_grade")
    )
    status = o.get("bone_status")
    row["bone_status"] = status["class"] if status else ""
    # 0 where the status is a question, as every front end shows it (a doubted fracture, names not confirmed)
    row["bone_status_confirmed"] = int(status_confirmed(status)) if status else ""
    # what the status rests on, with its caveats (helper-70: a status on vBMD read "confirmed" with nothing beside
    # it to say that the fractures were looked for on MS-Net's unchecked mask); last, so no column moves
    withheld = o.get("bone_status_withheld")
    row["bone_status_basis"] = status["basis"] if status else f"withheld: {withheld}" if withheld else ""
    if why := no_result(r):  # written, but no result, as `screen` exits 1 for it (helper-111: "done", exit 0)
        row["status"] = NO_RESULT
        row["bone_status_basis"] = row["bone_status_basis"] or f"{NO_RESULT}: {why}"  # a withheld status says why
    row["uncertain"] = int(bool(o["uncertain"]))
    row["reasons"] = "; ".join(o["reasons"])
    row["input_notes"] = "; ".join(r.get("input_notes") or [])
    # what writing the study's folder did, such as a corrected levels.nii.gz set aside (helper-76: said only in
    # result.json); the last column, so that none moves
    row["output_notes"] = "; ".join(r.get("output_notes") or [])
    return row


#: Seconds to wait for a dask scheduler given with ``--scheduler``.
_SCHEDULER_TIMEOUT_S = 30


def run_batch(
    root: str | os.PathLike,
    out: str | os.PathLike,
    scheduler: str | None = None,
    workers: int | None = None,
    device: str = "auto",
    seg_weights: str | None = None,
    cls_weights: str | None = None,
    progress: bool = True,
    limit: int | None = None,
    settings=None,
    options: StudyOptions = StudyOptions(),
    device_note: str | Callable[[], str | None] | None = None,
) -> dict:
    """Screen every study under ``root`` on a Dask cluster; write ``summary.csv``, ``manifest.json``, ``inputs.csv``.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running dask.distributed scheduler; a LocalCluster when None.
    workers : int, optional
        LocalCluster worker processes (default: one per GPU, else one per 2 cores).
    limit : int, optional
        Stop after this many studies are finished in this run (to test interrupted runs).
    settings : InferenceSettings, optional
        Precision, batch size, compilation of the workers' networks (the defaults when None).
    options : StudyOptions
        How every study is read (HU offset, NIfTI orientation) and measured (HU thresholds); a study
        screened before with other options is screened again.
    device_note : str or callable, optional
        Said on stderr once the input, the output folder and the weights are checked (no GPU: the CPU runs it); a
        callable gives it then (the command line's: torch is not imported before the folder's lock is taken).
    """
    root, out = Path(root), Path(out)
    if not root.exists():
        raise BoneScreenError("no such folder", root)
    if not root.is_dir():
        raise BoneScreenError("the input root must be a folder (screen one file with `bonescreen screen`)", root)
    check_output_folder(out)
    check_batch_output(out)
    # the folder's lock first: another run writing there refuses this one before the weights and the workers load
    # (helper-100: 4-11 s); a folder not there yet is locked once made, below
    lock: int | None = lock_output_folder(out) if out.is_dir() else None  # held to the end (helper-92)
    try:
        secret, new_secret = key_secret(out)
        studies = find_studies(root, exclude=out, secret=secret)
        repeats = duplicate_studies(studies)
        if not studies:  # (helper-38: "0 studies", a success)
            raise BoneScreenError(
                "no CT study under the folder (a NIfTI file that is not a label map, or a folder holding DICOM files)",
                root,
            )
        # the weights are read here once: a bad path or file is one error before any study (helper-38: each study
        # failed on its own, or a rerun skipped them all), and their digest is part of every study's fingerprint
        from .pipeline import Screener

        models = Screener(seg_weights, cls_weights, "cpu").models()
        weights = models_fingerprint(models)
        if note := device_note() if callable(device_note) else device_note:
            print(f"bonescreen: {note}", file=sys.stderr)
        import distributed  # noqa: F401  (its import sets its loggers' levels: told after it)

        if logging.getLogger().getEffectiveLevel() > logging.INFO:  # dask.distributed logs at INFO unless told
            logging.getLogger("distributed").setLevel(logging.WARNING)
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise
    started = _dt.datetime.now(_dt.timezone.utc)
    try:
        client = cluster = None
        outcomes: list[dict] = []
        n_workers = 0
        interrupted = False
        try:
            # the workers start with Ctrl-C ignored: it reaches this process only (helper-76 got worker tracebacks and
            # an atexit error from a Ctrl-C 4 s in)
            with _sigint_held():
                client, cluster = _connect(scheduler, workers)
            if lock is None:
                out.mkdir(parents=True, exist_ok=True)
                lock = lock_output_folder(out)
            if new_secret:  # readable by its owner alone: with it, the keys give back the folder names
                write_text_atomic(out / KEY_SECRET_FILE, secret.hex() + "\n")
                os.chmod(out / KEY_SECRET_FILE, 0o600)
            remove_temporaries(out)
            with (
                atomic_path(out / "inputs.csv") as tmp,
                open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as f,
            ):
                w = csv.writer(f)
                w.writerow(["study", "input (relative to the input root; may carry identifiers)"])
                for key, path in studies.items():
                    w.writerow([key, path.relative_to(root).as_posix()])
            futures = [
                client.submit(
                    screen_study,
                    key,
                    str(path),
                    str(out),
                    seg_weights,
                    cls_weights,
                    device,
                    settings,
                    options,
                    weights,
                    key=f"screen-{key}",
                    pure=False,
                )
                for key, path in studies.items()
            ]
            bar = None
            if progress:
                bar = progress_bar("studies", len(futures), unit="study")
            try:
                _collect(futures, outcomes, bar, limit)
            except KeyboardInterrupt:
                # keep what finished: the summary below lists it, and the next run skips it
                interrupted = True
                with _sigint_held():
                    try:  # the workers that ran (helper-111: a stopped run's manifest said 0)
                        n_workers = len(client.scheduler_info().get("workers", {}))
                    except Exception:  # the scheduler already gone: not known
                        pass
                    _quiet_dask(client)
                    for f in futures:
                        f.cancel()
            if bar is not None:
                bar.close()
            if not interrupted:
                n_workers = len(client.scheduler_info().get("workers", {}))
        except KeyboardInterrupt:  # before the studies were sent (the workers starting, inputs.csv being written)
            interrupted = True
            _quiet_dask()
        finally:
            with _sigint_held():  # a second Ctrl-C does not cut the closing short (dask then fails at exit)
                if client is not None:
                    client.close()
                if cluster is not None:
                    cluster.close()
                if lock is not None and out.is_dir():  # (another run's temporaries are not this one's to remove)
                    remove_temporaries(out)  # studies cut off when the run stopped
        if interrupted and not out.is_dir():  # stopped before anything was written
            raise KeyboardInterrupt
        if interrupted:  # summary.csv and manifest.json say so (helper-76: an earlier run's "complete" was left)
            outcomes += finished_on_disk(studies, out, {o["study"] for o in outcomes}, options, weights, started)
        manifest = _write_summary(
            out, studies, outcomes, started, device, scheduler, n_workers, interrupted, options, models, repeats
        )
        if interrupted:
            raise KeyboardInterrupt
        return manifest
    finally:
        if lock is not None:
            os.close(lock)


@contextmanager
def _sigint_held():
    """Ignore Ctrl-C (SIGINT) while the block runs: processes started meanwhile (dask's worker processes) inherit
    the signal ignored, and Python keeps it so in them, so that a Ctrl-C later reaches this process only, which
    stops the run in order (helper-76: a Ctrl-C while the workers started printed their tracebacks and an atexit
    error). A Ctrl-C pressed during the block (the few seconds the workers take to start) is lost: the next one
    stops the run. Elsewhere than on the main thread, the block runs as it is."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _client_of(scheduler: str):
    """A dask client of the scheduler at ``scheduler``, connected on a thread of its own so that an address where
    something else answers (a web server, a dashboard's port) cannot hang the run: helper-78 waited 120 s for
    nothing, or met a traceback asking for 3 EiB of memory.

    Raises
    ------
    BoneScreenError
        If no dask scheduler answers there within :data:`_SCHEDULER_TIMEOUT_S` (and 15 s more).
    """
    import threading

    from dask.distributed import Client

    got: dict = {}

    def connect() -> None:
        try:
            got["client"] = Client(scheduler, timeout=_SCHEDULER_TIMEOUT_S)
        except BaseException as exc:  # said below, in the caller's thread
            got["error"] = exc

    thread = threading.Thread(target=connect, name="bonescreen-scheduler", daemon=True)
    thread.start()
    thread.join(_SCHEDULER_TIMEOUT_S + 15)
    if "client" in got:
        return got["client"]
    why = "no answer" if thread.is_alive() else f"{type(got['error']).__name__}: {got['error']}"
    raise BoneScreenError(
        f"cannot reach the dask scheduler at {scheduler} within {_SCHEDULER_TIMEOUT_S} s ({why[:200]}): is it "
        "running, and is the address its scheduler's (tcp://HOST:PORT, port 8786 by default, not the dashboard's)?"
    )


def _connect(scheduler: str | None, workers: int | None):
    """A dask client of the scheduler at ``scheduler`` (:func:`_client_of`), or of a new LocalCluster of ``workers``
    processes (one per GPU, else one per 2 cores); returns (client, cluster or None).
    """
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return _client_of(scheduler), None
    import torch

    cores = usable_cores()
    n = workers or (torch.cuda.device_count() or max(1, cores // 2))
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"OMP_NUM_THREADS": str(max(1, cores // n))},
    )
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


def finished_on_disk(
    studies: dict[str, Path],
    out: Path,
    collected: set[str],
    options: StudyOptions,
    models_print: str,
    started: _dt.datetime,
) -> list[dict]:
    """Outcomes of the studies a stopped run did not collect whose folder holds a finished result for their
    input, options and weights: a study moved into place just before Ctrl-C was left out of summary.csv while
    its folder was complete (helper-38). ``done`` when written by this run (after ``started``), else ``skipped``.
    A folder holding an earlier result of another input, options or weights, not screened again before the stop,
    is marked stale (``last_error.txt``; helper-76: it passed for the current result).
    """
    found = []
    for key, path in studies.items():
        final = out / key
        if key in collected or not (final / FINGERPRINT_FILE).is_file():
            continue
        try:
            fingerprint = study_fingerprint(path, options, models_print)
            if not _unchanged(final, fingerprint):
                if (final / FINGERPRINT_FILE).read_text().strip() != "failed":  # (a failure says its own why)
                    _mark_stale(final, None)
                continue
            result = json.loads((final / "result.json").read_text())
            written = _dt.datetime.fromtimestamp((final / "result.json").stat().st_mtime, _dt.timezone.utc)
        except (OSError, ValueError):
            continue
        found.append({"study": key, "status": "done" if written >= started else "skipped", "result": result})
    return found


def _collect(futures, outcomes: list, bar, limit: int | None) -> None:
    """Gather the studies' outcomes as they finish (into ``outcomes``), up to ``limit`` screened."""
    from dask.distributed import as_completed

    for future in as_completed(futures):
        outcomes.append(future.result())
        if bar is not None:
            bar.set_postfix(errors=sum(o["status"] == "error" for o in outcomes))
            bar.update(1)
        if limit is not None and sum(o["status"] == "done" for o in outcomes) >= limit:
            for f in futures:
                f.cancel()
            return


def _quiet_dask(client=None) -> None:
    """A stopped run closes the cluster under running tasks: dask.distributed then logs every broken
    connection with its traceback, here and in the workers (``client``'s; helper-76: a worker's heartbeat
    failing). The user asked for the stop; they need none of it."""
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if client is not None:
        try:
            client.run(_quiet_dask)
        except Exception:  # a worker already gone: nothing of it to quiet
            pass


def _write_summary(
    out: Path,
    studies: dict[str, Path],
    outcomes: list[dict],
    started: _dt.datetime,
    device: str,
    scheduler: str | None,
    n_workers: int,
    interrupted: bool,
    options: StudyOptions = StudyOptions(),
    models: dict | None = None,
    repeats: dict[str, str] | None = None,
) -> dict:
    """Write summary.csv (a row per study: finished, failed, or not reached by a stopped run) and manifest.json; return
    the manifest.

    ``models``: the weights every study's result now comes from (``Screener.models()``); ``repeats``: studies
    that hold a series an earlier study holds too (:func:`duplicate_studies`), said in their rows' input notes
    and in the manifest's ``duplicates``."""
    repeats = repeats or {}
    rows = [_row(o) for o in outcomes]
    # the studies a stopped run did not reach: a row each, so that summary.csv names every study (helper-111: a rerun
    # stopped early listed 2 of 8, the others named nowhere)
    tried = {o["study"] for o in outcomes}
    untried = sorted(k for k in studies if k not in tried)
    for key in untried:
        row = dict.fromkeys(SUMMARY_COLUMNS, "")
        row.update(study=key, status=NOT_TRIED, error="the run stopped before it reached this study: run it again")
        rows.append(row)
    rows.sort(key=lambda r: r["study"])
    for row in rows:
        if row["study"] in repeats:
            same = (
                f"holds the same series as {repeats[row['study']]} (its SeriesInstanceUID, or the same file): a "
                "copy, or one series split over folders? count it once"
            )
            row["input_notes"] = "; ".join(n for n in (same, row["input_notes"]) if n)
    try:
        with atomic_path(out / "summary.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
            w.writeheader()
            w.writerows(rows)
    except OSError:  # a full disk: the earlier run's summary and manifest would pass for this run's (helper-98:
        # "succeeded": true stayed), so they go; removing frees space and needs none
        _remove_earlier(out, "summary.csv", "manifest.json")
        raise
    if models is None:
        models = next((o["result"].get("models") for o in outcomes if o["status"] != "error"), None)
    counts = {s: sum(o["status"] == s for o in outcomes) for s in ("done", "skipped", "error")}
    # screened (now or before) but without a result: no lumbar level, labels off the CT, a mirrored spine (_row)
    empty = [r["study"] for r in rows if r["status"] == NO_RESULT]
    # of those screened now or before, how many gave no result (helper-114: counted as done, summary.csv said otherwise)
    counts["no_result"] = len(empty)
    manifest = {
        "bonescreen": __version__,
        "models": models,
        "device": device,  # as asked ("auto": CUDA, then MPS, then CPU); devices_used: as the studies ran
        # the devices the results listed were made on, in this run or an earlier one (skipped as done)
        "devices_used": sorted({o["result"].get("device") for o in outcomes if o["status"] != "error"} - {None}),
        "options": options.as_dict(),
        "scheduler": scheduler or "LocalCluster",
        "workers": n_workers,
        "started": started.isoformat(timespec="seconds"),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "studies": len(studies),
        "counts": counts,
        "failed": sorted(o["study"] for o in outcomes if o["status"] == "error"),
        # screened, outputs written, but no result (summary.csv's status "no result", its bone_status_basis why)
        "no_result": empty,
        # not reached by a stopped run (summary.csv's status "not tried")
        "not_tried": untried,
        "duplicates": dict(sorted(repeats.items())),
        # every study was tried (its outcome, screened or failed, is in summary.csv)
        "complete": len(outcomes) == len(studies),
        # every study was tried, none failed, and each gave a result
        "succeeded": len(outcomes) == len(studies) and counts["error"] == 0 and not empty,
        "interrupted": interrupted,
    }
    try:
        write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    except OSError:  # (as summary.csv above: the earlier manifest would pass for this run's)
        _remove_earlier(out, "manifest.json")
        raise
    return manifest


def _remove_earlier(out: Path, *names: str) -> None:
    """Remove an earlier run's files of ``names`` from ``out`` (where this run's could not be written)."""
    for name in names:
        (out / name).unlink(missing_ok=True)
