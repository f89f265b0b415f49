"""Screen one CT file or folder and write the outputs of ``bonescreen screen``."""

from __future__ import annotations

import json
import os
import shlex
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .atomic import HeldFolder, held_output_folder, temporary_names, write_text_atomic
from .checkpoint import file_sha256
from .errors import BoneScreenError, OutputError
from .hu import HUThresholds
from .io import CTVolume, load_ct
from .io.identifiers import redact, redact_error, system_reason, without_header_values
from .io.nifti import file_type_suffix
from .io.sr import write_dicom_sr
from .io.writers import (
    automatic_ids,
    naming_of_map,
    own_labels,
    read_labels_nifti,
    write_dicom_seg,
    write_labels_nifti,
)
from .label_schemes import MASK_SCHEME
from .labels import ALL_VERTEBRA_IDS
from .output_folder import check_screen_folder
from .pipeline import Screener
from .pipeline.levels import upside_down_note
from .pipeline.progress import ProgressCallback
from .report import render_report


def screen_file(
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    device: str = "auto",
    seg_weights: str | os.PathLike | None = None,
    cls_weights: str | os.PathLike | None = None,
    labels_path: str | os.PathLike | None = None,
    thresholds: HUThresholds = HUThresholds(),
    progress: ProgressCallback | None = None,
    screener: Screener | None = None,
    input_name: str | None = None,
    out_name: str | os.PathLike | None = None,
    hu_offset: float | None = None,
    orientation: str | None = None,
    label_scheme: str = "bonescreen",
    recursive: bool = True,
    series: str | None = None,
    held: HeldFolder | None = None,
) -> dict:
    """Run the main job on one CT and write its outputs.

    Writes ``result.json``, ``levels.nii.gz`` (L1-L5), ``vertebrae.nii.gz`` (every vertebra found, with the ids of
    DESIGN.md: the map to correct names in, given back with ``--labels``), ``seg.dcm`` and ``sr.dcm`` (DICOM input:
    the SEG and a TID 1500 Measurement Report, :mod:`bonescreen.io.sr`) and ``report.png``. The output
    folder is checked before any work; each output is written on its own, and one that fails is
    recorded in result.json (``output_errors``) while the others are still written.

    Parameters
    ----------
    input_path : str or PathLike
        DICOM folder, DICOM file or NIfTI.
    out : str or PathLike
        Output folder (created).
    labels_path : str or PathLike, optional
        Corrected level labels or an all-vertebrae map (NIfTI on the CT's grid, ids of DESIGN.md, taken
        as the names); segmentation is skipped.
    label_scheme : str
        Ids of ``labels_path``: ``bonescreen`` (DESIGN.md), ``verse`` or ``totalseg``, or ``mask`` (a mask of
        the spine, split and named by BoneScreen) (:mod:`bonescreen.label_schemes`).
    screener : Screener, optional
        A loaded screener to reuse (batch runs); else one is made from the other arguments.
    input_name : str, optional
        What result.json calls the input; the input path by default (batch runs give a key that names nobody).
    out_name : str or PathLike, optional
        The folder the notes name where they point at a file in ``out``; ``out`` by default (batch runs write into a
        temporary folder that then takes the study's name).
    hu_offset, orientation : optional
        The user's corrections of the input (:func:`~bonescreen.io.load_ct`).
    recursive : bool
        Search a DICOM folder's subfolders too (:func:`~bonescreen.io.load_ct`).
    series : str, optional
        The DICOM series to read, by SeriesNumber or SeriesInstanceUID (:func:`~bonescreen.io.load_ct`).
    held : HeldFolder, optional
        ``out`` already checked (:func:`~bonescreen.output_folder.check_screen_folder`) and locked by the caller
        (the command line, before torch loads: a refused run costs no seconds); else both are done here.

    Returns
    -------
    dict
        The content of result.json.

    Raises
    ------
    BoneScreenError
        If the input cannot be read or is not CT in HU, or ``out`` is not a writable folder.
    """
    out = Path(out)
    if held is None:
        check_screen_folder(out, input_path)
    # the folder's lock, held to the end: another run (a batch, a screen) writing there is refused before any work,
    # and none can start writing among this run's files (helper-97: two screens into one folder left result.json of
    # one CT beside levels.nii.gz of the other, both "written")
    with nullcontext(held) if held is not None else held_output_folder(out) as folder:
        t0 = time.perf_counter()
        volume = load_ct(input_path, hu_offset=hu_offset, orientation=orientation, recursive=recursive, series=series)
        load_s = time.perf_counter() - t0
        screener = screener or Screener(seg_weights, cls_weights, device, thresholds)
        screener.models()  # both networks' weights read now: bad ones are refused before the segmentation (helper-38)
        given_map: dict[str, np.ndarray | dict | None] = {}
        try:  # an error names the label file or the input: the patient's name and IDs taken out (helper-90)
            if labels_path:
                read = read_labels_nifti(volume, labels_path, allowed=ALL_VERTEBRA_IDS, scheme=label_scheme)
                given_map = {"mark" if label_scheme == MASK_SCHEME else "labels": read}
                if label_scheme == "bonescreen":
                    given_map["own_labels"] = own_labels(labels_path)
            try:
                result, labels, vertebrae = screener.screen(volume, progress, **given_map)
            # what the labels hold (one id over several vertebrae): named with their file
            except BoneScreenError as exc:
                if given_map and exc.path is None:
                    raise BoneScreenError(exc.problem, labels_path) from None
                raise
        except BoneScreenError as exc:
            raise redact_error(exc, volume.source.identifiers) from None
        given = Path(labels_path).resolve() if labels_path else None
        try:
            folder.keep()  # the run writes there now: the folder stays
            # an earlier run's files go before any new file is written, so that a run stopped half-way (Ctrl-C, a
            # full disk) leaves no result.json and no output of another CT beside this one's
            earlier = clear_earlier_run(out, given, Path(out_name) if out_name is not None else out)
        except OSError as exc:  # checked before the work, but the disk may have changed since
            raise BoneScreenError(f"cannot clear the output folder ({system_reason(exc)})", out) from None
        outputs: dict[str, str] = {}
        exports: dict[str, list[str]] = {}
        errors: dict[str, str] = {}
        output_notes: list[str] = list(earlier.notes)

        written_sha: dict[str, str] = {}

        def note_written(name: str, value: str) -> None:
            written_sha[name] = value
            try:
                write_text_atomic(out / WRITING_RECORD, json.dumps(written_sha))
            except OSError:  # (a full disk: the next run keeps the output as not vouched for)
                pass

        def attempt(key: str, name: str, write) -> None:
            # recorded before it is written (helper-100: a stop between the output's move into place and its record
            # left it "edited?"), then by its SHA-256, so that a run stopped before result.json leaves its own known
            note_written(name, WRITING)
            write_output(out, key, name, write, outputs, errors, exports)
            if key in outputs:
                note_written(name, file_sha256(out / name))

        def write_map(held: np.ndarray, path: Path) -> list[str]:
            """Write ``held`` (``labels``: L1-L5; ``vertebrae``: every vertebra found) with its naming note."""
            write_labels_nifti(volume, held, path, naming_of(held))
            return []  # a label map carries no identifying tag

        def naming_of(held: np.ndarray) -> dict | None:
            naming = None
            if result["segmentation"]["source"] == "bonescreen":
                naming = {**result["segmentation"], "upside_down": upside_down_note(result["segmentation"]["notes"])}
            if own := given_map.get("own_labels"):  # BoneScreen's own labels given back: as the run named them, with
                # the user's edits and renamings of the vertebrae the map holds written
                naming = naming_of_map(own, held)
            return naming

        # levels.nii.gz holds L1-L5 (DESIGN.md); vertebrae.nii.gz every vertebra found, with the ids napari's layer and
        # Slicer's segments use, so that names can be corrected outside them too (helper-106: a T12 taken for L1 could
        # not be renamed from the command line, the map holding L1-L5 only)
        for key, name, held in (("levels", "levels.nii.gz", labels), ("vertebrae", "vertebrae.nii.gz", vertebrae)):
            if given == (out / name).resolve():  # the user's corrected labels: never overwritten
                output_notes.append(f"{name} is the labels given (--labels): left as it is")
            else:
                attempt(key, name, partial(write_map, held))
        if not labels.any():
            output_notes.append(
                "levels.nii.gz is empty: it holds the lumbar levels (L1-L5) only and none was found"
                + ("; vertebrae.nii.gz holds the vertebrae found" if vertebrae.any() else "")
                + (
                    "; seg.dcm and sr.dcm were not written (nothing to segment or measure)"
                    if volume.source.kind == "dicom"
                    else ""
                )
            )
        elif volume.source.kind == "dicom":
            # MS-Net's levels that no user edited are AUTOMATIC segments, the rest SEMIAUTOMATIC (helper-80: all were
            # SEMIAUTOMATIC, a screen that no one touched included)
            own = given_map.get("own_labels")
            mark = own if own else {} if result["segmentation"]["source"] == "bonescreen" else None
            automatic = automatic_ids(labels, mark)
            attempt(
                "seg", "seg.dcm", lambda p: write_dicom_seg(volume, labels, p, notes=output_notes, automatic=automatic)
            )
            if "seg" in outputs and result["levels"]:  # the SR's measurements point at the SEG's segments
                attempt("sr", "sr.dcm", lambda p: write_dicom_sr(volume, out / "seg.dcm", result, p))
            elif "seg" in outputs:
                output_notes.append("sr.dcm was not written: no lumbar level was measured")
            else:  # (helper-66: a failed seg.dcm left sr.dcm out of both outputs and output_errors)
                errors["sr.dcm"] = "not written: its measurements reference seg.dcm's segments, and seg.dcm failed"
        else:  # a DICOM SEG and SR reference the source series' UIDs, which a NIfTI (or NRRD) file does not carry
            output_notes.append(
                "seg.dcm and sr.dcm are written for DICOM input only: a DICOM SEG and SR reference the source series' "
                "UIDs, which this input does not have (levels.nii.gz holds the levels)"
            )
        t1 = time.perf_counter()
        attempt(
            "report",
            "report.png",
            lambda p: render_report(
                volume.hu,
                labels,
                volume.spacing,
                {**result, "output_errors": dict(errors), "output_notes": output_notes},
                p,
                title=volume.description,
                vertebrae=vertebrae,
            ),
        )
        record = input_record(volume, input_name or str(Path(input_path)))
        result = {
            "schema_version": result["schema_version"],
            "input": record.pop("input"),
            **result,
            **output_record(out, outputs, errors, output_notes, earlier, exports, written_sha),
            **record,
        }
        result["timings_s"] = {
            "load": round(load_s, 3),
            **result["timings_s"],
            "report": round(time.perf_counter() - t1, 3),
        }
        try:
            write_text_atomic(out / "result.json", json.dumps(result, indent=2) + "\n")
        except OSError as exc:
            written = ", ".join(outputs.values()) or "nothing else"
            raise OutputError(f"cannot write result.json ({exc.strerror or exc}); written: {written}", out) from None
        (out / WRITING_RECORD).unlink(missing_ok=True)  # result.json vouches for the outputs now
        return result


