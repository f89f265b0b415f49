"""Walking a user's folder tree: symlinked folders are followed, each real folder is read once, hidden ones skipped.

Data folders are often built of links (``studies/patient-01 -> /mnt/pacs/...``, an nnU-Net or VerSe tree linked
into a working folder); ``os.walk`` and ``Path.rglob`` (before Python 3.13) do not enter a linked folder, so
such a tree read as empty (until 2026-12-06: "no labelled CT found", a batch of no study).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath


def walk_folders(
    root: str | os.PathLike, keep: Callable[[Path], bool] | None = None
) -> Iterator[tuple[Path, list[str], list[str]]]:
    """Every folder under ``root`` (``root`` first, top-down), as ``os.walk`` gives them, following symlinked folders.

    Parameters
    ----------
    root : str or PathLike
        Folder to walk.
    keep : callable, optional
        ``keep(folder)`` is False for a subfolder not to enter (an output folder); hidden folders (names starting
        with ".") are never entered.

    Yields
    ------
    folder : Path
        The folder, as reached from ``root`` (through the link's name, not its target).
    dirs : list of str
        Its subfolders still to walk, sorted; clear it (``dirs[:] = []``) to walk no deeper.
    files : list of str
        Its files' names, sorted (links to files included; hidden ones too: the caller decides).

    Notes
    -----
    A folder reached twice (two links to it, or a link to a folder above it) is walked the first time only, so a
    loop of links ends and no file is read twice.
    """
    seen = {os.path.realpath(root)}
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        kept = []
        for name in sorted(dirs):
            path = here / name
            if name.startswith(".") or (keep is not None and not keep(path)):
                continue
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                kept.append(name)
        dirs[:] = kept
        yield here, dirs, sorted(files)


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
