"""Checks of an output folder made before any work starts, light enough to run before torch loads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import BoneScreenError

#: The file of a batch's study folder that records which input its results are of (:mod:`bonescreen.batch`).
FINGERPRINT_FILE = "input_fingerprint.txt"


def check_output_folder(out: str | os.PathLike) -> None:
    """Refuse an output folder that is a file or cannot be written, before any work starts.

    Raises
    ------
    BoneScreenError
        Naming the path and the problem.
    """
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise BoneScreenError("the output folder is a link to nothing (a broken symbolic link)", out)
    if out.exists() and not out.is_dir():
        raise BoneScreenError("the output folder is a file", out)
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise BoneScreenError(f"cannot create the output folder: {parent} is a file", out)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BoneScreenError(f"the output folder cannot be written ({parent} is not writable)", out)
    # permissions do not tell everything (root, read-only mounts, /proc): try it, and leave nothing behind
    made = [p for p in [out, *out.parents] if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".bonescreen-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BoneScreenError(f"the output folder cannot be written ({exc.strerror or exc})", out) from None
    finally:
        for p in made:  # deepest first
            try:
                p.rmdir()
            except OSError:
                pass


def check_screen_folder(out: str | os.PathLike, input_path: str | os.PathLike) -> None:
    """Refuse ``screen``'s output folder before any work: one that cannot be written (:func:`check_output_folder`),
    the input's own DICOM folder, or a study folder of a batch.

    Raises
    ------
    BoneScreenError
        Naming the folder and the problem.
    """
    out = Path(out)
    check_output_folder(out)
    if Path(input_path).is_dir() and out.resolve() == Path(input_path).resolve():
        # the results would mix with the series (seg.dcm, sr.dcm among its images), and batch then takes the
        # folder for BoneScreen's output and passes its series over (helper-78)
        raise BoneScreenError("the output folder is the input folder: write the results to a folder of their own", out)
    if (out / FINGERPRINT_FILE).is_file():  # (helper-98: a screen into a batch's study folder passed for the batch's)
        raise BoneScreenError(
            "the output folder is a study of a batch (it holds its input_fingerprint.txt): its results are the "
            "batch's; give another --out",
            out,
        )