#: The files :func:`screen_file` writes beside result.json.
OUTPUT_NAMES = ("levels.nii.gz", "vertebrae.nii.gz", "seg.dcm", "sr.dcm", "report.png")
#: A run's record of the outputs it has written (name -> SHA-256), kept until its result.json is written: the next
#: run removes the files it names, as written, for a stopped run's own, and keeps any other for the user's.
WRITING_RECORD = ".bonescreen-writing.json"
#: The record's value for an output being written: a file of that name is the stopped run's (the folder was cleared
#: of earlier files and locked before it began).
WRITING = "being written"


def _read_writing_record(out: Path) -> dict:
    """The outputs a run stopped before its result.json had written (:data:`WRITING_RECORD`); empty when none."""
    try:
        record = json.loads((out / WRITING_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


#: What result.json says of the identifying tags its DICOM outputs carry.
IDENTIFYING_TAGS_NOTE = (
    "a DICOM SEG and SR repeat the source's patient and study tags so that they stay attached to the study: "
    "identifying_tags lists, per file, those that hold a value (of DICOM PS3.15 Annex E's identifying attributes); "
    "levels.nii.gz, vertebrae.nii.gz, report.png and result.json carry none"
)


def input_record(volume: CTVolume, name: str | None = None) -> dict:
    """result.json's record of the CT read, the same from every front end: ``input`` (``name``, else the file or
    folder read, else the volume's description), ``spacing_mm`` ((dz, dy, dx), mm) and ``shape`` ((z, y, x)).
    (helper-63: napari's result.json named only the layer, and two inputs' results could not be told apart.)"""
    source = getattr(volume.source, "path", None)
    # a folder or file named for the patient (helper-72): the record keeps the path, not the identifiers
    ids = getattr(volume.source, "identifiers", ())
    return {
        "input": redact(name or (str(source) if source else volume.description), ids),
        "spacing_mm": [round(float(s), 4) for s in volume.spacing],
        "shape": list(volume.shape),
    }


def write_output(out: Path, key: str, name: str, write, outputs: dict, errors: dict, exports: dict) -> None:
    """Write one output of a folder; a failure is recorded with its reason and the others are still written.

    ``write(path)`` writes ``out / name`` and returns the identifying DICOM tags the file carries, or None. On success
    ``outputs[key] = name`` (and ``exports[name]`` the tags); on failure ``errors[name]`` says why (``screen`` and
    Slicer's Export).
    """
    try:
        tags = write(out / name)
    except BoneScreenError as exc:
        errors[name] = exc.problem
    except OSError as exc:  # the system's reason, as the user knows it (helper-97: pydicom's "With tag ... got
        # exception: [Errno 28] ..." for a full disk)
        errors[name] = system_reason(exc)
    except Exception as exc:  # an output must never take the others down: record and go on
        # without the traceback pydicom puts in its message (helper-94: a full disk's seg.dcm error held one)
        errors[name] = f"{type(exc).__name__}: {without_header_values(str(exc))}"
    else:
        outputs[key] = name
        if tags is not None:
            exports[name] = tags


def output_record(
    out: Path,
    outputs: dict,
    errors: dict,
    notes: list[str],
    earlier: EarlierRun,
    exports: dict,
    digests: dict | None = None,
) -> dict:
    """result.json's account of a folder's outputs, as ``screen`` and Slicer's Export write it.

    Parameters
    ----------
    out : Path
        The folder.
    outputs : dict
        Output key -> file name, for the files written.
    errors : dict
        File name -> why it was not written.
    notes : list of str
        Notes on the outputs; those of :func:`clear_earlier_run`'s removals whose file was not written again are
        added (in place).
    earlier : EarlierRun
        What :func:`clear_earlier_run` did.
    exports : dict
        File name -> the identifying DICOM tags it carries (those files that carry some).
    digests : dict, optional
        File name -> SHA-256 of the files written, where the writer took them already (else read here).

    Returns
    -------
    dict
        ``outputs``, ``outputs_sha256``, ``output_errors``, ``output_notes``, ``identifying_tags`` and
        ``identifying_tags_note``.
    """
    notes += [
        f"{name} of an earlier run in this folder was removed: this run wrote none"
        for name in earlier.removed
        if name not in outputs.values()
    ]
    return {
        "outputs": outputs,
        "outputs_sha256": {name: (digests or {}).get(name) or file_sha256(out / name) for name in outputs.values()},
        "output_errors": errors,
        "output_notes": notes,
        "identifying_tags": dict(exports),
        "identifying_tags_note": IDENTIFYING_TAGS_NOTE,
    }


class EarlierRun(NamedTuple):
    """What :func:`clear_earlier_run` did: the outputs it removed, and notes for the user."""

    removed: list[str]
    notes: list[str]


def clear_earlier_run(out: Path, given: Path | None, shown: Path | None = None) -> EarlierRun:
    """Take an earlier run's files out of ``out`` before this run writes its own.

    result.json and the outputs of :data:`OUTPUT_NAMES` that BoneScreen wrote there last are removed: a result.json
    of BoneScreen's, and the outputs whose SHA-256 its ``outputs_sha256`` records. Any other file of those names (a
    result.json that is not BoneScreen's, a levels.nii.gz the user corrected in place, the user's own seg.dcm or
    report.png) is kept under a new name
    (``levels.kept-<time>.nii.gz``, ``seg.kept-<time>.dcm`` ...), with a note; files kept so by earlier runs are
    named in a note too, once (those the last result.json named are not named again). The outputs of a run stopped
    before its result.json, as its :data:`WRITING_RECORD` records them, are removed with a note. Temporary files of
    a stopped run (:func:`~bonescreen.atomic.temporary_names`) are
    removed (the caller holds the folder's lock: no other run is writing them). The labels the user gave
    (``given``) stay in place (helper-92: the user's own result.json, seg.dcm and report.png were replaced
    without a word; only levels.nii.gz was kept). A kept label map's note gives the command that screens with it,
    its path in ``shown`` (the folder as the user knows it; ``out`` by default).

    Raises
    ------
    OSError
        If a file cannot be removed or renamed (the caller says so, naming the folder).
    """
    from .batch import RESULT_KEYS

    earlier = None
    try:
        earlier = json.loads((out / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none, or unreadable: nothing is vouched for
        pass
    ours = isinstance(earlier, dict) and all(k in earlier for k in RESULT_KEYS)
    recorded = (earlier.get("outputs_sha256") or {}) if ours else {}
    stopped = _read_writing_record(out)
    removed, notes, stopped_removed = [], [], []
    for name in ("result.json", *OUTPUT_NAMES):  # the folder is this run's (locked): a temporary file is a leftover
        for left in out.glob(temporary_names(out / name)):
            left.unlink()
    # files an earlier run kept (an edit set aside by a run then stopped: helper-97, the user never heard of it),
    # once: those the last finished run's result.json named already are not named again (stop 63: said every run)
    said = json.dumps(earlier.get("output_notes") or []) if ours else ""
    if earlier_kept := sorted(p.name for p in out.glob("*.kept-*") if p.is_file() and p.name not in said):
        notes.append(
            f"kept from earlier runs in this folder (set aside, not BoneScreen's outputs): {', '.join(earlier_kept)}"
        )
    for name in ("result.json", *OUTPUT_NAMES):
        path = out / name
        if not path.is_file() or path.resolve() == given:
            continue
        if (name == "result.json" and ours) or (name != "result.json" and recorded.get(name) == file_sha256(path)):
            path.unlink()
            removed.append(name)
            continue
        if name != "result.json" and name in stopped and stopped[name] in (WRITING, file_sha256(path)):
            # written by a run stopped before its result.json, as written (stop 63: its levels.nii.gz was set aside
            # as "edited?", one more kept file each time): nothing of the user's
            path.unlink()
            removed.append(name)
            stopped_removed.append(name)
            continue
        kept = kept_name(path)
        path.rename(kept)
        label_map = name in ("levels.nii.gz", "vertebrae.nii.gz")
        why = (
            "was not the file BoneScreen wrote there last (edited?)"
            if label_map
            else "was not written by BoneScreen's last run there"
        )
        # a command that runs when copied: the path as the output folder was given, quoted for the shell, and --out
        # (helpers 106-108: the bare name, a folder with a space, no --out each failed); INPUT stays a word, since the
        # note may leave the machine and a path may name the patient
        command = f"bonescreen screen INPUT --labels {shlex.quote(str((shown or out) / kept.name))} --out NEW_FOLDER"
        hint = f"; to screen with it: {command}" if label_map else ""
        notes.append(f"{name} in the folder {why}: kept as {kept.name}{hint}")
    if stopped_removed:
        notes.append(f"{', '.join(stopped_removed)} of an earlier run stopped before its result.json: removed")
    (out / WRITING_RECORD).unlink(missing_ok=True)
    return EarlierRun([n for n in removed if n != "result.json"], notes)


def kept_name(path: Path) -> Path:
    """``levels.nii.gz`` -> ``levels.kept-<time>.nii.gz`` beside it, never the name of a file there."""
    # the file type's suffix, .nii.gz whole: "scan.v2.nii.gz" is kept as "scan.v2.kept-<time>.nii.gz" (helper-118:
    # "scan.kept-<time>.v2.nii.gz")
    suffix = file_type_suffix(path)
    stem = path.name[: len(path.name) - len(suffix)]
    stamp, n = time.strftime("%Y%m%dT%H%M%S"), 1
    kept = path.with_name(f"{stem}.kept-{stamp}{suffix}")
    while kept.exists():  # never over an earlier kept file (two runs within a second)
        n += 1
        kept = path.with_name(f"{stem}.kept-{stamp}-{n}{suffix}")
    return kept
