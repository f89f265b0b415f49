"""Walking a user's folder tree: symlinked folders are followed, each real folder is read once, hidden ones skipped.

Data folders are often built of links (``studies/patient-01 -> /mnt/pacs/...``, an nnU-Net or VerSe tree linked
into a working folder); ``os.walk`` and ``Path.rglob`` (before Python 3.13) do not enter a linked folder, so
such a tree read as empty (until 2026-12-06: "no labelled CT found", a batch of no study).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from ..errors import BoneScreenError

#: What a path that is neither a file nor a folder is, by its ``st_mode`` type.
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def special_file(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it is neither a regular file nor a folder (links followed): "a named pipe", "a socket",
    "a character device" or "a block device"; None for a file, a folder, or a path that does not exist.

    Reading such a path blocks (a pipe waits for a writer) or never ends (``/dev/zero``), so BoneScreen never
    opens one (until 2026-12-06 a named pipe in a DICOM folder froze ``screen`` and napari).
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((kind for test, kind in _SPECIAL_KINDS if test(mode)), None)


def check_not_special(path: str | os.PathLike) -> None:
    """Raise if ``path`` is a named pipe, socket or device (:func:`special_file`).

    Raises
    ------
    BoneScreenError
        Naming the path and what it is.
    """
    kind = special_file(path)
    if kind is not None:
        raise BoneScreenError(f"not a file but {kind}: BoneScreen reads files and folders", path)


#: How :func:`open_problem` and :func:`walk_folders` begin the reason of what does not open.
CANNOT_BE_READ = "cannot be read ("


def open_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be opened for reading: "cannot be read (permission denied)" and the like (the system's
    reason, lower case), "not a file (a named pipe)" for a pipe, socket or device (never opened); None when it opens.

    A file that does not open is not a damaged one: the reader says which (helper-92: a file without read
    permission was called "damaged, or another format").
    """
    kind = special_file(path)
    if kind is not None:
        return f"not a file ({kind})"
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return cannot_be_read(exc)


def file_problem(path: str | os.PathLike, missing: str = "no such file") -> str | None:
    """Why ``path`` cannot be read as a file the user named (labels, weights): ``missing`` when nothing is there, "a
    link to nothing (a broken symbolic link)", "a folder, not a file", or :func:`open_problem`'s reason (no
    permission, a named pipe); None when it opens.

    (helper-94: a pipe given as ``--labels`` was "no such label file", a weights file without permission "truncated
    or foreign?", and a pipe or broken link in place of BCC-Net's feature statistics switched the check off.)
    """
    if not os.path.lexists(path):
        return missing
    if not os.path.exists(path):
        return "a link to nothing (a broken symbolic link)"
    if os.path.isdir(path):
        return "a folder, not a file"
    return open_problem(path)


def listing_problem(folder: str | os.PathLike) -> str | None:
    """Why the files of ``folder`` cannot be listed: "cannot be read (permission denied)" and the like; else None."""
    try:
        os.listdir(folder)
    except OSError as exc:
        return cannot_be_read(exc)
    return None


def cannot_be_read(exc: OSError) -> str:
    """The reason BoneScreen gives for a path the system refuses: "cannot be read (permission denied)", "cannot be
    read (file name too long)" (the system's reason, lower case)."""
    return f"{CANNOT_BE_READ}{(exc.strerror or type(exc).__name__).lower()})"


def walk_folders(
    root: str | os.PathLike,
    keep: Callable[[Path], bool] | None = None,
    skipped: list[tuple[Path, str]] | None = None,
) -> Iterator[tuple[Path, list[str], list[str]]]:
    """Every folder under ``root`` (``root`` first, top-down), as ``os.walk`` gives them, following symlinked folders.

    Parameters
    ----------
    root : str or PathLike
        Folder to walk.
    keep : callable, optional
        ``keep(folder)`` is False for a subfolder not to enter (an output folder); hidden folders (names starting
        with ".") are never entered.
    skipped : list, optional
        Gets ``(path, reason)`` for what could not be walked or read, so that the caller says it: a folder that
        cannot be listed or tested by ``keep`` ("cannot be read (permission denied)"), and a named pipe, socket or
        device ("not a file (a named pipe)", :func:`special_file`), which is not among ``files`` since opening one
        blocks.

    Yields
    ------
    folder : Path
        The folder, as reached from ``root`` (through the link's name, not its target).
    dirs : list of str
        Its subfolders still to walk, sorted; clear it (``dirs[:] = []``) to walk no deeper.
    files : list of str
        Its files' names, sorted (links to files included, and broken links, which fail to open at once; hidden
        files too: the caller decides).

    Notes
    -----
    A folder reached twice (two links to it, or a link to a folder above it) is walked the first time only, so a
    loop of links ends and no file is read twice. Until 2026-12-06 a subfolder without read permission was passed
    over without a word, and a series split over two folders read half its slices unflagged (helper-92).
    """
    said = skipped if skipped is not None else []

    def unlisted(exc: OSError) -> None:
        said.append((Path(exc.filename), cannot_be_read(exc)))

    seen = {os.path.realpath(root)}
    for folder, dirs, files in os.walk(root, onerror=unlisted, followlinks=True):
        here = Path(folder)
        kept = []
        for name in sorted(dirs):
            path = here / name
            if name.startswith("."):
                continue
            try:
                if keep is not None and not keep(path):
                    continue
            except OSError as exc:  # keep reads the folder (an output's result.json) and may not be let in
                exc.filename = str(path)
                unlisted(exc)
                continue
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                kept.append(name)
        dirs[:] = kept
        plain = []
        for name in sorted(files):
            kind = special_file(here / name)
            if kind is None:
                plain.append(name)
            else:
                said.append((here / name, f"not a file ({kind})"))
        yield here, dirs, plain


def find_files(root: str | os.PathLike, pattern: str) -> list[Path]:
    """Files under ``root`` whose path ends with ``pattern`` (as ``PurePath.match``: "ct.nii.gz",
    "segmentations/vertebrae_*.nii.gz"), sorted, symlinked folders followed (:func:`walk_folders`).

    Parameters
    ----------
    root : str or PathLike
        Folder to search.
    pattern : str
        Glob pattern of the file's name, optionally with the folders above it ("/"-separated).

    Returns
    -------
    list of Path
        Matching files (not folders), each reached from ``root``.
    """
    root = Path(root)
    found = []
    for folder, _, files in walk_folders(root):
        for name in files:
            path = folder / name
            if PurePosixPath(path.relative_to(root).as_posix()).match(pattern) and path.is_file():
                found.append(path)
    return sorted(found)
